"""Sink configurations: a closed union discriminated by `type`."""

import re
from typing import TYPE_CHECKING, Annotated, Any, Literal, Union

from pydantic import AfterValidator, Field, SecretStr, field_validator, model_validator

from signals_dagster.plugins import external_sinks, typed_model
from signals_dagster.spec.base import Model
from signals_dagster.spec.fields import PositiveDuration
from signals_dagster.spec.sql_sink import SqlSink
from signals_dagster.spec.templating import (
    DATE_FIELDS,
    strip_window_fields,
    window_fields,
)
from signals_dagster.spec.uris import check_broker, check_http_uri

Broker = Annotated[str, AfterValidator(check_broker)]


class Encoding(Model):
    """latte's `encoding` of a sink: how each record is written."""

    type: Literal["json", "parquet"] = "json"
    config: dict[str, Any] = Field(
        default_factory=dict,
        description="latte's encoder settings (a parquet schema): accepted; the record schema "
        "is fixed",
    )


def _json_only(encoding: Encoding | None, sink: str) -> Encoding | None:
    if encoding is not None and encoding.type != "json":
        raise ValueError(
            f"the {sink} sink writes each record as JSON: encoding {encoding.type} is only for "
            "the s3 sink (or leave encoding out)"
        )
    return encoding


class EmptyConfig(Model):
    """A sink without settings."""


class ConsoleConfig(Model):
    """The console sink: JSON lines on standard output."""

    encoding: Encoding | None = Field(default=None, description="latte compatibility: json")

    @field_validator("encoding")
    @classmethod
    def _encoding(cls, value: Encoding | None) -> Encoding | None:
        return _json_only(value, "console")


class FileConfig(Model):
    path: str = Field(min_length=1, description="JSON-lines audit log; records are appended")
    encoding: Encoding | None = Field(default=None, description="latte compatibility: json")

    @field_validator("encoding")
    @classmethod
    def _encoding(cls, value: Encoding | None) -> Encoding | None:
        return _json_only(value, "file")


class HttpConfig(Model):
    uri: str
    method: Literal["POST", "PUT", "PATCH"] = Field(
        default="POST", description="latte's method: the records are the request body"
    )
    headers: dict[str, str] = Field(default_factory=dict)
    encoding: Encoding | None = Field(default=None, description="latte compatibility: json")
    timeout: PositiveDuration = Field(default=30)  # type: ignore[assignment]
    batch_size: int = Field(default=500, gt=0)
    retries: int = Field(default=5, ge=0, le=20, description="retries after the first attempt")
    backoff: PositiveDuration = Field(  # type: ignore[assignment]
        default=0.5, description="first retry delay; doubled on each retry (at most 30 s)"
    )

    @field_validator("uri")
    @classmethod
    def _uri(cls, value: str) -> str:
        return check_http_uri(value)

    @field_validator("method", mode="before")
    @classmethod
    def _method(cls, value: object) -> object:
        if isinstance(value, str) and value.strip().upper() in ("GET", "HEAD", "DELETE", ""):
            raise ValueError(
                f"method {value!r}: the records are sent as the request body, use POST "
                "(the default), PUT or PATCH"
            )
        return value.strip().upper() if isinstance(value, str) else value

    @field_validator("encoding")
    @classmethod
    def _encoding(cls, value: Encoding | None) -> Encoding | None:
        return _json_only(value, "http")


# librdkafka settings the Kafka sink sets itself, and what to write instead.
_RESERVED_PRODUCER = {
    "bootstrap.servers": "use brokers",
    "metadata.broker.list": "use brokers",
    "compression.type": "use compression",
    "compression.codec": "use compression",
    "message.timeout.ms": "use timeout",
    "delivery.timeout.ms": "use timeout",
    "enable.idempotence": "delivery is always idempotent with acks=all",
    "acks": "delivery is always idempotent with acks=all",
    "request.required.acks": "delivery is always idempotent with acks=all",
    "transactional.id": "the sink does not use transactions",
    "allow.auto.create.topics": "use allow_auto_topic_creation",
    "delivery.report.only.error": "every delivery is confirmed",
}


