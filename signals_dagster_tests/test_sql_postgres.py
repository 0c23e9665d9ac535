"""SqlSource against the real Postgres server: windows, DST, kinds, injection, read-only, limits."""

import re
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path

import psycopg
import pytest

from signals_dagster.collect import collect
from signals_dagster.errors import CollectorError, SnapshotWindowError, SourceError, SpecError
from signals_dagster.orchestration.partitions import current_window, window_for_key
from signals_dagster.records import to_dicts, to_pandas
from signals_dagster.sources import open_source
from signals_dagster_tests.sql_helpers import (
    DST_DAYS,
    EDGE_MOMENT,
    NOW,
    by_tag,
    local_day,
    make_events,
    make_orders,
    make_spec,
    run,
    utc_day,
)

WINDOWED = """
    SELECT account, SUM(amount) AS value
    FROM sqlt_orders
    WHERE created_at >= :window_start AND created_at < :window_end
    GROUP BY account
"""
SNEAKY = """
    CREATE FUNCTION sqlt_sneaky() RETURNS int LANGUAGE sql VOLATILE AS
    $$ INSERT INTO sqlt_orders (created_at, account, amount) VALUES (now(), 'sneaky', 1)
       RETURNING 1 $$
"""
NEW_ROW = "(created_at, account, amount) VALUES (now(), 'x', 1)"
INJECTED = (
    "'); DROP TABLE sqlt_tags; --",
    "O'Brien",
    '"quoted"',
    "50% off",
    "%s %(x)s",
    ":window_start",
    "$1",
    "a\\b",
)


@pytest.fixture(scope="module")
def pg(pg_url: str) -> str:
    """sqlt_orders (Feb 2026), sqlt_events (both DST changes), sqlt_tags, a writing function."""
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE sqlt_orders (id serial PRIMARY KEY, created_at timestamptz NOT NULL, "
            "account text NOT NULL, amount numeric(12, 2) NOT NULL)"
        )
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO sqlt_orders (created_at, account, amount) VALUES (%s, %s, %s)",
                make_orders(),
            )
            conn.execute("CREATE TABLE sqlt_events (created_at timestamptz NOT NULL, page text)")
            cur.executemany("INSERT INTO sqlt_events VALUES (%s, %s)", make_events())
            conn.execute("CREATE TABLE sqlt_tags (created_at timestamptz NOT NULL, account text)")
            cur.executemany(
                "INSERT INTO sqlt_tags VALUES (%s, %s)",
                [(datetime(2026, 2, 10, 5, i, tzinfo=UTC), v) for i, v in enumerate(INJECTED)],
            )
        conn.execute(SNEAKY)
    return pg_url


@pytest.fixture
def spec(write_collector: Callable[..., Path], pg: str) -> Callable[..., object]:
    return partial(make_spec, write_collector, type_="postgres", uri=pg)


def scalar(url: str, sql: str) -> object:
    with psycopg.connect(url) as conn:
        row = conn.execute(sql).fetchone()
    assert row is not None
    return row[0]


def literal_sums(
    url: str, start: datetime, end: datetime, what: str = "account, SUM(amount) FROM sqlt_orders"
) -> dict[str, float]:
    """The same aggregate with the window written into the SQL text (the independent oracle)."""
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            f"SELECT {what} WHERE created_at >= '{start.isoformat()}' "
            f"AND created_at < '{end.isoformat()}' GROUP BY 1"
        ).fetchall()
    return {key: float(total) for key, total in rows}


def order_count(url: str) -> int:
    return int(scalar(url, "SELECT COUNT(*) FROM sqlt_orders"))  # type: ignore[arg-type]


def test_windowed_sums_match_a_query_with_literal_bounds(spec, pg):
    days = ["2026-02-01", "2026-02-04", "2026-02-05", "2026-02-13", "2026-02-20"]
    results = run(spec(sql=WINDOWED), *days)
    for day, collected in zip(days, results, strict=True):
        expected = literal_sums(pg, *utc_day(day))
        assert len(expected) >= 5, day
        assert by_tag(collected, "account") == pytest.approx(expected), day
        assert collected.source_rows == len(expected)


