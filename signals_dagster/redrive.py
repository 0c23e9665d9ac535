"""`signals redrive`: re-send records from a file-sink audit log to one of a collector's sinks.

The audit log is what the file sink appended (signals-collector keeps it "for durability and
redriving"). Records are sent unchanged (same uuids, same JSON), so a redrive is as idempotent
downstream as the original run: Kafka compaction and upserts keyed on the uuid absorb repeats.
"""

import logging
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from signals_dagster.errors import CollectorError
from signals_dagster.partitioning import (
    INSTANT_FMT,
    partition_key_for,
    partitioning,
    window_for_key,
)
from signals_dagster.sinks import SinkClients, check_sink, open_writer
from signals_dagster.sinks.file import read_records
from signals_dagster.spec.loader import load_file
from signals_dagster.spec.models import CollectorSpec
from signals_dagster.spec.sinks import FileSink

log = logging.getLogger("signals_dagster")


@dataclass
class RedriveReport:
    """What a redrive read, kept and sent."""

    collector: str
    metric: str
    sink: str
    sink_type: str
    read: int = 0  # records in the audit log
    matching: int = 0  # of the collector's metric (and the partition, when given)
    duplicates: int = 0  # older copies of a uuid, dropped (the last one is sent)
    sent: int = 0
    partitions: list[tuple[str, int]] = field(default_factory=list)  # (key, records sent)
    results: list[dict[str, object]] = field(default_factory=list)  # the sink's confirmations


def _partition_key(spec: CollectorSpec, grain: pd.Timestamp) -> str:
    """The partition key of a record's grain_datetime (its UTC time when not partitioned)."""
    if partitioning(spec) is None:
        return grain.strftime(INSTANT_FMT)
    return partition_key_for(spec, datetime.fromtimestamp(grain.timestamp(), UTC))


def redrive(
    audit_file: str,
    collector_file: str,
    sink_name: str,
    partition: str | None = None,
    clients: SinkClients | None = None,
) -> RedriveReport:
    """Send the collector's records found in the audit log (latest per uuid) to one sink."""
    spec = load_file(collector_file)
    sink = spec.sinks.get(sink_name)
    if sink is None:
        raise CollectorError(
            f"collector {spec.name} has no sink named {sink_name!r} "
            f"(its sinks: {', '.join(sorted(spec.sinks))})"
        )
    audit = Path(audit_file)
    if not audit.is_file():
        raise CollectorError(f"audit log {audit_file} does not exist (or is not a file)")
    if isinstance(sink, FileSink) and os.path.realpath(sink.config.path) == os.path.realpath(audit):
        raise CollectorError(f"sink {sink_name!r} is the audit log itself ({audit_file})")
    window = window_for_key(spec, partition) if partition else None
    check_sink(sink, clients)  # before reading: a dead sink fails at once, whatever the log holds

    records = read_records(str(audit))
    report = RedriveReport(spec.name, spec.metric.name, sink_name, sink.type, read=len(records))
    records = records[records["name"] == spec.metric.name]
    if window is not None:
        records = records[records["grain_datetime"] == pd.Timestamp(window.grain_datetime)]
    report.matching = len(records)
    records = records.drop_duplicates("uuid", keep="last")
    report.duplicates = report.matching - len(records)
    if not len(records):
        return report

    groups = [
        (_partition_key(spec, grain), part.reset_index(drop=True))
        for grain, part in records.groupby("grain_datetime", sort=True)
    ]
    writer = open_writer(sink, clients=clients)
    try:
        for key, part in groups:
            report.results.append(writer.write(spec, key, part))
            report.partitions.append((key, len(part)))
            report.sent += len(part)
            log.info("redrive %s: partition %s, %d record(s) sent", spec.name, key, len(part))
    finally:
        writer.close()
    return report


def describe(report: RedriveReport, audit_file: str, partition: str | None) -> list[str]:
    """The lines `signals redrive` prints."""
    scope = f"metric {report.metric}" + (f", partition {partition}" if partition else "")
    lines = [
        f"read {report.read} record(s) from {audit_file}; {report.matching} of {scope}; "
        f"{report.duplicates} older duplicate(s) dropped"
    ]
    if not report.sent:
        lines.append("nothing to redrive")
        return lines
    lines.extend(f"  {key}: {count} record(s)" for key, count in report.partitions)
    lines.append(
        f"redriven: {report.sent} record(s) in {len(report.partitions)} partition(s) to sink "
        f"{report.sink} ({report.sink_type}), every write confirmed"
    )
    return lines
