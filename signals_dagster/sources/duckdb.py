"""DuckDB through the duckdb module itself (no SQLAlchemy), sandboxed to its own database.

The database file is opened `read_only`; before the collector's SQL runs, external access is
switched off (`enable_external_access = false`: no other file, no network, no extension
install or load, no ATTACH) except for the source's `allowed_paths` (DuckDB's
`allowed_directories` / `allowed_paths`), and the configuration is locked, so no `SET` can undo
it. Only a single SELECT runs: `COPY … TO`, `EXPORT`, `INSTALL`, `LOAD`, `ATTACH`, `SET`,
`PRAGMA`, `CALL` are refused before anything executes (COPY could write into an allowed
folder). A timer interrupts a query at its statement timeout; the window is bound as the
named parameters `$window_start` / `$window_end`.
"""

import contextlib
import os
import threading
from collections.abc import Iterator, Sequence
from datetime import timedelta
from typing import Any

import duckdb

from signals_dagster.errors import SourceError
from signals_dagster.redact import redact
from signals_dagster.sources.base import Fetched, InProcessSqlSource, file_database, timeout_error
from signals_dagster.spec.sqltext import replace_params
from signals_dagster.window import Window

BATCH = 65_536  # rows fetched at a time
_SCHEMES = ("duckdb",)


def handles(uri: str) -> bool:
    """Whether this module runs the URI (duckdb:///file and duckdb:///:memory: URLs)."""
    return uri.split("://", 1)[0].lower() in _SCHEMES


def database_path(uri: str) -> str:
    """The file of a duckdb:///relative or duckdb:////absolute URL (':memory:' when none)."""
    return file_database(uri) or ":memory:"


def sandbox(conn: duckdb.DuckDBPyConnection, allowed: Sequence[str]) -> None:
    """Only `allowed` files and folders are reachable, and no setting can change any more."""
    folders, files = [], []
    for item in allowed:
        path = os.path.abspath(item)
        if os.path.isdir(path) or item.endswith(("/", os.sep)):
            folders.append(path.rstrip(os.sep) + os.sep)
        else:
            files.append(path)
    conn.execute("SET TimeZone = 'UTC'")
    conn.execute("SET allowed_directories = $v", {"v": folders})
    conn.execute("SET allowed_paths = $v", {"v": files})
    conn.execute("SET enable_external_access = false")
    conn.execute("SET lock_configuration = true")


class DuckdbSource(InProcessSqlSource):
    """A SQL aggregation over one DuckDB database file."""

    def __init__(
        self, uri: str, sql: str, timeout: timedelta, allowed_paths: Sequence[str] = ()
    ) -> None:
        super().__init__(uri, sql, timeout)
        self.path = database_path(uri)
        self.allowed_paths = list(allowed_paths)
        self.text, _ = replace_params(sql, lambda name, _number: f"${name}")

    @contextlib.contextmanager
    def session(self) -> Iterator["DuckdbSession"]:
        """One read-only, sandboxed connection for every window of a run."""
        memory = self.path == ":memory:"
        config: dict[str, str | bool | int | float | list[str]] = {
            "autoload_known_extensions": False,
            "autoinstall_known_extensions": False,
        }
        try:
            conn = duckdb.connect(self.path, read_only=not memory, config=config)
        except duckdb.Error as exc:
            raise SourceError(f"{redact(self.uri)}: {redact(str(exc))}") from None
        try:
            sandbox(conn, self.allowed_paths)
            yield DuckdbSession(self, conn)
        finally:
            conn.close()


class DuckdbSession:
    """An open read-only, sandboxed connection."""

    def __init__(self, source: DuckdbSource, conn: duckdb.DuckDBPyConnection) -> None:
        self.source = source
        self.conn = conn
        self.timed_out = False
        self.checked = False

    def _check(self) -> None:
        """Refuse anything but one SELECT before it runs."""
        if self.checked:
            return
        try:
            statements = self.conn.extract_statements(self.source.text)
        except duckdb.Error as exc:
            raise self._error(exc) from None
        kinds = [s.type.name for s in statements]
        if kinds != ["SELECT"]:
            what = f"{len(kinds)} statements" if len(kinds) != 1 else f"a {kinds[0]} statement"
            raise SourceError(
                f"{redact(self.source.uri)}: refused {what}: a collector's session is read-only "
                "and runs exactly one SELECT"
            )
        self.checked = True

    def fetch(self, window: Window) -> Fetched:
        """Execute the query for one window; rows are fetched in batches."""
        self._check()
        values = {"window_start": window.start, "window_end": window.end}
        params = {k: v for k, v in values.items() if k in self.source.params}
        self.timed_out = False

        def interrupt() -> None:
            self.timed_out = True
            self.conn.interrupt()

        timer = threading.Timer(self.source.timeout, interrupt)
        timer.daemon = True
        timer.start()
        try:
            cursor = self.conn.execute(self.source.text, params or None)
            columns = [str(d[0]) for d in cursor.description or []]
        except duckdb.Error as exc:
            timer.cancel()
            raise self._error(exc) from None
        return Fetched(columns, self._rows(cursor, timer))

    def _rows(self, cursor: Any, timer: threading.Timer) -> Iterator[Sequence[Any]]:
        try:
            while batch := cursor.fetchmany(BATCH):
                yield from batch
        except duckdb.Error as exc:
            raise self._error(exc) from None
        finally:
            timer.cancel()

    def _error(self, exc: duckdb.Error) -> SourceError:
        detail = f"{redact(self.source.uri)}: {redact(str(exc).strip())}"
        if self.timed_out:
            return timeout_error(detail, self.source.timeout)
        transient = isinstance(exc, duckdb.OperationalError) and not isinstance(
            exc, duckdb.PermissionException
        )
        return SourceError(detail, transient=transient)
