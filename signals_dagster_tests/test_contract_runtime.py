"""Contracts enforced at run time, against the real servers: a window whose records break their
metric's contract fails, and nothing of the run reaches any sink (file, Kafka on tansu, S3 on
SeaweedFS); in Dagster, the asset check `contract` records one evaluation per partition, in a
single-run backfill too.

Postgres (the machine's server) for the source of the sink and backfill tests; a tmp SQLite
database for the rule-by-rule `signals invoke --dry-run` cases."""

import json
import os
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import psycopg
import pytest
from click.testing import CliRunner

from signals_dagster.catalog import load_catalog
from signals_dagster.cli import main
from signals_dagster.orchestration.factory import build_definitions
from signals_dagster.records import RECORD_COLUMNS
from signals_dagster_tests.servers.kafka import TansuBroker, consume_all, create_topic
from signals_dagster_tests.servers.s3 import S3Server
from signals_dagster_tests.test_kafka_sink import failure_message

ROOT = Path(__file__).resolve().parents[1]
METRIC = "cr.revenue"
REF = f"{METRIC}/1"
ALLOWED = "br, de, fr, jp, us"
REGISTRY = f"""
metrics:
  - name: {METRIC}
    version: 1
    type: GAUGE
    unit: USD
    description: Revenue per country and day (contract runtime tests)
    owners: [team:growth]
    stability: stable
    tags:
      country: {{required: true, allowed: [{ALLOWED}]}}
      env: {{required: true, pattern: '^(demo|prod|staging)$'}}
      channel: {{required: false}}
    values: {{min: 0, max: 1000}}
    max_records: 4
"""

# --- Postgres: the sinks test's day and the backfill's ten days ---------------------------

BAD_DAY = "2026-06-03"  # two records with country 'it' (channels web and app)
GOOD_DAY = "2026-06-02"  # conforming: the control that the sinks do receive records
WINDOW_SQL = (
    "SELECT country, channel, SUM(amount) AS value FROM cr_orders "
    "WHERE created_at >= :window_start AND created_at < :window_end GROUP BY 1, 2"
)
BACKFILL_START = datetime(2026, 7, 1, tzinfo=UTC)
BACKFILL_DAYS = [(BACKFILL_START + timedelta(days=d)).strftime("%Y-%m-%d") for d in range(10)]
OUT_OF_RANGE_DAY = BACKFILL_DAYS[4]  # 2026-07-05: one value above max 1000
RANGE_SQL = (
    "SELECT date_trunc('day', created_at, 'UTC') AS grain_datetime, country, channel, "
    "SUM(amount) AS value FROM cr_backfill "
    "WHERE created_at >= :window_start AND created_at < :window_end GROUP BY 1, 2, 3"
)
RANGE_TAGS = {
    "dagster/asset_partition_range_start": BACKFILL_DAYS[0],
    "dagster/asset_partition_range_end": BACKFILL_DAYS[-1],
}


def _at(day: str, hour: int) -> datetime:
    return datetime.fromisoformat(day).replace(hour=hour, tzinfo=UTC)


