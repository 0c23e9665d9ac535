"""One partition of a million records, next to the bare streamed query it runs.

A throwaway Postgres database (127.0.0.1:5432, user postgres, dropped at the end) gets an
`orders` table of N rows on one day, each of N distinct accounts. One daily collector sums the
day per account (`SELECT account AS customer, SUM(amount) AS value … GROUP BY account`: N result
rows, N records) into a file sink. Side by side, methods interleaved over the rounds:

  raw      psql -c "\\copy (the query, literal bounds) to /dev/null"  (the source's own speed)
  invoke   signals invoke FILE --partition DAY > /dev/null            (file sink written)
  dagster  dagster asset materialize --select ASSET --partition DAY  (its step process)

It prints the best wall time of each (medians too), the peak RSS of `signals invoke` and of the
process tree of `dagster asset materialize` (whose step runs in process), and each figure
against its target:

  invoke wall <= 3 x raw + 1 s;   invoke peak RSS <= 500 MB;   dagster peak RSS <= 500 MB.

Exit code 1 when a target is missed.

    .venv/bin/python bench/high_cardinality.py [--rows N] [--repeat N]
"""

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import psycopg
from common import USER, collector_yaml, dsn, scratch_dir, throwaway_database

DAY = "2026-06-01"
SQL = (
    "SELECT account AS customer, SUM(amount) AS value FROM orders "
    "WHERE created_at >= :window_start AND created_at < :window_end GROUP BY account"
)
RAW = SQL.replace(":window_start", f"'{DAY}'").replace(":window_end", "'2026-06-02'")
BIN = Path(sys.executable).parent
MB = 1024 * 1024


def load(database: str, rows: int) -> None:
    """orders(created_at, account, amount): `rows` rows on DAY, `rows` distinct accounts."""
    with psycopg.connect(dsn(database), autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE orders (created_at timestamptz NOT NULL, account text NOT NULL, "
            "amount numeric(12, 2) NOT NULL)"
        )
        conn.execute(
            "INSERT INTO orders SELECT "
            f"timestamptz '{DAY} 00:00:00+00' + (i::float8 / %(n)s) * interval '1 day', "
            "'acct_' || lpad(((i * 7919) %% %(n)s)::text, 8, '0'), "
            "((i * 104729) %% 100000)::numeric / 100 "
            "FROM generate_series(0::bigint, %(last)s::bigint) AS i",
            {"n": rows, "last": rows - 1},
        )
        conn.execute("VACUUM ANALYZE orders")


def run(argv: list[str], env: dict[str, str]) -> tuple[float, int]:
    """Wall seconds and peak RSS (bytes, the largest process of its tree) of one command."""
    started = time.perf_counter()
    process = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    if status != 0:
        error = process.stderr.read().decode() if process.stderr else ""
        raise SystemExit(f"{argv[0]} failed ({status}):\n{error[-3000:]}")
    return seconds, usage.ru_maxrss * 1024


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with throwaway_database("signals_bench_hc") as database, scratch_dir("hc_") as tmp:
        os.environ["SIGNALS_DATA_DIR"] = str(tmp)  # the file sink writes under the scratch dir
        print(f"loading {args.rows:,} rows ({args.rows:,} accounts) ...", flush=True)
        load(database, args.rows)
        folder = tmp / "collectors"
        folder.mkdir()
        audit = tmp / "audit.jsonl"
        collector = folder / "hc.yaml"
        collector.write_text(
            collector_yaml(
                name="bench.hc.revenue",
                description="Revenue per account (high cardinality)",
                metric="bench.hc.revenue",
                start="2026-01-01",
                database=database,
                sql=SQL,
                audit=audit,
            )
        )
        home = tmp / "dagster_home"
        home.mkdir()
        (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
        env = {**os.environ, "SIGNALS_COLLECTORS_DIR": str(folder), "DAGSTER_HOME": str(home)}
        copy = f"\\copy ({RAW}) to /dev/null"
        psql = ["psql", "-X", "-q", "-h", "127.0.0.1", "-U", USER, "-d", database, "-c", copy]
        select = ["--select", "bench_hc_revenue", "--partition", DAY]
        commands = {
            "raw": psql,
            "invoke": [str(BIN / "signals"), "invoke", str(collector), "--partition", DAY],
            "dagster": [
                str(BIN / "dagster"),
                "asset",
                "materialize",
                "-m",
                "signals_dagster.definitions",
                *select,
            ],
        }
        walls: dict[str, list[float]] = {name: [] for name in commands}
        peaks: dict[str, list[int]] = {name: [] for name in commands}
        run(commands["raw"], env)  # warm the table into the page cache
        for round_ in range(args.repeat):
            names = list(commands)
            for name in names[round_ % 3 :] + names[: round_ % 3]:
                seconds, peak = run(commands[name], env)
                walls[name].append(seconds)
                peaks[name].append(peak)
                audit.unlink(missing_ok=True)
    best = {name: min(values) for name, values in walls.items()}
    print(f"\n{args.rows:,} result rows, best of {args.repeat} (median):")
    for name in commands:
        print(
            f"  {name:8s} {best[name]:7.2f} s ({statistics.median(walls[name]):.2f} s)"
            f"   peak RSS {max(peaks[name]) / MB:6.0f} MB"
        )
    target = 3 * best["raw"] + 1
    checks = [
        ("invoke wall <= 3 x raw + 1 s", best["invoke"], target, "s"),
        ("invoke peak RSS <= 500 MB", max(peaks["invoke"]) / MB, 500, "MB"),
        ("dagster peak RSS <= 500 MB", max(peaks["dagster"]) / MB, 500, "MB"),
    ]
    print(f"\n  invoke / raw = {best['invoke'] / best['raw']:.2f} x")
    ok = True
    for label, value, limit, unit in checks:
        passed = value <= limit
        ok &= passed
        verdict = "ok" if passed else "MISSED"
        print(f"  {label:32s} {value:8.2f} {unit} vs {limit:.2f} {unit}: {verdict}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
