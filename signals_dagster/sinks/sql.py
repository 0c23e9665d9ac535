"""SQL table sink (`type: sql`): records upserted by `uuid` into a table of a Postgres,
MySQL/MariaDB, SQLite or DuckDB database, through SQLAlchemy.

Table: uuid (primary key), name, value, type, tags (JSON text of the record's tags), timestamp
and grain_datetime (UTC). Opening the writer connects and checks the table's columns (creating
the table with `create_table: true`); every partition of a run is written in ONE transaction:
all of them or nothing, and a re-run overwrites the rows it wrote before (same uuids).

Per backend: Postgres COPYs each batch into a temporary table and upserts from it
(`INSERT … SELECT … ON CONFLICT (uuid) DO UPDATE`); MySQL/MariaDB and SQLite run their own
upsert (`ON DUPLICATE KEY UPDATE`, `ON CONFLICT (uuid) DO UPDATE`) as an executemany that the
driver batches; DuckDB upserts from the Arrow batch itself.
"""

import contextlib
import math
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.pool import NullPool

from signals_dagster.errors import SinkError
from signals_dagster.records import as_table
from signals_dagster.redact import redact, redact_secrets
from signals_dagster.sources.base import is_transient
from signals_dagster.spec.models import CollectorSpec
from signals_dagster.spec.sql_sink import SqlSinkConfig

COLUMNS = ("uuid", "name", "value", "type", "tags", "timestamp", "grain_datetime")
UPDATED = COLUMNS[1:]
BATCH = 10_000  # records per COPY / executemany / DuckDB statement (between on_batch calls)
STAGE = "signals_sink_stage"  # Postgres: the transaction's temporary table
VIEW = "signals_sink_batch"  # DuckDB: the registered Arrow batch
MYSQL = ("mysql", "mariadb")
UTC_US = pa.timestamp("us", tz="UTC")
FORMATTED = ("value", "timestamp", "grain_datetime")  # texts Arrow makes: nothing to escape
# Shortest texts the records need: a uuid, the longest metric type (COUNT, GAUGE).
MIN_LENGTH = {"uuid": 36, "type": 5}


# --- the table ---------------------------------------------------------------------------------


def table_model(config: SqlSinkConfig) -> sa.Table:
    """The table `create_table: true` makes, in the backend's types."""
    from sqlalchemy.dialects import mysql, postgresql

    backend = config.backend
    tags: Any = sa.Text()
    instant: Any = sa.DateTime(timezone=True)
    name: Any = sa.Text()
    if backend == "postgresql":
        tags = postgresql.JSONB()
    elif backend in MYSQL:
        tags, instant, name = mysql.JSON(), mysql.DATETIME(fsp=3), sa.String(200)
    table = sa.Table(
        config.table_name,
        sa.MetaData(),
        sa.Column("uuid", sa.String(36), primary_key=True),
        sa.Column("name", name, nullable=False),
        sa.Column("value", sa.Double(), nullable=False),
        sa.Column("type", sa.String(16), nullable=False),
        sa.Column("tags", tags, nullable=False),
        sa.Column("timestamp", instant, nullable=False),
        sa.Column("grain_datetime", instant, nullable=False),
        schema=config.schema_name,
    )
    if backend != "duckdb":  # DuckDB: zone maps, and an ART index would slow every upsert
        sa.Index(f"{config.table_name}_name_grain_idx"[:63], table.c.name, table.c.grain_datetime)
    return table


def _bind_table(config: SqlSinkConfig) -> sa.TableClause:
    """The table as statements bind it: texts as they are (tags is JSON text already), instants
    through the dialect's DateTime (SQLite stores them as UTC text)."""
    kinds: dict[str, Any] = {"value": sa.Float(), "timestamp": sa.DateTime(), "tags": sa.Text()}
    kinds["grain_datetime"] = sa.DateTime()
    columns = [sa.column(c, kinds.get(c, sa.String())) for c in COLUMNS]
    return sa.table(config.table_name, *columns, schema=config.schema_name)


