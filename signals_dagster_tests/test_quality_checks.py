"""Quality checks (`checks:` of a collector or of its metric's contract) against the real
servers: each window's records are judged after collection and before any sink; a failed `error`
check means nothing of the run reaches any sink (file, Kafka on tansu, S3 on SeaweedFS) and the
run fails naming every failing partition and check with its figures; a `warn` check publishes and
warns; `on_fail.quarantine` writes the blocked batch to a marked extra sink, for `signals
redrive`. In Dagster each check is an asset check with one evaluation per partition, in a
single-run backfill too; `change` and `anomaly` read their history from the run's earlier windows,
the instance's materialisation metadata, or (for `signals invoke`) the collector's file sink.

A tmp SQLite database for the check-by-check `signals invoke` cases and the instance-history
runs; Postgres (the machine's server) for the ten-day single-run backfills."""

import json
import logging
import os
import shutil
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import dagster as dg
import psycopg
import pytest
from click.testing import CliRunner

from signals_dagster.catalog import load_catalog
from signals_dagster.cli import main
from signals_dagster.orchestration.factory import build_definitions
from signals_dagster_tests.servers.kafka import TansuBroker, consume_all, create_topic
from signals_dagster_tests.servers.s3 import S3Server
from signals_dagster_tests.test_kafka_sink import failure_message

ROOT = Path(__file__).resolve().parents[1]
METRIC = "qc.revenue"
DAY_SQL = (
    "SELECT country, SUM(amount) AS value FROM orders "
    "WHERE created_at >= :window_start AND created_at < :window_end GROUP BY 1"
)

# --- Helpers ------------------------------------------------------------------------------


def days_from(first: str, count: int) -> list[str]:
    """`count` consecutive partition keys of a daily collector from `first` on."""
    start = date.fromisoformat(first)
    return [(start + timedelta(days=d)).isoformat() for d in range(count)]


def collector_text(
    name: str,
    uri: str,
    sinks: str,
    checks: Sequence[str] = (),
    *,
    source: str = "sqlite",
    sql: str = DAY_SQL,
    start: str = "2026-06-01",
    extra: str = "",
) -> str:
    """A daily collector of METRIC (static tag env=prod) with the given sinks, checks (each a
    YAML flow mapping) and extra top-level YAML."""
    text = textwrap.dedent(
        f"""\
        name: {name}
        metric: {{name: {METRIC}, type: GAUGE, unit: USD, grain: 24h, tags: {{env: prod}}}}
        partitions: {{start: '{start}'}}
        source:
          type: {source}
          config:
            uri: '{uri}'
            sql: "{sql}"
        retries: 0
        sinks:
        """
    ) + textwrap.indent(textwrap.dedent(sinks).strip("\n"), "  ")
    if checks:
        text += "\nchecks:\n" + "".join(f"  - {check}\n" for check in checks)
    return text.rstrip("\n") + "\n" + textwrap.dedent(extra)


def file_sink(path: Path) -> str:
    return f"audit: {{type: file, config: {{path: '{path}'}}}}\n"


def kafka_sink(brokers: str, topic: str) -> str:
    return (
        f"bus: {{type: kafka, config: {{brokers: ['{brokers}'], topic: {topic}, timeout: 10s}}}}\n"
    )


def s3_sink(endpoint: str, bucket: str, prefix: str = "signals", name: str = "lake") -> str:
    return (
        f"{name}: {{type: s3, config: {{bucket: {bucket}, prefix: {prefix}, format: jsonl, "
        f"endpoint_url: '{endpoint}', region: us-east-1, retries: 1}}}}\n"
    )


def file_lines(path: Path) -> list[dict[str, Any]]:
    """The file sink's records (none when the log was never created)."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


Orders = Mapping[str, Sequence[tuple[str, float]]]  # day -> (country, amount) orders


def add_orders(db: Path, orders: Orders) -> None:
    """Orders of each day (a few minutes apart from 01:00 on) into `orders` (made if absent)."""
    rows = []
    for day, items in orders.items():
        start = datetime.fromisoformat(day).replace(hour=1)
        rows += [
            (country, amount, (start + timedelta(minutes=3 * i)).isoformat(sep=" "))
            for i, (country, amount) in enumerate(items)
        ]
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE IF NOT EXISTS orders (country TEXT, amount REAL, created_at TEXT)")
    conn.executemany("INSERT INTO orders VALUES (?, ?, ?)", rows)
    conn.commit()
    conn.close()


def shop(path: Path, orders: Orders) -> str:
    """A SQLite database of the given orders; its URI."""
    add_orders(path, orders)
    return f"sqlite:///{path}"


@dataclass(frozen=True)
class Invoked:
    """One `signals invoke` run in process."""

    exit_code: int
    stdout: str
    stderr: str  # what the command echoes itself (its `error:` lines)
    log: list[str]  # signals_dagster's log lines (the real command prints them on stderr)

    def records(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.stdout.splitlines()]

    def check_lines(self) -> list[str]:
        return [line for line in self.log if line.startswith("check ")]

    def error_lines(self) -> list[str]:
        """The `error:` line and the failures listed under it."""
        lines = self.stderr.splitlines()
        first = next(i for i, line in enumerate(lines) if line.startswith("error: "))
        return [lines[first]] + [x.strip() for x in lines[first + 1 :] if x.startswith("  ")]


class Invoke:
    """`signals invoke FILE --partition DAY [--dry-run]` through click's CliRunner."""

    def __init__(self, caplog: pytest.LogCaptureFixture) -> None:
        self.caplog = caplog

    def __call__(self, path: Path, day: str, dry_run: bool = True) -> Invoked:
        args = ["invoke", str(path), "--partition", day] + (["--dry-run"] if dry_run else [])
        self.caplog.clear()
        with self.caplog.at_level(logging.INFO, logger="signals_dagster"):
            result = CliRunner().invoke(main, args)
        assert result.exception is None or isinstance(result.exception, SystemExit), result.output
        log = [r.getMessage() for r in self.caplog.records if r.name == "signals_dagster"]
        return Invoked(result.exit_code, result.stdout, result.stderr, log)