def test_row_exactly_at_window_end_belongs_to_the_next_day(spec):
    before, after = run(spec(sql=WINDOWED), "2026-02-04", "2026-02-05")
    assert before.window.end == EDGE_MOMENT == after.window.start
    assert "edge" not in by_tag(before, "account")
    assert by_tag(after, "account")["edge"] == 7.0


def test_berlin_dst_days_are_23h_and_25h_and_counts_follow_local_midnight(spec, pg):
    sql = """
        SELECT page, COUNT(*) AS value FROM sqlt_events
        WHERE created_at >= :window_start AND created_at < :window_end GROUP BY page
    """
    berlin = spec(sql=sql, timezone="Europe/Berlin")
    spring, autumn = window_for_key(berlin, "2026-03-29"), window_for_key(berlin, "2026-10-25")
    assert spring.end.timestamp() - spring.start.timestamp() == 23 * 3600
    assert autumn.end.timestamp() - autumn.start.timestamp() == 25 * 3600
    for day, collected in zip(DST_DAYS, run(berlin, *DST_DAYS), strict=True):
        start, end = local_day(day)
        expected = literal_sums(pg, start, end, "page, COUNT(*) FROM sqlt_events")
        assert by_tag(collected, "page") == expected, day
        (grain,) = {r["grain_datetime"] for r in to_dicts(collected.records)}
        assert grain == start.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    spring_records, autumn_records = run(berlin, "2026-03-29", "2026-10-25")
    assert to_dicts(spring_records.records)[0]["grain_datetime"] == "2026-03-28T23:00:00Z"
    assert to_dicts(autumn_records.records)[0]["grain_datetime"] == "2026-10-24T22:00:00Z"


def test_as_of_collector_gives_cumulative_counts(spec, pg):
    as_of = spec(
        sql="SELECT account, COUNT(*) AS value FROM sqlt_orders "
        "WHERE created_at < :window_end GROUP BY account"
    )
    assert open_source(as_of).kind == "as-of"
    days = ["2026-02-03", "2026-02-04", "2026-02-12"]
    previous: dict[str, float] = {}
    for day, collected in zip(days, run(as_of, *days), strict=True):
        end = utc_day(day)[1].isoformat()
        with psycopg.connect(pg) as conn:
            expected = dict(
                conn.execute(
                    f"SELECT account, COUNT(*) FROM sqlt_orders WHERE created_at < '{end}' "
                    "GROUP BY account"
                ).fetchall()
            )
        values = by_tag(collected, "account")
        assert values == expected
        assert all(values[a] >= n for a, n in previous.items())
        assert sum(values.values()) > sum(previous.values())
        previous = values


def test_snapshot_refuses_old_partitions_before_connecting(spec, pg):
    nowhere = pg.rsplit("/", 1)[0] + "/sqlt_no_such_database"
    snapshot = spec(sql="SELECT COUNT(*) AS value FROM sqlt_orders", uri=nowhere)
    assert open_source(snapshot).kind == "snapshot"
    old = window_for_key(snapshot, "2026-10-30")
    with pytest.raises(SnapshotWindowError, match="snapshot"):
        run(snapshot, "2026-10-30")
    # All windows are checked before any query: the current one first does not slip through.
    with pytest.raises(SnapshotWindowError, match="snapshot"):
        collect(snapshot, [current_window(snapshot, NOW), old], now=NOW)
    # The current and the just-closed window do run (here: fail to connect, proving they try).
    with pytest.raises(SourceError, match="sqlt_no_such_database"):
        run(snapshot)
    live = spec(sql="SELECT COUNT(*) AS value FROM sqlt_orders")
    current, closed = run(live), run(live, "2026-11-01")[0]
    assert to_pandas(current[0].records)["value"].tolist() == [order_count(pg)]
    assert to_pandas(closed.records)["value"].tolist() == [order_count(pg)]


