"""Sink configurations: a closed union discriminated by `type`."""

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, SecretStr, field_validator, model_validator

from signals_dagster.spec.base import Model
from signals_dagster.spec.fields import PositiveDuration
from signals_dagster.spec.uris import check_broker, check_http_uri

Broker = Annotated[str, AfterValidator(check_broker)]


class EmptyConfig(Model):
    """A sink without settings."""


class FileConfig(Model):
    path: str = Field(min_length=1, description="JSON-lines audit log; records are appended")


class HttpConfig(Model):
    uri: str
    headers: dict[str, str] = Field(default_factory=dict)
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
    topic: str = Field(pattern=r"^[A-Za-z0-9._-]{1,249}$")
    allow_auto_topic_creation: bool = False
    compression: Literal["none", "gzip", "snappy", "lz4", "zstd"] = "zstd"
    producer: dict[ProducerKey, str | int | float | bool] = Field(
        default_factory=dict, description="extra librdkafka settings (SASL, TLS, tuning)"
    )
    timeout: PositiveDuration = Field(  # type: ignore[assignment]
        default=60, description="bound on the topic check and on each message's delivery"
    )


class S3Config(Model):
    bucket: str = Field(pattern=r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
    prefix: str = ""
    format: Literal["parquet", "jsonl"] = "parquet"
    endpoint_url: str | None = None
    region: str | None = None
    retries: int = Field(default=4, ge=0, le=10, description="retries after the first attempt")
    # Normally absent (the AWS credential chain); when given, only as {{ getEnv "VAR" }}
    # (checked on the file text by spec/credentials.py).
    aws_access_key_id: str | None = None
    aws_secret_access_key: SecretStr | None = None
    aws_session_token: SecretStr | None = None

    @field_validator("endpoint_url")
    @classmethod
    def _endpoint(cls, value: str | None) -> str | None:
        return None if value is None else check_http_uri(value)

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
    config: EmptyConfig = Field(default_factory=EmptyConfig)


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


Sink = Annotated[
    ConsoleSink | FileSink | HttpSink | KafkaSink | S3Sink, Field(discriminator="type")
]
