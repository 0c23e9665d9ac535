"""Sink configurations: a closed union discriminated by `type`."""

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, field_validator

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

    @field_validator("uri")
    @classmethod
    def _uri(cls, value: str) -> str:
        return check_http_uri(value)


class KafkaConfig(Model):
    brokers: list[Broker] = Field(min_length=1)
    topic: str = Field(pattern=r"^[A-Za-z0-9._-]{1,249}$")
    allow_auto_topic_creation: bool = False
    compression: Literal["none", "gzip", "snappy", "lz4", "zstd"] = "zstd"
    producer: dict[str, Any] = Field(default_factory=dict)
    timeout: PositiveDuration = Field(default=60)  # type: ignore[assignment]


class S3Config(Model):
    bucket: str = Field(pattern=r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
    prefix: str = ""
    format: Literal["parquet", "jsonl"] = "parquet"
    endpoint_url: str | None = None
    region: str | None = None

    @field_validator("endpoint_url")
    @classmethod
    def _endpoint(cls, value: str | None) -> str | None:
        return None if value is None else check_http_uri(value)


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
