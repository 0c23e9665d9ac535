"""`signals invoke`: one collector, one window, no Dagster instance."""

import contextlib
import logging
from pathlib import Path
from typing import Any, TextIO

from signals_dagster.collect import collect
from signals_dagster.contracts.enforce import Verdict
from signals_dagster.partitioning import current_window, window_for_key
from signals_dagster.quality.gate import judge, quarantine
from signals_dagster.quality.history import file_history
from signals_dagster.quality.policies import project_policies, publish_violations
from signals_dagster.records import json_line_chunks
from signals_dagster.redact import redact
from signals_dagster.settings import load_settings
from signals_dagster.sinks import close_writers, open_writers
from signals_dagster.sinks.file import FileWriter
from signals_dagster.spec.loader import load_file

log = logging.getLogger("signals_dagster")


def _print_and_append(records: Any, stdout: TextIO, files: dict[str, FileWriter]) -> None:
    """The records' JSON lines, serialised once a chunk at a time, to stdout and to every file
    sink (each appended all or nothing)."""
    with contextlib.ExitStack() as stack:
        appends = [stack.enter_context(writer.appending()) for writer in files.values()]
        binary = getattr(stdout, "buffer", None)  # a real stdout takes the bytes as they are
        stdout.flush()
        for chunk in json_line_chunks(records):
            if binary is not None:
                binary.write(chunk)
            else:
                stdout.write(chunk.decode())
            for append in appends:
                append(chunk)
        (binary or stdout).flush()


def _outcome(verdict: Verdict) -> str:
    if verdict.passed:
        return f"passed ({verdict.records} record(s))"
    return f"{len(verdict.violations)} violation(s)"


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
    # Open (and so check: Kafka topic, S3 bucket, file folder) every sink before the query: a
    # dead sink costs the source nothing, and no sink is half-written. A dry run writes no sink
    # (the records go to stdout), so it checks none either.
    writers = {} if dry_run else open_writers(spec, include_console=False)
    try:
        (collected,) = collect(spec, [window])
        # Compute → check → publish: the contract and the checks judge the records before
        # anything is printed or written; a blocked batch goes to the quarantine sink only.
        windows = [(window, collected.records)]
        outcome = judge(spec, windows, file_history(spec), project_policies(Path(file).parent))
        for verdict in outcome.verdicts:
            log.info("contract %s, %s: %s", verdict.contract.label, window.key, _outcome(verdict))
        for judged in outcome.results:
            (log.warning if not judged.passed else log.info)("%s", judged.line())
        if not dry_run and any(r.kind == "policy" for r in outcome.results):
            publish_violations(load_settings(), spec, [(window, outcome.results)])
        where = quarantine(spec, windows) if outcome.blocked and not dry_run else None
        outcome.raise_if_blocked(where)
        files = {n: w for n, w in writers.items() if isinstance(w, FileWriter)}
        _print_and_append(collected.records, stdout, files)
        for name, writer in writers.items():
            if name in files:
                log.info("sink %s (file): %d record(s) appended", name, len(collected.records))
                continue
            result = writer.write(spec, window.key, collected.records)
            log.info("sink %s (%s): %s", name, spec.sinks[name].type, result)
    finally:
        close_writers(writers)
    suppressed = (
        f"; {collected.suppressed} below the contract's min_group_size suppressed"
        if collected.suppressed is not None
        else ""
    )
    log.info(
        "%d record(s) from %d row(s) in %.3fs%s%s",
        len(collected.records),
        collected.source_rows,
        collected.query_seconds,
        suppressed,
        " (dry run: no sink written)" if dry_run else "",
    )
    return len(collected.records)
