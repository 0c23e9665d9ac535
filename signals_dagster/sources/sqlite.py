"""SQLite through the standard library's sqlite3 (no SQLAlchemy: the CLI starts fast).

The database file is opened read-only (`mode=ro`, `PRAGMA query_only`), never created; a
progress handler interrupts a query at its statement timeout; the window is bound as the
named parameters `:window_start` / `:window_end` (UTC text in SQLite's own datetime format).
"""

import contextlib
import os
import sqlite3
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, timedelta
from typing import Any
from urllib.parse import quote

from signals_dagster.errors import SourceError
from signals_dagster.redact import redact
from signals_dagster.sources.base import Fetched
from signals_dagster.spec.sqltext import bind_params, collector_kind, mentions_grain
from signals_dagster.window import Window

BATCH = 65_536  # rows fetched at a time
_SCHEMES = ("sqlite://", "sqlite+pysqlite://")


def handles(uri: str) -> bool:
    """Whether this module runs the URI (plain sqlite:/// file URLs)."""
    return uri.lower().startswith(_SCHEMES) and "?" not in uri


def database_path(uri: str) -> str:
    """The file of a sqlite:///relative or sqlite:////absolute URL ('' for in-memory)."""
    rest = uri.split("://", 1)[1]
    return rest[1:] if rest.startswith("/") else rest


class SqliteSource:
    """A SQL aggregation over one SQLite database file."""

    def __init__(self, uri: str, sql: str, timeout: timedelta) -> None:
        self.uri = uri
        self.sql = sql
        self.params = bind_params(sql)
        self.kind = collector_kind(self.params)
        self.range_capable = mentions_grain(sql)
        self.timeout = timeout.total_seconds()
        self.path = database_path(uri)

    def describe(self) -> dict[str, str]:
        """Redacted URI and the query text."""
        return {"uri": redact(self.uri), "query": self.sql}

    @contextlib.contextmanager
    def session(self) -> Iterator["SqliteSession"]:
        """One read-only connection for every window of a run."""
        if self.path and not os.path.exists(self.path):
            raise SourceError(f"SQLite database file not found: {self.path}")
        target = f"file:{quote(self.path)}?mode=ro" if self.path else "file::memory:"
        try:
            conn = sqlite3.connect(target, uri=True, check_same_thread=False)
        except sqlite3.Error as exc:
            raise SourceError(f"{redact(self.uri)}: {exc}") from None
        try:
            conn.execute("PRAGMA query_only = ON")
            yield SqliteSession(self, conn)
        finally:
            conn.close()


class SqliteSession:
    """An open read-only connection."""

    def __init__(self, source: SqliteSource, conn: sqlite3.Connection) -> None:
        self.source = source
        self.conn = conn
        self.timed_out = False

    def fetch(self, window: Window) -> Fetched:
        """Execute the query for one window; rows are fetched in batches."""
        values = {
            "window_start": window.start.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S"),
            "window_end": window.end.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S"),
        }
        deadline = time.monotonic() + self.source.timeout
        self.timed_out = False

        def expired() -> int:
            self.timed_out = self.timed_out or time.monotonic() > deadline
            return int(self.timed_out)

        self.conn.set_progress_handler(expired, 10_000)
        try:
            cursor = self.conn.execute(self.source.sql, values)
        except sqlite3.Error as exc:
            self._end()
            raise self._error(exc) from None
        columns = [d[0] for d in cursor.description or []]
        return Fetched(columns, self._rows(cursor))

    def _rows(self, cursor: sqlite3.Cursor) -> Iterator[Sequence[Any]]:
        try:
            while batch := cursor.fetchmany(BATCH):
                yield from batch
        except sqlite3.Error as exc:
            raise self._error(exc) from None
        finally:
            cursor.close()
            self._end()
            if self.conn.in_transaction:
                self.conn.rollback()

    def _end(self) -> None:
        self.conn.set_progress_handler(None, 0)

    def _error(self, exc: sqlite3.Error) -> SourceError:
        detail = f"{redact(self.source.uri)}: {redact(str(exc))}"
        if self.timed_out:
            # An interrupt only says "interrupted": name the cause.
            return SourceError(
                f"{detail} (statement timeout of {self.source.timeout:g}s exceeded)",
                transient=True,
            )
        busy = "locked" in str(exc) or "busy" in str(exc)
        return SourceError(detail, transient=busy)
