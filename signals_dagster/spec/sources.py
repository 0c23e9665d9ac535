"""Source configurations: a closed union discriminated by `type`."""

import json
import re
from typing import TYPE_CHECKING, Annotated, Any, Literal, Union, get_args
from urllib.parse import parse_qsl

from pydantic import AliasChoices, ByteSize, Field, ValidationInfo, field_validator

from signals_dagster.plugins import external_sources, typed_model
from signals_dagster.spec.base import Model
from signals_dagster.spec.fields import Duration, PositiveDuration, Timezone
from signals_dagster.spec.uris import check_http_uri, check_mongo_uri, check_sql_uri, parse_sql_url

Strategy = Literal["tick", "historic_tumbling_window"]
_WRITE_STAGES = ("$out", "$merge")

# URL query options passed on to the driver, per backend: an allow-list, because a driver
# option can run SQL before the session is read-only (`init_command`) or let the server read
# the worker's files (`local_infile`). SQLite and DuckDB files take none: they are opened
# read-only by the sources themselves.
_MYSQL_OPTIONS = (
    "charset",
    "connect_timeout",
    "read_timeout",
    "write_timeout",
    "ssl_ca",
    "ssl_capath",
    "ssl_cert",
    "ssl_key",
    "ssl_cipher",
    "ssl_check_hostname",
    "ssl_verify_cert",
    "ssl_verify_identity",
)
URI_OPTIONS: dict[str, tuple[str, ...]] = {
    "mysql": _MYSQL_OPTIONS,
    "mariadb": _MYSQL_OPTIONS,
    "sqlite": (),
    "duckdb": (),
}


# Dialects (backend: drivers) whose sessions the sources make read-only with a statement
# timeout; `type: sql` with any other runs only when signals.yaml `sources.allow_unguarded`
# names it.
GUARDED: dict[str, tuple[str, ...]] = {
    "postgresql": ("", "psycopg"),
    "postgres": ("",),
    "mysql": ("", "pymysql"),
    "mariadb": ("", "pymysql"),
    "sqlite": ("", "pysqlite"),
    "duckdb": ("",),
}


def unguarded_dialect(uri: str) -> str | None:
    """The `backend+driver` of a URL whose session cannot be made read-only (None: it can)."""
    scheme = uri.split("://", 1)[0].lower()
    backend, _, driver = scheme.partition("+")
    return None if driver in GUARDED.get(backend, ()) else scheme


def check_uri_options(value: str, schemes: tuple[str, ...]) -> str:
    """A database URL of one of `schemes` whose query options are all on the backend's
    allow-list (backends without a list, e.g. under `type: sql`, are not checked here)."""
    check_sql_uri(value, schemes)
    backend = parse_sql_url(value).backend
    allowed = URI_OPTIONS.get(backend)
    query = value.partition("?")[2]
    if allowed is None or not query:
        return value
    refused = sorted({k for k, _ in parse_qsl(query, keep_blank_values=True)} - set(allowed))
    if refused or not allowed:
        names = ", ".join(refused) or query
        accepted = f"accepted: {', '.join(allowed)}" if allowed else "it takes none"
        raise ValueError(f"uri option {names} is not allowed for {backend} ({accepted})")
    return value


class SqlConfig(Model):
    """A query run through SQLAlchemy; the window reaches it as :window_start / :window_end."""

    uri: str = Field(
        description="SQLAlchemy URL (postgresql://, mysql://, sqlite:///, duckdb:///...)"
    )
    sql: str = Field(min_length=1, description="The aggregation; returns a `value` column")
    timeout: PositiveDuration = Field(default=60, description="Statement timeout")  # type: ignore[assignment]

    @field_validator("sql")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("sql must not be empty")
        return value


class PostgresConfig(SqlConfig):
    @field_validator("uri")
    @classmethod
    def _uri(cls, value: str) -> str:
        return check_sql_uri(value, ("postgresql", "postgres"))


class MysqlConfig(SqlConfig):
    @field_validator("uri")
    @classmethod
    def _uri(cls, value: str) -> str:
        return check_uri_options(value, ("mysql", "mariadb"))


class SqliteConfig(SqlConfig):
    @field_validator("uri")
    @classmethod
    def _uri(cls, value: str) -> str:
        return check_uri_options(value, ("sqlite",))


class DuckdbConfig(SqlConfig):
    allowed_paths: list[str] = Field(
        default_factory=list,
        description="Files and folders the SQL may read besides the database (read_parquet...)",
    )

    @field_validator("uri")
    @classmethod
    def _uri(cls, value: str) -> str:
        return check_uri_options(value, ("duckdb",))

    @field_validator("allowed_paths")
    @classmethod
    def _paths(cls, value: list[str]) -> list[str]:
        if any(not p.strip() for p in value):
            raise ValueError("allowed_paths entries must be non-empty paths")
        return value


class GenericSqlConfig(SqlConfig):
    @field_validator("uri")
    @classmethod
    def _uri(cls, value: str) -> str:
        return check_uri_options(value, ())


