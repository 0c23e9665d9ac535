"""Source configurations: a closed union discriminated by `type`."""

import json
from typing import Annotated, Any, Literal
from urllib.parse import parse_qsl

from pydantic import Field, field_validator

from signals_dagster.spec.base import Model
from signals_dagster.spec.fields import Duration, PositiveDuration
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


SqlSource = PostgresSource | MysqlSource | SqliteSource | DuckdbSource | GenericSqlSource
Source = Annotated[
    PostgresSource
    | MysqlSource
    | SqliteSource
    | DuckdbSource
    | GenericSqlSource
    | MongoSource
    | PrometheusSource,
    Field(discriminator="type"),
]
SQL_TYPES = ("postgres", "mysql", "sqlite", "duckdb", "sql")
