"""SQL sources through SQLAlchemy: postgres, mysql/mariadb, sqlite and any other URL.

DuckDB never runs here: `sources/duckdb.py` opens it sandboxed with the duckdb module itself.

Sessions are read-only and carry a statement timeout; the window is bound as parameters.
"""

import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.pool import NullPool

from signals_dagster.errors import SourceError
from signals_dagster.redact import redact
from signals_dagster.sources.base import Fetched, is_transient, timeout_error
from signals_dagster.spec.sqltext import (
    bind_params,
    collector_kind,
    escape_literal_colons,
    mentions_grain,
    normalize,
)
from signals_dagster.window import Window

_DRIVERS = {
    "postgresql": "postgresql+psycopg",
    "postgres": "postgresql+psycopg",
    "mysql": "mysql+pymysql",
    "mariadb": "mariadb+pymysql",
}
STREAM_BATCH = 1000
# Engines (NullPool: no idle connections) are kept per URL so dialect set-up happens once.
_ENGINES: dict[tuple[str, int], Engine] = {}
_ENGINES_LOCK = threading.Lock()


def engine_url(uri: str) -> URL:
    """The SQLAlchemy URL with this project's drivers (psycopg 3, PyMySQL) for bare schemes."""
    url = make_url(uri)
    if url.drivername in _DRIVERS:
        url = url.set(drivername=_DRIVERS[url.drivername])
    return url


