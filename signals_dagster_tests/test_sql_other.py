"""SqlSource against real MariaDB, SQLite and DuckDB databases; redaction of secrets."""

import sqlite3
import time
from collections.abc import Callable
from datetime import UTC
from functools import partial
from pathlib import Path

import duckdb
import pandas as pd
import pymysql
import pytest
from sqlalchemy.engine import make_url

from signals_dagster.errors import SourceError
from signals_dagster.orchestration.partitions import window_for_key
from signals_dagster.records import to_dicts
from signals_dagster.redact import MASK, redact, redact_secrets
from signals_dagster.sources import open_source
from signals_dagster_tests.sql_helpers import (
    DST_DAYS,
    by_tag,
    counts,
    local_day,
    make_events,
    make_orders,
    make_spec,
    run,
    sums,
    utc_day,
)

ORDERS = make_orders()
EVENTS = make_events()
DAYS = ("2026-02-01", "2026-02-05", "2026-02-09", "2026-02-20")
BERLIN_DAYS = ("2026-02-05", "2026-02-14")
INJECTED = ("'); DROP TABLE sqlt_orders; --", "O'Brien", "50% off", "%s", ":window_end")
WINDOWED = """
    SELECT account, SUM(amount) AS value FROM sqlt_orders
    WHERE created_at >= :window_start AND created_at < :window_end
    GROUP BY account
"""

# ---------------------------------------------------------------- MariaDB


@pytest.fixture(scope="module")
def maria(mysql_url: str) -> str:
    """sqlt_orders with a DATETIME column holding naive UTC."""
    url = make_url(mysql_url)
    conn = pymysql.connect(host=url.host, port=url.port, user=url.username, password="")
    with conn.cursor() as cur:
        cur.execute(f"USE `{url.database}`")
        cur.execute(
            "CREATE TABLE sqlt_orders (id INT AUTO_INCREMENT PRIMARY KEY, created_at DATETIME "
            "NOT NULL, account VARCHAR(64) NOT NULL, amount DECIMAL(12, 2) NOT NULL)"
        )
        rows = [(m.replace(tzinfo=None), a, v) for m, a, v in ORDERS]
        rows += [(ORDERS[0][0].replace(tzinfo=None, day=10, hour=7), v, 1) for v in INJECTED]
        cur.executemany(
            "INSERT INTO sqlt_orders (created_at, account, amount) VALUES (%s, %s, %s)", rows
        )
    conn.commit()
    conn.close()
    return mysql_url


def maria_scalar(url: str, sql: str) -> object:
    parts = make_url(url)
    conn = pymysql.connect(
        host=parts.host, port=parts.port, user="root", password="", database=parts.database
    )
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
            return cur.fetchone()[0]
    finally:
        conn.close()


@pytest.fixture
def maria_spec(write_collector: Callable[..., Path], maria: str) -> Callable[..., object]:
    return partial(make_spec, write_collector, type_="mysql", uri=maria)


def test_mariadb_windowed_sums_per_utc_and_berlin_day(maria_spec):
    for day, collected in zip(DAYS, run(maria_spec(sql=WINDOWED), *DAYS), strict=True):
        assert by_tag(collected, "account") == pytest.approx(sums(ORDERS, *utc_day(day))), day
    berlin = maria_spec(sql=WINDOWED, timezone="Europe/Berlin")
    for day, collected in zip(BERLIN_DAYS, run(berlin, *BERLIN_DAYS), strict=True):
        assert by_tag(collected, "account") == pytest.approx(sums(ORDERS, *local_day(day))), day


