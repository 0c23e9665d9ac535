"""Backfill of a year of daily partitions: one Dagster run next to the bare GROUP BY and N runs.

A throwaway Postgres database (127.0.0.1:5432, user postgres, dropped at the end) gets an
`orders` table spread over the 365 days of 2025 (index on created_at, as an orders table has).
Three daily collectors, each with one file sink in a temp dir, are compiled once with
build_definitions(load_catalog(dir), dir). After one warm-up round, methods interleaved (order
rotated per round), the run measures:

  (a)   floor    ONE `GROUP BY date_trunc('day', created_at, 'UTC'), account` over the whole
                 year (the bounds (b) binds) through psycopg: connect, execute, fetchall
  (b)   range    a range-capable collector (its SQL returns grain_datetime): the 365 partitions
                 as ONE run; one query answers the whole range
  (c)   window   the same single run with a per-window collector (no grain_datetime): 365
                 queries inside the run over one connection
  (d1)  1 run    one single-partition run of the per-window collector, in process (--samples
                 days per round); (d1) x 365 is the in-process lower bound of 365 separate runs
  (dp)  1 run    the same as a separate process, as Dagster runs each of N runs (a run worker
                 with the default multiprocess executor): `dagster asset materialize -m
                 signals_dagster.definitions --partition DAY` on a sqlite DAGSTER_HOME
                 (--process-samples per round)
  (d)            365 separate partition runs = (dp) median x 365
  fixed          Dagster's fixed run cost: a one-partition run whose query is trivial
  (e)            the trivial collector's 365-partition run: per-partition cost without data
  (f)            Dagster alone: a no-op daily asset, the 365 partitions as one run
  (fg)           (f) with (bg)'s four per-partition asset checks, each logging one passing
                 evaluation per partition (4 x 365): what Dagster alone costs to record them
  (bg)           (b) with three checks and one Rego policy (the quality gate)
  (b0), (c0)     signals_dagster.collect.collect() for the 365 windows, no Dagster

In-process runs use the cheapest honest path: each asset job is resolved once from the
definitions (`defs.resolve_job_def("<asset>_job")`) and `execute_in_process(instance=...,
tags={"dagster/asset_partition_range_start": "2025-01-01", ..._end: "2025-12-31"})` (or
partition_key=...) runs it on a DagsterInstance.ephemeral() made before the timer starts (a
long-lived instance, as a daemon has; its creation is printed apart).

Checks: every (b)/(c) run leaves 365 x accounts records in its file sink; (b), (c), (d1) and
(dp) give identical (uuid, value) records for the sampled partitions, (b) and (c) identical
records for all 365, and (b)'s values equal the floor's sums.

Targets (exit code 1 when one fails):
  (b) <= 2 x (a) + (f): Dagster's own cost of the same 365-partition run is its fixed cost
      (a 1-partition run as the fixed cost is printed too, for information)
  (b) >= 50 x faster than (d), like for like: (d) = (dp) x 365 is measured with a process per
      run, so (b) is charged the same per-run process cost: (b) + (dp) - (d1). The in-process
      ratio (d1) x 365 / (b) is printed as well.

    .venv/bin/python bench/backfill.py [--rows N] [--repeat N] [--samples N]
                                       [--process-samples N] [--profile]
"""

