"""The SQL table sink (`type: sql`) on the machine's real Postgres and MariaDB, and on SQLite and
DuckDB files: records upserted by uuid, one transaction per run (all partitions or nothing), the
table's columns checked before the source is queried, secrets kept out of metadata and logs.

The source is a SQLite shop (sqlite_shop.py); "not queried" is counted on its session's fetch.
"""

import io
import json
import sqlite3
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import dagster as dg
import psycopg
import pyarrow as pa
import pymysql
import pytest
import sqlalchemy as sa

from signals_dagster.catalog import load_catalog
from signals_dagster.collect import collect
from signals_dagster.errors import Problem, SinkError, SpecError
from signals_dagster.invoke import invoke_collector
from signals_dagster.orchestration.factory import build_definitions
from signals_dagster.orchestration.partitions import window_for_key
from signals_dagster.records.frame import TAGS_TYPE, TEXT_TAGS, make_records
from signals_dagster.sinks import sql as sql_sink
from signals_dagster.sinks.preflight import check_sinks
from signals_dagster.sinks.sql import SqlWriter
from signals_dagster.sources.sql import engine_url
from signals_dagster.sources.sqlite import SqliteSession
from signals_dagster.spec.loader import load_collectors, load_file
from signals_dagster.spec.models import CollectorSpec
from signals_dagster.spec.sql_sink import SqlSinkConfig
from signals_dagster_tests.conftest import MYSQL_HOST, PG_ADMIN
from signals_dagster_tests.sqlite_shop import expected_sums, make_shop
from signals_dagster_tests.test_kafka_sink import failure_message

BACKENDS = ("postgres", "mariadb", "sqlite", "duckdb")
DAYS = ("2026-02-02", "2026-02-03", "2026-02-04")
NAME = "sqlsink.revenue.daily"
JOB = "sqlsink_revenue_daily_job"
ASSET = dg.AssetKey("sqlsink_revenue_daily")
SQL = (
    "SELECT account AS customer, SUM(amount) AS value FROM orders "
    "WHERE created_at >= :window_start AND created_at < :window_end GROUP BY account"
)
PASSWORD = "Sq1-sink-s3cret-canary"  # trust auth on 127.0.0.1: Postgres never asks for it


# --- where the sink writes ---------------------------------------------------------------------


@dataclass
class Target:
    """One database and a table name of this test's own."""

    backend: str
    uri: str
    table: str

    def engine(self) -> sa.Engine:
        return sa.create_engine(engine_url(self.uri), poolclass=sa.pool.NullPool)

    def execute(self, *statements: str) -> None:
        engine = self.engine()
        try:
            with engine.begin() as conn:
                for statement in statements:
                    conn.exec_driver_sql(statement.replace("{t}", self.table))
        finally:
            engine.dispose()

    def rows(self) -> dict[str, tuple[Any, ...]]:
        """uuid → (name, value, type, tags, timestamp, grain_datetime), instants aware UTC."""
        table = sa.table(self.table, *(sa.column(c) for c in sql_sink.COLUMNS))
        engine = self.engine()
        try:
            with engine.connect() as conn:
                found = conn.execute(sa.select(table)).fetchall()
        finally:
            engine.dispose()
        return {
            row[0]: (row[1], row[2], row[3], _tags(row[4]), *map(_utc, row[5:])) for row in found
        }

    def count(self) -> int:
        engine = self.engine()
        try:
            with engine.connect() as conn:
                return int(conn.exec_driver_sql(f"SELECT count(*) FROM {self.table}").scalar_one())
        finally:
            engine.dispose()

    def column_types(self) -> dict[str, str]:
        """Column → its type as the database's own catalog names it (lower case)."""
        queries = {
            "postgres": "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_name = '{t}'",
            "mariadb": "SELECT column_name, column_type FROM information_schema.columns "
            "WHERE table_name = '{t}' AND table_schema = DATABASE()",
            "sqlite": "SELECT name, type FROM pragma_table_info('{t}')",
            "duckdb": "SELECT column_name, data_type FROM duckdb_columns() "
            "WHERE table_name = '{t}'",
        }
        engine = self.engine()
        try:
            with engine.connect() as conn:
                query = queries[self.backend].replace("{t}", self.table)
                return {str(n): str(k).lower() for n, k in conn.exec_driver_sql(query)}
        finally:
            engine.dispose()


