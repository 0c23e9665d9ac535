"""The writer protocol and the factory that picks one by sink `type`."""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, TextIO

from signals_dagster.spec.models import CollectorSpec
from signals_dagster.spec.sinks import (
    ConsoleSink,
    FileSink,
    HttpSink,
    KafkaConfig,
    KafkaSink,
    S3Config,
    Sink,
)


class Writer(Protocol):
    """Writes one partition's records; returns metadata once the write is confirmed."""

    def write(
        self, spec: CollectorSpec, partition_key: str | None, records: Any
    ) -> dict[str, object]:
        """Write and confirm; raise SinkError when the write cannot be confirmed."""
        ...

    def close(self) -> None:
        """Release connections (after every partition of a run is written)."""
        ...


@dataclass(frozen=True)
class SinkClients:
    """Client factories the Dagster layer hands to writers (resources); None: writer's own."""

    s3: Callable[[S3Config], Any] | None = None  # -> a boto3 S3 client
    kafka: Callable[[KafkaConfig], Any] | None = None  # -> a confluent_kafka Producer
    # (config, error_cb) -> a confluent_kafka AdminClient reporting connection errors to error_cb
    kafka_admin: Callable[[KafkaConfig, Any], Any] | None = None


def open_writer(
    sink: Sink, stdout: TextIO | None = None, clients: SinkClients | None = None
) -> Writer:
    """The writer for one sink config (heavy clients imported lazily)."""
    if isinstance(sink, KafkaSink):
        from signals_dagster.sinks.kafka import KafkaWriter

        clients = clients or SinkClients()
        return KafkaWriter(sink.config, clients.kafka, clients.kafka_admin)  # checks the topic
    if isinstance(sink, HttpSink):
        from signals_dagster.sinks.http import HttpWriter

        return HttpWriter(sink.config)
    if isinstance(sink, ConsoleSink):
        from signals_dagster.sinks.console import ConsoleWriter

        return ConsoleWriter(stdout)
    if isinstance(sink, FileSink):
        from signals_dagster.sinks.file import FileWriter

        return FileWriter(sink.config.path)
    if sink.type == "s3":
        from signals_dagster.sinks.s3 import S3Writer
        from signals_dagster.spec.sinks import S3Sink

        assert isinstance(sink, S3Sink)
        return S3Writer(sink.config, clients.s3 if clients else None)  # checks the bucket
    raise NotImplementedError(f"sink type {sink.type!r} is validated but cannot write yet")