@pytest.mark.parametrize(
    "key",
    [
        "2026-02-10'; DROP TABLE sqlt_orders; --",
        "2026-02-10 OR 1=1",
        "2026-02-30",
        "2026/02/10",
        "",
    ],
)
def test_malformed_partition_keys_are_rejected_before_any_sql(spec, pg, key):
    before = order_count(pg)
    with pytest.raises(CollectorError, match="partition key"):
        run(spec(sql=WINDOWED), key)
    assert order_count(pg) == before


def test_tag_values_with_quotes_and_sql_pass_through_unchanged(spec, pg):
    sql = """
        SELECT account, COUNT(*) AS value FROM sqlt_tags
        WHERE created_at >= :window_start AND created_at < :window_end GROUP BY account
    """
    (collected,) = run(spec(sql=sql), "2026-02-10")
    assert by_tag(collected, "account") == dict.fromkeys(INJECTED, 1.0)
    assert sorted(r["tags"]["account"] for r in to_dicts(collected.records)) == sorted(INJECTED)
    assert scalar(pg, "SELECT COUNT(*) FROM sqlt_tags") == len(INJECTED)


def test_window_reaches_postgres_as_bound_parameters(spec):
    # pg_stat_activity shows our own statement as the server received it.
    sql = """
        SELECT (SELECT query FROM pg_stat_activity WHERE pid = pg_backend_pid()) AS stmt,
               COUNT(*) AS value
        FROM sqlt_orders WHERE created_at >= :window_start AND created_at < :window_end
    """
    windowed = spec(sql=sql)
    source = open_source(windowed)
    text_before = source.describe()["query"]
    (collected,) = collect_with(windowed, source)
    (statement,) = to_pandas(collected.records)["tags"].map(lambda t: t["stmt"]).tolist()
    assert "created_at >= $1 AND created_at < $2" in statement
    assert "2026" not in statement
    assert source.describe()["query"] == text_before == source.sql
    assert "2026" not in text_before


def collect_with(spec, source):
    return collect(spec, [window_for_key(spec, "2026-02-10")], now=NOW, source=source)


def test_like_with_percent_and_colons_in_literals_and_comments(spec, pg):
    sql = """
        -- as-of: counts every order up to :window_end (not since :window_start)
        SELECT account, ':window_start' AS label, COUNT(*) AS value FROM sqlt_orders
        WHERE account LIKE 'a%' AND created_at < :window_end /* 100% */
        GROUP BY account
    """
    as_of = spec(sql=sql)
    assert open_source(as_of).kind == "as-of"
    (collected,) = run(as_of, "2026-02-07")
    end = utc_day("2026-02-07")[1].isoformat()
    with psycopg.connect(pg) as conn:
        expected = dict(
            conn.execute(
                "SELECT account, COUNT(*) FROM sqlt_orders "
                f"WHERE account LIKE 'a%%' AND created_at < '{end}' GROUP BY account"
            ).fetchall()
        )
    assert set(expected) == {"acme", "apex"}
    assert by_tag(collected, "account") == expected
    assert {t["label"] for t in to_pandas(collected.records)["tags"]} == {":window_start"}


@pytest.mark.parametrize(
    "sql",
    [
        f"INSERT INTO sqlt_orders {NEW_ROW} RETURNING 1 AS value",
        "UPDATE sqlt_orders SET amount = 0 RETURNING 1 AS value",
        "DELETE FROM sqlt_orders RETURNING 1 AS value",
        "CREATE TABLE sqlt_created AS SELECT 1 AS value",
        f"WITH i AS (INSERT INTO sqlt_orders {NEW_ROW} RETURNING 1 AS value) SELECT value FROM i",
        "SELECT 1 AS value; DROP TABLE sqlt_orders",
    ],
)
def test_writing_statements_fail_and_write_nothing(spec, pg, sql):
    before = scalar(
        pg, "SELECT md5(string_agg(id || ':' || amount, ',' ORDER BY id)) FROM sqlt_orders"
    )
    with pytest.raises(SourceError) as caught:
        run(spec(sql=sql))
    # The read-only session refuses writes; bound parameters refuse a second statement.
    assert re.search(r"read-only|multiple commands", str(caught.value)), caught.value
    assert (
        scalar(pg, "SELECT md5(string_agg(id || ':' || amount, ',' ORDER BY id)) FROM sqlt_orders")
        == before
    )
    assert scalar(pg, "SELECT to_regclass('sqlt_created') IS NULL") is True


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT sqlt_sneaky() AS value",
        "SELECT set_config('transaction_read_only', 'off', true) AS ro, sqlt_sneaky() AS value",
    ],
)
def test_session_is_read_only_even_for_writes_hidden_in_a_select(spec, pg, sql):
    before = order_count(pg)
    with pytest.raises(SourceError, match=r"read-only|read-write mode must be set before"):
        run(spec(sql=sql))
    assert order_count(pg) == before