# librdkafka settings a collector file may set: none of them loads code (plugin.library.paths,
# ssl.engine.location, ssl.providers), runs a command (sasl.kerberos.kinit.cmd), makes requests
# elsewhere (sasl.oauthbearer.token.endpoint.url) or undoes the guarantees above. The
# deployment's own settings (KafkaProducerResource) are not limited.
PRODUCER_ALLOWED = frozenset(
    {
        # authentication and TLS
        "security.protocol",
        "sasl.mechanism",
        "sasl.mechanisms",
        "sasl.username",
        "sasl.password",
        "ssl.ca.location",
        "ssl.ca.pem",
        "ssl.certificate.location",
        "ssl.certificate.pem",
        "ssl.key.location",
        "ssl.key.pem",
        "ssl.key.password",
        "ssl.endpoint.identification.algorithm",
        "enable.ssl.certificate.verification",
        "ssl.cipher.suites",
        "ssl.curves.list",
        "ssl.sigalgs.list",
        # batching and queueing
        "linger.ms",
        "batch.size",
        "batch.num.messages",
        "queue.buffering.max.ms",
        "queue.buffering.max.messages",
        "queue.buffering.max.kbytes",
        "message.max.bytes",
        "compression.level",
        "partitioner",
        "sticky.partitioning.linger.ms",
        # retries, timeouts, sockets
        "client.id",
        "request.timeout.ms",
        "retries",
        "message.send.max.retries",
        "retry.backoff.ms",
        "retry.backoff.max.ms",
        "reconnect.backoff.ms",
        "reconnect.backoff.max.ms",
        "max.in.flight.requests.per.connection",
        "max.in.flight",
        "socket.timeout.ms",
        "socket.connection.setup.timeout.ms",
        "socket.keepalive.enable",
        "socket.nagle.disable",
        "socket.send.buffer.bytes",
        "socket.receive.buffer.bytes",
        "connections.max.idle.ms",
        "metadata.max.age.ms",
        "topic.metadata.refresh.interval.ms",
        "broker.address.family",
    }
)


def _check_managed(key: str) -> None:
    if key in _RESERVED_PRODUCER or key.endswith("_cb") or key == "logger":
        why = _RESERVED_PRODUCER.get(key, "set by the sink")
        raise ValueError(f"setting {key!r} is managed by the Kafka sink ({why})")


def check_producer_key(key: str) -> str:
    """A librdkafka setting a collector may set: on the allow-list, not managed by the sink."""
    _check_managed(key)
    if key not in PRODUCER_ALLOWED:
        raise ValueError(
            f"setting {key!r} is not allowed in a collector file (allowed: security, SASL and "
            "TLS, batching, timeouts and socket settings; see the README's Kafka sink)"
        )
    return key


def check_producer_settings(settings: dict[str, Any]) -> dict[str, Any]:
    """Refuse deployment-wide librdkafka settings that would undo the sink's guarantees."""
    for key in settings:
        _check_managed(key)
    return settings


ProducerKey = Annotated[str, AfterValidator(check_producer_key)]