import argparse
import cProfile
import io
import json
import os
import pstats
import subprocess
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import dagster as dg
import psycopg
from common import (
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

ROOT = Path(__file__).resolve().parents[1]
DAYS = 365
FIRST_KEY, LAST_KEY = "2025-01-01", "2025-12-31"
YEAR = (datetime(2025, 1, 1, tzinfo=UTC), datetime(2026, 1, 1, tzinfo=UTC))
FIRST_SAMPLE, SAMPLE_STEP = date(2025, 1, 10), 35
METRIC = "bench.orders.revenue"
RANGE_SQL = (
    "SELECT date_trunc('day', created_at, 'UTC') AS grain_datetime, account AS customer, "
    "SUM(amount) AS value FROM orders "
    "WHERE created_at >= :window_start AND created_at < :window_end GROUP BY 1, 2"
)
WINDOW_SQL = (
    "SELECT account AS customer, SUM(amount) AS value FROM orders "
    "WHERE created_at >= :window_start AND created_at < :window_end GROUP BY 1"
)
# Range-capable and data-free: one row per day of the range, no table read.
TRIVIAL_SQL = (
    "SELECT generate_series(:window_start, :window_end - interval '1 day', interval '1 day') "
    "AS grain_datetime, 'all' AS customer, 1 AS value"
)
FLOOR_SQL = RANGE_SQL.replace(":window_start", "%(start)s").replace(":window_end", "%(end)s")
RANGE_TAGS = {
    "dagster/asset_partition_range_start": FIRST_KEY,
    "dagster/asset_partition_range_end": LAST_KEY,
}
TARGET_FACTOR, TARGET_SPEEDUP = 2.0, 50.0
# (bg): the range collector with three checks and one Rego policy, against (b) without them.
GATED_METRIC = "bench.orders.revenue.gated"
TARGET_GATE = 1.15
GATE_CHECKS = ("not_empty", "range", "anomaly", "policy_bench")  # what (bg) evaluates per day
GATE_YAML = """\
checks:
  - type: not_empty
  - type: range
    min: 0
  - type: anomaly
    on: value_sum
    severity: warn
"""
GATE_POLICY = """\
package signals.policies.bench

applies_to := {"bench.orders.revenue.gated"}

deny contains msg if {
  some record in input.records
  record.value < 0
  msg := sprintf("negative value %v", [record.value])
}
"""

Record = tuple[str, float]  # (uuid, value)


@dataclass(frozen=True)
class Collector:
    """One benchmark collector: its name, query, metric and file sink."""

    name: str
    sql: str
    metric: str
    audit: Path
    description: str

    @property
    def asset(self) -> str:
        """Its asset key (the collector name with non-word characters as `_`)."""
        return "".join(c if c.isalnum() or c == "_" else "_" for c in self.name)


def table_facts(database: str) -> tuple[int, int, int]:
    """Rows, days and accounts in the table."""
    with psycopg.connect(dsn(database)) as conn:
        row = conn.execute(
            "SELECT count(*), count(DISTINCT date_trunc('day', created_at, 'UTC')), "
            "count(DISTINCT account) FROM orders"
        ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1]), int(row[2])


def floor_query(database: str) -> list[tuple[Any, ...]]:
    """What a bare script does: connect, execute the one GROUP BY, fetchall."""
    with psycopg.connect(dsn(database)) as conn:
        return conn.execute(FLOOR_SQL, {"start": YEAR[0], "end": YEAR[1]}).fetchall()


def read_audit(path: Path) -> list[dict[str, Any]]:
    """The records a file sink received."""
    with path.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def by_day(records: list[dict[str, Any]]) -> dict[str, set[Record]]:
    """(uuid, value) records per grain day (YYYY-MM-DD)."""
    days: dict[str, set[Record]] = {}
    for r in records:
        days.setdefault(r["grain_datetime"][:10], set()).add((r["uuid"], float(r["value"])))
    return days