@dataclass(frozen=True)
class Column:
    """One reflected column: its SQLAlchemy type (NullType when unknown) and its text."""

    type: Any
    shown: str
    nullable: bool
    has_default: bool


def _shown(kind: Any, dialect: sa.Dialect) -> str:
    try:
        return str(kind.compile(dialect=dialect)).lower()
    except Exception:
        return type(kind).__name__.lower()


def column_problem(name: str, column: Column, backend: str) -> str | None:
    """Why a column cannot hold the record field `name` (None: it can)."""
    kind = column.type
    if name in ("uuid", "name", "type"):
        ok = isinstance(kind, sa.String) or (name == "uuid" and isinstance(kind, sa.Uuid))
        length = getattr(kind, "length", None) if isinstance(kind, sa.String) else None
        if ok and length is not None and length < MIN_LENGTH.get(name, 0):
            return f"{name} is {column.shown}: too short for {MIN_LENGTH[name]} characters"
        need = "a text type" + (" (or uuid)" if name == "uuid" else "")
    elif name == "value":
        ok = isinstance(kind, sa.Float) or (
            isinstance(kind, sa.Numeric) and getattr(kind, "scale", None) is None
        )
        need = "a floating-point type (double precision)"
    elif name == "tags":
        ok = isinstance(kind, sa.JSON | sa.String)
        need = "JSON or a text type"
    else:
        ok = isinstance(kind, sa.DateTime) or (backend == "sqlite" and isinstance(kind, sa.String))
        need = "a timestamp type (timestamptz, datetime(3))"
    return None if ok else f"{name} is {column.shown}, needs {need}"


def _duckdb_type(text: str) -> Any:
    """A DuckDB column type (duckdb_columns().data_type) as the SQLAlchemy type it stands for."""
    upper = text.upper()
    if upper.startswith("DECIMAL"):
        return sa.Numeric(18, 3)  # DuckDB's DECIMAL always has a scale
    if upper.startswith("TIMESTAMP"):
        return sa.DateTime(timezone="TIME ZONE" in upper)
    kinds = {
        "VARCHAR": sa.String(),
        "UUID": sa.Uuid(),
        "JSON": sa.JSON(),
        "DOUBLE": sa.Double(),
        "FLOAT": sa.Float(),
    }
    return kinds.get(upper, sa.types.NullType())


class TableCheck:
    """What a database holds of the sink's table (read through one connection)."""

    def __init__(self, conn: sa.Connection, config: SqlSinkConfig) -> None:
        self.conn, self.config = conn, config
        self.columns: dict[str, Column] | None = None  # None: no such table
        self.keyed = False  # uuid is the primary key or unique
        if config.backend == "duckdb":
            self._read_duckdb()
        else:
            self._read()

    def _read(self) -> None:
        inspector = sa.inspect(self.conn)
        name, schema = self.config.table_name, self.config.schema_name
        if not inspector.has_table(name, schema=schema):
            return
        self.columns = {
            str(c["name"]).lower(): Column(
                c["type"],
                _shown(c["type"], self.conn.dialect),
                bool(c.get("nullable", True)),
                c.get("default") is not None
                or c.get("autoincrement") is True
                or bool(c.get("computed") or c.get("identity")),
            )
            for c in inspector.get_columns(name, schema=schema)
        }
        keys: list[Sequence[Any]] = [
            inspector.get_pk_constraint(name, schema=schema).get("constrained_columns") or []
        ]
        keys += [u["column_names"] for u in inspector.get_unique_constraints(name, schema=schema)]
        keys += [
            i["column_names"] for i in inspector.get_indexes(name, schema=schema) if i["unique"]
        ]
        self.keyed = any([str(c).lower() for c in k] == ["uuid"] for k in keys)

    def _read_duckdb(self) -> None:
        # duckdb-engine's inspector reads pg_catalog views DuckDB lacks: its own catalog instead.
        schema = self.config.schema_name
        where = "table_name = :name AND schema_name = " + (
            ":schema" if schema else "current_schema()"
        )
        params = {"name": self.config.table_name, "schema": schema}
        rows = self.conn.execute(
            sa.text(
                "SELECT column_name, data_type, is_nullable, column_default FROM duckdb_columns() "
                f"WHERE {where} ORDER BY column_index"
            ),
            params,
        ).fetchall()
        if not rows:
            return
        self.columns = {
            str(name).lower(): Column(
                _duckdb_type(str(kind)), str(kind).lower(), bool(null), d is not None
            )
            for name, kind, null, d in rows
        }
        keys = self.conn.execute(
            sa.text(
                "SELECT constraint_column_names FROM duckdb_constraints() WHERE "
                f"{where} AND constraint_type IN ('PRIMARY KEY', 'UNIQUE')"
            ),
            params,
        ).fetchall()
        self.keyed = any([str(c).lower() for c in k[0]] == ["uuid"] for k in keys)

    def problems(self) -> list[str]:
        """What keeps the records from being upserted into the table (empty: nothing)."""
        assert self.columns is not None
        backend = self.config.backend
        missing = [c for c in COLUMNS if c not in self.columns]
        found = [f"missing column(s) {', '.join(missing)}"] if missing else []
        for name in COLUMNS:
            if name in self.columns:
                why = column_problem(name, self.columns[name], backend)
                found += [why] if why else []
        if "uuid" in self.columns and not self.keyed:
            found.append("uuid is neither the primary key nor unique (the upsert needs it)")
        required = [
            name
            for name, column in self.columns.items()
            if name not in COLUMNS and not column.nullable and not column.has_default
        ]
        if required:
            found.append(f"column(s) {', '.join(required)} NOT NULL without a default")
        return found


