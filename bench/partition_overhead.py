"""Overhead of materialising one partition in process, next to the bare query it runs.

A throwaway Postgres database (127.0.0.1:5432, user postgres, dropped at the end) gets an
`orders` table spread over the 365 days of 2025. One windowed daily collector (file sink) sums a
day of it per account. For several days, methods interleaved (order rotated per day) and after one
warm-up per day and method, the run measures:

  (a)  raw        the same SQL, same bounds, through psycopg: connect, execute, fetchall
  (a') raw+cursor the same with a server-side cursor (DECLARE/FETCH), as our SQL source streams
  (c)  collect    signals_dagster.collect.collect() for the window, no Dagster
  (b1) materialize  dagster.materialize([asset], partition_key, resources,
                    instance=DagsterInstance.ephemeral())      (new job and instance every call)
  (b2) job          defs.resolve_implicit_global_asset_job_def().execute_in_process(partition_key,
                    instance=<one ephemeral instance>)         (job and instance built once, as a
                                                               long-lived instance would be)
  and DagsterInstance.ephemeral() alone.

"Ours" is the cheaper of (b1) and (b2). Two scenarios: an index on created_at (index scan, a few
ms) and no index (a sequential scan of every row per window). Target: ours <= 1.2 x raw + 0.5 s.
Exit code 1 when a scenario misses the target.

    .venv/bin/python bench/partition_overhead.py [--rows N] [--days N] [--repeat N]
"""

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta

import dagster as dg
import psycopg
from common import (
    ACCOUNTS,
    collector_yaml,
    discard_stderr,
    dsn,
    load_orders,
    medians,
    rotated,
    scratch_dir,
    throwaway_database,
    timed,
)

from signals_dagster.catalog import load_catalog
from signals_dagster.collect import collect
from signals_dagster.orchestration.factory import build_definitions
from signals_dagster.orchestration.partitions import window_for_key

COLLECTOR = "bench.orders.revenue.daily"
SQL = (
    "SELECT account AS customer, SUM(amount) AS value FROM orders "
    "WHERE created_at >= :window_start AND created_at < :window_end GROUP BY account"
)
RAW_SQL = SQL.replace(":window_start", "%(window_start)s").replace(":window_end", "%(window_end)s")
TARGET_FACTOR, TARGET_SLACK = 1.2, 0.5
FIRST_DAY, DAY_STEP = date(2025, 1, 10), 35

Method = Callable[[str], int | None]


def day_bounds(day: str) -> tuple[datetime, datetime]:
    """[start, end) of a UTC day."""
    start = datetime.fromisoformat(day).replace(tzinfo=UTC)
    return start, start + timedelta(days=1)


def set_index(database: str, indexed: bool) -> None:
    """Create or drop the created_at index, then ANALYZE."""
    with psycopg.connect(dsn(database), autocommit=True) as conn:
        if indexed:
            conn.execute("CREATE INDEX IF NOT EXISTS orders_created_at ON orders (created_at)")
        else:
            conn.execute("DROP INDEX IF EXISTS orders_created_at")
        conn.execute("ANALYZE orders")


def table_facts(database: str, days: list[str]) -> tuple[int, list[int]]:
    """Rows in the table and rows in each measured day's window."""
    with psycopg.connect(dsn(database)) as conn:
        total = conn.execute("SELECT count(*) FROM orders").fetchone()
        per_day = []
        for day in days:
            row = conn.execute(
                "SELECT count(*) FROM orders WHERE created_at >= %s AND created_at < %s",
                day_bounds(day),
            ).fetchone()
            assert row is not None
            per_day.append(int(row[0]))
    assert total is not None
    return int(total[0]), per_day


def raw_query(database: str, day: str, server_side: bool = False) -> int:
    """What a bare script does: connect, execute, fetchall (optionally via DECLARE/FETCH)."""
    start, end = day_bounds(day)
    params = {"window_start": start, "window_end": end}
    with psycopg.connect(dsn(database)) as conn:
        if server_side:
            with conn.cursor(name="bench") as cur:
                cur.execute(RAW_SQL, params)
                return len(cur.fetchall())
        return len(conn.execute(RAW_SQL, params).fetchall())


def record_count(result: dg.ExecuteInProcessResult, node: str) -> int:
    """record_count of the run's (single) materialisation."""
    assert result.success
    (event,) = result.asset_materializations_for_node(node)
    value = event.metadata["record_count"].value
    assert isinstance(value, int)
    return value


def build_methods(database: str, directory: str) -> dict[str, Method]:
    """The measured methods; definitions are built once, here, outside the timed loop."""
    catalog = load_catalog(directory)
    spec = catalog.get(COLLECTOR)
    defs = build_definitions(catalog, directory)
    (asset,) = [a for a in defs.assets or [] if isinstance(a, dg.AssetsDefinition)]
    resources = dict(defs.resources or {})
    job = defs.resolve_implicit_global_asset_job_def()
    instance = dg.DagsterInstance.ephemeral()
    node = asset.node_def.name

    def materialize(day: str) -> int:
        result = dg.materialize(
            [asset], partition_key=day, resources=resources, instance=dg.DagsterInstance.ephemeral()
        )
        return record_count(result, node)

    def new_instance(_day: str) -> None:
        dg.DagsterInstance.ephemeral()

    return {
        "raw": lambda day: raw_query(database, day),
        "raw_cursor": lambda day: raw_query(database, day, server_side=True),
        "collect": lambda day: len(collect(spec, [window_for_key(spec, day)])[0].records),
        "materialize": materialize,
        "job": lambda day: record_count(
            job.execute_in_process(partition_key=day, instance=instance), node
        ),
        "instance": new_instance,
    }