class Bench:
    """The measured methods over one database and one collectors folder."""

    def __init__(self, database: str, tmp: Path, samples: list[str], accounts: int) -> None:
        self.database = database
        self.samples = samples
        self.accounts = accounts
        self.expected = DAYS * accounts  # records of a 365-partition backfill
        self.folder = tmp / "collectors"
        self.folder.mkdir()
        self.home = tmp / "dagster_home"
        self.home.mkdir()
        (self.home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
        self.collectors = {
            "range": Collector(
                "bench.backfill.range", RANGE_SQL, METRIC, tmp / "range.jsonl", "range-capable"
            ),
            "window": Collector(
                "bench.backfill.window", WINDOW_SQL, METRIC, tmp / "window.jsonl", "per window"
            ),
            "trivial": Collector(
                "bench.backfill.trivial",
                TRIVIAL_SQL,
                "bench.trivial",
                tmp / "trivial.jsonl",
                "trivial query",
            ),
            "gated": Collector(
                "bench.backfill.gated",
                RANGE_SQL,
                GATED_METRIC,
                tmp / "gated.jsonl",
                "range-capable, three checks and one policy",
            ),
        }
        for key, c in self.collectors.items():
            (self.folder / f"{key}.yaml").write_text(
                collector_yaml(
                    name=c.name,
                    description=f"Backfill benchmark, {c.description}",
                    metric=c.metric,
                    start=FIRST_KEY,
                    database=database,
                    sql=c.sql,
                    audit=c.audit,
                    extra=GATE_YAML if key == "gated" else "",
                )
            )
        (tmp / "policies").mkdir()  # beside the collectors folder: its policies
        (tmp / "policies" / "bench.rego").write_text(GATE_POLICY)
        started = time.perf_counter()
        self.catalog = load_catalog(str(self.folder))
        defs = build_definitions(self.catalog, str(self.folder))
        self.jobs = {k: defs.resolve_job_def(f"{c.asset}_job") for k, c in self.collectors.items()}
        self.build_seconds = time.perf_counter() - started
        keys = [(YEAR[0].date() + timedelta(days=i)).isoformat() for i in range(DAYS)]
        self.windows = {
            key: [window_for_key(self.catalog.get(self.collectors[key].name), k) for k in keys]
            for key in ("range", "window")
        }
        self.floor: dict[tuple[str, str], Decimal] = {}
        self.records: dict[str, dict[str, set[Record]]] = {"d1": {}, "dp": {}}
        self.process_round = 0

    # -- methods: each returns the seconds of its timed part(s) ---------------------------

    def run_floor(self) -> float:
        """(a) the one GROUP BY through psycopg."""
        seconds, rows = timed(floor_query, self.database)
        if len(rows) != self.expected:
            raise AssertionError(f"floor: {len(rows)} groups, expected {self.expected}")
        self.floor = {(g.astimezone(UTC).date().isoformat(), a): v for g, a, v in rows}
        return seconds

    def _run(self, key: str, **kwargs: Any) -> tuple[float, dict[str, set[Record]]]:
        """One in-process run of a collector's job; its file sink's records by day."""
        collector = self.collectors[key]
        collector.audit.unlink(missing_ok=True)
        instance = dg.DagsterInstance.ephemeral()
        seconds, result = timed(self.jobs[key].execute_in_process, instance=instance, **kwargs)
        if not result.success:
            raise AssertionError(f"{collector.name}: run failed")
        evaluations = sum(e.event_type_value == "ASSET_CHECK_EVALUATION" for e in result.all_events)
        if key == "gated" and evaluations < len(GATE_CHECKS) * DAYS:  # each check, per day
            raise AssertionError(
                f"{collector.name}: {evaluations} check evaluations, not {len(GATE_CHECKS) * DAYS}"
            )
        records = read_audit(collector.audit)
        days = by_day(records)
        keys = kwargs.get("partition_key") or "all"
        wanted = DAYS if keys == "all" else 1
        per_day = 1 if key == "trivial" else self.accounts
        if len(days) != wanted or len(records) != wanted * per_day:
            raise AssertionError(
                f"{collector.name} ({keys}): file sink got {len(records)} records over "
                f"{len(days)} day(s), expected {wanted * per_day} over {wanted}"
            )
        return seconds, days

    def run_backfill(self, key: str) -> float:
        """(b) / (c) / (e): the 365 partitions as one run."""
        seconds, days = self._run(key, tags=RANGE_TAGS)
        self.records[key] = days
        return seconds

    def run_single(self, day: str) -> float:
        """(d1) one partition of the per-window collector as its own in-process run."""
        seconds, days = self._run("window", partition_key=day)
        self.records["d1"][day] = days[day]
        return seconds

    def run_trivial(self) -> float:
        """fixed: one partition whose query does no work."""
        return self._run("trivial", partition_key=self.samples[0])[0]

    def run_process(self, day: str) -> float:
        """(dp) one partition of the per-window collector as a run in its own process."""
        collector = self.collectors["window"]
        collector.audit.unlink(missing_ok=True)
        env = {
            **os.environ,
            "DAGSTER_HOME": str(self.home),
            "SIGNALS_COLLECTORS_DIR": str(self.folder),
        }
        command = [
            sys.executable,
            "-m",
            "dagster",
            "asset",
            "materialize",
            "-m",
            "signals_dagster.definitions",
            "--select",
            collector.asset,
            "--partition",
            day,
        ]
        seconds, done = timed(
            subprocess.run, command, env=env, cwd=ROOT, capture_output=True, text=True
        )
        if done.returncode:
            raise AssertionError(f"{' '.join(command)} failed:\n{done.stderr[-3000:]}")
        days = by_day(read_audit(collector.audit))
        if list(days) != [day] or len(days[day]) != self.accounts:
            raise AssertionError(f"process run {day}: unexpected records {sorted(days)}")
        self.records["dp"][day] = days[day]
        return seconds

    def run_processes(self, count: int) -> list[float]:
        """`count` process runs, on sample days taken in turn across rounds."""
        first = self.process_round * count
        self.process_round += 1
        days = [self.samples[(first + i) % len(self.samples)] for i in range(count)]
        return [self.run_process(day) for day in days]

    def run_collect(self, key: str) -> float:
        """(b0) / (c0): collect() for the 365 windows, no Dagster."""
        spec = self.catalog.get(self.collectors[key].name)
        seconds, collected = timed(collect, spec, self.windows[key])
        count = sum(len(c.records) for c in collected)
        if count != self.expected:
            raise AssertionError(f"collect {key}: {count} records, expected {self.expected}")
        return seconds

    def methods(self, process_samples: int) -> dict[str, Callable[[bool], list[float]]]:
        """Name -> callable(warm_up) returning one or more timings."""
        return {
            "a": lambda _: [self.run_floor()],
            "b": lambda _: [self.run_backfill("range")],
            "c": lambda _: [self.run_backfill("window")],
            "d1": lambda warm: [self.run_single(d) for d in self.samples[: 1 if warm else None]],
            "dp": lambda warm: self.run_processes(1 if warm else process_samples),
            "fixed": lambda _: [self.run_trivial()],
            "e": lambda _: [self.run_backfill("trivial")],
            "bg": lambda _: [self.run_backfill("gated")],
            "b0": lambda _: [self.run_collect("range")],
            "c0": lambda _: [self.run_collect("window")],
            "instance": lambda _: [timed(dg.DagsterInstance.ephemeral)[0]],
        }

    # -- checks -----------------------------------------------------------------------------

    def check_records(self) -> str:
        """(b) == (c) everywhere, == (d1), (dp) on the samples, (b)'s values == the floor."""
        b, c = self.records["range"], self.records["window"]
        if b != c:
            differ = sorted(k for k in set(b) | set(c) if b.get(k) != c.get(k))
            raise AssertionError(f"(b) and (c) records differ on {differ[:5]}")
        for method in ("d1", "dp"):
            for day, sampled in self.records[method].items():
                if not b[day] == c[day] == sampled:
                    raise AssertionError(f"{day}: (b), (c) and ({method}) records differ")
        ours = {
            (r["grain_datetime"][:10], r["tags"]["customer"]): float(r["value"])
            for r in read_audit(self.collectors["range"].audit)
        }
        if set(ours) != set(self.floor):
            raise AssertionError("(b) and the floor have different (day, account) groups")
        for group, value in self.floor.items():
            if abs(ours[group] - float(value)) > 1e-6 * max(1.0, abs(float(value))):
                raise AssertionError(f"{group}: (b) value {ours[group]} != floor {value}")
        return (
            f"checks passed: every (b)/(c) run wrote {self.expected} records to its file sink; "
            f"(b) == (c) (uuid, value) on all {DAYS} partitions; (b) == (c) == (d1) on "
            f"{len(self.records['d1'])} and == (dp) on {len(self.records['dp'])} sampled "
            f"partitions; (b) values == floor sums"
        )

    def profile(self, key: str) -> None:
        """cProfile of one (b) / (c) run (after the measurement; not timed)."""
        profiler = cProfile.Profile()
        instance = dg.DagsterInstance.ephemeral()
        with discard_stderr():
            profiler.enable()
            self.jobs[key].execute_in_process(instance=instance, tags=RANGE_TAGS)
            profiler.disable()
        out = io.StringIO()
        stats = pstats.Stats(profiler, stream=out)
        stats.sort_stats("cumulative").print_stats(r"signals_dagster[/\\].*\.py", 22)
        stats.sort_stats("tottime").print_stats(15)
        label = "(b) range-capable" if key == "range" else "(c) per-window"
        print(f"\n== cProfile of one {label} run (profiler overhead inflates times) ==")
        print("\n".join(line[:150] for line in out.getvalue().strip().splitlines()))


class NoopIOManager(dg.ConfigurableIOManager):
    """Stores nothing."""

    def handle_output(self, context: dg.OutputContext, obj: object) -> None:
        """Nothing to write."""

    def load_input(self, context: dg.InputContext) -> object:
        """Nothing to read."""
        return None


def noop_job() -> dg.JobDefinition:
    """(f) Dagster alone: a daily asset that does nothing, same partitions and policy as ours."""

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.BetaWarning)  # backfill_policy is beta in 1.13

        @dg.asset(
            partitions_def=dg.DailyPartitionsDefinition(start_date=FIRST_KEY),
            backfill_policy=dg.BackfillPolicy.single_run(),
            io_manager_key="noop",
        )
        def bench_noop(context: dg.AssetExecutionContext) -> int:
            return len(context.partition_keys)

    defs = dg.Definitions(assets=[bench_noop], resources={"noop": NoopIOManager()})
    return defs.resolve_implicit_global_asset_job_def()