def create_statement(config: SqlSinkConfig, dialect: sa.Dialect) -> str:
    """The CREATE TABLE the sink would run, on one line (for error messages)."""
    from sqlalchemy.schema import CreateTable

    text = str(CreateTable(table_model(config)).compile(dialect=dialect))
    return " ".join(text.split())


# --- connections -------------------------------------------------------------------------------


def _connect_args(config: SqlSinkConfig, url: sa.URL) -> dict[str, Any]:
    seconds = config.timeout.total_seconds()
    backend = config.backend
    if backend == "postgresql":
        ms = max(1, int(seconds * 1000))
        return {
            "connect_timeout": max(2, math.ceil(seconds)),
            "application_name": "signals_dagster sql sink",
            "options": f"-c statement_timeout={ms} -c lock_timeout={ms} -c TimeZone=UTC",
        }
    if backend in MYSQL:
        # local_infile off: a rogue server could otherwise read the worker's files.
        args: dict[str, Any] = {
            "connect_timeout": min(seconds, 60),
            "read_timeout": seconds + 5,
            "write_timeout": seconds + 5,
            "init_command": (
                f"SET time_zone = '+00:00', innodb_lock_wait_timeout = {max(1, math.ceil(seconds))}"
            ),
            "local_infile": False,
        }
        return {k: v for k, v in args.items() if k not in url.query}  # the URI's own value wins
    if backend == "sqlite":
        return {"timeout": seconds}  # waits that long for another writer's lock
    return {"config": {"enable_external_access": False}}  # DuckDB: the database file only


