"""SQLite through the standard library's sqlite3 (no SQLAlchemy: the CLI starts fast).

The database file is opened read-only (`mode=ro`, `PRAGMA query_only`), never created; an
authorizer lets a statement only read that file (no ATTACH or VACUUM INTO, which create files
wherever the process may write; no write; no pragma that changes state; no load_extension); a
progress handler interrupts a query at its statement timeout; the window is bound as the
named parameters `:window_start` / `:window_end` (UTC text in SQLite's own datetime format).
"""

import contextlib
import os
import sqlite3
import time
from collections.abc import Iterator, Sequence
from datetime import UTC
from typing import Any
from urllib.parse import quote

from signals_dagster.errors import SourceError
from signals_dagster.redact import redact
from signals_dagster.sources.base import Fetched, InProcessSqlSource, timeout_error
from signals_dagster.window import Window

BATCH = 65_536  # rows fetched at a time
_SCHEMES = ("sqlite://", "sqlite+pysqlite://")

# Pragmas that only describe the schema or the engine (their argument names a table or index).
_DESCRIBING_PRAGMAS = frozenset(
    [
        "table_info",
        "table_xinfo",
        "table_list",
        "index_list",
        "index_info",
        "index_xinfo",
        "foreign_key_list",
        "collation_list",
        "function_list",
        "module_list",
        "pragma_list",
        "compile_options",
        "database_list",
    ]
)
# Pragmas that read a setting when they are given no value (`PRAGMA user_version = 3` writes).
_READING_PRAGMAS = frozenset(
    [
        "user_version",
        "application_id",
        "schema_version",
        "data_version",
        "page_count",
        "page_size",
        "freelist_count",
        "encoding",
        "journal_mode",
        "foreign_keys",
        "query_only",
    ]
)
_REFUSED_FUNCTIONS = frozenset(
    {"load_extension", "readfile", "writefile", "edit", "fts3_tokenizer"}
)
_READ_ACTIONS = frozenset({sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ, sqlite3.SQLITE_RECURSIVE})
# The schema catalog is "updated" while a table-valued pragma is prepared; it cannot be written.
_CATALOG = frozenset({"sqlite_master", "sqlite_schema", "sqlite_temp_master", "sqlite_temp_schema"})


class Guard:
    """An sqlite3 authorizer that lets a statement only read (`refused` says what it denied)."""

    def __init__(self) -> None:
        self.refused = ""

    def __call__(
        self, action: int, arg1: str | None, arg2: str | None, _db: str | None, _by: str | None
    ) -> int:
        """SQLITE_OK for reading, SQLITE_DENY (and the reason in `refused`) for anything else."""
        why = self._why(action, arg1, arg2)
        if why is None:
            return sqlite3.SQLITE_OK
        self.refused = why
        return sqlite3.SQLITE_DENY

    @staticmethod
    def _why(action: int, arg1: str | None, arg2: str | None) -> str | None:
        if action in _READ_ACTIONS:
            return None
        if action == sqlite3.SQLITE_FUNCTION:
            name = (arg2 or "").lower()
            return f"function {name}() is refused" if name in _REFUSED_FUNCTIONS else None
        if action == sqlite3.SQLITE_PRAGMA:
            name = (arg1 or "").lower()
            if name in _DESCRIBING_PRAGMAS or (name in _READING_PRAGMAS and arg2 is None):
                return None
            return f"PRAGMA {name} is refused (only pragmas that read run)"
        if action == sqlite3.SQLITE_UPDATE and (arg1 or "").lower() in _CATALOG:
            return None
        if action in (sqlite3.SQLITE_ATTACH, sqlite3.SQLITE_DETACH):
            return "ATTACH, DETACH and VACUUM INTO are refused: a collector reads only its database"
        return "the session is readonly: a collector only reads"


def guard(conn: sqlite3.Connection) -> Guard:
    """Install a read-only authorizer on `conn` (after our own PRAGMA query_only ran)."""
    authorizer = Guard()
    conn.set_authorizer(authorizer)
    return authorizer


def handles(uri: str) -> bool:
    """Whether this module runs the URI (plain sqlite:/// file URLs)."""
    return uri.lower().startswith(_SCHEMES) and "?" not in uri


class SqliteSource(InProcessSqlSource):
    """A SQL aggregation over one SQLite database file ('' in the URL: in memory)."""

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
            yield SqliteSession(self, conn, guard(conn))
        finally:
            conn.close()


class SqliteSession:
    """An open read-only connection."""

    def __init__(self, source: SqliteSource, conn: sqlite3.Connection, authorizer: Guard) -> None:
        self.source = source
        self.conn = conn
        self.timed_out = False
        self.authorizer = authorizer

    def fetch(self, window: Window) -> Fetched:
        """Execute the query for one window; rows are fetched in batches."""
        values = {
            "window_start": window.start.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S"),
            "window_end": window.end.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S"),
        }
        deadline = time.monotonic() + self.source.timeout
        self.timed_out = False
        self.authorizer.refused = ""

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
        if self.authorizer.refused and "authoriz" in str(exc):  # "not authorized", "…denied"
            return SourceError(f"{detail}: {self.authorizer.refused}", transient=False)
        if self.timed_out:
            return timeout_error(detail, self.source.timeout)
        busy = "locked" in str(exc) or "busy" in str(exc)
        return SourceError(detail, transient=busy)