def test_mariadb_tags_with_sql_and_like_percent(maria_spec, maria):
    (collected,) = run(maria_spec(sql=WINDOWED), "2026-02-10")
    expected = {**sums(ORDERS, *utc_day("2026-02-10")), **dict.fromkeys(INJECTED, 1.0)}
    assert by_tag(collected, "account") == pytest.approx(expected)
    assert maria_scalar(maria, "SELECT COUNT(*) FROM sqlt_orders") == len(ORDERS) + len(INJECTED)
    like = WINDOWED.replace("GROUP BY", "AND account LIKE 'a%' GROUP BY")
    (collected,) = run(maria_spec(sql=like), "2026-02-12")
    expected = {a: v for a, v in sums(ORDERS, *utc_day("2026-02-12")).items() if a[0] == "a"}
    assert set(expected) == {"acme", "apex"}
    assert by_tag(collected, "account") == pytest.approx(expected)


@pytest.mark.parametrize(
    "sql",
    [
        "INSERT INTO sqlt_orders (created_at, account, amount) VALUES (NOW(), 'x', 1)",
        "UPDATE sqlt_orders SET amount = 0",
        "DELETE FROM sqlt_orders",
        "CREATE TABLE sqlt_created (value INT)",
    ],
)
def test_mariadb_session_is_read_only(maria_spec, maria, sql):
    checksum = "SELECT CONCAT(COUNT(*), '/', SUM(amount)) FROM sqlt_orders"
    before = maria_scalar(maria, checksum)
    with pytest.raises(SourceError, match="READ ONLY"):
        run(maria_spec(sql=sql))
    assert maria_scalar(maria, checksum) == before
    tables = "SELECT COUNT(*) FROM information_schema.tables WHERE table_name = 'sqlt_created'"
    assert maria_scalar(maria, tables) == 0


def test_mariadb_statement_timeout(maria_spec):
    slow = maria_spec(sql="SELECT SLEEP(5) AS slept, 1 AS value", timeout="1s")
    started = time.monotonic()
    with pytest.raises(SourceError, match="max_statement_time"):
        run(slow)
    assert time.monotonic() - started < 2.5


def test_mariadb_password_never_shown(maria_spec, maria):
    wrong = maria.replace("root@", "root:s3cr3tpw@")  # root has an empty password: access denied
    closed = "mysql://root:s3cr3tpw@127.0.0.1:1/db"
    for uri, message in ((wrong, "Access denied"), (closed, "Can't connect")):
        with pytest.raises(SourceError, match=message) as caught:
            run(maria_spec(sql="SELECT 1 AS value", uri=uri))
        assert "s3cr3tpw" not in str(caught.value)
        assert f"root:{MASK}@" in str(caught.value)
        assert "s3cr3tpw" not in str(
            open_source(maria_spec(sql="SELECT 1 AS value", uri=uri)).describe()
        )


# ---------------------------------------------------------------- SQLite


@pytest.fixture(scope="module")
def lite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """sqlt_orders and sqlt_events with TEXT timestamps 'YYYY-MM-DD HH:MM:SS' (UTC)."""
    path = tmp_path_factory.mktemp("sqlite") / "shop.sqlite"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE sqlt_orders (created_at TEXT, account TEXT, amount REAL)")
    db.executemany(
        "INSERT INTO sqlt_orders VALUES (?, ?, ?)",
        [(m.strftime("%Y-%m-%d %H:%M:%S"), a, float(v)) for m, a, v in ORDERS],
    )
    db.execute("CREATE TABLE sqlt_events (created_at TEXT, page TEXT)")
    db.executemany(
        "INSERT INTO sqlt_events VALUES (?, ?)",
        [(m.strftime("%Y-%m-%d %H:%M:%S"), p) for m, p in EVENTS],
    )
    db.commit()
    db.close()
    return path


@pytest.fixture
def lite_spec(write_collector: Callable[..., Path], lite: Path) -> Callable[..., object]:
    return partial(make_spec, write_collector, type_="sqlite", uri=f"sqlite:///{lite}")


def lite_count(path: Path) -> int:
    db = sqlite3.connect(path)
    try:
        return db.execute("SELECT COUNT(*) FROM sqlt_orders").fetchone()[0]
    finally:
        db.close()


