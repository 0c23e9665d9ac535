"""Sensors: late data re-collects exactly the changed windows; failures become alerts."""

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import dagster as dg
import psycopg
import pytest

from signals_dagster.catalog import load_catalog
from signals_dagster.orchestration.factory import build_definitions
from signals_dagster.orchestration.sensors import fingerprints, lookback_windows
from signals_dagster.orchestration.translator import pool_name
from signals_dagster.spec.loader import load_file

TODAY = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


@pytest.fixture
def late_table(pg_url: str) -> Iterator[str]:
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS ld_orders")
        conn.execute(
            "CREATE TABLE ld_orders (id serial, amount int, created_at timestamptz, "
            "updated_at timestamptz DEFAULT now())"
        )
        for day in range(1, 6):
            for hour in (3, 15):
                conn.execute(
                    "INSERT INTO ld_orders (amount, created_at) VALUES (%s, %s)",
                    (day * 10 + hour, TODAY - timedelta(days=day) + timedelta(hours=hour)),
                )
    return pg_url


def late_yaml(pg_url: str, tmp_path: Path) -> Path:
    folder = tmp_path / "late"
    folder.mkdir(exist_ok=True)
    start = (TODAY - timedelta(days=30)).strftime("%Y-%m-%d")
    (folder / "c.yaml").write_text(f"""
name: ld.revenue
metric: {{name: ld.revenue, type: GAUGE}}
partitions: {{start: '{start}'}}
late_data:
  lookback: 3d
  fingerprint_sql: >-
    SELECT count(*), max(updated_at), sum(amount) FROM ld_orders
    WHERE created_at >= :window_start AND created_at < :window_end
source:
  type: postgres
  config:
    uri: '{pg_url}'
    sql: >-
      SELECT SUM(amount) AS value FROM ld_orders
      WHERE created_at >= :window_start AND created_at < :window_end
sinks:
  console: {{type: console}}
""")
    return folder


def evaluate(
    defs: dg.Definitions, cursor: str | None, instance: dg.DagsterInstance | None = None
) -> Any:
    sensor = defs.get_sensor_def("ld_revenue_late_data")
    context = dg.build_sensor_context(
        cursor=cursor,
        repository_def=defs.get_repository_def(),
        instance=instance or dg.DagsterInstance.ephemeral(),
    )
    return sensor.evaluate_tick(context)


def test_lookback_covers_closed_windows_only(late_table: str, tmp_path: Path) -> None:
    spec = load_file(late_yaml(late_table, tmp_path) / "c.yaml")
    now = TODAY + timedelta(hours=5)
    keys = [w.key for w in lookback_windows(spec, now)]
    expected = [(TODAY - timedelta(days=d)).strftime("%Y-%m-%d") for d in (3, 2, 1)]
    assert keys == expected
    assert set(fingerprints(spec, lookback_windows(spec, now))) == set(expected)


def test_late_data_sensor_requests_exactly_the_changed_windows(
    late_table: str, tmp_path: Path
) -> None:
    defs = build_definitions(
        *(lambda f: (load_catalog(str(f)), str(f)))(late_yaml(late_table, tmp_path))
    )
    first = evaluate(defs, None)
    assert first.run_requests == []  # the first evaluation only sets the baseline
    assert first.cursor is not None
    again = evaluate(defs, first.cursor)
    assert again.run_requests == []  # nothing changed
    two_days_ago = TODAY - timedelta(days=2)
    with psycopg.connect(late_table, autocommit=True) as conn:  # a late row for two days ago
        conn.execute(
            "INSERT INTO ld_orders (amount, created_at) VALUES (7, %s)",
            (two_days_ago + timedelta(hours=20),),
        )
        conn.execute(  # and an update of yesterday
            "UPDATE ld_orders SET amount = amount + 1, updated_at = now() "
            "WHERE created_at >= %s AND created_at < %s",
            (TODAY - timedelta(days=1), TODAY),
        )
        conn.execute(  # a change older than the lookback is ignored
            "UPDATE ld_orders SET amount = 0 WHERE created_at < %s", (TODAY - timedelta(days=4),)
        )
    changed = evaluate(defs, again.cursor)
    keys = sorted(r.partition_key for r in changed.run_requests or [])
    assert keys == sorted(
        [two_days_ago.strftime("%Y-%m-%d"), (TODAY - timedelta(days=1)).strftime("%Y-%m-%d")]
    )
    assert evaluate(defs, changed.cursor).run_requests == []