def noop_checked_job() -> dg.JobDefinition:
    """(fg) Dagster alone with (bg)'s four per-partition asset checks: the no-op asset of (f)
    logging one passing evaluation of each check for each of its partitions (as ours does:
    `AssetCheckEvaluation(partition=...)` from the op), with metadata of the same shape."""
    key = dg.AssetKey("bench_noop_checked")
    pdef = dg.DailyPartitionsDefinition(start_date=FIRST_KEY)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.BetaWarning)  # backfill_policy is beta in 1.13
        warnings.simplefilter("ignore", dg.PreviewWarning)  # partitioned check specs
        specs = [
            dg.AssetCheckSpec(name, asset=key, blocking=True, partitions_def=pdef)
            for name in GATE_CHECKS
        ]

        @dg.multi_asset(
            specs=[dg.AssetSpec(key, partitions_def=pdef)],
            check_specs=specs,
            backfill_policy=dg.BackfillPolicy.single_run(),
        )
        def bench_noop_checked(
            context: dg.AssetExecutionContext,
        ) -> Iterator[dg.Output[None] | dg.AssetCheckEvaluation]:
            for partition in context.partition_keys:
                for name in GATE_CHECKS:
                    yield dg.AssetCheckEvaluation(
                        asset_key=key,
                        check_name=name,
                        passed=True,
                        metadata={"value": 1.0, "min": 0, "result": "ok"},
                        severity=dg.AssetCheckSeverity.ERROR,
                        description="ok",
                        blocking=True,
                        partition=partition,
                    )
            for spec in specs:
                yield dg.Output(None, output_name=spec.get_python_identifier())
            yield dg.Output(None, output_name=key.to_python_identifier())

    defs = dg.Definitions(assets=[bench_noop_checked], resources={"io_manager": NoopIOManager()})
    return defs.resolve_implicit_global_asset_job_def()


