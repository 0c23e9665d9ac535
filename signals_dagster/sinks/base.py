"""The writer protocol and the factory that picks one by sink `type`."""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, TextIO

from signals_dagster.spec.models import CollectorSpec
from signals_dagster.spec.sinks import (
    KafkaConfig,
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


def _kafka(sink: Any, clients: SinkClients | None, _stdout: TextIO | None) -> Writer:
    from signals_dagster.sinks.kafka import KafkaWriter

    clients = clients or SinkClients()
    return KafkaWriter(sink.config, clients.kafka, clients.kafka_admin)  # checks the topic


def _http(sink: Any, _clients: SinkClients | None, _stdout: TextIO | None) -> Writer:
    from signals_dagster.sinks.http import HttpWriter

    return HttpWriter(sink.config)


def _console(_sink: Any, _clients: SinkClients | None, stdout: TextIO | None) -> Writer:
    from signals_dagster.sinks.console import ConsoleWriter

    return ConsoleWriter(stdout)


def _file(sink: Any, _clients: SinkClients | None, _stdout: TextIO | None) -> Writer:
    from signals_dagster.sinks.file import FileWriter

    return FileWriter(sink.config.path)


def _sql(sink: Any, _clients: SinkClients | None, _stdout: TextIO | None) -> Writer:
    from signals_dagster.sinks.sql import SqlWriter

    return SqlWriter(sink.config)  # connects; checks (or creates) the table


def _s3(sink: Any, clients: SinkClients | None, _stdout: TextIO | None) -> Writer:
    from signals_dagster.sinks.s3 import S3Writer

    return S3Writer(sink.config, clients.s3 if clients else None)  # checks the bucket


# The writers by sink type, one line each (heavy clients imported when a sink opens); plug-in
# types come from their packages (signals_dagster/plugins.py).
SINKS: dict[str, Callable[[Any, SinkClients | None, TextIO | None], Writer]] = {
    "console": _console,
    "file": _file,
    "http": _http,
    "kafka": _kafka,
    "s3": _s3,
    "sql": _sql,
}


def open_writer(
    sink: Sink, stdout: TextIO | None = None, clients: SinkClients | None = None
) -> Writer:
    """The writer for one sink config: a built-in type's, or a plug-in's (opening checks what
    can be checked without writing)."""
    opener = SINKS.get(sink.type)
    if opener is not None:
        return opener(sink, clients, stdout)
    from signals_dagster.plugins import sink_plugin

    plugin = sink_plugin(sink.type)
    if plugin is None:
        raise NotImplementedError(f"sink type {sink.type!r} is validated but cannot write yet")
    writer: Writer = plugin.open(sink, clients)
    return writer
