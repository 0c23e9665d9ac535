"""Hostile collector files against the sources: a collector may read only its own source.

Each data/hostile/sources_*.yaml is one attack. Those with `# expect:` lines are refused at
validation with exactly those located problems (as data/malformed/); the others validate and
are stopped at run time: `# refused at run time: MESSAGE` is part of the error, and every
`# not created: PATH` (relative to the working folder the collector runs in) must not exist
afterwards. They run in a folder holding shop.duckdb, shop.sqlite, data/orders.parquet and a
secret.txt the collectors were not given.
"""

import re
import sqlite3
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import psycopg
import pyarrow as pa
import pyarrow.parquet as pq
import pymysql
import pytest
from sqlalchemy.engine import make_url

from signals_dagster.errors import SourceError, SpecError
from signals_dagster.spec.loader import load_collectors, load_file
from signals_dagster.window import Window
from signals_dagster_tests.sql_helpers import run
from signals_dagster_tests.test_malformed import expectations, mismatch

HOSTILE = Path(__file__).parent / "data" / "hostile"
CORPUS = sorted(HOSTILE.glob("sources_*.yaml"))
AT_VALIDATION = [p for p in CORPUS if expectations(p)]
AT_RUN_TIME = [p for p in CORPUS if not expectations(p)]
SECRET = "the-collector-must-not-read-this"
AMOUNTS = [3.0, 4.5, 10.0]
MOMENTS = [datetime(2026, 11, 1, h, tzinfo=UTC) for h in (1, 2, 3)]