def test_turning_read_only_off_in_one_window_does_not_leak_into_the_next(spec, pg):
    sql = """
        SELECT set_config('default_transaction_read_only', 'off', false) AS ro,
               CASE WHEN :window_start >= TIMESTAMPTZ '2026-02-11 00:00:00Z'
                    THEN sqlt_sneaky() ELSE 0 END AS value
        WHERE :window_end > :window_start
    """
    before = order_count(pg)
    with pytest.raises(SourceError, match="read-only"):
        run(spec(sql=sql), "2026-02-10", "2026-02-11")
    assert order_count(pg) == before


def test_statement_timeout_cancels_a_slow_query(spec):
    slow = spec(
        sql="SELECT pg_sleep(5), 1 AS value WHERE :window_start < :window_end", timeout="1s"
    )
    started = time.monotonic()
    with pytest.raises(SourceError, match="statement timeout"):
        run(slow, "2026-02-10")
    assert time.monotonic() - started < 2.5


def test_result_without_value_column_names_the_columns(spec):
    sql = WINDOWED.replace("AS value", "AS total")
    with pytest.raises(CollectorError, match=r"no 'value' column \(columns: account, total\)"):
        run(spec(sql=sql), "2026-02-10")


def test_password_is_used_but_never_shown(spec, pg):
    with_password = pg.replace("postgres@", "postgres:s3cr3tpw@")
    assert "s3cr3tpw" in with_password
    (collected,) = run(spec(sql="SELECT COUNT(*) AS value FROM sqlt_orders", uri=with_password))
    assert to_pandas(collected.records)["value"].tolist() == [order_count(pg)]
    source = open_source(spec(sql="SELECT 1 AS value", uri=with_password))
    assert "s3cr3tpw" not in str(source.describe())
    assert "postgres:***@" in source.describe()["uri"]
    failures = [
        ("postgresql://postgres:s3cr3tpw@127.0.0.1:1/db", "SELECT 1 AS value", True),
        (with_password.rsplit("/", 1)[0] + "/sqlt_nope", "SELECT 1 AS value", None),
        (with_password, "SELECT nothing_here AS value", False),
    ]
    for uri, sql, transient in failures:
        with pytest.raises(SourceError) as caught:
            run(spec(sql=sql, uri=uri))
        assert "s3cr3tpw" not in str(caught.value)
        assert "postgres:***@" in str(caught.value)
        if transient is not None:
            assert caught.value.transient is transient


def test_streams_50000_rows_through_a_server_side_cursor(spec):
    sql = """
        SELECT i AS k, (SELECT COUNT(*) FROM pg_cursors) AS cursors, i AS value
        FROM generate_series(1, 50000) AS i WHERE :window_start < :window_end
    """
    (collected,) = run(spec(sql=sql), "2026-02-10")
    assert collected.source_rows == 50000
    assert len(collected.records) == 50000
    assert to_pandas(collected.records)["value"].sum() == sum(range(1, 50001))
    assert to_pandas(collected.records)["uuid"].nunique() == 50000
    assert {t["cursors"] for t in to_pandas(collected.records)["tags"]} == {"1"}


