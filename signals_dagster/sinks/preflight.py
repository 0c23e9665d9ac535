"""Sinks checked before the source is queried: a dead sink must cost the source nothing.

What can be checked without writing is checked: the Kafka topic (looked up, never created
here), the S3 bucket (`HeadBucket`), a file sink's folder (writable, nothing created), a SQL
sink's table (its columns; a missing one passes with `create_table: true`). The HTTP sink is
not checked: any request to an ingest endpoint could be taken for a write.
"""

from collections.abc import Mapping
from typing import TextIO

from signals_dagster.sinks.base import SinkClients, Writer, open_writer
from signals_dagster.spec.models import CollectorSpec
from signals_dagster.spec.sinks import ConsoleSink, FileSink, KafkaSink, S3Sink, Sink, SqlSink


def check_sink(sink: Sink, clients: SinkClients | None = None) -> None:
    """Check one sink without writing to it; SinkError says what is wrong."""
    clients = clients or SinkClients()
    if isinstance(sink, KafkaSink):
        from signals_dagster.sinks.kafka import check_topic

        check_topic(sink.config, clients.kafka_admin)
    elif isinstance(sink, S3Sink):
        from signals_dagster.sinks.s3 import check_bucket

        check_bucket(sink.config, clients.s3)
    elif isinstance(sink, FileSink):
        from signals_dagster.sinks.file import check_writable

        check_writable(sink.config.path)
    elif isinstance(sink, SqlSink):
        from signals_dagster.sinks.sql import check_table

        check_table(sink.config)


def check_sinks(spec: CollectorSpec, clients: SinkClients | None = None) -> None:
    """Check every sink of a collector (in order; the first failure is raised)."""
    for sink in spec.sinks.values():
        check_sink(sink, clients)


def open_writers(
    spec: CollectorSpec,
    clients: SinkClients | None = None,
    include_console: bool = True,
    stdout: TextIO | None = None,
) -> dict[str, Writer]:
    """Open (and so check) every sink's writer; when one fails, those opened are closed."""
    writers: dict[str, Writer] = {}
    try:
        for name, sink in spec.sinks.items():
            if include_console or not isinstance(sink, ConsoleSink):
                writers[name] = open_writer(sink, stdout, clients)
    except BaseException:
        close_writers(writers)
        raise
    return writers


def close_writers(writers: Mapping[str, Writer]) -> None:
    """Close every writer, even when one of them fails to close (the first error is raised)."""
    failure: BaseException | None = None
    for writer in writers.values():
        try:
            writer.close()
        except Exception as exc:
            failure = failure or exc
    if failure is not None:
        raise failure