class MongoConfig(Model):
    """A MongoDB aggregation pipeline (JSON text as in signals-collector, or a YAML list)."""

    uri: str
    database: str = Field(min_length=1)
    collection: str = Field(min_length=1)
    agg: list[dict[str, Any]]
    time_field: str | None = None
    max_time_ms: int = Field(default=60000, gt=0)

    @field_validator("uri")
    @classmethod
    def _uri(cls, value: str) -> str:
        return check_mongo_uri(value)

    @field_validator("agg", mode="before")
    @classmethod
    def _agg(cls, value: object) -> object:
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except json.JSONDecodeError as exc:
                raise ValueError(f"agg is not valid JSON: {exc.msg} (line {exc.lineno})") from None
        if not isinstance(value, list) or not all(isinstance(s, dict) for s in value):
            raise ValueError("agg must be a JSON array of pipeline stages (objects)")
        writes = sorted({k for k in _keys(value) if k in _WRITE_STAGES})
        if writes:
            raise ValueError(f"stage {writes[0]} writes to the database: collectors are read-only")
        return value


def _keys(value: object) -> list[str]:
    if isinstance(value, dict):
        return [k for k in value] + [k for v in value.values() for k in _keys(v)]
    if isinstance(value, list):
        return [k for v in value for k in _keys(v)]
    return []


# Start of the period `$__range` spans, ending at window_end (sources/prometheus.py).
TIME_EXPRESSIONS = (
    "$window_start",
    "$start_of_hour",
    "$start_of_day",
    "$start_of_week",
    "$start_of_month",
)


class PrometheusTime(Model):
    """signals-collector's `time` block (accepted for compatibility)."""

    window: Duration | None = None


class PrometheusConfig(Model):
    """An instant PromQL query, optionally post-processed by DuckDB SQL over `prom_metrics`."""

    uri: str
    query: str = Field(min_length=1)
    time_expression: str | None = None
    time: PrometheusTime | None = None
    sql: str | None = None
    timeout: PositiveDuration = Field(default=60)  # type: ignore[assignment]

    @field_validator("uri")
    @classmethod
    def _uri(cls, value: str) -> str:
        return check_http_uri(value)

    @field_validator("time_expression")
    @classmethod
    def _time_expression(cls, value: str | None) -> str | None:
        if value is not None and value.strip() not in TIME_EXPRESSIONS:
            raise ValueError(f"time_expression must be one of {', '.join(TIME_EXPRESSIONS)}")
        return value.strip() if value is not None else None


LakeColumnType = Literal[
    "varchar", "bigint", "double", "boolean", "date", "timestamp", "timestamptz"
]


class LakeConfig(Model):
    """DuckDB SQL over the window's Parquet, JSON or CSV objects of one bucket and prefix in an
    S3 API store (sources/lake.py): the table `lake`, or latte's
    `read_parquet('s3://bucket/prefix/{{.Partition}}')`. Credentials: the AWS chain only."""

    bucket: str = Field(
        pattern=r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", description="The bucket it reads"
    )
    prefix: str = Field(default="", description="The data set's folder in the bucket")
    partition: str | None = Field(
        default=None,
        description="The window's objects: date={{.Year}}-{{.Month}}-{{.Day}}, "
        "year={{.Year}}/month={{.Month}}/day={{.Day}}/*.parquet (no pattern: every object)",
    )
    format: Literal["parquet", "json", "csv"] | None = Field(
        default=None,
        description="parquet, json (JSON lines or arrays; jsonl too) or csv; by default the "
        "reader the sql calls (read_json_auto...), else parquet",
    )
    endpoint: str | None = Field(
        default=None,
        validation_alias=AliasChoices("endpoint", "endpoint_url"),
        description="S3 API endpoint, host:port or an http(s) URL (absent: AWS S3)",
    )
    region: str | None = Field(
        default=None, description="The bucket's region (absent: the AWS chain's, else us-east-1)"
    )
    sql: str = Field(min_length=1, description="DuckDB SQL over the table lake; returns value")
    partition_timezone: Timezone | None = Field(
        default=None, description="The clock the pattern is rendered on (partitions.timezone)"
    )
    padding: Literal["auto", "unpadded", "padded"] = Field(
        default="auto",
        description="month=3 (latte) or month=03 (Hive, Spark); auto: as the layout has it",
    )
    columns: dict[str, LakeColumnType] | None = Field(
        default=None, description="The table of a window without objects (absent: an error)"
    )
    max_bytes: ByteSize = Field(
        default=ByteSize(2 * 1024**3), description="Most object bytes one query reads"
    )
    timeout: PositiveDuration = Field(  # type: ignore[assignment]
        default=60, description="Reading the window's objects, and then the query, each"
    )
    retries: int = Field(default=4, ge=0, le=10, description="retries after the first attempt")

    @field_validator("prefix")
    @classmethod
    def _prefix(cls, value: str) -> str:
        value = value.strip("/")
        if re.search(r"[*?\[{}]", value) or ".." in value.split("/"):
            raise ValueError("prefix must be a plain folder path (no glob, template or '..')")
        return value

    @field_validator("partition")
    @classmethod
    def _partition(cls, value: str | None) -> str | None:
        from signals_dagster.spec.sinks import check_partition_template

        return None if value is None else check_partition_template(value, glob=True)

    @field_validator(
        "format",
        mode="before",
        json_schema_input_type=Literal["parquet", "json", "jsonl", "ndjson", "csv"] | None,
    )
    @classmethod
    def _format(cls, value: object) -> object:
        return "json" if value in ("jsonl", "ndjson") else value

    @field_validator("endpoint")
    @classmethod
    def _endpoint(cls, value: str | None) -> str | None:
        if value is None:
            return None
        return check_http_uri(value if "://" in value else f"https://{value}")

    @field_validator("sql")
    @classmethod
    def _sql(cls, value: str, info: ValidationInfo) -> str:
        from signals_dagster.sources.lake import sql_problems

        if not value.strip():
            raise ValueError("sql must not be empty")
        if "bucket" in info.data:
            bucket, prefix = info.data["bucket"], info.data.get("prefix", "")
            problems = sql_problems(value, bucket, prefix, info.data.get("format"))
            if problems:
                raise ValueError("; ".join(problems))
        return value

    @property
    def uri(self) -> str:
        """s3://bucket/prefix/ — where the objects are (shown in metadata and logs)."""
        return f"s3://{self.bucket}/{self.prefix + '/' if self.prefix else ''}"

    @property
    def endpoint_url(self) -> str | None:
        """The endpoint as a URL (latte's `host:port` → https://host:port)."""
        return self.endpoint

    @property
    def query(self) -> str:
        """The query text (as the UI shows a source's query)."""
        return self.sql