def _tags(value: Any) -> dict[str, str]:
    return value if isinstance(value, dict) else json.loads(value)


def _utc(value: Any) -> datetime:
    if isinstance(value, str):  # SQLite: SQLAlchemy's DATETIME text, UTC
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


@pytest.fixture
def table_name() -> str:
    return f"sig_{uuid.uuid4().hex[:10]}"


def make_target(backend: str, request: pytest.FixtureRequest, tmp_path: Path, table: str) -> Target:
    if backend == "postgres":
        return Target(backend, request.getfixturevalue("pg_url"), table)
    if backend == "mariadb":
        return Target(backend, request.getfixturevalue("mysql_url"), table)
    suffix = "db" if backend == "sqlite" else "duckdb"
    return Target(backend, f"{backend}:///{tmp_path / 'warehouse'}.{suffix}", table)


@pytest.fixture(params=BACKENDS)
def target(request: pytest.FixtureRequest, tmp_path: Path, table_name: str) -> Iterator[Target]:
    found = make_target(request.param, request, tmp_path, table_name)
    yield found
    if found.backend in ("postgres", "mariadb"):
        found.execute("DROP TABLE IF EXISTS {t}")


@pytest.fixture
def postgres(request: pytest.FixtureRequest, tmp_path: Path, table_name: str) -> Iterator[Target]:
    found = make_target("postgres", request, tmp_path, table_name)
    yield found
    found.execute("DROP TABLE IF EXISTS {t}")


# --- the source and the collector --------------------------------------------------------------


@pytest.fixture
def shop(tmp_path: Path) -> Path:
    return make_shop(tmp_path / "shop.db")