def test_records_uuid_timestamps_and_static_tags(spec):
    tagged = spec(sql=WINDOWED, tags={"env": "prod", "shard": 1})
    first = run(tagged, "2026-02-10", "2026-02-11", now=NOW)
    again = run(tagged, "2026-02-10", now=NOW + timedelta(hours=5))
    day10, day11 = (to_dicts(c.records) for c in first)
    assert [r["uuid"] for r in day10] == [r["uuid"] for r in to_dicts(again[0].records)]
    assert {uuid.UUID(r["uuid"]).version for r in day10} == {5}
    assert not {r["uuid"] for r in day10} & {r["uuid"] for r in day11}
    assert {r["account"] for r in (x["tags"] for x in day10)} & {
        r["account"] for r in (x["tags"] for x in day11)
    }
    for record in day10:
        assert record["grain_datetime"] == "2026-02-10T00:00:00Z"
        assert record["timestamp"] == "2026-11-02T12:00:03.120Z"
        assert record["tags"]["env"] == "prod"
        assert record["tags"]["shard"] == "1"
        assert set(record["tags"]) == {"account", "env", "shard"}
        assert (record["name"], record["type"]) == ("sqlt.metric", "GAUGE")
    assert to_dicts(again[0].records)[0]["timestamp"] == "2026-11-02T17:00:03.120Z"


def test_tag_types_become_strings(spec):
    sql = "SELECT DATE '2026-02-10' AS d, TRUE AS b, NULL::text AS n, 2.5 AS x, 3 AS value"
    (collected,) = run(spec(sql=sql))
    (record,) = to_dicts(collected.records)
    assert record["tags"] == {"d": "2026-02-10", "b": "true", "n": "", "x": "2.5"}
    assert record["value"] == 3


def test_column_clashing_with_a_static_tag_fails_clearly(spec):
    with pytest.raises(SpecError, match="static tag 'env' clashes"):
        spec(sql="SELECT 'x' AS env, 1 AS value", tags={"env": "prod"})
    # Not visible to the load-time check (no `AS env` before FROM): caught on the result.
    unaliased = spec(
        sql="SELECT env, 1 AS value FROM (SELECT 'x' AS env) AS t", tags={"env": "prod"}
    )
    with pytest.raises(CollectorError, match="'env' clashes with the static tag"):
        run(unaliased)


def test_duplicate_tag_sets_fail_clearly(spec):
    sql = """
        SELECT account, SUM(amount) AS value FROM sqlt_orders
        WHERE created_at >= :window_start AND created_at < :window_end
        GROUP BY account, created_at::time > '12:00'
    """
    with pytest.raises(CollectorError, match=r"same tags .*'account'.*distinct tag set"):
        run(spec(sql=sql), "2026-02-10")


def test_null_values_are_dropped_and_counted(spec, pg):
    sql = WINDOWED.replace(
        "SUM(amount)", "CASE WHEN account LIKE 'a%' THEN NULL ELSE SUM(amount) END"
    )
    (collected,) = run(spec(sql=sql), "2026-02-10")
    expected = literal_sums(pg, *utc_day("2026-02-10"))
    assert by_tag(collected, "account") == pytest.approx(
        {a: v for a, v in expected.items() if not a.startswith("a")}
    )
    assert collected.null_values == 2 == collected.metadata()["null_values_dropped"]
    assert collected.source_rows == len(expected)


def test_non_numeric_value_fails_clearly(spec):
    with pytest.raises(CollectorError, match="non-numeric value 'abc'"):
        run(spec(sql="SELECT 'abc' AS value"))


def test_generic_sql_type_with_an_explicit_driver(spec, pg):
    generic = spec(
        sql=WINDOWED, type_="sql", uri=pg.replace("postgresql://", "postgresql+psycopg://")
    )
    (collected,) = run(generic, "2026-02-14")
    assert by_tag(collected, "account") == pytest.approx(literal_sums(pg, *utc_day("2026-02-14")))
    before = order_count(pg)
    with pytest.raises(SourceError, match="read-only"):
        run(spec(sql="SELECT sqlt_sneaky() AS value", type_="sql", uri=generic.source.config.uri))
    assert order_count(pg) == before