class KafkaConfig(Model):
    brokers: list[Broker] = Field(min_length=1)
    uri: str | None = Field(
        default=None, description="latte's single bootstrap server host:port (becomes brokers)"
    )
    topic: str = Field(pattern=r"^[A-Za-z0-9._-]{1,249}$")
    allow_auto_topic_creation: bool = False
    compression: Literal["none", "gzip", "snappy", "lz4", "zstd"] = "zstd"
    producer: dict[ProducerKey, str | int | float | bool] = Field(
        default_factory=dict, description="extra librdkafka settings (SASL, TLS, tuning)"
    )
    timeout: PositiveDuration = Field(  # type: ignore[assignment]
        default=60, description="bound on the topic check and on each message's delivery"
    )
    encoding: Encoding | None = Field(default=None, description="latte compatibility: json")

    @model_validator(mode="before")
    @classmethod
    def _uri_is_a_broker(cls, data: object) -> object:
        # latte's `uri: host:port` is the one bootstrap server (validated as brokers[0]).
        if isinstance(data, dict) and "uri" in data and "brokers" not in data:
            return {**data, "brokers": [data["uri"]]}
        return data

    @model_validator(mode="after")
    def _one_of_uri_and_brokers(self) -> "KafkaConfig":
        if self.uri is not None and self.brokers != [self.uri]:
            raise ValueError("give brokers (a list of host:port) or latte's uri, not both")
        return self

    @field_validator("encoding")
    @classmethod
    def _encoding(cls, value: Encoding | None) -> Encoding | None:
        return _json_only(value, "kafka")


# What the literal text of a `partition` may hold around its window fields: a key path of plain
# segments (no '..', no quote, no blank); a lake source's pattern may glob (`*`, `?`) too.
_PARTITION_TEXT = re.compile(r"[A-Za-z0-9=_.,+/-]*")
_GLOB_TEXT = re.compile(r"[A-Za-z0-9=_.,+/*?-]*")


def check_partition_template(value: str, glob: bool = False) -> str:
    """A latte `partition` pattern: key segments and the window's date fields
    (`year={{.Year}}/month={{.Month}}/day={{.Day}}`); `glob`: `*` and `?` too (a lake
    source's pattern of the objects it reads). Returned without leading or trailing '/'."""
    unknown = sorted(set(window_fields(value)) - set(DATE_FIELDS))
    if unknown:
        raise ValueError(
            f"partition: {{{{.{unknown[0]}}}}} is not a date field (use {{{{.Year}}}} "
            "{{.Month}} {{.Day}} {{.Hour}} {{.Minute}})"
        )
    text = strip_window_fields(value)
    if (_GLOB_TEXT if glob else _PARTITION_TEXT).fullmatch(text) is None:
        extra = ", '*' and '?'" if glob else ""
        raise ValueError(
            f"partition {value!r} may hold only letters, digits and '=_.,+-/'{extra} around "
            "its {{.Year}}-style fields"
        )
    value = value.strip("/")
    if any(part in ("", ".", "..") for part in value.split("/")):
        raise ValueError(f"partition {value!r} has an empty, '.' or '..' segment")
    return value