@pytest.fixture(scope="module")
def orders(pg_url: str) -> str:
    """`cr_orders`: a conforming day and a day with two records of country 'it'."""
    rows = [
        ("us", "web", 10.0, _at(GOOD_DAY, 1)),
        ("us", "web", 5.5, _at(GOOD_DAY, 9)),
        ("de", "app", 20.0, _at(GOOD_DAY, 12)),
        ("us", "web", 10.0, _at(BAD_DAY, 1)),
        ("de", "web", 20.0, _at(BAD_DAY, 2)),
        ("it", "web", 7.0, _at(BAD_DAY, 3)),
        ("it", "app", 8.0, _at(BAD_DAY, 4)),
    ]
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS cr_orders")
        conn.execute(
            "CREATE TABLE cr_orders (country text, channel text, amount numeric, "
            "created_at timestamptz)"
        )
        with conn.cursor().copy("COPY cr_orders FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
    return pg_url


@pytest.fixture
def backfill_orders(pg_url: str) -> str:
    """`cr_backfill`: ten days of two records each; on OUT_OF_RANGE_DAY, us/web sums to 5000."""
    rows = []
    for day in BACKFILL_DAYS:
        rows += [("us", "web", 100.0, _at(day, 3)), ("us", "web", 50.0, _at(day, 15))]
        rows += [("fr", "app", 40.0, _at(day, 0))]  # exactly at midnight: this day's
    rows.append(("us", "web", 4850.0, _at(OUT_OF_RANGE_DAY, 20)))
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS cr_backfill")
        conn.execute(
            "CREATE TABLE cr_backfill (country text, channel text, amount numeric, "
            "created_at timestamptz)"
        )
        with conn.cursor().copy("COPY cr_backfill FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
    return pg_url


# --- Helpers ------------------------------------------------------------------------------


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """The collectors folder (under pytest's tmp: a file sink root), with the registry."""
    path = tmp_path / "collectors"
    path.mkdir()
    (path / "metrics.yaml").write_text(REGISTRY.lstrip("\n"), encoding="utf-8")
    return path


def collector_text(
    name: str, source: str, uri: str, sql: str, sinks: str, start: str = "2026-06-01"
) -> str:
    """A daily collector of METRIC with the static tag env=prod and the given sinks."""
    return textwrap.dedent(
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


def file_sink(path: Path) -> str:
    return f"audit: {{type: file, config: {{path: '{path}'}}}}\n"


def kafka_sink(brokers: str, topic: str) -> str:
    return (
        f"bus: {{type: kafka, config: {{brokers: ['{brokers}'], topic: {topic}, timeout: 10s}}}}\n"
    )


def s3_sink(endpoint: str, bucket: str) -> str:
    return (
        f"lake: {{type: s3, config: {{bucket: {bucket}, prefix: signals, format: jsonl, "
        f"endpoint_url: '{endpoint}', region: us-east-1, retries: 1}}}}\n"
    )


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


def file_lines(path: Path) -> list[dict[str, object]]:
    """The file sink's records (none when the log was never created)."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


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

    def messages(self, expected: int | None = None) -> list[object]:
        # Every producer of the run has flushed (or never existed) by the time we read.
        return consume_all(self.broker.bootstrap, self.topic, expected=expected, idle=0.6)

    def objects(self) -> list[str]:
        pages = (
            self.s3.client()
            .get_paginator("list_objects_v2")
            .paginate(Bucket=self.bucket, Prefix="signals/")
        )
        return sorted(obj["Key"] for page in pages for obj in page.get("Contents", []))

    def assert_empty(self) -> None:
        assert file_lines(self.audit) == []
        assert self.messages() == []
        assert self.objects() == []


@pytest.fixture
def sinks(tmp_path: Path, kafka_broker: TansuBroker, s3_server: S3Server, aws_env: None) -> Sinks:
    topic = f"contract-runtime-{time.monotonic_ns()}"
    create_topic(kafka_broker.bootstrap, topic, partitions=3)
    return Sinks(
        tmp_path / "audit" / "revenue.jsonl", kafka_broker, topic, s3_server, s3_server.new_bucket()
    )


@pytest.fixture
def pg_collector(orders: str, folder: Path, sinks: Sinks) -> Path:
    path = folder / "revenue.yaml"
    path.write_text(
        collector_text("cr.revenue.daily", "postgres", orders, WINDOW_SQL, sinks.yaml())
    )
    return path


VIOLATION = (
    f"{METRIC} v1, {BAD_DAY}: tag 'country' value 'it' not allowed (2 records; allowed: {ALLOWED})"
)


# --- 1. Postgres → file + Kafka + S3: nothing is published ---------------------------------


def test_invoke_violation_writes_no_sink(pg_collector: Path, sinks: Sinks) -> None:
    result = signals("invoke", str(pg_collector), "--partition", BAD_DAY)
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"error: contract violated in 1 window ({BAD_DAY}); nothing was published" in (
        result.stderr
    )
    assert VIOLATION in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""
    sinks.assert_empty()
    # The control: a conforming day does reach all three sinks (the checks above can fail).
    good = signals("invoke", str(pg_collector), "--partition", GOOD_DAY)
    assert good.returncode == 0, good.stderr
    printed = [json.loads(line) for line in good.stdout.splitlines()]
    assert {(r["tags"]["country"], r["value"]) for r in printed} == {("us", 15.5), ("de", 20.0)}
    assert file_lines(sinks.audit) == printed
    assert len(sinks.messages(expected=2)) == 2
    assert sinks.objects() == [f"signals/metric={METRIC}/date={GOOD_DAY}/cr_revenue_daily.jsonl"]


def test_invoke_dry_run_violation_prints_no_record(pg_collector: Path, sinks: Sinks) -> None:
    result = signals("invoke", str(pg_collector), "--partition", BAD_DAY, "--dry-run")
    assert result.returncode == 1, result.stdout + result.stderr
    assert VIOLATION in result.stderr
    assert result.stdout == ""  # not one record line
    sinks.assert_empty()


def test_dagster_violation_fails_the_run_and_writes_no_sink(
    pg_collector: Path, folder: Path, sinks: Sinks
) -> None:
    defs = build_definitions(load_catalog(str(folder)), str(folder))
    instance = dg.DagsterInstance.ephemeral()
    result = defs.resolve_job_def("cr_revenue_daily_job").execute_in_process(
        instance=instance, partition_key=BAD_DAY, raise_on_error=False
    )
    assert not result.success
    message = failure_message(result)
    assert VIOLATION in message
    assert "nothing was published" in message
    sinks.assert_empty()
    (evaluation,) = [
        e.event_specific_data
        for e in result.all_events
        if e.event_type == dg.DagsterEventType.ASSET_CHECK_EVALUATION
    ]
    assert isinstance(evaluation, dg.AssetCheckEvaluation)
    assert evaluation.passed is False
    assert evaluation.partition == BAD_DAY
    assert evaluation.metadata["contract"].value == REF
    assert evaluation.metadata["records"].value == 4
    assert instance.get_latest_materialization_event(dg.AssetKey("cr_revenue_daily")) is None


# --- 2. SQLite: each rule once, with `signals invoke --dry-run` ------------------------------

SQLITE_DAY = "2026-06-10"
SQLITE_SQL = (
    "SELECT {columns}, SUM(amount) AS value FROM orders "
    "WHERE created_at >= :window_start AND created_at < :window_end GROUP BY {group}"
)
Row = tuple[str, str, str, float]  # country, channel, env, amount


@dataclass(frozen=True)
class Case:
    rows: Sequence[Row]
    fragment: str | None  # None: the records conform
    columns: str = "country, channel, env"

    def sql(self) -> str:
        group = ", ".join(str(i + 1) for i in range(self.columns.count(",") + 1))
        return SQLITE_SQL.format(columns=self.columns, group=group)


CASES = {
    "passes": Case(
        [("us", "web", "prod", 10), ("de", "web", "prod", 990), ("de", "app", "demo", 0)], None
    ),
    "unknown tag": Case(
        [("us", "web", "prod", 10), ("fr", "web", "prod", 2)],
        "unknown tag 'medium' (2 records; values 'web' (2 records); the contract's tags: "
        "channel, country, env)",
        "country, channel AS medium, env",
    ),
    "missing required tag": Case(
        [("us", "web", "prod", 10), ("us", "app", "prod", 3)],
        "required tag 'country' missing (2 records)",
        "channel, env",
    ),
    "not allowed": Case(
        [
            ("us", "web", "prod", 10),
            ("it", "web", "prod", 4),
            ("it", "app", "prod", 5),
            ("es", "web", "prod", 1),
        ],
        "tag 'country' values 'it' (2 records), 'es' (1 record) not allowed (3 records; "
        f"allowed: {ALLOWED})",
    ),
    "pattern mismatch": Case(
        [("us", "web", "prod", 10), ("de", "web", "production", 3)],
        "tag 'env' value 'production' does not match '^(demo|prod|staging)$' (1 record)",
    ),
    "below min": Case(
        [("us", "web", "prod", 10), ("de", "web", "prod", -2.5)],
        "value -2.5 out of range [0, 1000] (1 record)",
    ),
    "above max": Case(
        [("us", "web", "prod", 600), ("us", "web", "prod", 400.5), ("de", "web", "prod", 1000)],
        "value 1000.5 out of range [0, 1000] (1 record)",
    ),
    "too many records": Case(
        [(c, "web", "prod", 1) for c in ("br", "de", "fr", "jp", "us")],
        "5 records, more than max_records 4",
    ),
}


def sqlite_db(path: Path, rows: Sequence[Row]) -> Path:
    """The day's orders; the next day's break every rule (never in SQLITE_DAY's window)."""
    start = datetime.fromisoformat(SQLITE_DAY)
    stamped = [
        (*row, (start + timedelta(minutes=7 * i)).isoformat(sep=" ")) for i, row in enumerate(rows)
    ]
    stamped += [("xx", "web", "nope", -1e9, (start + timedelta(days=1)).isoformat(sep=" "))]
    db = sqlite3.connect(path)
    db.execute(
        "CREATE TABLE orders (country TEXT, channel TEXT, env TEXT, amount REAL, created_at TEXT)"
    )
    db.executemany("INSERT INTO orders VALUES (?, ?, ?, ?, ?)", stamped)
    db.commit()
    db.close()
    return path


@pytest.mark.parametrize("case", list(CASES.values()), ids=list(CASES))
def test_sqlite_rule_by_rule_dry_run(case: Case, folder: Path, tmp_path: Path) -> None:
    db = sqlite_db(tmp_path / "shop.sqlite", case.rows)
    path = folder / "revenue.yaml"
    audit = tmp_path / "audit.jsonl"
    text = collector_text("cr.sqlite", "sqlite", f"sqlite:///{db}", case.sql(), file_sink(audit))
    path.write_text(text.replace(", tags: {env: prod}", ""))  # env comes from the query
    args = ["invoke", str(path), "--partition", SQLITE_DAY, "--dry-run"]
    result = CliRunner().invoke(main, args)
    assert not audit.exists()
    if case.fragment is None:
        assert result.exit_code == 0, result.output
        records = [json.loads(line) for line in result.stdout.splitlines()]
        assert all(list(r) == RECORD_COLUMNS for r in records)
        got = {
            (r["tags"]["country"], r["tags"]["channel"], r["tags"]["env"], r["value"])
            for r in records
        }
        assert got == {
            ("us", "web", "prod", 10),
            ("de", "web", "prod", 990),
            ("de", "app", "demo", 0),
        }
        assert "contract violated" not in result.stderr
        return
    assert result.exit_code == 1, result.output
    assert result.stdout == ""
    (line,) = [x for x in result.stderr.splitlines() if x.startswith("error: ")]
    assert line == f"error: contract violated in 1 window ({SQLITE_DAY}); nothing was published:"
    violations = [x.strip() for x in result.stderr.splitlines() if x.startswith("  ")]
    assert violations == [f"{METRIC} v1, {SQLITE_DAY}: {case.fragment}"]


# --- 3. A 10-partition single-run backfill with one violating day --------------------------


def check_history(instance: dg.DagsterInstance, run_id: str) -> dict[str, bool]:
    """The contract check's evaluations of one run: passed, by partition (each once)."""
    key = dg.AssetCheckKey(dg.AssetKey("cr_revenue_backfill"), "contract")
    records = instance.event_log_storage.get_asset_check_execution_history(key, limit=50)
    found: dict[str, bool] = {}
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
        found[evaluation.partition] = evaluation.passed
    return found


def test_backfill_with_one_violating_day(
    backfill_orders: str, folder: Path, tmp_path: Path, s3_server: S3Server, aws_env: None
) -> None:
    audit = tmp_path / "backfill.jsonl"
    bucket = s3_server.new_bucket()
    sinks = file_sink(audit) + s3_sink(s3_server.endpoint, bucket)
    text = collector_text(
        "cr.revenue.backfill", "postgres", backfill_orders, RANGE_SQL, sinks, start="2026-07-01"
    )
    (folder / "backfill.yaml").write_text(text)
    defs = build_definitions(load_catalog(str(folder)), str(folder))
    job = defs.resolve_job_def("cr_revenue_backfill_job")
    instance = dg.DagsterInstance.ephemeral()

    failed = job.execute_in_process(instance=instance, tags=RANGE_TAGS, raise_on_error=False)
    assert not failed.success
    message = failure_message(failed)
    assert f"contract violated in 1 window ({OUT_OF_RANGE_DAY})" in message
    assert f"{METRIC} v1, {OUT_OF_RANGE_DAY}: value 5000 out of range [0, 1000] (1 record)" in (
        message
    )
    assert len(instance.get_runs()) == 1  # one run for the ten partitions
    history = check_history(instance, failed.run_id)
    assert sorted(history) == BACKFILL_DAYS
    assert {day for day, passed in history.items() if not passed} == {OUT_OF_RANGE_DAY}
    assert sum(history.values()) == 9
    assert file_lines(audit) == []
    assert s3_server.keys(bucket) == []

    with psycopg.connect(backfill_orders, autocommit=True) as conn:
        conn.execute("UPDATE cr_backfill SET amount = 0 WHERE amount = 4850")
    fixed = job.execute_in_process(instance=instance, tags=RANGE_TAGS)
    assert fixed.success
    assert check_history(instance, fixed.run_id) == dict.fromkeys(BACKFILL_DAYS, True)
    written = file_lines(audit)
    assert len(written) == 20
    assert {r["value"] for r in written} == {150.0, 40.0}
    assert s3_server.keys(bucket) == [
        f"signals/metric={METRIC}/date={day}/cr_revenue_backfill.jsonl" for day in BACKFILL_DAYS
    ]
    event = instance.fetch_materializations(
        dg.AssetRecordsFilter(
            asset_key=dg.AssetKey("cr_revenue_backfill"), asset_partitions=[OUT_OF_RANGE_DAY]
        ),
        limit=1,
    ).records[0]
    assert event.run_id == fixed.run_id
    meta = event.asset_materialization.metadata  # type: ignore[union-attr]
    assert meta["contract"].value == REF
    assert meta["record_count"].value == 2