def measure(methods: dict[str, Method], days: list[str], repeat: int) -> dict[str, list[float]]:
    """Seconds per method: per day one warm-up, then `repeat` timed rounds, order rotated."""
    times: dict[str, list[float]] = {name: [] for name in methods}
    names = list(methods)
    with discard_stderr():
        for i, day in enumerate(days):
            order = rotated(names, i)
            for name in order:
                methods[name](day)
            for _ in range(repeat):
                counts = set()
                for name in order:
                    seconds, count = timed(methods[name], day)
                    times[name].append(seconds)
                    if count is not None:
                        counts.add(count)
                if len(counts) != 1:
                    raise AssertionError(f"{day}: methods disagree on the result rows {counts}")
    return times


def report(label: str, times: dict[str, list[float]]) -> bool:
    """Print medians, ratios and the target check; True when it passes."""
    med = medians(times)
    raw = med["raw"]
    ours_name = min(("materialize", "job"), key=med.__getitem__)
    ours = med[ours_name]
    limit = TARGET_FACTOR * raw + TARGET_SLACK
    rows = [
        ("(a)  raw psycopg: connect+execute+fetchall", "raw"),
        ("(a') raw psycopg, server-side cursor", "raw_cursor"),
        ("(c)  collect(), no Dagster", "collect"),
        ("(b1) dagster.materialize, new ephemeral inst.", "materialize"),
        ("(b2) prebuilt job.execute_in_process, 1 inst.", "job"),
        ("     DagsterInstance.ephemeral() alone", "instance"),
    ]
    print(f"\n== {label}: medians of {len(times['raw'])} timed runs ==")
    print(f"  {'method':47} {'median ms':>10} {'min ms':>8} {'max ms':>8} {'x raw':>7}")
    for text, name in rows:
        values = times[name]
        print(
            f"  {text:47} {med[name] * 1000:10.1f} {min(values) * 1000:8.1f} "
            f"{max(values) * 1000:8.1f} {med[name] / raw:7.2f}"
        )
    print(
        f"  where the time goes (medians, ms): source layer (c)-(a) = "
        f"{(med['collect'] - raw) * 1000:.1f}, of which server-side cursor (a')-(a) = "
        f"{(med['raw_cursor'] - raw) * 1000:.1f}; Dagster (b2)-(c) = "
        f"{(med['job'] - med['collect']) * 1000:.1f}, (b1)-(c) = "
        f"{(med['materialize'] - med['collect']) * 1000:.1f}"
    )
    ok = ours <= limit
    print(
        f"  ours = {ours_name} ({'b1' if ours_name == 'materialize' else 'b2'}); "
        f"ratio (b)/(a) = {ours / raw:.2f}\n"
        f"  target ours <= {TARGET_FACTOR} x raw + {TARGET_SLACK} s: {ours:.3f} s <= "
        f"{TARGET_FACTOR} x {raw:.3f} + {TARGET_SLACK} = {limit:.3f} s -> "
        f"{'PASS' if ok else 'FAIL'}"
    )
    return ok


def main() -> int:
    """Create the database, run both scenarios, drop the database."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rows", type=int, default=3_000_000, help="orders rows (>= 1e6)")
    parser.add_argument("--days", type=int, default=10, help="partitions measured (<= 10)")
    parser.add_argument("--repeat", type=int, default=2, help="timed rounds per day")
    args = parser.parse_args()
    if args.rows < 1_000_000 or not 1 <= args.days <= 10 or args.repeat < 1:
        parser.error("need --rows >= 1000000, 1 <= --days <= 10, --repeat >= 1")

    started = time.perf_counter()
    with scratch_dir("signals_bench_") as tmp, throwaway_database("signals_bench") as database:
        audit = tmp / "audit.jsonl"
        load_orders(database, args.rows)
        loaded = time.perf_counter() - started
        collectors = tmp / "collectors"
        collectors.mkdir()
        (collectors / "orders.yaml").write_text(
            collector_yaml(
                name=COLLECTOR,
                description="Revenue per account and day (partition overhead benchmark)",
                metric="bench.orders.revenue",
                start="2025-01-01",
                database=database,
                sql=SQL,
                audit=audit,
            )
        )
        days = [(FIRST_DAY + timedelta(days=DAY_STEP * i)).isoformat() for i in range(args.days)]
        total, per_day = table_facts(database, days)
        print(
            f"orders: {total} rows over the 365 days of 2025, {ACCOUNTS} accounts, "
            f"loaded in {loaded:.1f} s\nrows per daily window: {min(per_day)}..{max(per_day)} "
            f"(median {statistics.median(per_day):.0f}) -> {ACCOUNTS} result rows / records\n"
            f"partitions: {', '.join(days)}\n1 warm-up + {args.repeat} timed run(s) per "
            f"partition and method; methods interleaved, order rotated per partition"
        )
        methods = build_methods(database, str(collectors))
        results = []
        for label, indexed in (("index on created_at", True), ("no index: seq scan", False)):
            set_index(database, indexed)
            results.append(report(label, measure(methods, days, args.repeat)))
        with audit.open() as handle:
            written = sum(1 for _ in handle)
        print(f"\nfile sink: {written} records appended by the Dagster runs")
        print(f"total wall {time.perf_counter() - started:.1f} s")
        return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
