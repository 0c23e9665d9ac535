"""Postgres through ADBC (adbc-driver-postgresql): results arrive as Arrow record batches.

libpq's binary results are turned into Arrow in C, so a million result rows cost no Python
object per cell. The session is read-only with a statement timeout (libpq `options`), the
window is bound as `$n` parameters of a prepared statement (which also refuses a second
statement), and a result column of a type whose text ADBC and psycopg would give differently
(intervals, arrays, network types...) makes that query run through the psycopg session instead,
so tags never change with the driver.
"""

import contextlib
import re
from collections.abc import Iterator
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

import pyarrow as pa

from signals_dagster.errors import SourceError
from signals_dagster.records.convert import supported
from signals_dagster.redact import redact
from signals_dagster.sources.base import Fetched, is_transient
from signals_dagster.spec.sqltext import (
    bind_params,
    collector_kind,
    mentions_grain,
    normalize,
    numbered_params,
)
from signals_dagster.window import Window

_SCHEMES = ("postgresql", "postgres", "postgresql+psycopg")


def handles(uri: str) -> bool:
    """Whether this module runs the URI (plain libpq / psycopg 3 URLs)."""
    return uri.split("://", 1)[0].lower() in _SCHEMES


def libpq_uri(uri: str, timeout_ms: int) -> str:
    """The libpq URI with a read-only session, the statement timeout and UTC appended to any
    `options` the URI has (ours come last, so they win)."""
    parts = urlsplit(uri)
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    ours = f"-c default_transaction_read_only=on -c statement_timeout={timeout_ms} -c TimeZone=UTC"
    query["options"] = f"{query['options']} {ours}" if query.get("options") else ours
    query.setdefault("application_name", "signals_dagster")
    query.setdefault("connect_timeout", "10")
    return urlunsplit(
        ("postgresql", parts.netloc, parts.path, urlencode(query, quote_via=quote), "")
    )


def _detail(exc: Exception) -> str:
    """The server's message without ADBC's wrapping (status, query echo, SQLSTATE suffix)."""
    text = str(exc).strip()
    match = re.search(r"ERROR:\s+(.*?)(?:\n|$)", text)
    if match:
        return match.group(1).strip()
    text = re.sub(r"^[A-Z_]+: (\[libpq\] )?", "", text)
    text = re.sub(r"\. SQLSTATE: \w+$", "", text)
    return text.replace("Failed to connect: ", "").strip()


def _error(exc: Exception, uri: str) -> SourceError:
    import adbc_driver_manager as adbc

    operational = isinstance(exc, adbc.OperationalError | adbc.InternalError)
    transient = is_transient(operational, exc)
    if isinstance(exc, adbc.OperationalError) and "authentication failed" in str(exc):
        transient = False
    return SourceError(f"{redact(uri)}: {redact(_detail(exc))}", transient=transient)


class PostgresSource:
    """A SQL aggregation over one Postgres database, answered in Arrow."""

    def __init__(self, uri: str, sql: str, timeout: timedelta) -> None:
        self.uri = uri
        self.sql = normalize(sql)
        self.params = bind_params(sql)
        self.kind = collector_kind(self.params)
        self.range_capable = mentions_grain(sql)
        self.timeout_ms = max(1, int(timeout.total_seconds() * 1000))
        self.statement, self.order = numbered_params(self.sql)
        self._timeout = timeout

    def describe(self) -> dict[str, str]:
        """Redacted URI and the query text."""
        return {"uri": redact(self.uri), "query": self.sql}

    @contextlib.contextmanager
    def session(self) -> Iterator["PostgresSession"]:
        """One read-only connection for every window of a run."""
        import adbc_driver_manager as adbc
        import adbc_driver_postgresql

        try:
            database = adbc_driver_postgresql.connect(libpq_uri(self.uri, self.timeout_ms))
            connection = adbc.AdbcConnection(database)
            # One transaction per window, rolled back after it: nothing a query changes in the
            # session (set_config of default_transaction_read_only...) outlives its window.
            connection.set_options(**{"adbc.connection.autocommit": "false"})
        except adbc.Error as exc:
            raise _error(exc, self.uri) from None
        session = PostgresSession(self, connection)
        try:
            yield session
        finally:
            session.close()
            connection.close()
            database.close()


class PostgresSession:
    """An open read-only ADBC connection (and, when a result needs it, a psycopg one)."""

    def __init__(self, source: PostgresSource, connection: Any) -> None:
        self.source = source
        self.connection = connection
        self._fallback: Any = None
        self._exit = contextlib.ExitStack()

    def fetch(self, window: Window) -> Fetched:
        """Execute the query for one window; the answer is a stream of Arrow batches."""
        import adbc_driver_manager as adbc

        source = self.source
        values = {"window_start": window.start, "window_end": window.end}
        unknown = [name for name in source.order if name not in values]
        if unknown:
            raise SourceError(
                f"the query uses the bind parameter :{unknown[0]}; only :window_start and "
                ":window_end are bound"
            )
        statement = adbc.AdbcStatement(self.connection)
        try:
            statement.set_options(**{"adbc.postgresql.use_copy": "false"})
            statement.set_sql_query(source.statement)
            params = None
            if source.order:
                params = pa.record_batch(
                    [
                        pa.array([values[name]], pa.timestamp("us", tz="UTC"))
                        for name in source.order
                    ],
                    names=[str(i) for i in range(len(source.order))],
                )
                statement.bind(params)
            handle = statement.execute_schema()  # keep the handle alive while importing
            schema = pa.Schema._import_from_c(handle.address)
            if not all(supported(field.type) for field in schema):
                statement.close()
                self.connection.rollback()
                return self._psycopg().fetch(window)
            if params is not None:
                statement.bind(params)
            stream, _ = statement.execute_query()
            reader = pa.RecordBatchReader._import_from_c(stream.address)
        except (adbc.Error, pa.ArrowException) as exc:
            statement.close()
            with contextlib.suppress(adbc.Error):
                self.connection.rollback()
            raise _error(exc, source.uri) from None
        return Fetched(
            schema.names, batches=_Batches(reader, statement, source.uri, self.connection)
        )

    def _psycopg(self) -> Any:
        if self._fallback is None:
            from signals_dagster.sources.sql import SqlSource

            source = self.source
            fallback = SqlSource(source.uri, source.sql, source._timeout)
            self._fallback = self._exit.enter_context(fallback.session())
        return self._fallback

    def close(self) -> None:
        """Release the psycopg session, if one was needed."""
        self._exit.close()


class _Batches:
    """The record batches of one result; closing releases the statement."""

    def __init__(
        self, reader: pa.RecordBatchReader, statement: Any, uri: str, connection: Any
    ) -> None:
        self.reader, self.statement, self.uri = reader, statement, uri
        self.connection = connection

    def __iter__(self) -> Iterator[pa.RecordBatch]:
        import adbc_driver_manager as adbc

        try:
            yield from self.reader
        except (adbc.Error, pa.ArrowException) as exc:
            raise _error(exc, self.uri) from None
        finally:
            self.close()

    def close(self) -> None:
        """Stop reading and release the statement."""
        with contextlib.suppress(Exception):
            self.reader.close()
        with contextlib.suppress(Exception):
            self.statement.close()
        with contextlib.suppress(Exception):
            self.connection.rollback()
