"""The source protocol and the factory that picks an implementation by `source.type`."""

from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Protocol

from signals_dagster.errors import SourceError
from signals_dagster.spec.models import CollectorSpec
from signals_dagster.spec.sources import (
    DuckdbConfig,
    LakeConfig,
    MongoConfig,
    PrometheusConfig,
    SqlConfig,
)
from signals_dagster.spec.sqltext import bind_params, collector_kind, mentions_grain
from signals_dagster.window import Window


@dataclass
class Fetched:
    """A query's answer for one window: column names and either a (streamed) row iterator or,
    from a columnar driver, a stream of Arrow record batches with those columns."""

    columns: Sequence[str]
    rows: Iterator[Sequence[Any]] | None = None
    batches: Iterable[Any] | None = None  # pyarrow.RecordBatch (or Table) items, closable


class SourceSession(Protocol):
    """An open, read-only connection that answers one window at a time."""

    def fetch(self, window: Window) -> Fetched:
        """Run the aggregation for `window`."""
        ...


class Source(Protocol):
    """A configured source: knows its kind and how to open a session."""

    kind: str  # windowed | as-of | snapshot
    range_capable: bool  # the query returns grain_datetime: one query can answer many windows

    def describe(self) -> dict[str, str]:
        """Redacted facts for metadata (uri, query text)."""
        ...

    def session(self) -> AbstractContextManager[SourceSession]:
        """Open a read-only session with a statement timeout."""
        ...


# SQLSTATE classes that a retry cannot fix: authorisation, invalid transaction state (a write in
# the read-only session), unknown database, syntax/access, data exceptions, unsupported features.
PERMANENT_SQLSTATES = ("28", "25", "3D", "42", "22", "0A")


def is_transient(kind_ok: bool, orig: object) -> bool:
    """A lost or refused connection, a timeout, a serialisation failure: worth a retry.

    `kind_ok`: the driver's exception class says so; `orig` may carry a SQLSTATE that says not."""
    sqlstate = str(getattr(orig, "sqlstate", None) or "")
    return kind_ok and not sqlstate.startswith(PERMANENT_SQLSTATES)


def timeout_error(detail: str, seconds: float, transient: bool = True) -> SourceError:
    """An in-process interrupt only says "interrupted": the error names the cause."""
    return SourceError(
        f"{detail} (statement timeout of {seconds:g}s exceeded)", transient=transient
    )


def file_database(uri: str) -> str:
    """The file of a scheme:///relative or scheme:////absolute URL ('' when it names none)."""
    rest = uri.split("://", 1)[1].split("?", 1)[0]
    return rest[1:] if rest.startswith("/") else rest


class InProcessSqlSource:
    """What the SQL sources that open a database file in this process (SQLite, DuckDB) share:
    the query's kind and range capability, the timeout their watchdog enforces, the file."""

    def __init__(self, uri: str, sql: str, timeout: timedelta) -> None:
        self.uri = uri
        self.sql = sql
        self.params = bind_params(sql)
        self.kind = collector_kind(self.params)
        self.range_capable = mentions_grain(sql)
        self.timeout = timeout.total_seconds()
        self.path = file_database(uri)

    def describe(self) -> dict[str, str]:
        """Redacted URI and the query text."""
        from signals_dagster.redact import redact

        return {"uri": redact(self.uri), "query": self.sql}


@dataclass(frozen=True)
class QueryShape:
    """What a query uses and returns, read from its text without connecting."""

    kind: str
    range_capable: bool


def query_shape(spec: CollectorSpec) -> QueryShape:
    """Kind (windowed / as-of / snapshot) and range capability of a collector's query."""
    config = spec.source.config
    if isinstance(config, SqlConfig):
        return QueryShape(collector_kind(bind_params(config.sql)), mentions_grain(config.sql))
    if isinstance(config, MongoConfig):  # these modules import their drivers lazily
        from signals_dagster.sources.mongodb import mongo_kind, outputs_grain

        return QueryShape(mongo_kind(config), outputs_grain(config.agg))
    if isinstance(config, PrometheusConfig):
        from signals_dagster.sources.prometheus import prometheus_kind

        return QueryShape(prometheus_kind(config), False)
    if isinstance(config, LakeConfig):
        from signals_dagster.sources.lake import lake_kind

        kind = lake_kind(config, spec.metric.grain, spec.partitions.timezone)
        return QueryShape(kind, mentions_grain(config.sql))
    source = open_source(spec)  # a plug-in type: its implementation says (without connecting)
    return QueryShape(source.kind, source.range_capable)


def _open_sql(spec: CollectorSpec) -> Source:
    config = spec.source.config
    assert isinstance(config, SqlConfig)
    from signals_dagster.sources.postgres import PostgresSource, handles

    if handles(config.uri):
        return PostgresSource(config.uri, config.sql, config.timeout)
    from signals_dagster.sources import sqlite

    if sqlite.handles(config.uri):
        return sqlite.SqliteSource(config.uri, config.sql, config.timeout)
    from signals_dagster.sources import duckdb

    if duckdb.handles(config.uri):
        allowed = config.allowed_paths if isinstance(config, DuckdbConfig) else ()
        return duckdb.DuckdbSource(config.uri, config.sql, config.timeout, allowed)
    from signals_dagster.sources.sql import SqlSource

    return SqlSource(config.uri, config.sql, config.timeout)


def _open_mongo(spec: CollectorSpec) -> Source:
    from signals_dagster.sources.mongodb import MongoSource

    assert isinstance(spec.source.config, MongoConfig)
    return MongoSource(spec.source.config)


def _open_prometheus(spec: CollectorSpec) -> Source:
    from signals_dagster.sources.prometheus import PrometheusSource

    assert isinstance(spec.source.config, PrometheusConfig)
    return PrometheusSource(spec.source.config, spec.partitions.timezone)


def _open_lake(spec: CollectorSpec) -> Source:
    from signals_dagster.sources.lake import LakeSource

    return LakeSource(spec)


# The implementations by source type, one line each (drivers imported when a source opens);
# plug-in types come from their packages (signals_dagster/plugins.py).
SOURCES: dict[str, Callable[[CollectorSpec], Source]] = {
    "postgres": _open_sql,
    "mysql": _open_sql,
    "sqlite": _open_sql,
    "duckdb": _open_sql,
    "sql": _open_sql,
    "mongodb": _open_mongo,
    "prometheus": _open_prometheus,
    "s3": _open_lake,
}


def open_source(spec: CollectorSpec) -> Source:
    """The source implementation for a collector: a built-in type's or a plug-in's (drivers
    imported here, lazily; nothing connects before `session()`)."""
    opener = SOURCES.get(spec.source.type)
    if opener is not None:
        return opener(spec)
    from signals_dagster.plugins import source_plugin

    plugin = source_plugin(spec.source.type)
    if plugin is None:
        raise NotImplementedError(f"source type {spec.source.type!r} cannot run in this version")
    source: Source = plugin.open(spec)
    return source