def run_noop_checked(job: dg.JobDefinition) -> float:
    """(fg) one run of the checked no-op asset over the 365 partitions."""
    instance = dg.DagsterInstance.ephemeral()
    seconds, result = timed(job.execute_in_process, instance=instance, tags=RANGE_TAGS)
    evaluations = sum(e.event_type_value == "ASSET_CHECK_EVALUATION" for e in result.all_events)
    if not result.success or evaluations != len(GATE_CHECKS) * DAYS:
        raise AssertionError(f"checked no-op run: {evaluations} check evaluations")
    return seconds


def run_noop(job: dg.JobDefinition) -> float:
    """(f) one run of the no-op asset over the 365 partitions."""
    instance = dg.DagsterInstance.ephemeral()
    seconds, result = timed(job.execute_in_process, instance=instance, tags=RANGE_TAGS)
    if not result.success or len(result.get_asset_materialization_events()) != DAYS:
        raise AssertionError("no-op run: expected a successful run with 365 materialisations")
    return seconds


def measure(bench: Bench, repeat: int, process_samples: int) -> dict[str, list[float]]:
    """One warm-up round, then `repeat` timed rounds; method order rotated per round."""
    noop = noop_job()
    methods = bench.methods(process_samples)
    checked = noop_checked_job()
    methods["f"] = lambda _: [run_noop(noop)]
    methods["fg"] = lambda _: [run_noop_checked(checked)]
    names = list(methods)
    times: dict[str, list[float]] = {name: [] for name in names}
    with discard_stderr():
        for round_ in range(repeat + 1):
            for name in rotated(names, round_):
                seconds = methods[name](round_ == 0)
                if round_:
                    times[name] += seconds
    return times


