"""Sinks are checked before the source is queried: a dead broker, a missing bucket or a file sink
that cannot be created fails the run with the source untouched, in `signals invoke`, Dagster
runs and `signals redrive` alike.

"Untouched" is measured on the source itself: the scan counters of its table in Postgres
(`pg_stat_user_tables`), read on a monitoring connection of the test's own. A positive control
shows that a real run moves them.
"""

import io
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import psycopg
import pytest

from signals_dagster.catalog import load_catalog
from signals_dagster.errors import CollectorError, SinkError
from signals_dagster.invoke import invoke_collector
from signals_dagster.orchestration.factory import build_definitions
from signals_dagster.redrive import redrive
from signals_dagster.sinks.file import check_writable
from signals_dagster.sinks.kafka import check_topic
from signals_dagster.spec.sinks import KafkaConfig
from signals_dagster_tests.conftest import PG_ADMIN
from signals_dagster_tests.servers.common import free_port
from signals_dagster_tests.servers.kafka import TansuBroker, create_topic
from signals_dagster_tests.test_kafka_sink import failure_message

ROOT = Path(__file__).resolve().parents[1]
SQL = (
    "SELECT account AS customer, SUM(amount) AS value FROM orders "
    "WHERE created_at >= :window_start AND created_at < :window_end GROUP BY account"
)
DAY = "2026-02-03"
FAST = 5.0  # seconds: a refused connection must fail well within this (timeouts are 60 s)


# --- the source: a throwaway Postgres database whose scans we count ------------------------


@pytest.fixture(scope="module")
def source_db() -> Iterator[str]:
    """A database of this module's own with an `orders` table (Feb 2026), dropped at the end."""
    name = f"signals_preflight_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = PG_ADMIN.rsplit("/", 1)[0] + f"/{name}"
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(
                "CREATE TABLE orders (account text NOT NULL, amount numeric NOT NULL, "
                "created_at timestamptz NOT NULL)"
            )
            start = datetime(2026, 2, 1, tzinfo=UTC)
            rows = [
                (("acme", "globex")[i % 2], 1 + i, start + timedelta(hours=5 * i))
                for i in range(60)
            ]
            with conn.cursor() as cur:
                cur.executemany("INSERT INTO orders VALUES (%s, %s, %s)", rows)
        yield url
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class SourceScans:
    """How often the source table was scanned (sequential + index scans), as Postgres counts."""

    def __init__(self, url: str) -> None:
        self.conn = psycopg.connect(url, autocommit=True)

    def now(self) -> int:
        """The counter as of now (a fresh snapshot of the statistics)."""
        self.conn.execute("SELECT pg_stat_clear_snapshot()")
        row = self.conn.execute(
            "SELECT coalesce(seq_scan, 0) + coalesce(idx_scan, 0) FROM pg_stat_user_tables "
            "WHERE relname = 'orders'"
        ).fetchone()
        assert row is not None
        return int(row[0])

    def since(self, before: int, settle: float = 0.5) -> int:
        """Scans since `before`; waits up to `settle` seconds for the counters to move (a
        backend reports its statistics when it exits, an instant after the client closed)."""
        deadline = time.monotonic() + settle
        while True:
            count = self.now() - before
            if count or time.monotonic() > deadline:
                return count
            time.sleep(0.05)

    def close(self) -> None:
        """Close the monitoring connection."""
        self.conn.close()


@pytest.fixture
def scans(source_db: str) -> Iterator[SourceScans]:
    counter = SourceScans(source_db)
    try:
        yield counter
    finally:
        counter.close()


# --- collectors and sinks -------------------------------------------------------------------


def kafka_sink(brokers: str, timeout: str = "60s", topic: str = "signals") -> str:
    return (
        f"  kafka:\n    type: kafka\n    config:\n      brokers: ['{brokers}']\n"
        f"      topic: {topic}\n      timeout: {timeout}\n"
    )


