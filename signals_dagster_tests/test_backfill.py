"""Backfills on the real Postgres: one run for a range, range-capable and per-window collectors."""

import json
import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import psycopg
import pytest

from signals_dagster.catalog import load_catalog
from signals_dagster.collect import collect
from signals_dagster.errors import CollectorError
from signals_dagster.orchestration.factory import build_definitions
from signals_dagster.orchestration.partitions import window_for_key
from signals_dagster.records import to_pandas
from signals_dagster.sources.postgres import PostgresSession
from signals_dagster.spec.loader import load_file

START = datetime(2026, 1, 1, tzinfo=UTC)
DAYS = 90
RANGE_SQL = (
    "SELECT date_trunc('day', created_at, 'UTC') AS grain_datetime, account AS customer, "
    "SUM(amount) AS value FROM bf_orders "
    "WHERE created_at >= :window_start AND created_at < :window_end GROUP BY 1, 2"
)
WINDOW_SQL = (
    "SELECT account AS customer, SUM(amount) AS value FROM bf_orders "
    "WHERE created_at >= :window_start AND created_at < :window_end GROUP BY 1"
)


@pytest.fixture(scope="module")
def orders(pg_url: str) -> str:
    rng = random.Random(3)
    rows = [
        (
            f"acct{rng.randrange(7)}",
            rng.randrange(1, 500),
            START + timedelta(seconds=rng.randrange(DAYS * 86400)),
        )
        for _ in range(20_000)
    ]
    rows += [("edge", 1, START + timedelta(days=d)) for d in range(DAYS)]  # exactly at midnight
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS bf_orders")
        conn.execute("CREATE TABLE bf_orders (account text, amount int, created_at timestamptz)")
        with conn.cursor().copy("COPY bf_orders FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
    return pg_url


def yaml(name: str, pg_url: str, sql: str, audit: Path, extra: str = "") -> str:
    return f"""
name: {name}
metric: {{name: bf.revenue, type: GAUGE, grain: 24h}}
partitions: {{start: '2026-01-01'}}
source:
  type: postgres
  config:
    uri: '{pg_url}'
    sql: "{sql}"
sinks:
  audit: {{type: file, config: {{path: '{audit}'}}}}
{extra}"""


def records(path: Path) -> set[tuple[str, float]]:
    return {(r["uuid"], r["value"]) for r in map(json.loads, path.read_text().splitlines())}


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    path = tmp_path / "collectors"
    path.mkdir()
    return path


@pytest.fixture
def fetch_count(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Spy on our own seam: how many queries a run sends."""
    calls: list[str] = []
    original = PostgresSession.fetch

    def counting(self: PostgresSession, window):  # type: ignore[no-untyped-def]
        calls.append(window.key)
        return original(self, window)

    monkeypatch.setattr(PostgresSession, "fetch", counting)
    return calls


def test_ninety_partitions_in_one_run_equal_single_partitions(
    orders: str, folder: Path, tmp_path: Path, fetch_count: list[str]
) -> None:
    ranged_audit, window_audit = tmp_path / "ranged.jsonl", tmp_path / "window.jsonl"
    (folder / "ranged.yaml").write_text(yaml("bf.ranged", orders, RANGE_SQL, ranged_audit))
    (folder / "window.yaml").write_text(yaml("bf.window", orders, WINDOW_SQL, window_audit))
    defs = build_definitions(load_catalog(str(folder)), str(folder))
    instance = dg.DagsterInstance.ephemeral()
    last = (START + timedelta(days=DAYS - 1)).strftime("%Y-%m-%d")
    tags = {
        "dagster/asset_partition_range_start": "2026-01-01",
        "dagster/asset_partition_range_end": last,
    }
    for job in ("bf_ranged_job", "bf_window_job"):
        result = defs.resolve_job_def(job).execute_in_process(instance=instance, tags=tags)
        assert result.success
    runs = instance.get_runs()
    assert len(runs) == 2  # one run per backfill, not 90
    assert fetch_count.count("2026-01-01...2026-03-31") == 1  # the range query, once
    assert len(fetch_count) == 1 + DAYS  # + the per-window collector's 90 queries
    # 90 single windows of the per-window collector, one at a time.
    spec = load_file(folder / "window.yaml")
    singles: set[tuple[str, float]] = set()
    for day in range(DAYS):
        key = (START + timedelta(days=day)).strftime("%Y-%m-%d")
        (item,) = collect(spec, [window_for_key(spec, key)])
        singles |= set(
            zip(to_pandas(item.records)["uuid"], to_pandas(item.records)["value"], strict=True)
        )
    assert len(singles) == DAYS * 8
    assert records(ranged_audit) == records(window_audit) == singles
    # Per-partition metadata in the ranged run.
    event = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey("bf_ranged"), asset_partitions=["2026-02-14"]),
        limit=1,
    ).records[0]
    meta = event.asset_materialization.metadata  # type: ignore[union-attr]
    assert meta["record_count"].value == 8


def test_range_queries_are_chunked(
    orders: str, folder: Path, tmp_path: Path, fetch_count: list[str]
) -> None:
    extra = "backfill: {max_partitions_per_run: 40}"
    (folder / "r.yaml").write_text(yaml("bf.chunked", orders, RANGE_SQL, tmp_path / "a", extra))
    spec = load_file(folder / "r.yaml")
    windows = [
        window_for_key(spec, (START + timedelta(days=d)).strftime("%Y-%m-%d")) for d in range(DAYS)
    ]
    results = collect(spec, windows)
    assert fetch_count == [
        "2026-01-01...2026-02-09",
        "2026-02-10...2026-03-21",
        "2026-03-22...2026-03-31",
    ]
    assert [r.window.key for r in results] == [w.key for w in windows]


def test_misaligned_grain_datetime_is_refused(orders: str, folder: Path, tmp_path: Path) -> None:
    sql = RANGE_SQL.replace(
        "date_trunc('day', created_at, 'UTC')", "date_trunc('hour', created_at)"
    )
    (folder / "m.yaml").write_text(yaml("bf.misaligned", orders, sql, tmp_path / "a"))
    spec = load_file(folder / "m.yaml")
    with pytest.raises(CollectorError, match="not the start of a 24h window"):
        collect(spec, [window_for_key(spec, "2026-01-05")])


def test_multi_run_policy_chunks_runs(orders: str, folder: Path, tmp_path: Path) -> None:
    extra = "backfill: {policy: multi_run, max_partitions_per_run: 30}"
    (folder / "r.yaml").write_text(yaml("bf.multi", orders, WINDOW_SQL, tmp_path / "a", extra))
    defs = build_definitions(load_catalog(str(folder)), str(folder))
    (asset,) = list(defs.assets or [])
    assert asset.backfill_policy == dg.BackfillPolicy.multi_run(30)


def test_snapshot_backfill_is_refused(orders: str, folder: Path, tmp_path: Path) -> None:
    sql = "SELECT COUNT(*) AS value FROM bf_orders"
    (folder / "s.yaml").write_text(yaml("bf.snapshot", orders, sql, tmp_path / "a"))
    defs = build_definitions(load_catalog(str(folder)), str(folder))
    (asset,) = list(defs.assets or [])
    assert asset.backfill_policy is None
    result = defs.resolve_job_def("bf_snapshot_job").execute_in_process(
        instance=dg.DagsterInstance.ephemeral(), partition_key="2026-01-10", raise_on_error=False
    )
    assert not result.success
    error = result.get_step_failure_events()[0].step_failure_data.error
    assert error is not None
    assert "snapshot" in error.message