def _on_connect(backend: str) -> Any:
    def duckdb(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.execute("SET TimeZone = 'UTC'")  # TIMESTAMP columns get UTC wall time

    return duckdb if backend == "duckdb" else None


def make_engine(config: SqlSinkConfig) -> Engine:
    """A SQLAlchemy engine without a pool (no idle connection outlives the writer)."""
    from signals_dagster.sources.sql import engine_url

    url = engine_url(config.uri)
    try:
        engine = sa.create_engine(url, poolclass=NullPool, connect_args=_connect_args(config, url))
    except (sa.exc.ArgumentError, sa.exc.NoSuchModuleError, ImportError) as exc:
        raise SinkError(f"sql sink {redact(config.uri)}: {exc}") from None
    hook = _on_connect(config.backend)
    if hook is not None:
        event.listen(engine, "connect", hook)
    return engine


def confine(config: SqlSinkConfig) -> Path | None:
    """Run-time confinement right before connecting: the database file under the file sink
    roots (its real path), a server's host allowed by egress.allow. SinkError when refused."""
    from signals_dagster.confine import check_egress, confined_path

    path = config.database_file
    if path is None:
        check_egress(f"sql sink {redact(config.uri)}", *config.address)
        return None
    try:
        return confined_path(path)
    except SinkError as exc:
        raise SinkError(str(exc).replace("file sink:", "sql sink: database file", 1)) from None


def _file_problem(config: SqlSinkConfig, real: Path) -> str | None:
    """Why the database file cannot be opened for writing (None: it can; a missing file with
    `create_table: true` needs a writable folder to be made in)."""
    if real.exists():
        if real.is_dir():
            return f"database file {real} is a directory"
        return None if os.access(real, os.R_OK | os.W_OK) else f"database file {real} not writable"
    if not config.create_table:
        return f"database file {real} does not exist (create_table: true creates it)"
    folder = real.parent
    while not folder.exists():
        folder = folder.parent
    if not folder.is_dir() or not os.access(folder, os.W_OK | os.X_OK):
        return f"cannot create database file {real}: {folder} is not a writable directory"
    return None


def _passwords(uri: str) -> list[str]:
    """The URI's password, to mask wherever a driver might echo it."""
    try:
        password = sa.engine.make_url(uri).password
    except sa.exc.ArgumentError:
        return []
    return [str(password)] if password else []


def _transient(exc: BaseException) -> bool:
    """A lost or refused connection, a timeout, a lock or serialisation conflict."""
    if isinstance(exc, sa.exc.DBAPIError) and exc.connection_invalidated:
        return True
    orig = getattr(exc, "orig", None) or exc
    names = {cls.__name__ for cls in type(orig).__mro__}
    kind_ok = isinstance(exc, sa.exc.OperationalError | sa.exc.InterfaceError | OSError) or bool(
        names & {"OperationalError", "InterfaceError"}
    )
    return is_transient(kind_ok, orig)


# --- the writer --------------------------------------------------------------------------------


class SqlWriter:
    """Upserts records into the sink's table; opening it connects and checks the table."""

    def __init__(self, config: SqlSinkConfig, preflight: bool = False) -> None:
        """Connect and check the table; create it when missing with `create_table: true`.

        `preflight`: create nothing (neither the table nor a database file): a table or file
        that `create_table: true` would create passes."""
        self.config = config
        self.where = f"sql sink {redact(config.uri)} table {config.table}"
        self.engine: Engine | None = None
        self.target = _bind_table(config)
        real = confine(config)
        if real is not None:
            why = _file_problem(config, real)
            if why:
                raise SinkError(f"{self.where}: {why}")
            if not real.exists():
                if preflight:
                    return  # create_table: true, and a folder to make the file in
                real.parent.mkdir(parents=True, exist_ok=True)
        self.engine = make_engine(config)
        try:
            with self.errors("cannot check the table"):
                self.prepare(create=config.create_table and not preflight)
        except BaseException:
            self.close()
            raise

    # -- checking --

    def prepare(self, create: bool) -> None:
        """Check the table (creating it first when missing and `create`); SinkError naming the
        columns that are missing or cannot hold the records."""
        assert self.engine is not None
        with self.engine.connect() as conn:
            found = TableCheck(conn, self.config)
            if found.columns is None and create:
                found = self._create(conn)
            if found.columns is None and self.config.create_table:
                return  # preflight: the writer creates it
            if found.columns is None:
                statement = create_statement(self.config, conn.dialect)
                raise SinkError(
                    f"{self.where}: the table does not exist (set create_table: true, or "
                    f"create it: {statement})"
                )
            problems = found.problems()
            if not problems and self.config.backend == "postgresql":
                problems = self._privileges(conn)
            conn.rollback()
        if problems:
            raise SinkError(f"{self.where} cannot hold the records: {'; '.join(problems)}")

    def _create(self, conn: sa.Connection) -> TableCheck:
        try:
            table_model(self.config).metadata.create_all(conn, checkfirst=True)
            conn.commit()
        except sa.exc.DBAPIError:
            conn.rollback()  # another run may have created it meanwhile: check what is there
            found = TableCheck(conn, self.config)
            if found.columns is None:
                raise
            return found
        return TableCheck(conn, self.config)

    def _privileges(self, conn: sa.Connection) -> list[str]:
        name = conn.dialect.identifier_preparer.format_table(self.target)
        allowed = conn.execute(
            sa.text(
                "SELECT has_table_privilege(CAST(:t AS regclass), 'INSERT') "
                "AND has_table_privilege(CAST(:t AS regclass), 'UPDATE')"
            ),
            {"t": name},
        ).scalar()
        return [] if allowed else [f"user {conn.engine.url.username} may not INSERT and UPDATE it"]

    # -- writing --

    def write(
        self, spec: CollectorSpec, partition_key: str | None, records: Any
    ) -> dict[str, object]:
        """Upsert one partition's records (one transaction)."""
        return self.write_many(spec, [(partition_key, records)])[0]

    def write_many(
        self, spec: CollectorSpec, parts: Sequence[tuple[str | None, Any]]
    ) -> list[dict[str, object]]:
        """Upsert every partition of a run in ONE transaction: all of them or none."""
        assert self.engine is not None
        tables = [_unique(as_table(records)) for _, records in parts]
        if any(len(t) for t in tables):
            with self.errors("records not written (the transaction was rolled back)"):
                self._transaction(tables)
        uri = redact(self.config.uri)
        return [{"uri": uri, "table": self.config.table, "records": len(t)} for t in tables]

    def _transaction(self, tables: list[pa.Table]) -> None:
        assert self.engine is not None
        conn = self.engine.connect()
        try:
            transaction = conn.begin()
            try:
                for table in tables:
                    if len(table):
                        self._upsert(conn, table)
            except BaseException:
                with contextlib.suppress(Exception):
                    transaction.rollback()
                raise
            try:
                transaction.commit()
            except Exception as exc:
                raise SinkError(
                    f"{self.where}: the commit was not confirmed ({self._detail(exc)}); the "
                    "records may or may not be in the table: a re-run overwrites them",
                    transient=True,
                ) from None
        finally:
            with contextlib.suppress(Exception):
                conn.close()

    def _upsert(self, conn: sa.Connection, table: pa.Table) -> None:
        backend = self.config.backend
        if backend == "postgresql":
            self._upsert_postgres(conn, table)
        elif backend == "duckdb":
            self._upsert_duckdb(conn, table)
        else:
            self._upsert_many(conn, table)

    def on_batch(self, conn: sa.Connection, written: int) -> None:
        """Called after each batch is sent, inside the transaction (a seam for tests)."""

    def _quoted(self, conn: sa.Connection) -> tuple[str, list[str]]:
        preparer = conn.dialect.identifier_preparer
        return preparer.format_table(self.target), [preparer.quote(c) for c in COLUMNS]

    def _upsert_from(self, conn: sa.Connection, source: str) -> str:
        """INSERT INTO the table SELECT … FROM `source` ON CONFLICT (uuid) DO UPDATE SET …"""
        target, names = self._quoted(conn)
        columns = ", ".join(names)
        updates = ", ".join(f"{n} = EXCLUDED.{n}" for n in names[1:])
        return (
            f"INSERT INTO {target} ({columns}) SELECT {columns} FROM {source} "
            f"ON CONFLICT ({names[0]}) DO UPDATE SET {updates}"
        )

    def _upsert_postgres(self, conn: sa.Connection, table: pa.Table) -> None:
        """COPY the records into a temporary table of the target's column types, then upsert
        from it with one statement."""
        target, names = self._quoted(conn)
        columns = ", ".join(names)
        raw: Any = conn.connection.dbapi_connection
        with raw.cursor() as cursor:
            cursor.execute(
                f"CREATE TEMPORARY TABLE IF NOT EXISTS {STAGE} ON COMMIT DROP AS "
                f"SELECT {columns} FROM {target} WITH NO DATA"
            )
            written = 0
            for text in copy_text(table):
                with cursor.copy(f"COPY {STAGE} ({columns}) FROM STDIN") as copy:
                    copy.write(text)
                written = min(written + BATCH, len(table))
                self.on_batch(conn, written)
            cursor.execute(self._upsert_from(conn, STAGE))
            cursor.execute(f"TRUNCATE {STAGE}")

    def _upsert_duckdb(self, conn: sa.Connection, table: pa.Table) -> None:
        """Upsert straight from the Arrow batch (registered as a view of this connection)."""
        raw: Any = conn.connection.dbapi_connection
        batch = _arrow(table)
        statement = self._upsert_from(conn, VIEW)
        for start in range(0, len(batch), BATCH):
            raw.register(VIEW, batch.slice(start, BATCH))
            try:
                raw.execute(statement)
            finally:
                raw.unregister(VIEW)
            self.on_batch(conn, min(start + BATCH, len(batch)))

    def _upsert_many(self, conn: sa.Connection, table: pa.Table) -> None:
        """MySQL/MariaDB: INSERT … ON DUPLICATE KEY UPDATE; SQLite: INSERT … ON CONFLICT (uuid)
        DO UPDATE; as executemany (PyMySQL sends multi-row INSERTs)."""
        backend = self.config.backend
        if backend in MYSQL:
            from sqlalchemy.dialects import mysql

            insert: Any = mysql.insert(self.target)
            statement = insert.on_duplicate_key_update({c: insert.inserted[c] for c in UPDATED})
        else:
            from sqlalchemy.dialects import sqlite

            insert = sqlite.insert(self.target)
            statement = insert.on_conflict_do_update(
                index_elements=["uuid"], set_={c: insert.excluded[c] for c in UPDATED}
            )
        compiled = statement.compile(dialect=conn.dialect)  # the server's own upsert syntax
        assert compiled.positiontup in (None, list(COLUMNS))
        rows: list[Any] = _driver_rows(table, backend)
        if not conn.dialect.positional:
            rows = [dict(zip(COLUMNS, row, strict=True)) for row in rows]
        for start in range(0, len(rows), BATCH):
            conn.exec_driver_sql(compiled.string, rows[start : start + BATCH])
            self.on_batch(conn, min(start + BATCH, len(rows)))

    # -- errors and closing --

    def _detail(self, exc: BaseException) -> str:
        orig = getattr(exc, "orig", None) if isinstance(exc, sa.exc.DBAPIError) else exc
        text = " ".join(str(orig if orig is not None else exc).split())
        return redact_secrets(text, _passwords(self.config.uri))

    @contextlib.contextmanager
    def errors(self, action: str) -> Iterator[None]:
        """Driver and SQLAlchemy failures as a SinkError naming the sink (secrets redacted)."""
        try:
            yield
        except SinkError:
            raise
        except Exception as exc:
            dbapi = getattr(self.engine.dialect, "loaded_dbapi", None) if self.engine else None
            driver_error = getattr(dbapi, "Error", None)
            known = (sa.exc.SQLAlchemyError, OSError) + ((driver_error,) if driver_error else ())
            if not isinstance(exc, known):
                raise
            raise SinkError(
                f"{self.where}: {action}: {self._detail(exc)}", transient=_transient(exc)
            ) from None

    def close(self) -> None:
        """Release the engine (no pooled connection is kept)."""
        if self.engine is not None:
            self.engine.dispose()
            self.engine = None


def check_table(config: SqlSinkConfig) -> None:
    """Preflight: the database answers and its table can take the records (a missing table or
    database file passes with `create_table: true`: the writer creates it). Creates nothing."""
    SqlWriter(config, preflight=True).close()


# --- records as rows ---------------------------------------------------------------------------


def _unique(table: pa.Table) -> pa.Table:
    """The records with one row per uuid (the last one): one upsert statement may not touch a
    row twice."""
    if not len(table):
        return table
    uuids = table.column("uuid")
    if pc.count_distinct(uuids).as_py() == len(table):
        return table
    rows = pa.table({"uuid": uuids, "row": pa.array(range(len(table)), pa.int64())})
    last = rows.group_by("uuid", use_threads=False).aggregate([("row", "max")]).column("row_max")
    return table.take(pc.take(last, pc.sort_indices(last)))  # in the records' order


def _plain(table: pa.Table, name: str) -> pa.Array:
    column = table.column(name).combine_chunks()
    if pa.types.is_dictionary(column.type):
        column = column.dictionary_decode()
    return column


def tags_json(table: pa.Table) -> pa.Array:
    """Each record's tags as the JSON object the record's JSON text holds (same key order)."""
    from signals_dagster.records.jsontext import _map_parts, _map_rows
    from signals_dagster.records.uuids import join

    tags = _plain(table, "tags")
    parts = _map_parts(tags)
    return join(["{", *(parts if parts is not None else [_map_rows(tags)]), "}"], len(table))


def _arrow(table: pa.Table) -> pa.Table:
    """The records as plain Arrow columns: texts, float64 values, JSON tags, UTC instants."""
    columns = {name: _plain(table, name) for name in ("uuid", "name", "value", "type")}
    columns["tags"] = tags_json(table)
    for name in ("timestamp", "grain_datetime"):
        columns[name] = _plain(table, name).cast(UTC_US)
    return pa.table(columns)


def _copy_field(column: pa.Array) -> pa.Array:
    """Texts as fields of COPY's text format (backslash, tab, newline and CR escaped)."""
    if not pc.any(pc.match_substring_regex(column, r"[\\\t\n\r]")).as_py():
        return column
    for char, escaped in (("\\", "\\\\"), ("\t", "\\t"), ("\n", "\\n"), ("\r", "\\r")):
        column = pc.replace_substring(column, char, escaped)
    return column


def copy_text(table: pa.Table, batch: int | None = None) -> Iterator[bytes]:
    """The records as Postgres COPY text, `batch` records at a time, built column by column in
    Arrow: values in their shortest round-trip text, instants as `YYYY-MM-DD HH:MM:SS.ffffffZ`."""
    arrow, batch = _arrow(table), batch or BATCH
    for start in range(0, len(arrow), batch):
        part = arrow.slice(start, batch)
        fields = [_text(part.column(name).combine_chunks()) for name in COLUMNS]
        fields = [
            f if n in FORMATTED else _copy_field(f) for n, f in zip(COLUMNS, fields, strict=True)
        ]
        lines = pc.binary_join_element_wise(*fields, "\t")
        yield _text_bytes(pc.binary_join_element_wise(lines, pa.scalar("\n"), ""))


def _text(column: pa.Array) -> pa.Array:
    """A column as text; instants (one or a few per window) formatted once per distinct value."""
    if not pa.types.is_timestamp(column.type):
        return column.cast(pa.string())
    encoded = column.dictionary_encode()
    return pc.take(encoded.dictionary.cast(pa.string()), encoded.indices)


def _text_bytes(texts: pa.Array) -> bytes:
    """The concatenated texts of a string array (its data buffer, without a copy per text)."""
    offsets = np.frombuffer(
        texts.buffers()[1], dtype=np.int32, count=len(texts) + 1, offset=texts.offset * 4
    )
    first, last = int(offsets[0]), int(offsets[-1])
    return texts.buffers()[2][first:last].to_pybytes()


def _driver_rows(table: pa.Table, backend: str) -> list[tuple[Any, ...]]:
    """The records as tuples in COLUMNS order, as the driver sends them: instants as UTC text,
    SQLite's `YYYY-MM-DD HH:MM:SS.ffffff` (SQLAlchemy's DATETIME), MySQL's DATETIME(3)
    `YYYY-MM-DD HH:MM:SS.fff` (cut to the millisecond: MySQL would round, MariaDB cut)."""
    arrow = _arrow(table)
    columns = []
    for name in COLUMNS:
        column = arrow.column(name).combine_chunks()
        if name in ("timestamp", "grain_datetime"):
            if backend in MYSQL:
                column = pc.floor_temporal(column, unit="millisecond").cast(pa.timestamp("ms"))
            column = _text(column.cast(pa.timestamp(column.type.unit)))  # naive: UTC wall time
        columns.append(column.to_numpy().tolist() if name == "value" else column.to_pylist())
    return list(zip(*columns, strict=True))