def late_defs(folder: Path) -> dg.Definitions:
    return build_definitions(load_catalog(str(folder)), str(folder))


def test_fingerprint_queries_take_a_slot_of_the_source_pool(
    late_table: str, tmp_path: Path
) -> None:
    defs = late_defs(late_yaml(late_table, tmp_path))
    pool = pool_name(load_file(tmp_path / "late" / "c.yaml"))
    with dg.instance_for_test() as instance:  # sqlite storage: pools have slots
        storage = instance.event_log_storage
        storage.set_concurrency_slots(pool, 1)
        assert storage.claim_concurrency_slot(pool, "busy-run", "collect").is_claimed
        full = evaluate(defs, None, instance)
        assert not full.run_requests
        assert f"pool {pool!r} is full" in str(full.skip_message)
        assert full.cursor is None  # nothing was queried: the fingerprints wait
        storage.free_concurrency_slot_for_step("busy-run", "collect")
        free = evaluate(defs, None, instance)
        assert free.cursor is not None
        info = storage.get_concurrency_info(pool)
        assert (info.active_slot_count, info.pending_step_count) == (0, 0)  # the slot went back


def test_a_failing_fingerprint_query_fails_the_tick(late_table: str, tmp_path: Path) -> None:
    folder = late_yaml(late_table, tmp_path)
    path = folder / "c.yaml"
    path.write_text(
        path.read_text().replace("FROM ld_orders\n    WHERE", "FROM ld_nope\n    WHERE")
    )
    pool = pool_name(load_file(path))
    with dg.instance_for_test() as instance:
        instance.event_log_storage.set_concurrency_slots(pool, 1)
        with pytest.raises(Exception, match=r"fingerprint query failed.*ld_nope"):
            evaluate(late_defs(folder), None, instance)
        assert instance.event_log_storage.get_concurrency_info(pool).active_slot_count == 0


class _Inbox(BaseHTTPRequestHandler):
    received: ClassVar[list[dict]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        _Inbox.received.append(json.loads(body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def inbox() -> Iterator[str]:
    _Inbox.received = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Inbox)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/alerts"
    finally:
        server.shutdown()


def test_failure_sensor_logs_and_posts_one_structured_alert(
    tmp_path: Path, inbox: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "f"
    folder.mkdir()
    (folder / "c.yaml").write_text("""
name: broken.metric
metric: {name: broken.metric, type: COUNT}
partitions: {start: '2026-01-01'}
retries: 0
source:
  type: postgres
  config:
    uri: 'postgresql://postgres:Pw0rdSecret@127.0.0.1:5432/postgres'
    sql: SELECT COUNT(*) AS value FROM no_such_table WHERE t >= :window_start AND t < :window_end
sinks:
  console: {type: console}
""")
    settings = tmp_path / "signals.yaml"
    settings.write_text(f"alerts:\n  http:\n    uri: '{inbox}'\n    timeout: 5s\n")
    monkeypatch.setenv("SIGNALS_SETTINGS", str(settings))
    defs = build_definitions(load_catalog(str(folder)), str(folder))
    instance = dg.DagsterInstance.ephemeral()
    result = defs.resolve_job_def("broken_metric_job").execute_in_process(
        instance=instance, partition_key="2026-02-10", raise_on_error=False
    )
    assert not result.success
    failure_event = next(
        e for e in result.all_events if e.event_type == dg.DagsterEventType.RUN_FAILURE
    )
    sensor = defs.get_sensor_def("signals_run_failures")
    context = dg.build_run_status_sensor_context(
        sensor_name="signals_run_failures",
        dagster_event=failure_event,
        dagster_instance=instance,
        dagster_run=result.dagster_run,
    ).for_run_failure()
    sensor(context)  # type: ignore[call-arg]
    (alert,) = _Inbox.received
    assert alert["collectors"] == ["broken_metric"]
    assert alert["partition"] == "2026-02-10"
    assert "no_such_table" in alert["error"]
    assert "Pw0rdSecret" not in json.dumps(alert)
    assert alert["run_id"] == result.run_id