def report(times: dict[str, list[float]]) -> bool:
    """Print medians, ratios and the two target checks; True when both pass."""
    med = medians(times)
    a, b, c, fixed = med["a"], med["b"], med["c"], med["fixed"]
    d_inproc, d = med["d1"] * DAYS, med["dp"] * DAYS
    per_process = med["dp"] - med["d1"]  # what a run in its own process adds
    b_process = b + per_process
    rows = [
        ("a", "(a)  floor: one GROUP BY over the year, psycopg"),
        ("b", "(b)  one run, range-capable collector (1 query)"),
        ("c", f"(c)  one run, per-window collector ({DAYS} queries)"),
        ("d1", "(d1) single-partition run, in process"),
        ("dp", "(dp) single-partition run, own process (CLI)"),
        ("fixed", "     fixed run cost: 1 partition, trivial query"),
        ("e", f"(e)  one run, trivial query, {DAYS} partitions"),
        ("f", f"(f)  Dagster alone: no-op asset, {DAYS} partitions"),
        (
            "fg",
            f"(fg) (f) with {len(GATE_CHECKS)} no-op checks: {len(GATE_CHECKS) * DAYS} evaluations",
        ),
        ("bg", "(bg) (b) with three checks and one Rego policy"),
        ("b0", f"(b0) collect() range, {DAYS} windows, no Dagster"),
        ("c0", f"(c0) collect() per window, {DAYS} windows, no Dagster"),
        ("instance", "     DagsterInstance.ephemeral() (not in runs)"),
    ]
    print(
        f"\n== medians of {len(times['a'])} timed rounds ({len(times['d1'])} runs for d1, "
        f"{len(times['dp'])} for dp) =="
    )
    print(f"  {'method':52} {'median s':>9} {'min s':>8} {'max s':>8} {'x (a)':>8}")
    for name, text in rows:
        values = times[name]
        print(
            f"  {text:52} {med[name]:9.3f} {min(values):8.3f} {max(values):8.3f} "
            f"{med[name] / a:8.2f}"
        )
    print(f"  {f'(d)  {DAYS} separate runs = (dp) x {DAYS}':52} {d:9.1f}")
    print(f"  {f'     in-process lower bound = (d1) x {DAYS}':52} {d_inproc:9.1f}")
    print(
        f"\n  ratios: (b)/(a) = {b / a:.2f}, (c)/(a) = {c / a:.2f}, (c)/(b) = {c / b:.2f}, "
        f"(b)/fixed = {b / fixed:.1f}, (e)/fixed = {med['e'] / fixed:.1f}\n"
        f"          (d)/(b + process) = {d / b_process:.1f}, (d)/(b) = {d / b:.1f}, "
        f"(d)/(c) = {d / c:.1f}, in process: (d1)x{DAYS}/(b) = {d_inproc / b:.1f}, "
        f"(d1)x{DAYS}/(c) = {d_inproc / c:.1f}"
    )
    f, b0, c0 = med["f"], med["b0"], med["c0"]
    print(
        f"  where the time goes: (b) {b:.3f} = floor (a) {a:.3f} + rows->records (b0)-(a) "
        f"{b0 - a:.3f} + IO manager/sinks/metadata (b)-(b0)-(f) {b - b0 - f:.3f} + "
        f"Dagster alone (f) {f:.3f} s\n"
        f"                       (c) {c:.3f} = (a) {a:.3f} + (c0)-(a) {c0 - a:.3f} + "
        f"(c)-(c0)-(f) {c - c0 - f:.3f} + (f) {f:.3f} s\n"
        f"                       per partition: (e) trivial query "
        f"{(med['e'] - fixed) / (DAYS - 1) * 1000:.1f} ms, (f) Dagster alone "
        f"{f / DAYS * 1000:.1f} ms"
    )
    # Dagster's fixed cost of THIS run: (f), the same 365-partition run of a no-op asset (its
    # per-partition event bookkeeping is Dagster's, whatever the asset does).
    limit = TARGET_FACTOR * a + f
    first = b <= limit
    second = d >= TARGET_SPEEDUP * b_process
    print(
        f"\n  target (b) <= {TARGET_FACTOR:g} x (a) + Dagster's cost of the run (f): {b:.3f} s <= "
        f"{TARGET_FACTOR:g} x {a:.3f} + {f:.3f} = {limit:.3f} s -> {'PASS' if first else 'FAIL'}\n"
        f"    (stricter, with a 1-partition run as the fixed cost: {b:.3f} <= "
        f"{TARGET_FACTOR * a + fixed:.3f} s -> "
        f"{'yes' if b <= TARGET_FACTOR * a + fixed else 'no'}; informational)\n"
        f"    (lowest (b) with zero overhead of ours: (a) + (f) = {a + f:.3f} s; ours = "
        f"(b) - (a) - (f) = {b - a - f:.3f} s)"
    )
    print(
        f"  target (b) >= {TARGET_SPEEDUP:g} x faster than (d), a process per run on both sides: "
        f"(d) / ((b) + (dp) - (d1)) = {d:.1f} / ({b:.3f} + {per_process:.3f}) = "
        f"{d / b_process:.1f} -> {'PASS' if second else 'FAIL'}\n"
        f"    (in process on both sides: (d1) x {DAYS} / (b) = {d_inproc:.1f} / {b:.3f} = "
        f"{d_inproc / b:.1f} -> {'yes' if d_inproc >= TARGET_SPEEDUP * b else 'no'}; "
        f"informational, bounded by (d1) x {DAYS} / (a) = {d_inproc / a:.1f})"
    )
    bg = med["bg"]
    third = bg <= TARGET_GATE * b
    dagster_checks = med["fg"] - f  # Dagster recording 1,460 check evaluations, nothing else
    ours = bg - b - dagster_checks
    print(
        f"  target (bg) <= {TARGET_GATE:g} x (b), the quality gate's cost: {bg:.3f} / "
        f"{b:.3f} = {bg / b:.3f} -> {'PASS' if third else 'FAIL'}\n"
        f"    (Dagster alone recording the {len(GATE_CHECKS) * DAYS} per-partition evaluations: "
        f"(fg) - (f) = {dagster_checks:.3f} s, so (bg) >= (b) + {dagster_checks:.3f} = "
        f"{b + dagster_checks:.3f} s = {(b + dagster_checks) / b:.3f} x (b) whatever the checks "
        f"cost;\n     the gate's own cost (bg) - (b) - ((fg) - (f)) = {ours:.3f} s: "
        f"((bg) - ((fg) - (f))) / (b) = {(bg - dagster_checks) / b:.3f}; informational)"
    )
    return first and second and third