def test_sqlite_windowed_sums_per_utc_day_and_berlin_dst_day(lite_spec, lite):
    for day, collected in zip(DAYS, run(lite_spec(sql=WINDOWED), *DAYS), strict=True):
        assert by_tag(collected, "account") == pytest.approx(sums(ORDERS, *utc_day(day))), day
    sql = WINDOWED.replace("account", "page").replace("SUM(amount)", "COUNT(*)")
    sql = sql.replace("sqlt_orders", "sqlt_events")
    berlin = lite_spec(sql=sql, timezone="Europe/Berlin")
    for day, collected in zip(DST_DAYS, run(berlin, *DST_DAYS), strict=True):
        assert by_tag(collected, "page") == counts(EVENTS, *local_day(day)), day
    generic = lite_spec(sql=WINDOWED, type_="sql")
    (collected,) = run(generic, "2026-02-05")
    assert by_tag(collected, "account") == pytest.approx(sums(ORDERS, *utc_day("2026-02-05")))


@pytest.mark.parametrize(
    "sql",
    [
        "INSERT INTO sqlt_orders VALUES ('2026-02-01 00:00:00', 'x', 1) RETURNING 1 AS value",
        "UPDATE sqlt_orders SET amount = 0 RETURNING 1 AS value",
        "CREATE TABLE sqlt_created (value INT)",
        "WITH x AS (SELECT 1) DELETE FROM sqlt_orders RETURNING 1 AS value",
    ],
)
def test_sqlite_session_is_read_only(lite_spec, lite, sql):
    before = lite_count(lite)
    with pytest.raises(SourceError, match="readonly"):
        run(lite_spec(sql=sql))
    assert lite_count(lite) == before
    db = sqlite3.connect(lite)
    assert (
        db.execute("SELECT COUNT(*) FROM sqlite_master WHERE name = 'sqlt_created'").fetchone()[0]
        == 0
    )
    db.close()


def test_sqlite_statement_timeout_interrupts_a_slow_query(lite_spec):
    sql = """
        WITH RECURSIVE r(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM r WHERE i < 30000000)
        SELECT COUNT(*) AS value FROM r
    """
    # ~9 s uncancelled on this machine
    started = time.monotonic()
    with pytest.raises(SourceError, match="timeout"):
        run(lite_spec(sql=sql, timeout="500ms"))
    assert time.monotonic() - started < 2


def test_sqlite_missing_file_is_not_created(lite_spec, tmp_path):
    missing = tmp_path / "nope.sqlite"
    with pytest.raises(SourceError, match="not found"):
        run(lite_spec(sql="SELECT 1 AS value", uri=f"sqlite:///{missing}"))
    assert not missing.exists()


# ---------------------------------------------------------------- DuckDB