def header(path: Path, key: str) -> list[str]:
    """The values of `# key: value` lines in the leading comment block."""
    found = []
    for text in path.read_text(encoding="utf-8").splitlines():
        if not text.startswith("#"):
            break
        if text.startswith(f"# {key}: "):
            found.append(text.removeprefix(f"# {key}: ").strip())
    return found


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The folder collectors run in (the working directory), with their databases and files."""
    orders = pa.table(
        {"created_at": pa.array(MOMENTS, pa.timestamp("us", "UTC")), "amount": AMOUNTS}
    )
    (tmp_path / "data").mkdir()
    pq.write_table(orders, tmp_path / "data" / "orders.parquet")
    db = duckdb.connect(str(tmp_path / "shop.duckdb"))
    db.register("frame", orders)
    db.execute("CREATE TABLE orders AS SELECT * FROM frame")
    db.close()
    lite = sqlite3.connect(tmp_path / "shop.sqlite")
    lite.execute("CREATE TABLE orders (created_at TEXT, amount REAL)")
    lite.executemany(
        "INSERT INTO orders VALUES (?, ?)",
        [(m.strftime("%Y-%m-%d %H:%M:%S"), a) for m, a in zip(MOMENTS, AMOUNTS, strict=True)],
    )
    lite.commit()
    lite.close()
    (tmp_path / "secret.txt").write_text(SECRET, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SIGNALS_SETTINGS", raising=False)
    return tmp_path


def test_corpus_covers_every_attack() -> None:
    assert len(AT_VALIDATION) >= 5
    assert len(AT_RUN_TIME) >= 10
    for path in AT_RUN_TIME:
        assert header(path, "refused at run time"), f"{path.name} declares no outcome"


@pytest.mark.parametrize("path", AT_VALIDATION, ids=lambda p: p.stem)
def test_refused_at_validation_located(path: Path, workdir: Path) -> None:
    with pytest.raises(SpecError) as info:
        load_collectors([path])
    reported = [(p.line, p.path, p.message) for p in info.value.problems]
    assert {p.file for p in info.value.problems} == {str(path)}
    differences = mismatch(expectations(path), reported)
    assert not differences, f"{path.name}:\n{differences}"


@pytest.mark.parametrize("path", AT_RUN_TIME, ids=lambda p: p.stem)
def test_stopped_at_run_time_before_any_effect(path: Path, workdir: Path) -> None:
    before = sorted(p.relative_to(workdir) for p in workdir.rglob("*"))
    spec = load_file(path)
    (message,) = header(path, "refused at run time")
    with pytest.raises(SourceError, match=re.escape(message)) as info:
        run(spec)
    assert SECRET not in str(info.value)
    assert not info.value.transient  # a retry would be refused the same way
    for created in header(path, "not created"):
        assert not (workdir / created).exists(), f"{path.name} created {created}"
    assert sorted(p.relative_to(workdir) for p in workdir.rglob("*")) == before


# ---------------------------------------------------------------- legitimate reads still work


def _collector(workdir: Path, source: str) -> Path:
    path = workdir / f"c_{uuid.uuid4().hex[:6]}.yaml"
    path.write_text(
        "name: sandbox.ok\nmetric: {name: sandbox.ok, type: GAUGE, grain: 24h}\n"
        "partitions: {start: '2026-10-01'}\n" + source + "sinks:\n  console: {type: console}\n",
        encoding="utf-8",
    )
    return path


WINDOWED_PARQUET = (
    "SELECT SUM(amount) AS value FROM read_parquet('{glob}') "
    "WHERE created_at >= :window_start AND created_at < :window_end"
)


@pytest.mark.parametrize(
    ("allowed", "glob"),
    [("[data]", "data/*.parquet"), ("[data/orders.parquet]", "data/orders.parquet")],
)
def test_duckdb_reads_parquet_it_was_given(workdir: Path, allowed: str, glob: str) -> None:
    sql = WINDOWED_PARQUET.format(glob=glob)
    source = (
        f"source:\n  type: duckdb\n  config:\n    uri: duckdb:///shop.duckdb\n"
        f'    allowed_paths: {allowed}\n    sql: "{sql}"\n'
    )
    (collected,) = run(load_file(_collector(workdir, source)), "2026-11-01")
    assert collected.records.column("value").to_pylist() == [sum(AMOUNTS)]


def test_duckdb_file_allowed_is_not_its_folder(workdir: Path) -> None:
    pq.write_table(pa.table({"amount": [99.0]}), workdir / "data" / "other.parquet")
    source = (
        "source:\n  type: duckdb\n  config:\n    uri: duckdb:///shop.duckdb\n"
        "    allowed_paths: [data/orders.parquet]\n"
        "    sql: SELECT SUM(amount) AS value FROM read_parquet('data/other.parquet')\n"
    )
    with pytest.raises(SourceError, match="file system operations are disabled"):
        run(load_file(_collector(workdir, source)))


def test_duckdb_own_tables_and_window_parameters(workdir: Path) -> None:
    source = (
        "source:\n  type: duckdb\n  config:\n    uri: duckdb:///shop.duckdb\n"
        "    sql: SELECT SUM(amount) AS value FROM orders WHERE created_at >= :window_start "
        "AND created_at < :window_end AND 'x:window_end' <> ''\n"
    )
    (collected,) = run(load_file(_collector(workdir, source)), "2026-11-01")
    assert collected.records.column("value").to_pylist() == [sum(AMOUNTS)]


def test_sqlite_reads_with_describing_pragmas(workdir: Path) -> None:
    source = (
        "source:\n  type: sqlite\n  config:\n    uri: sqlite:///shop.sqlite\n"
        "    sql: SELECT COUNT(*) AS value FROM pragma_table_info('orders')\n"
    )
    (collected,) = run(load_file(_collector(workdir, source)))
    assert collected.records.column("value").to_pylist() == [2]


def test_sqlite_through_sqlalchemy_is_guarded_too(workdir: Path) -> None:
    """SqlSource (SQLAlchemy; the late-data fingerprints of a SQLite source) has the same
    authorizer: it reads, and refuses ATTACH."""
    from signals_dagster.sources.sql import SqlSource

    window = Window("k", datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 11, 2, tzinfo=UTC))
    sql = "SELECT COUNT(*) AS value FROM orders WHERE created_at >= :window_start"
    with SqlSource("sqlite:///shop.sqlite", sql, timedelta(seconds=10)).session() as session:
        assert [tuple(r) for r in session.fetch(window).rows or ()] == [(3,)]
    attach = SqlSource(
        "sqlite:///shop.sqlite", "ATTACH DATABASE 'created.sqlite' AS x", timedelta(seconds=10)
    )
    with pytest.raises(SourceError, match="not authorized"), attach.session() as session:
        session.fetch(window)
    assert not (workdir / "created.sqlite").exists()


# ---------------------------------------------------------------- generic SQL: unguarded dialects


def test_allow_unguarded_in_signals_yaml_accepts_the_dialect(workdir: Path) -> None:
    path = HOSTILE / "sources_sql_unguarded.yaml"
    (workdir / "signals.yaml").write_text("sources: {allow_unguarded: [mssql]}\n", "utf-8")
    assert load_file(path).source.type == "sql"
    (workdir / "signals.yaml").write_text("sources: {allow_unguarded: [oracle]}\n", "utf-8")
    with pytest.raises(SpecError, match="cannot be made read-only"):
        load_file(path)


# ---------------------------------------------------------------- MySQL / MariaDB driver options


@pytest.fixture
def maria_table(mysql_url: str) -> Iterator[str]:
    table = f"hostile_{uuid.uuid4().hex[:8]}"
    url = make_url(mysql_url)
    conn = pymysql.connect(host=url.host, port=url.port, user="root", database=url.database)
    with conn.cursor() as cur:
        cur.execute(f"CREATE TABLE {table} (amount INT)")
        cur.executemany(f"INSERT INTO {table} VALUES (%s)", [(1,), (2,), (3,)])
    conn.commit()
    try:
        yield table
    finally:
        with conn.cursor() as cur:
            cur.execute(f"DROP TABLE {table}")
        conn.close()


def _maria_count(mysql_url: str, table: str) -> int:
    url = make_url(mysql_url)
    conn = pymysql.connect(host=url.host, port=url.port, user="root", database=url.database)
    try:
        with conn.cursor() as cur:
            cur.execute(f"SELECT COUNT(*) FROM {table}")
            return int(cur.fetchone()[0])
    finally:
        conn.close()


def test_mysql_session_is_read_only_before_anything_else(mysql_url: str, maria_table: str) -> None:
    """Even past validation, a URI's init_command and local_infile never reach the driver."""
    from pymysql.constants import CLIENT

    from signals_dagster.sources.sql import SqlSource

    uri = f"{mysql_url}?init_command=DELETE+FROM+{maria_table}&local_infile=1"
    source = SqlSource(uri, "SELECT @@session.tx_read_only AS value", timedelta(seconds=10))
    window = Window("k", datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 2, tzinfo=UTC))
    with source.session() as session:
        raw = session.conn.connection.dbapi_connection
        assert raw is not None
        assert not raw.client_flag & CLIENT.LOCAL_FILES
        assert [tuple(r) for r in session.fetch(window).rows or ()] == [(1,)]
    assert _maria_count(mysql_url, maria_table) == 3