class _Source(Model):
    strategy: Strategy | None = Field(default=None, description="signals-collector compatibility")
    pool: str | None = Field(default=None, description="Dagster pool limiting concurrent queries")


class PostgresSource(_Source):
    type: Literal["postgres"]
    config: PostgresConfig


class MysqlSource(_Source):
    type: Literal["mysql"]
    config: MysqlConfig


class SqliteSource(_Source):
    type: Literal["sqlite"]
    config: SqliteConfig


class DuckdbSource(_Source):
    type: Literal["duckdb"]
    config: DuckdbConfig


class GenericSqlSource(_Source):
    type: Literal["sql"]
    config: GenericSqlConfig


class MongoSource(_Source):
    type: Literal["mongodb"]
    config: MongoConfig


class PrometheusSource(_Source):
    type: Literal["prometheus"]
    config: PrometheusConfig


class LakeSource(_Source):
    type: Literal["s3"]
    config: LakeConfig


SqlSource = PostgresSource | MysqlSource | SqliteSource | DuckdbSource | GenericSqlSource
# The source types: the built-in ones, then those of installed plug-in packages (entry point
# group `signals_dagster.sources`, see signals_dagster/plugins.py), validated alike.
BUILTIN_SOURCES: tuple[type[_Source], ...] = (
    PostgresSource,
    MysqlSource,
    SqliteSource,
    DuckdbSource,
    GenericSqlSource,
    MongoSource,
    PrometheusSource,
    LakeSource,
)
PLUGIN_SOURCES = tuple(typed_model(plugin, _Source) for plugin in external_sources())
if TYPE_CHECKING:  # what type checkers see: the built-in types
    Source = Annotated[
        PostgresSource
        | MysqlSource
        | SqliteSource
        | DuckdbSource
        | GenericSqlSource
        | MongoSource
        | PrometheusSource
        | LakeSource,
        Field(discriminator="type"),
    ]
else:
    Source = Annotated[Union[(*BUILTIN_SOURCES, *PLUGIN_SOURCES)], Field(discriminator="type")]
SQL_TYPES = ("postgres", "mysql", "sqlite", "duckdb", "sql")

# latte's source types: the same configs under this project's names (`metric.s3` is the lake
# source `s3`). An alias resolves only to a type the union has (see canonical_source_type).
SOURCE_TYPE_ALIASES = {
    "metric.postgres": "postgres",
    "metric.mongodb": "mongodb",
    "metric.prometheus": "prometheus",
    "metric.s3": "s3",
}


def source_types() -> tuple[str, ...]:
    """The `type` tags of the Source union, read from the union itself."""
    union = get_args(Source)[0]
    return tuple(
        tag
        for member in get_args(union)
        for tag in get_args(member.model_fields["type"].annotation)
    )


def canonical_source_type(tag: object) -> object:
    """The union's own name for a source type written with latte's name (`metric.postgres` →
    `postgres`); any other value unchanged, and so an alias whose type is missing."""
    target = SOURCE_TYPE_ALIASES.get(tag) if isinstance(tag, str) else None
    return target if target is not None and target in source_types() else tag