@pytest.fixture
def fetches(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The windows the SQLite source was queried for."""
    calls: list[str] = []
    original = SqliteSession.fetch

    def counting(self: SqliteSession, window):  # type: ignore[no-untyped-def]
        calls.append(window.key)
        return original(self, window)

    monkeypatch.setattr(SqliteSession, "fetch", counting)
    return calls


def collector(
    folder: Path, shop: Path, uri: str, table: str, create: bool = False, extra: str = ""
) -> Path:
    """A daily collector over the shop whose only sink is the SQL table."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "revenue.yaml"
    path.write_text(
        f"""
name: {NAME}
metric:
  name: sqlsink.revenue
  type: GAUGE
  tags:
    - key: env
      value: test
partitions:
  start: '2026-02-01'
source:
  type: sqlite
  config:
    uri: 'sqlite:///{shop}'
    sql: "{SQL}"
sinks:
  warehouse:
    type: sql
    config:
      uri: '{uri}'
      table: {table}
      create_table: {str(create).lower()}
{extra}retries: 0
""",
        encoding="utf-8",
    )
    return path


def invoke(path: Path, day: str) -> str:
    out = io.StringIO()
    invoke_collector(str(path), day, False, out)
    return out.getvalue()


def double_the_orders(shop: Path) -> None:
    db = sqlite3.connect(shop)
    db.execute("UPDATE orders SET amount = amount * 2")
    db.commit()
    db.close()


def expected(shop: Path, *days: str) -> dict[tuple[str, datetime], float]:
    """(customer, window start) → the revenue the shop holds."""
    return {
        (customer, datetime.fromisoformat(day).replace(tzinfo=UTC)): total
        for day in days
        for customer, total in expected_sums(shop, day).items()
    }


def by_customer(rows: dict[str, tuple[Any, ...]]) -> dict[tuple[str, datetime], float]:
    return {(r[3]["customer"], r[5]): r[1] for r in rows.values()}


def backfill(folder: Path, instance: dg.DagsterInstance, *days: str) -> dg.ExecuteInProcessResult:
    """One Dagster run over the partitions `days[0]`..`days[-1]` (a single-run backfill)."""
    defs = build_definitions(load_catalog(str(folder)), str(folder))
    tags = {
        "dagster/asset_partition_range_start": days[0],
        "dagster/asset_partition_range_end": days[-1],
    }
    return defs.resolve_job_def(JOB).execute_in_process(
        instance=instance, tags=tags, raise_on_error=False
    )


# --- writing, creating, re-running -------------------------------------------------------------


CREATED_TYPES = {
    "postgres": {
        "uuid": "character varying",
        "name": "text",
        "value": "double precision",
        "type": "character varying",
        "tags": "jsonb",
        "timestamp": "timestamp with time zone",
        "grain_datetime": "timestamp with time zone",
    },
    "mariadb": {
        "uuid": "varchar(36)",
        "name": "varchar(200)",
        "value": "double",
        "type": "varchar(16)",
        "tags": "longtext",  # MariaDB's JSON: LONGTEXT with a json_valid() check
        "timestamp": "datetime(3)",
        "grain_datetime": "datetime(3)",
    },
    "sqlite": {
        "uuid": "varchar(36)",
        "name": "text",
        "value": "double",
        "type": "varchar(16)",
        "tags": "text",
        "timestamp": "datetime",
        "grain_datetime": "datetime",
    },
    "duckdb": {
        "uuid": "varchar",
        "name": "varchar",
        "value": "double",
        "type": "varchar",
        "tags": "varchar",
        "timestamp": "timestamp with time zone",
        "grain_datetime": "timestamp with time zone",
    },
}


def test_create_table_writes_and_a_rerun_overwrites(
    tmp_path: Path, shop: Path, target: Target, fetches: list[str]
) -> None:
    path = collector(tmp_path / "c", shop, target.uri, target.table, create=True)
    day = DAYS[1]
    printed = invoke(path, day)
    assert target.column_types() == CREATED_TYPES[target.backend]
    first = target.rows()
    assert len(first) == 3 == printed.count("\n")
    assert by_customer(first) == expected(shop, day)
    records = {r["uuid"]: r for r in map(json.loads, printed.splitlines())}
    assert set(first) == set(records)  # the records' own uuids
    for key, (name, _, kind, tags, stamp, grain) in first.items():
        assert (name, kind, tags) == ("sqlsink.revenue", "GAUGE", records[key]["tags"])
        assert tags == {"customer": tags["customer"], "env": "test"}
        assert grain == datetime(2026, 2, 3, tzinfo=UTC)
        collected = datetime.fromisoformat(records[key]["timestamp"])
        assert abs(stamp - collected) < timedelta(milliseconds=1)

    double_the_orders(shop)
    invoke(path, day)  # the same partition again: the same rows, new values
    second = target.rows()
    assert set(second) == set(first)
    assert by_customer(second) == expected(shop, day)
    assert by_customer(second) == {k: 2 * v for k, v in by_customer(first).items()}
    assert fetches == [day, day]


def test_an_existing_table_of_ones_own_is_written(
    tmp_path: Path, shop: Path, postgres: Target
) -> None:
    # Looser types than the sink would create (text, json, timestamp without time zone, an
    # extra nullable column, uuid as a unique key rather than the primary key).
    postgres.execute(
        "CREATE TABLE {t} (id bigserial PRIMARY KEY, uuid uuid UNIQUE NOT NULL, name text, "
        "value numeric, type text, tags json, timestamp timestamp, grain_datetime timestamp, "
        "note text)"
    )
    path = collector(tmp_path / "c", shop, postgres.uri, postgres.table)
    invoke(path, DAYS[0])
    invoke(path, DAYS[0])
    rows = postgres.rows()
    assert by_customer({str(k): v for k, v in rows.items()}) == expected(shop, DAYS[0])


# --- checked before the source is queried ------------------------------------------------------


def _empty_database(target: Target) -> None:
    """A database file that exists, without the sink's table (servers: nothing to do)."""
    if target.backend in ("sqlite", "duckdb"):
        target.execute("CREATE TABLE unrelated (x INTEGER)")


def test_a_missing_table_fails_before_the_query(
    tmp_path: Path, shop: Path, target: Target, fetches: list[str]
) -> None:
    _empty_database(target)
    path = collector(tmp_path / "c", shop, target.uri, target.table)
    with pytest.raises(SinkError) as info:
        invoke(path, DAYS[0])
    message = str(info.value)
    assert f"table {target.table}: the table does not exist" in message
    assert "set create_table: true, or create it: CREATE TABLE" in message
    assert not info.value.transient
    assert fetches == []
    with pytest.raises(SinkError, match="does not exist"):
        check_sinks(load_file(path))  # the Dagster preflight says the same


@pytest.mark.parametrize("backend", ["sqlite", "duckdb"])
def test_a_missing_database_file_fails_before_the_query_and_is_not_created(
    tmp_path: Path, shop: Path, backend: str, fetches: list[str]
) -> None:
    database = tmp_path / "absent" / f"warehouse.{backend}"
    path = collector(tmp_path / "c", shop, f"{backend}:///{database}", "signals")
    with pytest.raises(SinkError, match=r"database file .* does not exist \(create_table: true"):
        invoke(path, DAYS[0])
    assert fetches == []
    assert not database.parent.exists()
    # With create_table the preflight passes without making anything; the write makes both.
    path = collector(tmp_path / "c", shop, f"{backend}:///{database}", "signals", create=True)
    check_sinks(load_file(path))
    assert not database.parent.exists()
    invoke(path, DAYS[0])
    assert database.exists()


WITHOUT_TAGS = (
    "CREATE TABLE {t} (uuid varchar(36) PRIMARY KEY, name varchar(200), value double precision, "
    "type varchar(16), timestamp timestamp, grain_datetime timestamp)"
)


def test_a_table_missing_tags_is_named_before_the_query(
    tmp_path: Path, shop: Path, target: Target, fetches: list[str]
) -> None:
    target.execute(WITHOUT_TAGS)
    path = collector(tmp_path / "c", shop, target.uri, target.table, create=True)
    with pytest.raises(SinkError) as info:
        invoke(path, DAYS[0])
    assert f"table {target.table} cannot hold the records: missing column(s) tags" in str(
        info.value
    )
    assert fetches == []
    assert target.count() == 0


@pytest.mark.parametrize("backend", ["postgres", "mariadb", "sqlite"])
def test_mistyped_columns_are_named_before_the_query(
    tmp_path: Path,
    shop: Path,
    backend: str,
    request: pytest.FixtureRequest,
    table_name: str,
    fetches: list[str],
) -> None:
    target = make_target(backend, request, tmp_path, table_name)
    text = "text" if backend != "mariadb" else "varchar(100)"
    target.execute(
        f"CREATE TABLE {{t}} (uuid varchar(20), name {text}, value integer, type {text}, "
        f"tags {text}, timestamp integer, grain_datetime timestamp, extra integer NOT NULL)"
    )
    try:
        path = collector(tmp_path / "c", shop, target.uri, target.table)
        with pytest.raises(SinkError) as info:
            invoke(path, DAYS[0])
        message = str(info.value)
        assert "uuid is varchar(20): too short for 36 characters" in message
        assert "value is integer" in message
        assert "needs a floating-point type" in message
        assert "timestamp is integer" in message
        assert "needs a timestamp type" in message
        assert "uuid is neither the primary key nor unique" in message
        assert "column(s) extra NOT NULL without a default" in message
        assert "grain_datetime" not in message
        assert "tags" not in message
        assert fetches == []
    finally:
        if backend != "sqlite":
            target.execute("DROP TABLE IF EXISTS {t}")


def test_dagster_run_checks_the_table_before_the_query(
    tmp_path: Path, shop: Path, postgres: Target, fetches: list[str]
) -> None:
    path = collector(tmp_path / "c", shop, postgres.uri, postgres.table)
    instance = dg.DagsterInstance.ephemeral()
    result = backfill(path.parent, instance, DAYS[0])
    assert not result.success
    assert "the table does not exist" in failure_message(result)
    assert fetches == []
    assert instance.get_latest_materialization_event(ASSET) is None


# --- one transaction per run -------------------------------------------------------------------


def _pg_secret_uri(pg_url: str) -> str:
    """The session database's URL with a templated password (trust auth ignores it)."""
    return pg_url.replace("postgres@", 'postgres:{{ getEnv "SQL_SINK_PASSWORD" }}@', 1)


def test_a_single_run_backfill_writes_every_partition_in_one_transaction(
    tmp_path: Path, shop: Path, postgres: Target, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SQL_SINK_PASSWORD", PASSWORD)
    uri = _pg_secret_uri(postgres.uri)
    path = collector(tmp_path / "c", shop, uri, postgres.table, create=True)
    instance = dg.DagsterInstance.ephemeral()
    result = backfill(path.parent, instance, *DAYS)
    assert result.success
    assert len(instance.get_runs()) == 1
    assert by_customer(postgres.rows()) == expected(shop, *DAYS)
    with psycopg.connect(postgres.uri) as conn:  # every row written by the same transaction
        (xids,) = conn.execute(f"SELECT count(DISTINCT xmin::text) FROM {postgres.table}")
    assert xids == (1,)
    event = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=ASSET, asset_partitions=[DAYS[1]]), limit=1
    ).records[0]
    meta = event.asset_materialization.metadata  # type: ignore[union-attr]
    assert meta["sink_warehouse_records"].value == 3
    assert meta["sink_warehouse_table"].value == postgres.table
    assert "postgres:***@127.0.0.1" in str(meta["sink_warehouse_uri"].value)
    logs = instance.all_logs(result.run_id)
    assert any("sink warehouse (sql): 9 record(s) in 3 partition(s)" in repr(e) for e in logs)
    assert not any(PASSWORD in repr(entry) for entry in logs)
    assert PASSWORD not in dg.serialize_value(list(instance.get_runs()))


