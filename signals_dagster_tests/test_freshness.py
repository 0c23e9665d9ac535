"""Freshness: missing windows become a failed `freshness` check and one alert per window."""

import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from signals_dagster.catalog import load_catalog
from signals_dagster.orchestration import freshness
from signals_dagster.orchestration.factory import build_definitions, collector_job
from signals_dagster.orchestration.freshness import (
    FRESHNESS_CHECK,
    build_freshness_check,
    build_freshness_sensor,
    due_windows,
    freshness_check_spec,
)
from signals_dagster.spec.models import CollectorSpec
from signals_dagster_tests.servers.http import Answer, RecordingServer
from signals_dagster_tests.sqlite_shop import collector_yaml, make_shop

KEY = dg.AssetKey("shop_revenue_daily")
CHECK_KEY = dg.AssetCheckKey(KEY, FRESHNESS_CHECK)
# 01:00 on 2026-02-08: with a grace of 2h the window of 02-07 (ends at 00:00) is not due yet;
# a lookback of 7d watches the windows starting from 02-01 01:00 on: 02-02 ... 02-06.
NOW = datetime(2026, 2, 8, 1, 0, tzinfo=UTC)
FRESHNESS = "freshness: {grace: 2h, lookback: 7d}\n"


@dataclass
class Clock:
    """The sensor's "now", moved by the test."""

    now: datetime

    def __call__(self) -> datetime:
        return self.now


@dataclass
class Shop:
    spec: CollectorSpec
    defs: dg.Definitions
    asset: dg.AssetsDefinition
    clock: Clock
    sensor: dg.SensorDefinition


def _shop(tmp_path: Path, extra: str = FRESHNESS, replace: tuple[str, str] = ("", "")) -> Shop:
    folder = tmp_path / "collectors"
    folder.mkdir()
    db = make_shop(tmp_path / "shop.sqlite", days=12)
    text = collector_yaml(db, tmp_path / "audit.jsonl", extra=extra)
    (folder / "revenue.yaml").write_text(text.replace(*replace) if replace[0] else text)
    catalog = load_catalog(str(folder))
    (spec,) = catalog.specs.values()
    defs = build_definitions(catalog, str(folder))
    (asset,) = [a for a in defs.assets or [] if isinstance(a, dg.AssetsDefinition)]
    clock = Clock(NOW)
    sensor = build_freshness_sensor(spec, asset.key, clock)
    assert sensor is not None
    return Shop(spec, defs, asset, clock, sensor)


@pytest.fixture
def shop(tmp_path: Path) -> Shop:
    return _shop(tmp_path)


@pytest.fixture
def instance() -> Iterator[dg.DagsterInstance]:
    with dg.instance_for_test() as instance:  # SQLite storage in a temporary DAGSTER_HOME
        yield instance