# ---------------------------------------------------------------- least privilege (Postgres)


@pytest.fixture
def pg_reader(pg_url: str) -> Iterator[tuple[str, str]]:
    """A login role with SELECT on one table only (no superuser), and that table."""
    role = f"signals_reader_{uuid.uuid4().hex[:8]}"
    table = f"lp_orders_{uuid.uuid4().hex[:6]}"
    url = make_url(pg_url)
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(f"CREATE TABLE {table} (created_at timestamptz, amount numeric)")
        for moment, amount in zip(MOMENTS, AMOUNTS, strict=True):
            conn.execute(f"INSERT INTO {table} VALUES (%s, %s)", (moment, amount))
        conn.execute(f"CREATE ROLE {role} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE")
        conn.execute(f'GRANT CONNECT ON DATABASE "{url.database}" TO {role}')
        conn.execute(f"GRANT USAGE ON SCHEMA public TO {role}")
        conn.execute(f"GRANT SELECT ON {table} TO {role}")
        conn.execute(f"REVOKE CREATE ON SCHEMA public FROM PUBLIC, {role}")
    reader = url.set(username=role, password=None).render_as_string(hide_password=False)
    try:
        yield reader, table
    finally:
        with psycopg.connect(pg_url, autocommit=True) as conn:
            conn.execute(f"DROP TABLE {table}")
            conn.execute(f"DROP OWNED BY {role}")
            conn.execute(f"DROP ROLE {role}")


def test_postgres_collector_runs_as_a_select_only_role(
    pg_reader: tuple[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reader, table = pg_reader
    monkeypatch.chdir(tmp_path)
    source = (
        f"source:\n  type: postgres\n  config:\n    uri: '{reader}'\n"
        f"    sql: SELECT SUM(amount) AS value FROM {table} "
        "WHERE created_at >= :window_start AND created_at < :window_end\n"
    )
    (collected,) = run(load_file(_collector(tmp_path, source)), "2026-11-01")
    assert collected.records.column("value").to_pylist() == [sum(AMOUNTS)]
    with psycopg.connect(reader, autocommit=True) as conn:
        assert conn.execute(
            "SELECT rolsuper FROM pg_roles WHERE rolname = current_user"
        ).fetchone() == (False,)
        for statement in (
            f"INSERT INTO {table} VALUES (now(), 1)",
            f"DELETE FROM {table}",
            "CREATE TABLE lp_created (x int)",
            f"COPY {table} TO PROGRAM 'touch /tmp/lp_pwned'",
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(statement)
    with psycopg.connect(reader) as conn:
        assert conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone() == (3,)


def test_duckdb_reaches_no_network(workdir: Path) -> None:
    source = (
        "source:\n  type: duckdb\n  config:\n    uri: duckdb:///shop.duckdb\n"
        "    sql: SELECT COUNT(*) AS value FROM read_parquet('https://127.0.0.1:9/x.parquet')\n"
    )
    with pytest.raises(SourceError, match="file system operations are disabled"):
        run(load_file(_collector(workdir, source)))


def test_duckdb_fingerprint_query_is_sandboxed_too(workdir: Path) -> None:
    """The late-data sensor's fingerprint query runs in the same sandbox as the collector's."""
    from signals_dagster.orchestration.partitions import window_for_key
    from signals_dagster.orchestration.sensors import fingerprints

    source = (
        "source:\n  type: duckdb\n  config:\n    uri: duckdb:///shop.duckdb\n"
        "    allowed_paths: [data]\n"
        "    sql: SELECT SUM(amount) AS value FROM orders WHERE created_at >= :window_start "
        "AND created_at < :window_end\n"
        "late_data:\n  lookback: 3d\n"
        "  fingerprint_sql: COPY (SELECT 1) TO 'data/fingerprint.csv'\n"
    )
    spec = load_file(_collector(workdir, source))
    with pytest.raises(SourceError, match="refused a COPY statement"):
        fingerprints(spec, [window_for_key(spec, "2026-11-01")])
    assert not (workdir / "data" / "fingerprint.csv").exists()