@pytest.fixture(scope="module")
def duck(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """sqlt_orders with a TIMESTAMP (naive UTC) and a TIMESTAMPTZ column; closed afterwards."""
    path = tmp_path_factory.mktemp("duckdb") / "shop.duckdb"
    db = duckdb.connect(str(path))
    db.execute("SET TimeZone = 'America/New_York'")  # the reader must not depend on this
    db.execute(
        "CREATE TABLE sqlt_orders (created_at TIMESTAMP, created_tz TIMESTAMPTZ, "
        "account VARCHAR, amount DECIMAL(12, 2))"
    )
    rows = ORDERS + [(m, p, 1) for m, p in EVENTS]
    frame = pd.DataFrame(
        {
            "created_at": [m.replace(tzinfo=None) for m, _, _ in rows],
            "created_tz": [m for m, _, _ in rows],
            "account": [a for _, a, _ in rows],
            "amount": [str(v) for _, _, v in rows],
        }
    )
    db.register("frame", frame)
    db.execute("INSERT INTO sqlt_orders SELECT * FROM frame")
    db.close()
    return path


@pytest.fixture
def duck_spec(write_collector: Callable[..., Path], duck: Path) -> Callable[..., object]:
    return partial(make_spec, write_collector, type_="duckdb", uri=f"duckdb:///{duck}")


def duck_count(path: Path) -> int:
    db = duckdb.connect(str(path), read_only=True)
    try:
        return db.execute("SELECT COUNT(*) FROM sqlt_orders").fetchone()[0]
    finally:
        db.close()


@pytest.mark.parametrize("column", ["created_at", "created_tz"])
def test_duckdb_windowed_sums_per_utc_and_berlin_dst_day(duck_spec, column):
    rows = ORDERS + [(m, p, 1) for m, p in EVENTS]
    sql = WINDOWED.replace("created_at", column)
    for day, collected in zip(DAYS, run(duck_spec(sql=sql), *DAYS), strict=True):
        assert by_tag(collected, "account") == pytest.approx(sums(rows, *utc_day(day))), day
    berlin = duck_spec(sql=sql, timezone="Europe/Berlin")
    for day, collected in zip(DST_DAYS, run(berlin, *DST_DAYS), strict=True):
        expected = sums(rows, *local_day(day))
        assert set(expected) == {"home", "cart", "pay"}
        assert by_tag(collected, "account") == pytest.approx(expected), day
        window = window_for_key(berlin, day)
        (grain,) = {r["grain_datetime"] for r in to_dicts(collected.records)}
        assert grain == window.start.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def test_duckdb_session_is_read_only(duck_spec, duck):
    before = duck_count(duck)
    for sql in (
        "INSERT INTO sqlt_orders (account) VALUES ('x') RETURNING 1 AS value",
        "CREATE TABLE sqlt_created AS SELECT 1 AS value",
    ):
        with pytest.raises(SourceError, match="read-only"):
            run(duck_spec(sql=sql))
    assert duck_count(duck) == before


def test_duckdb_statement_timeout_interrupts_a_slow_query(duck_spec):
    sql = """
        SELECT COUNT(*) AS value FROM range(10000) AS a(i), range(200000) AS b(j)
        WHERE a.i + b.j = -1
    """
    # ~8 s uncancelled on this machine (2e9 pairs)
    started = time.monotonic()
    with pytest.raises(SourceError, match="timeout"):
        run(duck_spec(sql=sql, timeout="500ms"))
    assert time.monotonic() - started < 2


# ---------------------------------------------------------------- redaction


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("postgresql://app:s3cr3t@db:5432/shop", "postgresql://app:***@db:5432/shop"),
        ("postgresql+psycopg://app:p%40ss@db/shop", "postgresql+psycopg://app:***@db/shop"),
        ("mysql://root:@127.0.0.1/x", "mysql://root:***@127.0.0.1/x"),
        ("postgresql://app@db/shop", "postgresql://app@db/shop"),
        ("sqlite:////tmp/a:b.db", "sqlite:////tmp/a:b.db"),
        ("host=db?password=hunter2&sslmode=require", "host=db?password=***&sslmode=require"),
        (
            "x://h/?sslmode=require&TOKEN=abc;secret=def",
            "x://h/?sslmode=require&TOKEN=***;secret=***",
        ),
        (
            "a postgres://u:one@h1/d and mongodb+srv://v:two@h2/?authSource=admin",
            "a postgres://u:***@h1/d and mongodb+srv://v:***@h2/?authSource=admin",
        ),
        ("no secrets here: 12:30 user@example.com", "no secrets here: 12:30 user@example.com"),
    ],
)
def test_redact(text, expected):
    assert redact(text) == expected


def test_redact_secrets_removes_literal_values_too():
    text = "auth failed for key hunter2 at postgresql://u:hunter2@h/d"
    assert (
        redact_secrets(text, ["hunter2", "", "ab"])
        == "auth failed for key *** at postgresql://u:***@h/d"
    )