def test_secrets_stay_out_of_a_failed_run(
    tmp_path: Path, shop: Path, postgres: Target, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SQL_SINK_PASSWORD", PASSWORD)
    path = collector(tmp_path / "c", shop, _pg_secret_uri(postgres.uri), postgres.table)
    instance = dg.DagsterInstance.ephemeral()
    result = backfill(path.parent, instance, DAYS[0])
    assert not result.success
    message = failure_message(result)
    assert "sql sink postgresql://postgres:***@127.0.0.1" in message
    logs = instance.all_logs(result.run_id)
    assert logs
    assert not any(PASSWORD in repr(entry) for entry in logs)


class Cut:
    """At the `at`-th batch of a write, cuts the writer's connection from another connection
    (Postgres: pg_terminate_backend, MariaDB: KILL CONNECTION) or, for a file database, fails
    the write (a full disk)."""

    def __init__(self, backend: str, at: int) -> None:
        self.backend, self.at, self.batches, self.done = backend, at, 0, False

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        def on_batch(writer: SqlWriter, conn: sa.Connection, written: int) -> None:
            self.batches += 1
            if self.batches == self.at:
                self.done = True
                self.strike(conn)

        monkeypatch.setattr(sql_sink, "BATCH", 1)  # a batch per record: 3 per partition
        monkeypatch.setattr(SqlWriter, "on_batch", on_batch)

    def strike(self, conn: sa.Connection) -> None:
        if self.backend == "postgres":
            pid = conn.exec_driver_sql("SELECT pg_backend_pid()").scalar()
            with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
                admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        elif self.backend == "mariadb":
            thread = conn.exec_driver_sql("SELECT CONNECTION_ID()").scalar()
            admin = pymysql.connect(host=MYSQL_HOST, user="root", password="", autocommit=True)
            with admin.cursor() as cursor:
                cursor.execute(f"KILL CONNECTION {int(thread)}")  # type: ignore[arg-type]
            admin.close()
        else:
            raise OSError(28, "No space left on device")
        time.sleep(0.2)  # the server ends the session


def test_a_connection_cut_mid_run_leaves_the_table_as_before_postgres(
    tmp_path: Path, shop: Path, postgres: Target, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = collector(tmp_path / "c", shop, postgres.uri, postgres.table, create=True)
    instance = dg.DagsterInstance.ephemeral()
    assert backfill(path.parent, instance, *DAYS[:2]).success
    before = postgres.rows()
    assert len(before) == 6

    double_the_orders(shop)
    cut = Cut("postgres", at=5)  # in the second partition, the first one already upserted
    cut.install(monkeypatch)
    result = backfill(path.parent, instance, *DAYS)
    assert cut.done
    assert not result.success
    assert "records not written (the transaction was rolled back)" in failure_message(result)
    assert postgres.rows() == before  # rows and values exactly as before


@pytest.mark.parametrize("backend", ["mariadb", "sqlite", "duckdb"])
def test_a_failure_mid_run_leaves_the_table_as_before(
    tmp_path: Path,
    shop: Path,
    backend: str,
    request: pytest.FixtureRequest,
    table_name: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """MariaDB: the connection killed in the second partition; SQLite and DuckDB: the second
    partition's write fails (a full disk)."""
    target = make_target(backend, request, tmp_path, table_name)
    path = collector(tmp_path / "c", shop, target.uri, target.table, create=True)
    spec = load_file(path)
    try:
        write(spec, *DAYS[:2])
        before = target.rows()
        assert by_customer(before) == expected(shop, *DAYS[:2])

        double_the_orders(shop)
        cut = Cut(backend, at=5)  # in the second partition, the first one already upserted
        cut.install(monkeypatch)
        with pytest.raises(SinkError) as info:
            write(spec, *DAYS)
        assert cut.done
        message = str(info.value)
        assert "records not written (the transaction was rolled back)" in message
        assert info.value.transient
        if backend == "mariadb":
            assert any(
                cause in message
                for cause in ("Lost connection", "server has gone away", "Connection was killed")
            ), message
        else:
            assert "No space left on device" in message
        assert target.rows() == before
    finally:
        if backend == "mariadb":
            target.execute("DROP TABLE IF EXISTS {t}")


def write(spec: CollectorSpec, *days: str) -> list[dict[str, object]]:
    """Collect `days` and write them with one write_many, as the IO manager does."""
    collected = collect(spec, [window_for_key(spec, day) for day in days])
    sink = spec.sinks["warehouse"].config
    assert isinstance(sink, SqlSinkConfig)
    writer = SqlWriter(sink)
    try:
        return writer.write_many(spec, [(c.window.key, c.records) for c in collected])
    finally:
        writer.close()


# --- records as the table holds them -----------------------------------------------------------


def records_table(
    count: int, grain: datetime, tags: Callable[[int], list[tuple[str, str]]], bump: float = 0
) -> pa.Table:
    uuids = pa.array([str(uuid.uuid5(uuid.NAMESPACE_OID, f"{grain}/{i}")) for i in range(count)])
    values = pa.array([i / 3 + bump for i in range(count)], pa.float64())
    tag_array = pa.array([tags(i) for i in range(count)], TEXT_TAGS).cast(TAGS_TYPE)
    collected = datetime(2026, 2, 4, 0, 5, 1, 123456, tzinfo=UTC)
    return make_records(uuids, "sqlsink.m", values, "COUNT", tag_array, collected, grain)


def sink_config(target: Target) -> SqlSinkConfig:
    return SqlSinkConfig(uri=target.uri, table=target.table, create_table=True)


def test_tags_and_values_round_trip_exactly(target: Target) -> None:
    odd = ['quote " and backslash \\', "tab\there\nnewline", "café ünïcödé ✓", "\\N", "{}", ""]
    grain = datetime(2026, 2, 3, tzinfo=UTC)
    records = records_table(len(odd), grain, lambda i: [("text", odd[i]), ("n", str(i))])
    writer = SqlWriter(sink_config(target))
    try:
        (result,) = writer.write_many(None, [(DAYS[1], records)])  # type: ignore[arg-type]
    finally:
        writer.close()
    assert result["records"] == len(odd)
    rows = target.rows()
    for index, key in enumerate(records.column("uuid").to_pylist()):
        _, value, kind, tags, stamp, found_grain = rows[key]
        assert tags == {"text": odd[index], "n": str(index)}
        assert value == index / 3  # the double itself, not a rounded text
        assert (kind, found_grain) == ("COUNT", grain)
        precision = 1000 if target.backend == "mariadb" else 1  # DATETIME(3): milliseconds
        assert stamp == datetime(2026, 2, 4, 0, 5, 1, 123456 // precision * precision, tzinfo=UTC)


def test_duplicate_uuids_in_a_batch_keep_the_last_record(target: Target) -> None:
    grain = datetime(2026, 2, 3, tzinfo=UTC)
    first = records_table(4, grain, lambda i: [("k", str(i))])
    again = records_table(4, grain, lambda i: [("k", str(i))], bump=10)
    writer = SqlWriter(sink_config(target))
    try:
        writer.write(None, DAYS[1], pa.concat_tables([first, again]))  # type: ignore[arg-type]
    finally:
        writer.close()
    rows = target.rows()
    assert sorted(v[1] for v in rows.values()) == [10 + i / 3 for i in range(4)]


def test_100k_records_to_postgres(postgres: Target) -> None:
    count = 100_000
    grain = datetime(2026, 2, 3, tzinfo=UTC)
    records = records_table(count, grain, lambda i: [("customer", f"c{i}"), ("region", "eu")])
    updated = records_table(count, grain, lambda i: [("customer", f"c{i}"), ("region", "eu")], 1)
    seconds = {}
    for label, table in (("insert", records), ("update", updated)):
        started = time.perf_counter()
        writer = SqlWriter(sink_config(postgres))
        writer.write_many(None, [(DAYS[1], table)])  # type: ignore[arg-type]
        writer.close()
        seconds[label] = time.perf_counter() - started
    with psycopg.connect(postgres.uri) as conn:
        (row,) = conn.execute(f"SELECT count(*), sum(value) FROM {postgres.table}")
    assert row[0] == count
    assert row[1] == pytest.approx(sum(i / 3 + 1 for i in range(count)))
    print(
        f"100k records to Postgres: insert {seconds['insert']:.2f}s "
        f"({count / seconds['insert']:.0f}/s), upsert over them {seconds['update']:.2f}s "
        f"({count / seconds['update']:.0f}/s)"
    )
    assert seconds["insert"] < 60  # a loaded machine: generous
    assert seconds["update"] < 60


# --- the collector file: validation, credentials, confinement -----------------------------------


def _sink_problems(write_collector: Callable[..., Path], uri: str, table: str = "signals") -> str:
    path = write_collector(
        f"""
        name: sqlsink.check
        metric: {{name: sqlsink.check, type: COUNT}}
        source:
          type: sqlite
          config: {{uri: 'sqlite:///shop.db', sql: SELECT 1 AS value}}
        sinks:
          warehouse:
            type: sql
            config: {{uri: '{uri}', table: '{table}'}}
        """
    )
    with pytest.raises(SpecError) as info:
        load_collectors([path])
    return "\n".join(p.message for p in info.value.problems)


@pytest.mark.parametrize(
    ("uri", "table", "message"),
    [
        ("mssql+pyodbc://db/metrics", "signals", "the sql sink writes to postgresql://"),
        ("postgresql+psycopg2://db/metrics", "signals", "driver 'psycopg2' is not supported"),
        ("sqlite:///:memory:", "signals", "an in-memory sqlite database forgets the records"),
        ("duckdb://", "signals", "uri names no database file"),
        ("mysql://db/m?init_command=DROP+TABLE+x", "signals", "uri option init_command"),
        ("duckdb:///w.duckdb?threads=1", "signals", "uri option threads is not allowed"),
        ("postgresql://db/metrics", "Signals", "must match ^[a-z_]"),
        ("postgresql://db/metrics", "a.b.c", "must match ^[a-z_]"),
        ("postgresql://db/metrics", "x; DROP TABLE y", "must match ^[a-z_]"),
    ],
)
def test_the_sink_config_is_validated(
    write_collector: Callable[..., Path], uri: str, table: str, message: str
) -> None:
    assert message in _sink_problems(write_collector, uri, table)


def test_a_uri_password_only_from_getenv(
    write_collector: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WAREHOUSE_PASSWORD", PASSWORD)
    text = """
        name: sqlsink.creds
        metric: {name: sqlsink.creds, type: COUNT}
        source:
          type: sqlite
          config: {uri: 'sqlite:///shop.db', sql: SELECT 1 AS value}
        sinks:
          warehouse:
            type: sql
            config:
              uri: 'postgresql://writer:PASSWORD@db:5432/metrics'
              table: signals
        """
    warnings: list[Problem] = []
    templated = write_collector(text.replace("PASSWORD", '{{ getEnv "WAREHOUSE_PASSWORD" }}'))
    (spec,) = load_collectors([templated], warnings=warnings).values()
    assert warnings == []  # a secret variable may fill a URI's password
    assert PASSWORD in spec.sinks["warehouse"].config.uri  # type: ignore[union-attr]
    literal = write_collector(text.replace("PASSWORD", "hunter22"), name="literal.yaml")
    load_collectors([literal], warnings=warnings)
    assert [(w.path, w.message[:40]) for w in warnings] == [
        ("sinks.warehouse.config.uri", "a password written in the URI (anyone wh")
    ]
    elsewhere = write_collector(
        text.replace("table: signals", 'table: {{ getEnv "WAREHOUSE_PASSWORD" }}'), name="t.yaml"
    )
    with pytest.raises(SpecError, match="WAREHOUSE_PASSWORD is a secret"):
        load_collectors([elsewhere])


def test_database_files_are_confined_to_the_file_sink_roots(
    write_collector: Callable[..., Path], tmp_path: Path
) -> None:
    assert "outside the file sink roots" in _sink_problems(
        write_collector, "sqlite:////srv/signals/warehouse.db"
    )
    assert "has a '..' segment" in _sink_problems(
        write_collector, f"duckdb:///{tmp_path}/../../etc/w.duckdb"
    )
    # A symlink inside a root that leads out of it is refused when the writer opens.
    (tmp_path / "out").symlink_to("/srv", target_is_directory=True)
    config = SqlSinkConfig(
        uri=f"sqlite:///{tmp_path / 'out' / 'w.db'}", table="signals", create_table=True
    )
    with pytest.raises(SinkError, match=r"sql sink: database file .* a symlink leads out"):
        SqlWriter(config)
    assert not Path("/srv/w.db").exists()


def test_database_hosts_are_confined_by_egress_allow(
    write_collector: Callable[..., Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = tmp_path / "signals.yaml"
    settings.write_text("egress:\n  allow: ['db.internal:5432', '127.0.0.1:3306']\n")
    monkeypatch.setenv("SIGNALS_SETTINGS", str(settings))
    problems = _sink_problems(write_collector, "postgresql://app@127.0.0.1/metrics")
    assert "host 127.0.0.1:5432 is not allowed by egress.allow" in problems
    config = SqlSinkConfig(uri="postgresql://app@127.0.0.1/metrics", table="signals")
    with pytest.raises(SinkError, match=r"host 127\.0\.0\.1:5432 is not allowed by egress"):
        SqlWriter(config)  # refused at run time too, before connecting