class S3Config(Model):
    bucket: str = Field(pattern=r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
    prefix: str = ""
    format: Literal["parquet", "jsonl"] = "parquet"
    endpoint_url: str | None = None
    region: str | None = None
    retries: int = Field(default=4, ge=0, le=10, description="retries after the first attempt")
    # latte's keys: `endpoint` (becomes endpoint_url), `force_path_style` (path-style
    # addressing), `partition` (the object path, from the window), `encoding` (becomes format),
    # `batch_size` (accepted: a window is always one object).
    endpoint: str | None = Field(default=None, description="latte's endpoint (endpoint_url)")
    force_path_style: bool = Field(default=False, description="path-style bucket addressing")
    partition: str | None = Field(
        default=None,
        description="latte's object path from the window: year={{.Year}}/month={{.Month}}/...",
    )
    batch_size: int | None = Field(
        default=None, gt=0, description="latte compatibility: accepted; one object per window"
    )
    encoding: Encoding | None = Field(default=None, description="latte's format: json | parquet")
    # Normally absent (the AWS credential chain); when given, only as {{ getEnv "VAR" }}
    # (checked on the file text by spec/credentials.py).
    aws_access_key_id: str | None = None
    aws_secret_access_key: SecretStr | None = None
    aws_session_token: SecretStr | None = None

    @model_validator(mode="before")
    @classmethod
    def _latte_keys(cls, data: object) -> object:
        if not isinstance(data, dict):
            return data
        endpoint = data.get("endpoint")
        if isinstance(endpoint, str) and "endpoint_url" not in data:
            # As latte's AWS SDK reads it: a bare host[:port] is an https endpoint.
            url = endpoint if "://" in endpoint else f"https://{endpoint}"
            data = {**data, "endpoint_url": url}
        encoding = data.get("encoding")
        kind = encoding.get("type", "json") if isinstance(encoding, dict) else None
        if kind in ("json", "parquet") and "format" not in data:
            data = {**data, "format": "jsonl" if kind == "json" else "parquet"}
        elif "partition" in data and "format" not in data and encoding is None:
            data = {**data, "format": "jsonl"}  # latte's layout: latte's default encoding
        return data

    @field_validator("endpoint_url")
    @classmethod
    def _endpoint(cls, value: str | None) -> str | None:
        return None if value is None else check_http_uri(value)

    @field_validator("partition")
    @classmethod
    def _partition(cls, value: str | None) -> str | None:
        return None if value is None else check_partition_template(value)

    @model_validator(mode="after")
    def _latte_agrees(self) -> "S3Config":
        if self.endpoint is not None and self.endpoint_url is not None:
            url = self.endpoint if "://" in self.endpoint else f"https://{self.endpoint}"
            if url != self.endpoint_url:
                raise ValueError("give endpoint_url or latte's endpoint, not both")
        if self.encoding is not None:
            wanted = "jsonl" if self.encoding.type == "json" else "parquet"
            if wanted != self.format:
                raise ValueError(
                    f"encoding {self.encoding.type} and format {self.format} disagree "
                    "(give one of them)"
                )
        return self

    @property
    def extension(self) -> str:
        """The objects' file extension: the format's, but `json` in latte's layout (a
        `partition`), as latte named its JSON objects."""
        if self.partition is not None and self.format == "jsonl":
            return "json"
        return self.format

    @model_validator(mode="after")
    def _key_pair(self) -> "S3Config":
        has_id = self.aws_access_key_id is not None
        has_secret = self.aws_secret_access_key is not None
        if has_id != has_secret or (self.aws_session_token is not None and not has_id):
            raise ValueError(
                "aws_access_key_id and aws_secret_access_key go together (aws_session_token "
                "needs both); leave all of them out to use the AWS credential chain"
            )
        return self

    @field_validator("prefix")
    @classmethod
    def _prefix(cls, value: str) -> str:
        value = value.strip("/")
        if value and any(part in ("", ".", "..") for part in value.split("/")):
            raise ValueError(f"prefix {value!r} has an empty, '.' or '..' segment")
        return value


class ConsoleSink(Model):
    type: Literal["console"]
    config: ConsoleConfig = Field(default_factory=ConsoleConfig)


class FileSink(Model):
    type: Literal["file"]
    config: FileConfig


class HttpSink(Model):
    type: Literal["http"]
    config: HttpConfig


class KafkaSink(Model):
    type: Literal["kafka"]
    config: KafkaConfig


class S3Sink(Model):
    type: Literal["s3"]
    config: S3Config


# The sink types: the built-in ones, then those of installed plug-in packages (entry point group
# `signals_dagster.sinks`, see signals_dagster/plugins.py), validated alike.
BUILTIN_SINKS: tuple[type[Model], ...] = (
    ConsoleSink,
    FileSink,
    HttpSink,
    KafkaSink,
    S3Sink,
    SqlSink,
)
PLUGIN_SINKS = tuple(typed_model(plugin, Model) for plugin in external_sinks())
if TYPE_CHECKING:  # what type checkers see: the built-in types
    Sink = Annotated[
        ConsoleSink | FileSink | HttpSink | KafkaSink | S3Sink | SqlSink,
        Field(discriminator="type"),
    ]
else:
    Sink = Annotated[Union[(*BUILTIN_SINKS, *PLUGIN_SINKS)], Field(discriminator="type")]
