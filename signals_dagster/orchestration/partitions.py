"""Grain + partitions settings → Dagster partitions definitions.

The window arithmetic (keys → windows, the window of an instant) lives in the Dagster-free
`signals_dagster.partitioning`, re-exported here; `test_partitioning.py` checks that it agrees
with the definitions built below.
"""

import functools
from datetime import timedelta

import dagster as dg

from signals_dagster.partitioning import (
    HOUR,
    MINUTE_FMT,
    current_window,
    key_format,
    window_for_key,
)
from signals_dagster.spec.fields import MONTH, grain_timedelta
from signals_dagster.spec.models import CollectorSpec

__all__ = ["HOUR", "MINUTE_FMT", "current_window", "partitions_def", "window_for_key"]


def partitions_def(spec: CollectorSpec) -> dg.TimeWindowPartitionsDefinition | None:
    """The time-window partitions of a collector; None for sub-hour grains (not partitioned)."""
    return _partitions_def(spec.metric.grain, spec.partitions.start, spec.partitions.timezone)


@functools.lru_cache(maxsize=256)
def _partitions_def(grain: str, start: str, tz: str) -> dg.TimeWindowPartitionsDefinition | None:
    if key_format(grain) is None:
        return None
    if grain == MONTH:
        return dg.MonthlyPartitionsDefinition(start_date=start, timezone=tz)
    delta = grain_timedelta(grain)
    assert delta is not None
    if delta == timedelta(days=7):
        # ISO weeks: Monday to Monday.
        return dg.WeeklyPartitionsDefinition(start_date=start, timezone=tz, day_offset=1)
    if delta == timedelta(days=1):
        return dg.DailyPartitionsDefinition(start_date=start, timezone=tz)
    if delta == HOUR:
        return dg.HourlyPartitionsDefinition(start_date=f"{start}-00:00", timezone=tz)
    hours = int(delta / HOUR)
    return dg.TimeWindowPartitionsDefinition(
        start=f"{start}-00:00", fmt=MINUTE_FMT, cron_schedule=f"0 */{hours} * * *", timezone=tz
    )