def s3_sink(endpoint: str, bucket: str) -> str:
    return (
        f"  lake:\n    type: s3\n    config:\n      bucket: {bucket}\n"
        f"      endpoint_url: '{endpoint}'\n      region: us-east-1\n      retries: 0\n"
    )


def file_sink(path: Path) -> str:
    return f"  blocked:\n    type: file\n    config:\n      path: '{path}'\n"


def write_collector(tmp_path: Path, source_db: str, sinks: str = "") -> Path:
    """A daily collector over the Postgres orders with an audit file sink (listed first)."""
    folder = tmp_path / "collectors"
    folder.mkdir(exist_ok=True)
    path = folder / "orders.yaml"
    path.write_text(
        f"""
name: preflight.orders.daily
metric:
  name: preflight.orders
  type: GAUGE
partitions:
  start: '2026-02-01'
source:
  type: postgres
  config:
    uri: '{source_db}'
    sql: "{SQL}"
sinks:
  audit:
    type: file
    config:
      path: '{tmp_path / "audit.jsonl"}'
{sinks}retries: 0
"""
    )
    return path


@pytest.fixture(params=["dead_broker", "missing_bucket", "unwritable_file"])
def broken_sink(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, str, str]:
    """(sink name, the YAML of a sink that cannot be written, what its failure must say)."""
    if request.param == "dead_broker":  # nothing listens on a free port: refused at once
        return "kafka", kafka_sink(f"127.0.0.1:{free_port()}"), "no broker reachable"
    if request.param == "missing_bucket":
        server = request.getfixturevalue("s3_server")
        request.getfixturevalue("aws_env")
        sink = s3_sink(server.endpoint, "absent-bucket")
        return "lake", sink, "bucket 'absent-bucket' does not exist"
    blocker = tmp_path / "not-a-folder"  # root may write anywhere: a file stops it anyway
    blocker.write_text("a file, not a folder\n")
    return "blocked", file_sink(blocker / "logs" / "audit.jsonl"), "is not a directory"