@pytest.fixture
def alerts(
    http_server: RecordingServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> RecordingServer:
    """signals.yaml sends alerts to the test HTTP server."""
    settings = tmp_path / "signals.yaml"
    settings.write_text(
        f"alerts:\n  http:\n    uri: '{http_server.url('/alerts')}'\n"
        "    headers: {X-Team: growth}\n    timeout: 5s\n"
    )
    monkeypatch.setenv("SIGNALS_SETTINGS", str(settings))
    return http_server


def materialise(shop: Shop, instance: dg.DagsterInstance, *days: str) -> None:
    for day in days:
        result = dg.materialize(
            [shop.asset], resources=shop.defs.resources, instance=instance, partition_key=day
        )
        assert result.success


class _Lines(logging.Handler):
    def __init__(self, lines: list[str]) -> None:
        super().__init__()
        self.lines = lines

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def tick(
    shop: Shop, instance: dg.DagsterInstance, cursor: str | None, log: list[str] | None = None
) -> Any:
    """One sensor evaluation; its asset events are recorded as the sensor daemon does, the
    lines of its log (the tick's log in the UI) appended to `log`."""
    context = dg.build_sensor_context(instance=instance, cursor=cursor)
    context.log.addHandler(_Lines(log if log is not None else []))
    data = shop.sensor.evaluate_tick(context)
    for event in data.asset_events:
        instance.report_runless_asset_event(event)
    return data


def alerts_in(log: list[str]) -> list[str]:
    """The partitions of the structured alerts in a sensor's log."""
    return [json.loads(line)["partition"] for line in log if line.startswith("{")]


def latest(instance: dg.DagsterInstance) -> dg.AssetCheckEvaluation:
    record = instance.event_log_storage.get_latest_asset_check_execution_by_key([CHECK_KEY])[
        CHECK_KEY
    ]
    assert record.event is not None
    assert record.event.dagster_event is not None
    data = record.event.dagster_event.event_specific_data
    assert isinstance(data, dg.AssetCheckEvaluation)
    return data


def meta(evaluation: dg.AssetCheckEvaluation, name: str) -> object:
    return evaluation.metadata[name].value


def days(*numbers: int) -> list[str]:
    return [f"2026-02-{n:02d}" for n in numbers]


def test_due_windows_follow_lag_grace_and_lookback(tmp_path: Path) -> None:
    spec = _shop(tmp_path).spec
    assert [w.key for w in due_windows(spec, NOW)] == days(2, 3, 4, 5, 6)
    at_grace = datetime(2026, 2, 8, 2, 0, tzinfo=UTC)  # 02-07 ends at 00:00, + 2h grace
    assert [w.key for w in due_windows(spec, at_grace - timedelta(seconds=1))][-1] == "2026-02-06"
    assert [w.key for w in due_windows(spec, at_grace)][-1] == "2026-02-07"
    # Never before partitions.start (02-01), and nothing due before the first window is.
    assert [w.key for w in due_windows(spec, datetime(2026, 2, 3, 3, 0, tzinfo=UTC))] == days(1, 2)
    assert due_windows(spec, datetime(2026, 2, 1, 12, 0, tzinfo=UTC)) == []


def test_lag_delays_a_window_too(tmp_path: Path) -> None:
    spec = _shop(tmp_path, replace=("start: '2026-02-01'", "start: '2026-02-01'\n  lag: 30m")).spec
    assert spec.partitions.lag == timedelta(minutes=30)
    assert [w.key for w in due_windows(spec, datetime(2026, 2, 8, 2, 29, tzinfo=UTC))][-1] == (
        "2026-02-06"
    )
    assert [w.key for w in due_windows(spec, datetime(2026, 2, 8, 2, 30, tzinfo=UTC))][-1] == (
        "2026-02-07"
    )


def test_without_freshness_there_is_no_check_nor_sensor(tmp_path: Path) -> None:
    spec = _shop(tmp_path).spec
    plain = spec.model_copy(update={"freshness": None})
    assert freshness_check_spec(plain, KEY) is None
    assert build_freshness_check(plain, KEY) is None
    assert build_freshness_sensor(plain, KEY) is None
    check = freshness_check_spec(spec, KEY)
    assert check is not None
    assert (check.name, check.blocking, check.partitions_def) == (FRESHNESS_CHECK, False, None)


def test_a_missing_day_fails_the_check_and_is_alerted_once(
    shop: Shop,
    instance: dg.DagsterInstance,
    alerts: RecordingServer,
) -> None:
    assert shop.sensor.name == "shop_revenue_daily_freshness"
    assert shop.sensor.default_status == dg.DefaultSensorStatus.RUNNING
    assert shop.sensor.minimum_interval_seconds == 300
    materialise(shop, instance, *days(2, 3, 5, 6))  # not 02-04; 02-07 is within the grace

    log: list[str] = []
    first = tick(shop, instance, None, log)
    (evaluation,) = first.asset_events
    assert isinstance(evaluation, dg.AssetCheckEvaluation)
    assert (evaluation.asset_key, evaluation.check_name) == (KEY, FRESHNESS_CHECK)
    assert not evaluation.passed
    assert evaluation.severity == dg.AssetCheckSeverity.ERROR
    assert not evaluation.blocking
    assert evaluation.partition is None  # one evaluation for the asset, naming the partitions
    assert meta(evaluation, "missing") == 1
    assert meta(evaluation, "missing_partitions") == "2026-02-04"
    assert meta(evaluation, "watched") == 5
    assert "2026-02-04" in str(evaluation.description)
    assert not latest(instance).passed

    (request,) = alerts.requests  # one alert, by HTTP ...
    alert = request.json()
    assert request.path == "/alerts"
    assert request.headers["X-Team"] == "growth"
    assert alert["alert"] == "signals_dagster.missing_window"
    assert alert["collectors"] == ["shop_revenue_daily"]
    assert alert["partition"] == "2026-02-04"
    assert alert["window_start"] == "2026-02-04T00:00:00+00:00"
    assert alert["due"] == "2026-02-05T02:00:00+00:00"
    assert "no materialisation" in alert["error"]
    assert alerts_in(log) == ["2026-02-04"]  # ... and in the log
    assert json.loads(log[0]) == alert
    assert json.loads(first.cursor) == {"alerted": ["2026-02-04"]}

    again = tick(shop, instance, first.cursor)  # nothing changed: no event, no second alert
    assert again.asset_events == []
    assert len(alerts.requests) == 1
    assert again.cursor == first.cursor

    shop.clock.now = NOW + timedelta(days=1)  # 02-07 is due now, and missing
    later = tick(shop, instance, again.cursor)
    (evaluation,) = later.asset_events
    assert meta(evaluation, "missing_partitions") == "2026-02-04, 2026-02-07"
    assert [r.json()["partition"] for r in alerts.requests] == days(4, 7)  # only the new one

    materialise(shop, instance, *days(4, 7))
    back = tick(shop, instance, later.cursor)
    (evaluation,) = back.asset_events
    assert evaluation.passed
    assert meta(evaluation, "missing") == 0
    assert latest(instance).passed
    assert json.loads(back.cursor) == {"alerted": []}
    assert len(alerts.requests) == 2  # a window that comes back is not alerted
    assert tick(shop, instance, back.cursor).asset_events == []  # passing stays reported once


def test_alerted_windows_leave_the_cursor_with_the_lookback(
    shop: Shop, instance: dg.DagsterInstance, alerts: RecordingServer
) -> None:
    materialise(shop, instance, *days(2, 3, 5, 6))
    first = tick(shop, instance, None)
    assert json.loads(first.cursor) == {"alerted": ["2026-02-04"]}
    shop.clock.now = NOW + timedelta(days=4)  # 02-04 is out of the lookback; 02-07..02-10 due
    later = tick(shop, instance, first.cursor)
    assert json.loads(later.cursor) == {"alerted": days(7, 8, 9, 10)}
    (evaluation,) = later.asset_events
    assert (
        meta(evaluation, "missing_partitions") == "2026-02-07, 2026-02-08, 2026-02-09, 2026-02-10"
    )
    assert [r.json()["partition"] for r in alerts.requests] == days(4, 7, 8, 9, 10)


def test_without_http_alerts_go_to_the_log_only(shop: Shop, instance: dg.DagsterInstance) -> None:
    log: list[str] = []
    first = tick(shop, instance, None, log)  # nothing materialised: 5 windows missing
    assert alerts_in(log) == days(2, 3, 4, 5, 6)
    assert json.loads(first.cursor) == {"alerted": days(2, 3, 4, 5, 6)}


def test_a_tick_sends_at_most_max_alerts(
    shop: Shop,
    instance: dg.DagsterInstance,
    alerts: RecordingServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(freshness, "MAX_ALERTS", 2)
    cursor = None
    for expected in (days(2, 3), days(2, 3, 4, 5), days(2, 3, 4, 5, 6), days(2, 3, 4, 5, 6)):
        cursor = tick(shop, instance, cursor).cursor
        assert [r.json()["partition"] for r in alerts.requests] == expected


def test_an_undeliverable_alert_is_logged_and_the_others_wait(
    shop: Shop,
    instance: dg.DagsterInstance,
    alerts: RecordingServer,
) -> None:
    materialise(shop, instance, *days(2, 3, 6))  # 02-04 and 02-05 missing
    alerts.script(Answer(status=500))
    log: list[str] = []
    first = tick(shop, instance, None, log)
    assert [r.json()["partition"] for r in alerts.requests] == days(4)  # one attempt this tick
    assert alerts_in(log) == days(4)
    assert any(line.startswith("alert not delivered to http://127.0.0.1") for line in log)
    (evaluation,) = first.asset_events  # the check is reported all the same
    assert meta(evaluation, "missing_partitions") == "2026-02-04, 2026-02-05"
    assert json.loads(first.cursor) == {"alerted": days(4)}  # one attempt per window
    second = tick(shop, instance, first.cursor)
    assert [r.json()["partition"] for r in alerts.requests] == days(4, 5)
    assert json.loads(second.cursor) == {"alerted": days(4, 5)}
    assert second.asset_events == []


def test_the_check_registered_with_the_asset_runs_after_its_materialisation(
    shop: Shop, instance: dg.DagsterInstance
) -> None:
    """Definitions as build_definitions makes them with the check and the sensor: the
    collector's job executes the check after the materialisation, and the sensor agrees."""
    check = build_freshness_check(shop.spec, shop.asset.key, shop.clock)
    assert check is not None
    defs = dg.Definitions(
        assets=[shop.asset],
        asset_checks=[check],
        resources=shop.defs.resources,
        jobs=[collector_job(shop.spec)],
        sensors=[shop.sensor],
    )
    dg.Definitions.validate_loadable(defs)
    assert [s.name for s in defs.sensors or []] == ["shop_revenue_daily_freshness"]
    materialise(shop, instance, *days(2, 3, 5, 6))
    first = tick(shop, instance, None)
    assert not latest(instance).passed

    job = defs.resolve_job_def("shop_revenue_daily_job")
    result = job.execute_in_process(instance=instance, partition_key="2026-02-04")
    assert result.success
    (evaluation,) = result.get_asset_check_evaluations()
    assert evaluation.check_name == FRESHNESS_CHECK
    assert evaluation.passed  # the day the run materialised counts
    assert meta(evaluation, "missing") == 0
    assert latest(instance).passed
    again = tick(shop, instance, first.cursor)
    assert again.asset_events == []  # the latest evaluation already says so
    assert json.loads(again.cursor) == {"alerted": []}
