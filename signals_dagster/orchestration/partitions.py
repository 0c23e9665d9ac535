"""Grain + partitions settings → Dagster partitions, and partition keys → windows."""

import functools
from datetime import UTC, datetime, timedelta

import dagster as dg

from signals_dagster.errors import CollectorError
from signals_dagster.spec.fields import MONTH, grain_timedelta
from signals_dagster.spec.models import CollectorSpec
from signals_dagster.window import Window

HOUR = timedelta(hours=1)
MINUTE_FMT = "%Y-%m-%d-%H:%M"


def partitions_def(spec: CollectorSpec) -> dg.TimeWindowPartitionsDefinition | None:
    """The time-window partitions of a collector; None for sub-hour grains (not partitioned)."""
    return _partitions_def(spec.metric.grain, spec.partitions.start, spec.partitions.timezone)


@functools.lru_cache(maxsize=256)
def _partitions_def(grain: str, start: str, tz: str) -> dg.TimeWindowPartitionsDefinition | None:
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
    if delta > HOUR:
        hours = int(delta / HOUR)
        return dg.TimeWindowPartitionsDefinition(
            start=f"{start}-00:00", fmt=MINUTE_FMT, cron_schedule=f"0 */{hours} * * *", timezone=tz
        )
    return None


def window_for_key(spec: CollectorSpec, key: str) -> Window:
    """The window of a partition key; a clear error for a malformed or misaligned key."""
    pdef = partitions_def(spec)
    if pdef is None:
        raise CollectorError(
            f"{spec.name} has a sub-hour grain ({spec.metric.grain}) and is not partitioned"
        )
    try:
        span = pdef.time_window_for_partition_key(key)
    except (ValueError, TypeError):
        raise CollectorError(
            f"invalid partition key {key!r} for grain {spec.metric.grain} "
            f"(expected e.g. {pdef.get_first_partition_key()!r})"
        ) from None
    aligned = span.start.strftime(pdef.fmt)
    if aligned != key:
        raise CollectorError(
            f"partition key {key!r} is not the start of a {spec.metric.grain} window "
            f"(the window containing it starts at {aligned!r})"
        )
    if span.start < pdef.start:
        raise CollectorError(
            f"partition {key!r} is before partitions.start ({spec.partitions.start})"
        )
    return Window(key, span.start, span.end)


def current_window(spec: CollectorSpec, now: datetime | None = None) -> Window:
    """The window that contains `now` (the open one)."""
    now = now or datetime.now(UTC)
    pdef = partitions_def(spec)
    if pdef is None:
        delta = grain_timedelta(spec.metric.grain)
        assert delta is not None
        epoch = datetime(1970, 1, 1, tzinfo=UTC)
        start = epoch + ((now - epoch) // delta) * delta
        return Window(start.strftime("%Y-%m-%dT%H:%M:%SZ"), start, start + delta)
    return window_for_key(spec, pdef.get_partition_key_for_timestamp(now.timestamp()))
