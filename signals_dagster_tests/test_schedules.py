"""Schedules: each tick requests the window that just closed (timezones, lag, cron, interval)."""

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import dagster as dg
import pytest

from signals_dagster.catalog import load_catalog
from signals_dagster.orchestration.factory import build_definitions
from signals_dagster.orchestration.schedules import close_cron
from signals_dagster.spec.loader import load_file

BERLIN = ZoneInfo("Europe/Berlin")


def collector(grain: str, schedule: str = "", partitions: str = "", sql: str = "") -> str:
    sql = sql or "SELECT 1 AS value WHERE :window_start < :window_end"
    return f"""
name: tick.test
metric: {{name: tick.test, type: COUNT, grain: {grain}}}
{schedule}
partitions: {{start: '2026-01-01'{partitions}}}
source:
  type: sqlite
  config: {{uri: 'sqlite:///:memory:', sql: "{sql}"}}
sinks:
  console: {{type: console}}
"""


@pytest.fixture
def defs_for(tmp_path: Path) -> Callable[[str], dg.Definitions]:
    def build(text: str) -> dg.Definitions:
        folder = tmp_path / f"c{len(list(tmp_path.iterdir()))}"
        folder.mkdir()
        (folder / "c.yaml").write_text(text)
        return build_definitions(load_catalog(str(folder)), str(folder))

    return build


def tick(defs: dg.Definitions, name: str, when: datetime) -> list[str | None]:
    schedule = defs.get_schedule_def(name)
    context = dg.build_schedule_context(
        scheduled_execution_time=when, repository_def=defs.get_repository_def()
    )
    result = schedule.evaluate_tick(context)
    return [r.partition_key for r in result.run_requests or []]


@pytest.mark.parametrize(
    ("schedule", "partitions", "when", "expected"),
    [
        # The example: cron 00:15 UTC on Feb 11 asks for Feb 10.
        (
            "schedule: {cron: '15 0 * * *'}",
            "",
            datetime(2026, 2, 11, 0, 15, tzinfo=UTC),
            "2026-02-10",
        ),
        # interval = grain: right after close (+ lag).
        ("schedule: {interval: 24h}", "", datetime(2026, 2, 11, 0, 0, tzinfo=UTC), "2026-02-10"),
        (
            "schedule: {interval: 24h}",
            ", lag: 90m",
            datetime(2026, 2, 11, 1, 30, tzinfo=UTC),
            "2026-02-10",
        ),
        # A cron earlier than close + lag still waits for the lag: the day before.
        (
            "schedule: {cron: '15 0 * * *'}",
            ", lag: 1h",
            datetime(2026, 2, 11, 0, 15, tzinfo=UTC),
            "2026-02-09",
        ),
        # Berlin days: 00:15 local on Mar 30 (after the 23 h day) asks for Mar 29.
        (
            "schedule: {cron: '15 0 * * *'}",
            ", timezone: Europe/Berlin",
            datetime(2026, 3, 30, 0, 15, tzinfo=BERLIN),
            "2026-03-29",
        ),
        (
            "schedule: {interval: 24h}",
            ", timezone: Europe/Berlin, lag: 15m",
            datetime(2026, 10, 26, 0, 15, tzinfo=BERLIN),
            "2026-10-25",
        ),
        # Default schedule when none is given: window close.
        ("", "", datetime(2026, 2, 11, 0, 0, tzinfo=UTC), "2026-02-10"),
    ],
)
def test_daily_tick_requests_the_window_that_just_closed(
    defs_for: Callable[[str], dg.Definitions],
    schedule: str,
    partitions: str,
    when: datetime,
    expected: str,
) -> None:
    defs = defs_for(collector("24h", schedule, partitions))
    assert tick(defs, "tick_test_schedule", when) == [expected]


def test_schedule_cron_follows_close_plus_lag(defs_for: Callable[[str], dg.Definitions]) -> None:
    defs = defs_for(
        collector("24h", "schedule: {interval: 24h}", ", timezone: Europe/Berlin, lag: 90m")
    )
    schedule = defs.get_schedule_def("tick_test_schedule")
    assert schedule.cron_schedule == "30 1 * * *"
    assert schedule.execution_timezone == "Europe/Berlin"
    assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING


@pytest.mark.parametrize(
    ("grain", "lag", "cron"),
    [
        ("1h", "15m", "15 * * * *"),
        ("6h", "90m", "30 1-23/6 * * *"),
        ("7d", "25h", "0 1 * * 2"),
        ("1mo", "48h", "0 0 3 * *"),
        ("5m", "2m", "2-59/5 * * * *"),
        ("1m", "0m", "* * * * *"),
    ],
)
def test_close_cron_per_grain(tmp_path: Path, grain: str, lag: str, cron: str) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(collector(grain, partitions=f", lag: {lag}"))
    assert close_cron(load_file(path)) == cron


@pytest.mark.parametrize(
    ("grain", "when", "expected"),
    [
        ("1h", datetime(2026, 2, 11, 5, 0, tzinfo=UTC), "2026-02-11-04:00"),
        ("7d", datetime(2026, 2, 16, 0, 0, tzinfo=UTC), "2026-02-09"),  # Monday: last ISO week
        ("1mo", datetime(2026, 3, 1, 0, 0, tzinfo=UTC), "2026-02-01"),
    ],
)
def test_other_grains_tick(
    defs_for: Callable[[str], dg.Definitions], grain: str, when: datetime, expected: str
) -> None:
    defs = defs_for(collector(grain))
    assert tick(defs, "tick_test_schedule", when) == [expected]


def test_tick_before_the_first_window_skips(defs_for: Callable[[str], dg.Definitions]) -> None:
    defs = defs_for(collector("24h"))
    assert tick(defs, "tick_test_schedule", datetime(2026, 1, 1, 0, 5, tzinfo=UTC)) == []


def test_disabled_schedule_is_created_stopped(defs_for: Callable[[str], dg.Definitions]) -> None:
    defs = defs_for(collector("24h", "schedule: {interval: 24h, enabled: false}"))
    schedule = defs.get_schedule_def("tick_test_schedule")
    assert schedule.default_status == dg.DefaultScheduleStatus.STOPPED


def test_subhour_grains_use_cron_or_a_sensor(defs_for: Callable[[str], dg.Definitions]) -> None:
    five = defs_for(collector("5m", "schedule: {interval: 5m}"))
    schedule = five.get_schedule_def("tick_test_schedule")
    assert schedule.cron_schedule == "0-59/5 * * * *"
    (asset,) = list(five.assets or [])
    assert asset.partitions_def is None
    ten = defs_for(collector("10s", "schedule: {interval: 10s}"))
    sensor = ten.get_sensor_def("tick_test_sensor")
    assert sensor.minimum_interval_seconds == 10
    result = sensor.evaluate_tick(dg.build_sensor_context(repository_def=ten.get_repository_def()))
    assert len(result.run_requests or []) == 1