@pytest.fixture
def invoke(caplog: pytest.LogCaptureFixture) -> Invoke:
    """`signals invoke` in process; the log lines the real command prints on stderr (its
    logging.basicConfig gives way to pytest's handlers) come from caplog."""
    return Invoke(caplog)


def signals(*args: str) -> subprocess.CompletedProcess[str]:
    """The real `signals` command line, as a process."""
    return subprocess.run(
        [sys.executable, "-m", "signals_dagster.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=dict(os.environ),
        cwd=ROOT,
    )


def gate_failed(day: str) -> str:
    return f"error: quality gate failed in 1 window ({day}); nothing was published:"


# --- 1. SQLite: each check type through `signals invoke --dry-run` --------------------------

DAY = "2026-06-10"
PREVIOUS = "2026-06-09"


def test_not_empty(tmp_path: Path, invoke: Invoke) -> None:
    uri = shop(tmp_path / "shop.sqlite", {PREVIOUS: [("us", 10), ("de", 5)]})  # DAY: no order
    path = tmp_path / "revenue.yaml"
    audit = tmp_path / "audit.jsonl"
    path.write_text(collector_text("qc.empty", uri, file_sink(audit), ["{type: not_empty}"]))

    empty = invoke(path, DAY)
    assert empty.exit_code == 1, empty.stderr
    assert empty.stdout == ""
    assert empty.error_lines() == [
        gate_failed(DAY),
        f"check not_empty (error), {DAY}: FAILED: 0 record(s)",
    ]

    full = invoke(path, PREVIOUS)
    assert full.exit_code == 0, full.stderr
    assert {(r["tags"]["country"], r["value"]) for r in full.records()} == {
        ("us", 10),
        ("de", 5),
    }
    assert full.check_lines() == [f"check not_empty (error), {PREVIOUS}: passed: 2 record(s)"]
    assert not audit.exists()  # a dry run writes no sink


RANGE_CASES: dict[str, tuple[str, list[tuple[str, float]], str | None]] = {
    "within (bounds included)": (
        "{type: range, min: 0, max: 100}",
        [("us", 0), ("de", 100), ("fr", 42.5)],
        "check range (error), {day}: passed: values 0 .. 100, bounds [0, 100]",
    ),
    "below min": (
        "{type: range, min: 0, max: 100}",
        [("us", 10), ("de", -2.5)],
        "check range (error), {day}: FAILED: 1 of 2 value(s) out of range "
        "(values -2.5 .. 10, bounds [0, 100])",
    ),
    "above max": (
        "{type: range, min: 0, max: 100}",
        [("us", 100), ("de", 60), ("de", 40.5), ("fr", 3)],  # de sums to 100.5
        "check range (error), {day}: FAILED: 1 of 3 value(s) out of range "
        "(values 3 .. 100.5, bounds [0, 100])",
    ),
    "max only, named": (
        "{type: range, max: 50, name: cap}",
        [("us", 70), ("de", 51), ("fr", -1e6)],
        "check cap (error), {day}: FAILED: 2 of 3 value(s) out of range "
        "(values -1e+06 .. 70, bounds [-inf, 50])",
    ),
}


@pytest.mark.parametrize("case", list(RANGE_CASES), ids=list(RANGE_CASES))
def test_range(case: str, tmp_path: Path, invoke: Invoke) -> None:
    check, orders, expected = RANGE_CASES[case]
    uri = shop(tmp_path / "shop.sqlite", {DAY: orders, PREVIOUS: [("us", 1e9)]})
    path = tmp_path / "revenue.yaml"
    path.write_text(collector_text("qc.range", uri, file_sink(tmp_path / "a.jsonl"), [check]))
    result = invoke(path, DAY)
    line = str(expected).format(day=DAY)
    if ": passed: " in line:
        assert result.exit_code == 0, result.stderr
        assert len(result.records()) == len(orders)
        assert result.check_lines() == [line]
        return
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.error_lines() == [gate_failed(DAY), line]
    assert line in result.check_lines()  # logged as it is judged, too


CHANGE_CHECKS = [
    "{type: change, max_pct: 50, name: sum_change}",
    "{type: change, max_pct: 50, on: record_count, name: count_change}",
]
EIGHT = [f"c{i}" for i in range(8)]
CHANGE_CASES: dict[str, tuple[list[tuple[str, float]], list[tuple[str, float]], list[str]]] = {
    # name: (the previous day's orders, the day's orders, the failing checks' lines)
    "+60% value_sum": (
        [("us", 60), ("de", 40)],
        [("us", 100), ("de", 60)],
        [
            f"sum_change (error), {DAY}: FAILED: value_sum 160 vs 100 in {PREVIOUS} "
            "(60.0%; at most 50%)"
        ],
    ),
    "-60% value_sum": (
        [("us", 60), ("de", 40)],
        [("us", 30), ("de", 10)],
        [
            f"sum_change (error), {DAY}: FAILED: value_sum 40 vs 100 in {PREVIOUS} "
            "(60.0%; at most 50%)"
        ],
    ),
    "+60% record_count, same value_sum": (
        [(c, 16) for c in EIGHT[:5]],
        [(c, 10) for c in EIGHT],
        [
            f"count_change (error), {DAY}: FAILED: record_count 8 vs 5 in {PREVIOUS} "
            "(60.0%; at most 50%)"
        ],
    ),
    "+40% passes": ([("us", 60), ("de", 40)], [("us", 100), ("de", 40)], []),
    "+50% passes (bound included)": ([("us", 60), ("de", 40)], [("us", 90), ("de", 60)], []),
}
CHANGE_PASSES = {  # the passing cases' check lines
    "+40% passes": [
        f"check sum_change (error), {DAY}: passed: value_sum 140 vs 100 in {PREVIOUS} "
        "(40.0%; at most 50%)",
        f"check count_change (error), {DAY}: passed: record_count 2 vs 2 in {PREVIOUS} "
        "(0.0%; at most 50%)",
    ],
    "+50% passes (bound included)": [
        f"check sum_change (error), {DAY}: passed: value_sum 150 vs 100 in {PREVIOUS} "
        "(50.0%; at most 50%)",
        f"check count_change (error), {DAY}: passed: record_count 2 vs 2 in {PREVIOUS} "
        "(0.0%; at most 50%)",
    ],
}


@pytest.mark.parametrize("case", list(CHANGE_CASES), ids=list(CHANGE_CASES))
def test_change_against_the_file_sink(case: str, tmp_path: Path, invoke: Invoke) -> None:
    previous, current, failing = CHANGE_CASES[case]
    uri = shop(tmp_path / "shop.sqlite", {PREVIOUS: previous, DAY: current})
    audit = tmp_path / "audit" / "revenue.jsonl"
    path = tmp_path / "revenue.yaml"
    path.write_text(collector_text("qc.change", uri, file_sink(audit), CHANGE_CHECKS))
    # The previous day, published twice: the history counts each uuid once (its latest copy).
    for _ in range(2):
        published = invoke(path, PREVIOUS, dry_run=False)
        assert published.exit_code == 0, published.stderr
    assert len(file_lines(audit)) == 2 * len(previous)

    result = invoke(path, DAY)
    if not failing:
        assert result.exit_code == 0, result.stderr
        assert len(result.records()) == len(current)
        assert result.check_lines() == CHANGE_PASSES[case]
        return
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.error_lines() == [gate_failed(DAY)] + [f"check {line}" for line in failing]
    assert len(file_lines(audit)) == 2 * len(previous)  # nothing more was written


def test_change_without_history_is_skipped(tmp_path: Path, invoke: Invoke) -> None:
    uri = shop(tmp_path / "shop.sqlite", {PREVIOUS: [("us", 1)], DAY: [("us", 1000)]})
    audit = tmp_path / "audit.jsonl"  # never written: no history
    path = tmp_path / "revenue.yaml"
    path.write_text(collector_text("qc.change", uri, file_sink(audit), CHANGE_CHECKS[:1]))
    result = invoke(path, DAY)
    assert result.exit_code == 0, result.stderr
    assert [r["value"] for r in result.records()] == [1000]
    (line,) = result.check_lines()
    assert line.startswith(f"check sum_change (error), {DAY}: skipped: ")
    assert line.endswith(f"skipped: no value_sum for the previous window {PREVIOUS}")

    # The first partition has no previous window at all.
    path.write_text(
        collector_text("qc.change", uri, file_sink(audit), CHANGE_CHECKS[:1], start=DAY)
    )
    first = invoke(path, DAY)
    assert first.exit_code == 0, first.stderr
    (line,) = first.check_lines()
    assert line.endswith("skipped: no previous window to compare value_sum with")


# Eight days of history: value_sum 100, 102, 98, 101, 99, 100, 103, 97: mean 100, stddev
# sqrt(28 / 8) = 1.87083 (population); the ninth day is judged.
HISTORY_DAYS = days_from("2026-06-01", 8)
HISTORY_SUMS = [100, 102, 98, 101, 99, 100, 103, 97]
JUDGED_DAY = "2026-06-09"


def history_orders(days: Sequence[str] = HISTORY_DAYS) -> dict[str, list[tuple[str, float]]]:
    """The history's orders on the given days (its first sums)."""
    sums = HISTORY_SUMS[: len(days)]
    return {day: day_orders(total) for day, total in zip(days, sums, strict=True)}


def day_orders(total: float) -> list[tuple[str, float]]:
    return (
        [("us", total - 40), ("de", 40)] if total >= 40 else [("us", total / 2), ("de", total / 2)]
    )


def z_line(name: str, severity: str, total: int, z: str, direction: str, state: str) -> str:
    return (
        f"check {name} ({severity}), {JUDGED_DAY}: {state}: value_sum {total:g}: z {z} against "
        f"mean 100, stddev 1.87083 of 8 window(s) (at most 3 sigma, {direction})"
    )


@pytest.fixture(scope="module")
def anomaly_history(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A shop and a file sink holding the eight history days, published by real invokes (each
    judged by the anomaly check as it went: skipped until 7 days of history)."""
    tmp = tmp_path_factory.mktemp("anomaly")
    db = tmp / "shop.sqlite"
    uri = shop(db, history_orders())
    audit = tmp / "audit.jsonl"
    path = tmp / "revenue.yaml"
    path.write_text(collector_text("qc.anomaly", uri, file_sink(audit), ["{type: anomaly}"]))
    runner = CliRunner()
    for day in HISTORY_DAYS:
        result = runner.invoke(main, ["invoke", str(path), "--partition", day])
        assert result.exit_code == 0, result.output
    assert len(file_lines(audit)) == 16
    return db, audit


def anomaly_collector(
    tmp_path: Path, history: tuple[Path, Path], total: float, check: str
) -> tuple[Path, Path]:
    """The collector over copies of the history's shop and file sink, the judged day added."""
    db, audit = tmp_path / "shop.sqlite", tmp_path / "audit.jsonl"
    shutil.copy(history[0], db)
    shutil.copy(history[1], audit)
    add_orders(db, {JUDGED_DAY: day_orders(total)})
    path = tmp_path / "revenue.yaml"
    path.write_text(collector_text("qc.anomaly", f"sqlite:///{db}", file_sink(audit), [check]))
    return path, audit


def test_anomaly_cold_start_is_skipped(tmp_path: Path, invoke: Invoke) -> None:
    days = HISTORY_DAYS[:3]
    uri = shop(tmp_path / "shop.sqlite", {**history_orders(days), "2026-06-04": [("us", 1e6)]})
    audit = tmp_path / "audit.jsonl"
    path = tmp_path / "revenue.yaml"
    path.write_text(collector_text("qc.anomaly", uri, file_sink(audit), ["{type: anomaly}"]))
    first = invoke(path, days[0], dry_run=False)
    assert first.exit_code == 0, first.stderr
    (line,) = first.check_lines()
    assert line.endswith("skipped: 0 of 7 windows of history")
    for day in days[1:]:
        assert invoke(path, day, dry_run=False).exit_code == 0
    spike = invoke(path, "2026-06-04")  # a millionfold value, but only 3 windows to judge by
    assert spike.exit_code == 0, spike.stderr
    assert [r["value"] for r in spike.records()] == [1e6]
    (line,) = spike.check_lines()
    assert line.startswith("check anomaly (error), 2026-06-04: skipped: ")
    assert line.endswith("skipped: 3 of 7 windows of history")


ANOMALY_CASES: dict[str, tuple[str, int, str | None]] = {
    # name: (check, the judged day's value_sum, its failing line (None: passes))
    "spike": ("{type: anomaly}", 200, z_line("anomaly", "error", 200, "+53.45", "both", "FAILED")),
    "drop": ("{type: anomaly}", 10, z_line("anomaly", "error", 10, "-48.11", "both", "FAILED")),
    "normal": ("{type: anomaly}", 101, None),
    "direction up ignores a drop": ("{type: anomaly, direction: up}", 10, None),
    "direction up, spike": (
        "{type: anomaly, direction: up, name: surge}",
        200,
        z_line("surge", "error", 200, "+53.45", "up", "FAILED"),
    ),
    "direction down ignores a spike": ("{type: anomaly, direction: down}", 200, None),
    "wider sigma": ("{type: anomaly, sigma: 60}", 200, None),
    # The last 7 windows only: 102, 98, 101, 99, 100, 103, 97: mean 100, stddev 2.
    "lookback 7": (
        "{type: anomaly, lookback: 7}",
        200,
        f"check anomaly (error), {JUDGED_DAY}: FAILED: value_sum 200: z +50.00 against mean 100, "
        "stddev 2 of 7 window(s) (at most 3 sigma, both)",
    ),
}


@pytest.mark.parametrize("case", list(ANOMALY_CASES), ids=list(ANOMALY_CASES))
def test_anomaly_against_the_file_sink(
    case: str, tmp_path: Path, invoke: Invoke, anomaly_history: tuple[Path, Path]
) -> None:
    check, total, failing = ANOMALY_CASES[case]
    path, _audit = anomaly_collector(tmp_path, anomaly_history, total, check)
    result = invoke(path, JUDGED_DAY)
    if failing is None:
        assert result.exit_code == 0, result.stderr
        assert sum(float(r["value"]) for r in result.records()) == total
        (line,) = result.check_lines()
        assert ": passed: value_sum " in line
        assert "against mean 100, stddev 1.87083 of 8 window(s)" in line
        return
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.error_lines() == [gate_failed(JUDGED_DAY), failing]


def test_anomaly_warn_publishes(
    tmp_path: Path, invoke: Invoke, anomaly_history: tuple[Path, Path]
) -> None:
    path, audit = anomaly_collector(
        tmp_path, anomaly_history, 200, "{type: anomaly, severity: warn}"
    )
    dry = invoke(path, JUDGED_DAY)
    assert dry.exit_code == 0, dry.stderr
    assert "error" not in dry.stderr
    warned = z_line("anomaly", "warn", 200, "+53.45", "both", "FAILED")
    assert dry.check_lines() == [warned]
    assert len(file_lines(audit)) == 16  # a dry run publishes to stdout only

    published = invoke(path, JUDGED_DAY, dry_run=False)
    assert published.exit_code == 0, published.stderr
    assert published.check_lines() == [warned]
    written = file_lines(audit)
    assert len(written) == 18
    assert written[-2:] == published.records()
    assert {r["value"] for r in written[-2:]} == {160, 40}


def test_invoke_prints_check_results_on_stderr(
    tmp_path: Path, anomaly_history: tuple[Path, Path]
) -> None:
    """The real command: check results on stderr; a warn failure exits 0, an error one 1 (with
    --dry-run too)."""
    path, _audit = anomaly_collector(
        tmp_path, anomaly_history, 200, "{type: anomaly, severity: warn}"
    )
    text = path.read_text().replace(
        "checks:\n", "checks:\n  - {type: not_empty}\n  - {type: range, max: 150}\n"
    )
    path.write_text(text)
    result = signals("invoke", str(path), "--partition", JUDGED_DAY, "--dry-run")
    assert result.returncode == 1, result.stderr
    assert result.stdout == ""
    assert f"INFO check not_empty (error), {JUDGED_DAY}: passed: 2 record(s)" in result.stderr
    assert "WARNING " + z_line("anomaly", "warn", 200, "+53.45", "both", "FAILED") in result.stderr
    assert gate_failed(JUDGED_DAY) in result.stderr
    assert (
        f"  check range (error), {JUDGED_DAY}: FAILED: 1 of 2 value(s) out of range "
        "(values 40 .. 160, bounds [-inf, 150])"
    ) in result.stderr
    assert "Traceback" not in result.stderr

    path.write_text(
        text.replace("{type: range, max: 150}", "{type: range, max: 150, severity: warn}")
    )
    warned = signals("invoke", str(path), "--partition", JUDGED_DAY, "--dry-run")
    assert warned.returncode == 0, warned.stderr
    assert len(warned.stdout.splitlines()) == 2
    assert f"WARNING check range (warn), {JUDGED_DAY}: FAILED: 1 of 2" in warned.stderr
    assert "error:" not in warned.stderr


# --- 2. Postgres → file + Kafka + S3: a ten-day single-run backfill -------------------------

BACKFILL_DAYS = days_from("2026-07-01", 10)
SPIKE_DAY = BACKFILL_DAYS[4]  # 2026-07-05: a third record (de/web), its value 5000
RANGE_SQL = (
    "SELECT date_trunc('day', created_at, 'UTC') AS grain_datetime, country, channel, "
    "SUM(amount) AS value FROM qc_backfill "
    "WHERE created_at >= :window_start AND created_at < :window_end GROUP BY 1, 2, 3"
)
RANGE_TAGS = {
    "dagster/asset_partition_range_start": BACKFILL_DAYS[0],
    "dagster/asset_partition_range_end": BACKFILL_DAYS[-1],
}
BACKFILL_CHECKS = [
    "{type: not_empty}",
    "{type: range, min: 0, max: 1000}",
    "{type: change, on: record_count, max_pct: 40, name: rows}",  # 2 -> 3: +50%; 3 -> 2: -33%
]
RANGE_FAILURE = (
    f"check range (error), {SPIKE_DAY}: FAILED: 1 of 3 value(s) out of range "
    "(values 40 .. 5000, bounds [0, 1000])"
)
ROWS_FAILURE = (
    f"check rows (error), {SPIKE_DAY}: FAILED: record_count 3 vs 2 in {BACKFILL_DAYS[3]} "
    "(50.0%; at most 40%)"
)


def _at(day: str, hour: int) -> datetime:
    return datetime.fromisoformat(day).replace(hour=hour, tzinfo=UTC)


@pytest.fixture
def backfill_orders(pg_url: str) -> str:
    """`qc_backfill`: ten days of two records each (us/web 150, fr/app 40); on SPIKE_DAY a third,
    de/web 5000."""
    rows = []
    for day in BACKFILL_DAYS:
        rows += [("us", "web", 100.0, _at(day, 3)), ("us", "web", 50.0, _at(day, 15))]
        rows += [("fr", "app", 40.0, _at(day, 0))]  # exactly at midnight: this day's
    rows.append(("de", "web", 5000.0, _at(SPIKE_DAY, 20)))
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS qc_backfill")
        conn.execute(
            "CREATE TABLE qc_backfill (country text, channel text, amount numeric, "
            "created_at timestamptz)"
        )
        with conn.cursor().copy("COPY qc_backfill FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
    return pg_url


@dataclass(frozen=True)
class Sinks:
    """One test's three sinks: a file, a fresh Kafka topic, a fresh S3 bucket."""

    audit: Path
    broker: TansuBroker
    topic: str
    s3: S3Server
    bucket: str

    def yaml(self) -> str:
        return (
            file_sink(self.audit)
            + kafka_sink(self.broker.bootstrap, self.topic)
            + s3_sink(self.s3.endpoint, self.bucket)
        )

    def messages(self, expected: int | None = None) -> list[Any]:
        return consume_all(self.broker.bootstrap, self.topic, expected=expected, idle=0.6)

    def objects(self, prefix: str = "signals/") -> list[str]:
        pages = (
            self.s3.client()
            .get_paginator("list_objects_v2")
            .paginate(Bucket=self.bucket, Prefix=prefix)
        )
        return sorted(obj["Key"] for page in pages for obj in page.get("Contents", []))

    def assert_empty(self) -> None:
        assert file_lines(self.audit) == []
        assert self.messages() == []
        assert self.s3.keys(self.bucket) == []


@pytest.fixture
def sinks(tmp_path: Path, kafka_broker: TansuBroker, s3_server: S3Server, aws_env: None) -> Sinks:
    topic = f"quality-checks-{time.monotonic_ns()}"
    create_topic(kafka_broker.bootstrap, topic, partitions=3)
    return Sinks(
        tmp_path / "audit" / "revenue.jsonl", kafka_broker, topic, s3_server, s3_server.new_bucket()
    )


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """The collectors folder (under pytest's tmp: a file sink root)."""
    path = tmp_path / "collectors"
    path.mkdir()
    return path


def check_history(
    instance: dg.DagsterInstance, asset: str, check: str, run_id: str
) -> dict[str, dg.AssetCheckEvaluation]:
    """One check's evaluations in one run, by partition (each partition once)."""
    key = dg.AssetCheckKey(dg.AssetKey(asset), check)
    records = instance.event_log_storage.get_asset_check_execution_history(key, limit=100)
    found: dict[str, dg.AssetCheckEvaluation] = {}
    for record in records:
        if record.run_id != run_id:
            continue
        event = record.event
        assert event is not None
        assert event.dagster_event is not None
        evaluation = event.dagster_event.event_specific_data
        assert isinstance(evaluation, dg.AssetCheckEvaluation)
        assert evaluation.partition is not None
        assert evaluation.partition not in found, f"two evaluations of {evaluation.partition}"
        found[evaluation.partition] = evaluation
    return found


def passed(evaluations: Mapping[str, dg.AssetCheckEvaluation]) -> dict[str, bool]:
    return {day: e.passed for day, e in evaluations.items()}


def backfill_job(
    folder: Path, name: str, uri: str, sinks: str, checks: Sequence[str]
) -> dg.JobDefinition:
    text = collector_text(
        name, uri, sinks, checks, source="postgres", sql=RANGE_SQL, start=BACKFILL_DAYS[0]
    )
    (folder / "backfill.yaml").write_text(text)
    defs = build_definitions(load_catalog(str(folder)), str(folder))
    return defs.resolve_job_def(f"{name.replace('.', '_')}_job")


def test_backfill_with_one_failing_day_publishes_nothing(
    backfill_orders: str, folder: Path, sinks: Sinks
) -> None:
    job = backfill_job(folder, "qc.backfill", backfill_orders, sinks.yaml(), BACKFILL_CHECKS)
    instance = dg.DagsterInstance.ephemeral()

    failed = job.execute_in_process(instance=instance, tags=RANGE_TAGS, raise_on_error=False)
    assert not failed.success
    message = failure_message(failed)
    assert f"quality gate failed in 1 window ({SPIKE_DAY}); nothing was published:" in message
    assert RANGE_FAILURE in message
    assert ROWS_FAILURE in message
    assert len(instance.get_runs()) == 1  # one run for the ten partitions
    sinks.assert_empty()
    assert instance.get_latest_materialization_event(dg.AssetKey("qc_backfill")) is None

    # One evaluation per check and partition: the not_empty check passed all ten days, range and
    # rows failed on SPIKE_DAY alone (rows: the first day has no previous window, skipped).
    everything_passed = dict.fromkeys(BACKFILL_DAYS, True)
    one_failed = everything_passed | {SPIKE_DAY: False}
    assert passed(check_history(instance, "qc_backfill", "not_empty", failed.run_id)) == (
        everything_passed
    )
    ranges = check_history(instance, "qc_backfill", "range", failed.run_id)
    assert passed(ranges) == one_failed
    assert sum(e.passed for e in ranges.values()) == 9
    spike = ranges[SPIKE_DAY]
    assert spike.severity == dg.AssetCheckSeverity.ERROR
    assert spike.metadata["value_max"].value == 5000
    assert spike.metadata["out_of_range"].value == 1
    rows = check_history(instance, "qc_backfill", "rows", failed.run_id)
    assert passed(rows) == one_failed
    assert rows[SPIKE_DAY].metadata["change_pct"].value == 50.0
    assert rows[SPIKE_DAY].metadata["previous"].value == 2
    assert rows[BACKFILL_DAYS[0]].metadata["skipped"].value is True
    assert rows[BACKFILL_DAYS[5]].passed  # 3 -> 2 is -33.3%
    assert "skipped" not in rows[BACKFILL_DAYS[5]].metadata

    # Every check passes: all three sinks receive the ten days.
    with psycopg.connect(backfill_orders, autocommit=True) as conn:
        conn.execute("DELETE FROM qc_backfill WHERE country = 'de'")
    fixed = job.execute_in_process(instance=instance, tags=RANGE_TAGS)
    assert fixed.success
    for check in ("not_empty", "range", "rows"):
        assert passed(check_history(instance, "qc_backfill", check, fixed.run_id)) == (
            everything_passed
        )
    written = file_lines(sinks.audit)
    assert len(written) == 20
    assert {r["value"] for r in written} == {150.0, 40.0}
    assert len(sinks.messages(expected=20)) == 20
    assert sinks.objects() == [
        f"signals/metric={METRIC}/date={day}/qc_backfill.jsonl" for day in BACKFILL_DAYS
    ]

    # The next day alone: its `rows` history is the range run's materialisation metadata.
    later = "2026-07-11"
    with psycopg.connect(backfill_orders, autocommit=True) as conn:
        for country, hour in (("us", 3), ("fr", 4), ("de", 5)):
            conn.execute(
                "INSERT INTO qc_backfill VALUES (%s, 'web', 10, %s)", (country, _at(later, hour))
            )
    alone = job.execute_in_process(instance=instance, partition_key=later, raise_on_error=False)
    assert not alone.success
    assert (
        f"check rows (error), {later}: FAILED: record_count 3 vs 2 in {BACKFILL_DAYS[-1]} "
        "(50.0%; at most 40%)"
    ) in failure_message(alone)
    assert len(file_lines(sinks.audit)) == 20


# --- 3. A warn check failing on one day of the backfill: published, warned ----------------


def test_backfill_with_a_warn_check_failing_publishes(
    backfill_orders: str, folder: Path, tmp_path: Path, kafka_broker: TansuBroker
) -> None:
    topic = f"quality-warn-{time.monotonic_ns()}"
    create_topic(kafka_broker.bootstrap, topic, partitions=3)
    audit = tmp_path / "warn.jsonl"
    checks = ["{type: not_empty}", "{type: range, min: 0, max: 1000, severity: warn}"]
    sinks = file_sink(audit) + kafka_sink(kafka_broker.bootstrap, topic)
    job = backfill_job(folder, "qc.warn", backfill_orders, sinks, checks)
    instance = dg.DagsterInstance.ephemeral()

    result = job.execute_in_process(instance=instance, tags=RANGE_TAGS)
    assert result.success
    written = file_lines(audit)
    assert len(written) == 21
    assert {r["value"] for r in written} == {150.0, 40.0, 5000.0}
    assert len(consume_all(kafka_broker.bootstrap, topic, expected=21, idle=0.6)) == 21
    materialised = instance.get_materialized_partitions(dg.AssetKey("qc_warn"))
    assert materialised == set(BACKFILL_DAYS)

    ranges = check_history(instance, "qc_warn", "range", result.run_id)
    assert passed(ranges) == dict.fromkeys(BACKFILL_DAYS, True) | {SPIKE_DAY: False}
    assert ranges[SPIKE_DAY].severity == dg.AssetCheckSeverity.WARN
    assert ranges[SPIKE_DAY].metadata["value_max"].value == 5000
    assert all(
        e.passed for e in check_history(instance, "qc_warn", "not_empty", result.run_id).values()
    )
    warnings = [
        entry.user_message
        for entry in instance.all_logs(result.run_id)
        if entry.level == logging.WARNING
    ]
    assert any(
        f"check range (warn), {SPIKE_DAY}: FAILED: 1 of 3 value(s) out of range" in w
        for w in warnings
    ), warnings


# --- 4. Quarantine: the blocked batch in a marked sink, redriven after review --------------


def test_quarantine_file_then_redrive(tmp_path: Path, sinks: Sinks, invoke: Invoke) -> None:
    uri = shop(tmp_path / "shop.sqlite", {DAY: [("us", 500), ("de", 20)]})
    held = tmp_path / "held" / "revenue.jsonl"
    quarantined = tmp_path / "held" / "revenue.quarantine.jsonl"
    path = tmp_path / "revenue.yaml"
    on_fail = f"on_fail: {{quarantine: {{type: file, config: {{path: '{held}'}}}}}}\n"
    path.write_text(
        collector_text("qc.held", uri, sinks.yaml(), ["{type: range, max: 100}"], extra=on_fail)
    )

    blocked = invoke(path, DAY, dry_run=False)
    assert blocked.exit_code == 1
    assert blocked.stdout == ""
    assert blocked.error_lines() == [
        f"error: quality gate failed in 1 window ({DAY}); nothing was published; the batch was "
        f"quarantined in {quarantined}:",
        f"check range (error), {DAY}: FAILED: 1 of 2 value(s) out of range "
        "(values 20 .. 500, bounds [-inf, 100])",
    ]
    assert not held.exists()  # the name is marked
    batch = file_lines(quarantined)
    assert {(r["tags"]["country"], r["value"]) for r in batch} == {("us", 500), ("de", 20)}
    sinks.assert_empty()

    # A dry run quarantines nothing.
    assert invoke(path, DAY).exit_code == 1
    assert len(file_lines(quarantined)) == 2

    # After review: redrive the quarantined batch to the collector's file and Kafka sinks.
    for sink in ("audit", "bus"):
        result = CliRunner().invoke(
            main, ["redrive", str(quarantined), "--collector", str(path), "--sink", sink]
        )
        assert result.exit_code == 0, result.output
        assert f"redriven: 2 record(s) in 1 partition(s) to sink {sink}" in result.stdout
    assert file_lines(sinks.audit) == batch  # the same records, the same uuids
    messages = sinks.messages(expected=2)
    assert {m.key().decode() for m in messages} == {r["uuid"] for r in batch}


def test_quarantine_s3_in_a_blocked_backfill(
    backfill_orders: str, folder: Path, s3_server: S3Server, aws_env: None
) -> None:
    bucket = s3_server.new_bucket()
    lake = s3_sink(s3_server.endpoint, bucket)
    on_fail = (
        "on_fail:\n  quarantine:\n    type: s3\n    config: "
        f"{{bucket: {bucket}, prefix: signals, format: jsonl, "
        f"endpoint_url: '{s3_server.endpoint}', region: us-east-1, retries: 1}}\n"
    )
    text = collector_text(
        "qc.held",
        backfill_orders,
        lake,
        ["{type: range, max: 1000}"],
        source="postgres",
        sql=RANGE_SQL,
        start=BACKFILL_DAYS[0],
        extra=on_fail,
    )
    (folder / "held.yaml").write_text(text)
    second = BACKFILL_DAYS[7]
    with psycopg.connect(backfill_orders, autocommit=True) as conn:
        conn.execute("INSERT INTO qc_backfill VALUES ('jp', 'app', 1000.5, %s)", (_at(second, 9),))
    defs = build_definitions(load_catalog(str(folder)), str(folder))
    instance = dg.DagsterInstance.ephemeral()
    failed = defs.resolve_job_def("qc_held_job").execute_in_process(
        instance=instance, tags=RANGE_TAGS, raise_on_error=False
    )
    assert not failed.success
    message = failure_message(failed)
    # Every failing partition named, each failure with its figures.
    assert (
        f"quality gate failed in 2 windows ({SPIKE_DAY}, {second}); nothing was published; "
        f"the batch was quarantined in s3://{bucket}/signals/quarantine/:"
    ) in message
    assert (
        f"check range (error), {SPIKE_DAY}: FAILED: 1 of 3 value(s) out of range "
        "(values 40 .. 5000, bounds [-inf, 1000])"
    ) in message
    assert (
        f"check range (error), {second}: FAILED: 1 of 3 value(s) out of range "
        "(values 40 .. 1000.5, bounds [-inf, 1000])"
    ) in message
    # The whole blocked batch (all ten days), under the marked prefix; nothing under signals/.
    assert s3_server.keys(bucket) == [
        f"signals/quarantine/metric={METRIC}/date={day}/qc_held.jsonl" for day in BACKFILL_DAYS
    ]


# --- 5. Anomaly from the instance's history; a contract's checks --------------------------

INSTANCE_DAYS = days_from("2026-03-01", 8)
INSTANCE_JUDGED = "2026-03-09"
REGISTRY = f"""
metrics:
  - name: {METRIC}
    version: 1
    type: GAUGE
    unit: USD
    description: Revenue per country and day (quality check tests)
    owners: [team:growth]
    tags:
      country: {{required: true}}
      env: {{required: true}}
    checks:
      - {{type: anomaly, name: contract_spike}}
"""


def instance_job(
    folder: Path, uri: str, checks: Sequence[str], registry: bool = False
) -> dg.JobDefinition:
    folder.mkdir(exist_ok=True)
    if registry:
        (folder / "metrics.yaml").write_text(REGISTRY.lstrip("\n"))
    audit = folder.parent / f"{folder.name}.jsonl"
    text = collector_text("qc.daily", uri, file_sink(audit), checks, start=INSTANCE_DAYS[0])
    (folder / "daily.yaml").write_text(text)
    defs = build_definitions(load_catalog(str(folder)), str(folder))
    return defs.resolve_job_def("qc_daily_job")


def evaluation_of(result: dg.ExecuteInProcessResult, check: str) -> dg.AssetCheckEvaluation:
    (found,) = [
        e.event_specific_data
        for e in result.all_events
        if e.event_type == dg.DagsterEventType.ASSET_CHECK_EVALUATION
        and isinstance(e.event_specific_data, dg.AssetCheckEvaluation)
        and e.event_specific_data.check_name == check
    ]
    assert isinstance(found, dg.AssetCheckEvaluation)
    return found


def test_anomaly_from_the_instance_history(tmp_path: Path) -> None:
    orders = {
        **history_orders(INSTANCE_DAYS),
        INSTANCE_JUDGED: day_orders(200),
    }
    uri = shop(tmp_path / "shop.sqlite", orders)
    instance = dg.DagsterInstance.ephemeral()
    job = instance_job(tmp_path / "error", uri, ["{type: anomaly}"])
    for index, day in enumerate(INSTANCE_DAYS):  # one single-partition run per day
        result = job.execute_in_process(instance=instance, partition_key=day)
        assert result.success
        evaluation = evaluation_of(result, "anomaly")
        assert evaluation.passed
        assert evaluation.partition == day
        if index < 7:
            assert evaluation.metadata["skipped"].value is True
            assert evaluation.description == f"skipped: {index} of 7 windows of history"
        else:
            assert "skipped" not in evaluation.metadata
            assert evaluation.metadata["history"].value == 7

    spiked = job.execute_in_process(
        instance=instance, partition_key=INSTANCE_JUDGED, raise_on_error=False
    )
    assert not spiked.success
    line = z_line("anomaly", "error", 200, "+53.45", "both", "FAILED").replace(
        JUDGED_DAY, INSTANCE_JUDGED
    )
    assert line in failure_message(spiked)
    evaluation = evaluation_of(spiked, "anomaly")
    assert (evaluation.passed, evaluation.partition) == (False, INSTANCE_JUDGED)
    assert evaluation.severity == dg.AssetCheckSeverity.ERROR
    figures = {k: evaluation.metadata[k].value for k in ("value", "mean", "stddev", "z", "history")}
    assert figures == {"value": 200, "mean": 100, "stddev": 1.870829, "z": 53.452, "history": 8}
    assert (tmp_path / "error.jsonl").read_text().count(INSTANCE_JUDGED) == 0

    # As a warning: the run succeeds and publishes, the evaluation failed with severity WARN.
    warn = instance_job(tmp_path / "warn", uri, ["{type: anomaly, severity: warn}"])
    warned = warn.execute_in_process(instance=instance, partition_key=INSTANCE_JUDGED)
    assert warned.success
    evaluation = evaluation_of(warned, "anomaly")
    assert (evaluation.passed, evaluation.partition) == (False, INSTANCE_JUDGED)
    assert evaluation.severity == dg.AssetCheckSeverity.WARN
    assert evaluation.metadata["z"].value == 53.452
    assert len(file_lines(tmp_path / "warn.jsonl")) == 2

    # The contract's check applies to the collector (that has none of its own).
    contract = instance_job(tmp_path / "contract", uri, [], registry=True)
    assert {k.name for k in contract.asset_layer.asset_graph.asset_check_keys} == {
        "contract",
        "contract_spike",
    }
    blocked = contract.execute_in_process(
        instance=instance, partition_key=INSTANCE_JUDGED, raise_on_error=False
    )
    assert not blocked.success
    assert line.replace("check anomaly", "check contract_spike") in failure_message(blocked)
    assert evaluation_of(blocked, "contract").passed
    spike = evaluation_of(blocked, "contract_spike")
    assert (spike.passed, spike.partition, spike.metadata["history"].value) == (
        False,
        INSTANCE_JUDGED,
        8,
    )
    assert not (tmp_path / "contract.jsonl").exists()