def _bind(backend: str, window: Window, params: set[str]) -> dict[str, Any]:
    values: dict[str, Any] = {"window_start": window.start, "window_end": window.end}
    if backend in ("mysql", "mariadb"):
        # PyMySQL renders aware datetimes with an offset MariaDB rejects: send naive UTC.
        values = {k: v.astimezone(UTC).replace(tzinfo=None) for k, v in values.items()}
    elif backend == "sqlite":
        # SQLite has no timestamp type: datetime()'s own text format, in UTC.
        values = {k: v.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S") for k, v in values.items()}
    return {k: v for k, v in values.items() if k in params}


def _postgres_args(timeout_ms: int) -> dict[str, Any]:
    options = (
        f"-c default_transaction_read_only=on -c statement_timeout={timeout_ms} -c TimeZone=UTC"
    )
    return {"options": options, "application_name": "signals_dagster", "connect_timeout": 10}


def _on_connect(backend: str, timeout_ms: int) -> Callable[[Any, Any], None] | None:
    """A per-connection hook that makes the session read-only with a statement timeout."""

    def mysql(dbapi_conn: Any, _record: Any) -> None:
        with dbapi_conn.cursor() as cur:
            cur.execute("SET SESSION TRANSACTION READ ONLY")
            cur.execute("SET time_zone = '+00:00'")
            cur.execute("SELECT VERSION()")
            version = str(cur.fetchone()[0])
            if "mariadb" in version.lower():
                cur.execute(f"SET SESSION max_statement_time = {timeout_ms / 1000:.3f}")
            else:
                cur.execute(f"SET SESSION MAX_EXECUTION_TIME = {timeout_ms}")

    def sqlite(dbapi_conn: Any, _record: Any) -> None:
        from signals_dagster.sources.sqlite import guard

        dbapi_conn.execute("PRAGMA query_only = ON")
        guard(dbapi_conn)

    return {"mysql": mysql, "mariadb": mysql, "sqlite": sqlite}.get(backend)


def _is_transient(exc: sa.exc.DBAPIError) -> bool:
    kind_ok = isinstance(exc, sa.exc.OperationalError | sa.exc.InterfaceError)
    return is_transient(kind_ok and not isinstance(exc, sa.exc.ProgrammingError), exc.orig)


class SqlSource:
    """A SQL aggregation over one database URL."""

    def __init__(self, uri: str, sql: str, timeout: timedelta) -> None:
        self.uri = uri
        self.sql = normalize(sql)
        self.text = sa.text(escape_literal_colons(self.sql))
        self.params = bind_params(sql)
        self.kind = collector_kind(self.params)
        self.range_capable = mentions_grain(sql)
        self.timeout_ms = max(1, int(timeout.total_seconds() * 1000))
        self.url = engine_url(uri)
        self.backend = self.url.get_backend_name()

    def describe(self) -> dict[str, str]:
        """Redacted URI and the query text."""
        return {"uri": redact(self.uri), "query": self.sql}

    def _engine(self) -> Engine:
        connect_args: dict[str, Any] = {}
        if self.backend == "postgresql":
            connect_args = _postgres_args(self.timeout_ms)
        elif self.backend in ("mysql", "mariadb"):
            # PyMySQL runs init_command right after the handshake, before anything else: the
            # session is read-only first (a URI's own init_command is refused at validation).
            # local_infile off: a rogue server could otherwise read the worker's files.
            connect_args = {
                "read_timeout": self.timeout_ms / 1000 + 5,
                "connect_timeout": 10,
                "init_command": "SET SESSION TRANSACTION READ ONLY",
                "local_infile": False,
            }
            for key in ("read_timeout", "connect_timeout"):  # the URI's own value wins
                if key in self.url.query:
                    del connect_args[key]
        elif self.backend == "duckdb":  # through SQLAlchemy it would not be sandboxed
            raise SourceError(f"{redact(self.uri)}: DuckDB runs through sources/duckdb.py only")
        elif self.backend == "sqlite":
            database = self.url.database or ""
            if database and database != ":memory:" and not database.startswith("file:"):
                if not os.path.exists(database):
                    raise SourceError(f"SQLite database file not found: {database}")
                self.url = self.url.set(
                    database=f"file:{database}?mode=ro", query={**self.url.query, "uri": "true"}
                )
        cache_key = (self.url.render_as_string(hide_password=False), self.timeout_ms)
        with _ENGINES_LOCK:
            engine = _ENGINES.get(cache_key)
            if engine is not None:
                return engine
            try:
                engine = sa.create_engine(self.url, poolclass=NullPool, connect_args=connect_args)
            except (sa.exc.ArgumentError, sa.exc.NoSuchModuleError, ImportError) as exc:
                raise SourceError(f"cannot use {redact(self.uri)}: {exc}") from None
            hook = _on_connect(self.backend, self.timeout_ms)
            if hook is not None:
                event.listen(engine, "connect", hook)
            _ENGINES[cache_key] = engine
            return engine

    @contextmanager
    def session(self) -> Iterator["SqlSession"]:
        """One read-only connection for every window of a run."""
        engine = self._engine()
        try:
            with engine.connect() as conn:
                yield SqlSession(self, conn)
        except sa.exc.DBAPIError as exc:
            raise _source_error(exc, self.uri) from None


def _source_error(exc: sa.exc.DBAPIError, uri: str) -> SourceError:
    detail = str(exc.orig).strip() if exc.orig is not None else str(exc)
    return SourceError(f"{redact(uri)}: {redact(detail)}", transient=_is_transient(exc))


class SqlSession:
    """An open read-only connection."""

    def __init__(self, source: SqlSource, conn: sa.Connection) -> None:
        self.source = source
        self.conn = conn
        self.timed_out = False

    def fetch(self, window: Window) -> Fetched:
        """Execute the query for one window; rows are streamed in batches."""
        source = self.source
        params = _bind(source.backend, window, source.params)
        if source.backend == "postgresql":
            return self._fetch_postgres(params)
        options: dict[str, Any] = {}
        if self.conn.dialect.supports_server_side_cursors:
            options = {"stream_results": True, "yield_per": STREAM_BATCH}
        watchdog = self._watchdog()
        try:
            result = self.conn.execution_options(**options).execute(source.text, params)
            columns = list(result.keys())
        except sa.exc.DBAPIError as exc:
            self._end(watchdog)
            raise self._error(exc) from None
        return Fetched(columns, self._rows(result, watchdog))

    def _fetch_postgres(self, params: dict[str, Any]) -> Fetched:
        """Stream with psycopg's chunked/single-row mode rather than a DECLAREd cursor.

        A server-side cursor stops Postgres from running the aggregation in parallel (twice the
        time on a scan) and hides read-only errors behind "syntax error at or near INSERT".
        """
        import psycopg

        compiled = self.source.text.compile(dialect=self.conn.dialect)
        raw: Any = self.conn.connection.dbapi_connection
        cursor = raw.cursor()
        stream = cursor.stream(compiled.string, compiled.construct_params(params))
        try:
            first = next(stream, None)
        except psycopg.Error as exc:
            cursor.close()
            raise self._psycopg_error(exc) from None
        columns = [c.name for c in cursor.description or []]
        return Fetched(columns, self._stream_rows(cursor, stream, first))

    def _stream_rows(self, cursor: Any, stream: Iterator[Any], first: Any) -> Iterator[Any]:
        import psycopg

        try:
            if first is not None:
                yield tuple(first)
                for row in stream:
                    yield tuple(row)
        except psycopg.Error as exc:
            raise self._psycopg_error(exc) from None
        finally:
            close = getattr(stream, "close", None)
            if close is not None:
                close()  # an early stop (a bad row) must release psycopg's connection lock
            cursor.close()
            self.conn.connection.dbapi_connection.rollback()  # type: ignore[union-attr]

    def _psycopg_error(self, exc: Exception) -> SourceError:
        import psycopg

        detail = redact(str(exc).strip())
        kind_ok = isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError)
        transient = is_transient(kind_ok, exc)
        return SourceError(f"{redact(self.source.uri)}: {detail}", transient=transient)

    def _rows(self, result: sa.CursorResult[Any], watchdog: Any) -> Iterator[tuple[Any, ...]]:
        try:
            for row in result:
                yield tuple(row)
        except sa.exc.DBAPIError as exc:
            raise self._error(exc) from None
        finally:
            result.close()
            self._end(watchdog)
            if self.conn.in_transaction():
                self.conn.rollback()

    def _watchdog(self) -> Any:
        """SQLite has no statement timeout: interrupt from outside at the deadline."""
        raw: Any = self.conn.connection.dbapi_connection
        seconds = self.source.timeout_ms / 1000
        self.timed_out = False
        if self.source.backend == "sqlite":
            deadline = time.monotonic() + seconds

            def expired() -> int:
                self.timed_out = self.timed_out or time.monotonic() > deadline
                return int(self.timed_out)

            raw.set_progress_handler(expired, 10_000)
            return raw
        return None

    def _error(self, exc: sa.exc.DBAPIError) -> SourceError:
        error = _source_error(exc, self.source.uri)
        if self.timed_out:
            return timeout_error(str(error), self.source.timeout_ms / 1000, error.transient)
        return error

    def _end(self, watchdog: Any) -> None:
        if watchdog is not None:
            watchdog.set_progress_handler(None, 0)
