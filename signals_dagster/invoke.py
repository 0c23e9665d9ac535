"""`signals invoke`: one collector, one window, no Dagster instance."""

import logging
from typing import TextIO

from signals_dagster.collect import collect
from signals_dagster.orchestration.partitions import current_window, window_for_key
from signals_dagster.records import to_json_lines
from signals_dagster.redact import redact
from signals_dagster.sinks import open_writer
from signals_dagster.spec.loader import load_file
from signals_dagster.spec.sinks import ConsoleSink

log = logging.getLogger("signals_dagster")


def invoke_collector(file: str, partition: str | None, dry_run: bool, stdout: TextIO) -> int:
    """Collect one window, print its records as JSON lines, write the other sinks unless dry-run."""
    spec = load_file(file)
    window = window_for_key(spec, partition) if partition else current_window(spec)
    log.info(
        "%s: %s from %s",
        spec.name,
        window.describe(),
        redact(getattr(spec.source.config, "uri", "")),
    )
    (collected,) = collect(spec, [window])
    stdout.write(to_json_lines(collected.records))
    stdout.flush()
    writers = {}
    try:
        # Open (and check: S3 bucket...) every sink before writing any: nothing half-written.
        for name, sink in spec.sinks.items():
            if not (isinstance(sink, ConsoleSink) or dry_run):
                writers[name] = open_writer(sink)
        for name, writer in writers.items():
            result = writer.write(spec, window.key, collected.records)
            log.info("sink %s (%s): %s", name, spec.sinks[name].type, result)
    finally:
        for writer in writers.values():
            writer.close()
    log.info(
        "%d record(s) from %d row(s) in %.3fs%s",
        len(collected.records),
        collected.source_rows,
        collected.query_seconds,
        " (dry run: no sink written)" if dry_run else "",
    )
    return len(collected.records)