@pytest.fixture
def silent_broker() -> Iterator[str]:
    """A loopback TCP server that accepts connections and never answers (a hung broker)."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.1)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except TimeoutError:
                continue
            except OSError:
                return

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.getsockname()[1]}"
    finally:
        stop.set()
        thread.join(2)
        for conn in held:
            conn.close()
        server.close()


def timed(call: Callable[[], object]) -> tuple[BaseException | None, float]:
    """The exception `call` raised (None if none) and the seconds it took."""
    started = time.monotonic()
    try:
        call()
    except Exception as exc:
        return exc, time.monotonic() - started
    return None, time.monotonic() - started


def invoke(path: Path, dry_run: bool = False) -> str:
    out = io.StringIO()
    invoke_collector(str(path), DAY, dry_run, out)
    return out.getvalue()


def materialize(folder: Path, instance: dg.DagsterInstance) -> dg.ExecuteInProcessResult:
    defs = build_definitions(load_catalog(str(folder)), str(folder))
    return dg.materialize(
        list(defs.assets or []),  # type: ignore[arg-type]
        resources=defs.resources,
        instance=instance,
        partition_key=DAY,
        raise_on_error=False,
    )


# --- the positive control -------------------------------------------------------------------


def test_a_run_that_may_write_does_query_the_source(
    tmp_path: Path, source_db: str, scans: SourceScans
) -> None:
    path = write_collector(tmp_path, source_db)
    before = scans.now()
    printed = invoke(path)
    assert printed.count("\n") == 2  # acme and globex
    assert scans.since(before, settle=5) >= 1  # the counter moves when the source is queried
    assert (tmp_path / "audit.jsonl").read_text() == printed


# --- signals invoke -------------------------------------------------------------------------


def test_invoke_checks_sinks_before_the_query(
    tmp_path: Path, source_db: str, scans: SourceScans, broken_sink: tuple[str, str, str]
) -> None:
    _, sink, message = broken_sink
    path = write_collector(tmp_path, source_db, sink)
    before = scans.now()
    error, seconds = timed(lambda: invoke(path))
    assert isinstance(error, SinkError), error
    assert message in str(error)
    assert seconds < FAST
    assert scans.since(before) == 0
    assert not (tmp_path / "audit.jsonl").exists()  # no sink was written either


def test_refused_broker_fails_at_once_with_the_cause(
    tmp_path: Path, source_db: str, scans: SourceScans
) -> None:
    broker = f"127.0.0.1:{free_port()}"
    path = write_collector(tmp_path, source_db, kafka_sink(broker, timeout="60s"))
    before = scans.now()
    error, seconds = timed(lambda: invoke(path))
    assert isinstance(error, SinkError)
    assert seconds < FAST, seconds  # not the 60 s timeout
    assert f"kafka sink: cannot look up topic 'signals' on {broker}: no broker reachable" in str(
        error
    )
    assert "Connection refused" in str(error)
    assert error.transient  # a broker being restarted refuses too: Dagster may retry
    assert scans.since(before) == 0
    print(f"refused broker failed after {seconds:.2f}s")


def test_silent_broker_gets_the_whole_timeout(
    tmp_path: Path, source_db: str, scans: SourceScans, silent_broker: str
) -> None:
    path = write_collector(tmp_path, source_db, kafka_sink(silent_broker, timeout="3s"))
    before = scans.now()
    error, seconds = timed(lambda: invoke(path))
    assert isinstance(error, SinkError)
    assert 2.9 <= seconds < 3 + FAST, seconds
    assert f"cannot look up topic 'signals' on {silent_broker} within 3s (is the broker up?)" in (
        str(error)
    )
    assert scans.since(before) == 0
    print(f"silent broker failed after {seconds:.2f}s")


def test_one_refusing_broker_does_not_cut_the_wait_for_another(silent_broker: str) -> None:
    refusing = f"127.0.0.1:{free_port()}"
    config = KafkaConfig(brokers=[refusing, silent_broker], topic="t", timeout="2s")
    error, seconds = timed(lambda: check_topic(config))
    assert isinstance(error, SinkError)
    assert seconds >= 1.9, seconds  # the silent one may still answer: it gets the timeout
    assert "within 2s" in str(error)
    assert f"last connection error: {refusing}/bootstrap" in str(error)  # what was seen


def test_a_reachable_sink_passes_and_the_run_writes(
    tmp_path: Path, source_db: str, scans: SourceScans, kafka_broker: TansuBroker
) -> None:
    topic = f"preflight-{time.monotonic_ns()}"
    create_topic(kafka_broker.bootstrap, topic)
    path = write_collector(tmp_path, source_db, kafka_sink(kafka_broker.bootstrap, "10s", topic))
    before = scans.now()
    assert invoke(path).count("\n") == 2
    assert scans.since(before, settle=5) >= 1


def test_missing_topic_fails_before_the_query(
    tmp_path: Path, source_db: str, scans: SourceScans, kafka_broker: TansuBroker
) -> None:
    topic = f"absent-{time.monotonic_ns()}"
    path = write_collector(tmp_path, source_db, kafka_sink(kafka_broker.bootstrap, "10s", topic))
    before = scans.now()
    with pytest.raises(SinkError, match=f"topic '{topic}' on .* does not exist"):
        invoke(path)
    assert scans.since(before) == 0


def test_dry_run_checks_no_sink(tmp_path: Path, source_db: str, scans: SourceScans) -> None:
    # A dry run writes no sink, so it checks none: it runs where the sinks are out of reach.
    path = write_collector(tmp_path, source_db, kafka_sink(f"127.0.0.1:{free_port()}"))
    before = scans.now()
    assert invoke(path, dry_run=True).count("\n") == 2
    assert scans.since(before, settle=5) >= 1
    assert not (tmp_path / "audit.jsonl").exists()


def test_cli_invoke_reports_the_dead_broker_in_one_line(
    tmp_path: Path, source_db: str, scans: SourceScans
) -> None:
    path = write_collector(tmp_path, source_db, kafka_sink(f"127.0.0.1:{free_port()}"))
    before = scans.now()
    result = subprocess.run(
        [sys.executable, "-m", "signals_dagster.cli", "invoke", str(path), "--partition", DAY],
        capture_output=True,
        text=True,
        timeout=60,
        env=os.environ.copy(),
        cwd=ROOT,
    )
    assert result.returncode == 1, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: kafka sink: cannot look up topic 'signals'"), last
    assert "no broker reachable" in last
    assert result.stdout == ""  # nothing was collected, so nothing printed
    assert scans.since(before) == 0


# --- Dagster --------------------------------------------------------------------------------


def test_dagster_run_checks_sinks_before_the_query(
    tmp_path: Path, source_db: str, scans: SourceScans, broken_sink: tuple[str, str, str]
) -> None:
    _, sink, message = broken_sink
    path = write_collector(tmp_path, source_db, sink)
    instance = dg.DagsterInstance.ephemeral()
    before = scans.now()
    started = time.monotonic()
    result = materialize(path.parent, instance)
    seconds = time.monotonic() - started
    assert not result.success
    assert message in failure_message(result)
    assert seconds < FAST + 10  # Dagster's own start-up and teardown, not the 60 s timeout
    assert scans.since(before) == 0
    assert not (tmp_path / "audit.jsonl").exists()
    assert instance.get_latest_materialization_event(dg.AssetKey("preflight_orders_daily")) is None


def test_dagster_run_with_reachable_sinks_queries_and_writes(
    tmp_path: Path, source_db: str, scans: SourceScans
) -> None:
    path = write_collector(tmp_path, source_db)
    before = scans.now()
    result = materialize(path.parent, dg.DagsterInstance.ephemeral())
    assert result.success
    assert scans.since(before, settle=5) >= 1
    assert len((tmp_path / "audit.jsonl").read_text().splitlines()) == 2


# --- signals redrive ------------------------------------------------------------------------


def test_redrive_checks_the_sink_before_reading_the_log(
    tmp_path: Path, source_db: str, broken_sink: tuple[str, str, str]
) -> None:
    name, sink, message = broken_sink
    path = write_collector(tmp_path, source_db, sink)
    log = tmp_path / "old-audit.jsonl"
    log.write_text("not a record\n")  # reading it would fail: the sink's error comes first
    error, seconds = timed(lambda: redrive(str(log), str(path), name))
    assert isinstance(error, SinkError), error
    assert message in str(error)
    assert seconds < FAST


def test_redrive_reads_the_log_once_the_sink_passes(tmp_path: Path, source_db: str) -> None:
    path = write_collector(tmp_path, source_db, file_sink(tmp_path / "new" / "audit.jsonl"))
    log = tmp_path / "old-audit.jsonl"
    log.write_text("not a record\n")
    with pytest.raises(CollectorError, match="not a JSON record"):
        redrive(str(log), str(path), "blocked")
    assert not (tmp_path / "new").exists()  # the check created nothing


# --- the file sink's check ------------------------------------------------------------------


def test_file_check_passes_for_a_new_log_in_new_folders(tmp_path: Path) -> None:
    check_writable(str(tmp_path / "a" / "b" / "audit.jsonl"))
    assert list(tmp_path.iterdir()) == []  # nothing created by the check
    existing = tmp_path / "audit.jsonl"
    existing.write_text("")
    check_writable(str(existing))


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda tmp: tmp, "it is a directory"),
        (lambda tmp: _file(tmp / "f") / "audit.jsonl", "is not a directory"),
        (lambda tmp: _file(tmp / "f") / "deeper" / "audit.jsonl", "is not a directory"),
    ],
)
def test_file_check_refuses_what_cannot_be_appended_to(
    tmp_path: Path, make: Callable[[Path], Path], message: str
) -> None:
    with pytest.raises(SinkError, match=message):
        check_writable(str(make(tmp_path)))


def _file(path: Path) -> Path:
    path.write_text("x\n")
    return path