def main() -> int:
    """Create the database, measure, check, drop the database."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="orders rows (>= 1e6)")
    parser.add_argument("--repeat", type=int, default=3, help="timed rounds (after 1 warm-up)")
    parser.add_argument("--samples", type=int, default=10, help="in-process runs per round")
    parser.add_argument("--process-samples", type=int, default=2, help="process runs per round")
    parser.add_argument("--profile", action="store_true", help="cProfile one (bg), (b) and (c) run")
    args = parser.parse_args()
    if (
        args.rows < 1_000_000
        or args.repeat < 1
        or not 1 <= args.samples <= 10
        or not 1 <= args.process_samples <= args.samples
    ):
        parser.error(
            "need --rows >= 1000000, --repeat >= 1, 1 <= --samples <= 10, "
            "1 <= --process-samples <= --samples"
        )

    started = time.perf_counter()
    with (
        scratch_dir("signals_bench_") as tmp,
        throwaway_database("signals_bench_backfill") as database,
    ):
        os.environ["SIGNALS_DATA_DIR"] = str(tmp)  # the file sinks write under the scratch dir
        load_orders(database, args.rows, index=True)
        loaded = time.perf_counter() - started
        total, days, accounts = table_facts(database)
        if days != DAYS:
            raise AssertionError(f"orders cover {days} days, expected {DAYS}")
        samples = [
            (FIRST_SAMPLE + timedelta(days=SAMPLE_STEP * i)).isoformat()
            for i in range(args.samples)
        ]
        bench = Bench(database, tmp, samples, accounts)
        print(
            f"orders: {total} rows over the {DAYS} days of 2025 (~{total // DAYS} a day), "
            f"{accounts} accounts, index on created_at; loaded in {loaded:.1f} s\n"
            f"backfill {FIRST_KEY}..{LAST_KEY}: {DAYS} x {accounts} = {bench.expected} "
            f"records per run, one file sink\n"
            f"definitions built once in {bench.build_seconds:.2f} s; in-process runs: "
            f"job.execute_in_process(instance=<new ephemeral, made before the timer>, "
            f"tags=<range> | partition_key=<day>)\n"
            f"sampled partitions: {', '.join(samples)}\n"
            f"1 warm-up + {args.repeat} timed round(s), methods interleaved, order rotated; "
            f"per round {args.samples} in-process and {args.process_samples} process single runs"
        )
        times = measure(bench, args.repeat, args.process_samples)
        print(bench.check_records())
        ok = report(times)
        if args.profile:
            bench.profile("gated")
            bench.profile("range")
            bench.profile("window")
        print(f"\ntotal wall {time.perf_counter() - started:.1f} s")
        return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
