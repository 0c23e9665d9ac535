"""Timing: a schedule per partitioned collector (the window that just closed, after `lag`),
cron schedules or sensors for sub-hour grains."""

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

import dagster as dg
from dagster._core.definitions.unresolved_asset_job_definition import (
    UnresolvedAssetJobDefinition as AssetJob,
)

from signals_dagster.errors import CollectorError
from signals_dagster.orchestration.partitions import current_window, partitions_def
from signals_dagster.partitioning import INSTANT_FMT, window_containing
from signals_dagster.sources.base import query_shape
from signals_dagster.spec.fields import MONTH, grain_timedelta
from signals_dagster.spec.models import CollectorSpec
from signals_dagster.window import Window

HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
# Run tag with the UTC start of the window a sub-hour run collects, set by the schedule or sensor
# tick that requests it: a run that starts late (queued) or is retried collects that window, not
# the one of the wall clock when it runs.
WINDOW_TAG = "signals/window_start"


def _split(lag: timedelta) -> tuple[int, int, int]:
    minutes = int(lag.total_seconds() // 60)
    return minutes // 1440, (minutes // 60) % 24, minutes % 60


def close_cron(spec: CollectorSpec) -> str:
    """Cron of 'window close + lag' for the collector's grain (lag < grain, whole minutes)."""
    days, hours, minutes = _split(spec.partitions.lag)
    grain = spec.metric.grain
    if grain == MONTH:
        return f"{minutes} {hours} {1 + days} * *"
    delta = grain_timedelta(grain)
    assert delta is not None
    if delta == timedelta(days=7):
        return f"{minutes} {hours} * * {(1 + days) % 7}"
    if delta == DAY:
        return f"{minutes} {hours} * * *"
    if delta >= HOUR:
        step = int(delta / HOUR)
        return f"{minutes} * * * *" if step == 1 else f"{minutes} {hours}-23/{step} * * *"
    step = int(delta.total_seconds() // 60)
    return f"{minutes}-59/{step} * * * *" if step > 1 else "* * * * *"


def closed_key(spec: CollectorSpec, tick: datetime) -> str | None:
    """The partition whose window closed last at or before `tick - lag` (None before the first)."""
    pdef = partitions_def(spec)
    assert pdef is not None
    moment = tick - spec.partitions.lag
    open_key = pdef.get_partition_key_for_timestamp(moment.timestamp())
    open_start = pdef.time_window_for_partition_key(open_key).start
    if open_start <= pdef.start:
        return None
    return pdef.get_partition_key_for_timestamp((open_start - timedelta(seconds=1)).timestamp())


def _status(spec: CollectorSpec) -> dg.DefaultScheduleStatus:
    enabled = spec.schedule.enabled if spec.schedule else True
    return dg.DefaultScheduleStatus.RUNNING if enabled else dg.DefaultScheduleStatus.STOPPED


def build_schedule(spec: CollectorSpec, job: AssetJob) -> dg.ScheduleDefinition:
    """A partitioned collector's schedule: at each tick, request the window that just closed."""
    cron = spec.schedule.cron if spec.schedule and spec.schedule.cron else close_cron(spec)

    def _tick(context: dg.ScheduleEvaluationContext) -> dg.RunRequest | dg.SkipReason:
        tick = context.scheduled_execution_time or datetime.now(UTC)
        key = closed_key(spec, tick)
        if key is None:
            return dg.SkipReason(f"no window has closed since {spec.partitions.start}")
        return dg.RunRequest(run_key=key, partition_key=key)

    # The plain constructor, not @dg.schedule: the decorator inspects the function's signature
    # (for resource arguments this one has not), which is most of a schedule's cost.
    return dg.ScheduleDefinition(
        name=f"{spec.asset_name}_schedule",
        job=job,
        cron_schedule=cron,
        execution_timezone=spec.partitions.timezone,
        default_status=_status(spec),
        description=f"Collects each closed {spec.metric.grain} window of {spec.name}",
        execution_fn=_tick,
    )


def subhour_window(spec: CollectorSpec, kind: str, now: datetime | None = None) -> Window:
    """Unpartitioned (sub-hour) runs: a snapshot measures the window of the tick; windowed
    and as-of collectors take the last closed window, which is complete."""
    window = current_window(spec, now)
    if kind == "snapshot":
        return window
    length = window.end - window.start
    start = window.start - length
    return Window(start.strftime(INSTANT_FMT), start, window.start)


def tagged_window(spec: CollectorSpec, tags: Mapping[str, str]) -> Window | None:
    """The window a sub-hour run's tick asked for (None for a run launched by hand)."""
    start = tags.get(WINDOW_TAG)
    if start is None:
        return None
    try:
        window = window_containing(spec, datetime.strptime(start, INSTANT_FMT).replace(tzinfo=UTC))
    except ValueError:
        window = None
    if window is None or window.key != start:
        raise CollectorError(
            f"run tag {WINDOW_TAG}={start!r} is not the start of a {spec.metric.grain} window"
        )
    return window


def _subhour_request(
    spec: CollectorSpec, kind: str, tick: datetime, run_key: str | None
) -> dg.RunRequest:
    window = subhour_window(spec, kind, tick)
    return dg.RunRequest(run_key=run_key, tags={WINDOW_TAG: window.key})


def build_subhour_trigger(
    spec: CollectorSpec, job: AssetJob
) -> dg.ScheduleDefinition | dg.SensorDefinition:
    """Sub-hour grains: a cron schedule from 1 minute up, a sensor below one minute."""
    delta = grain_timedelta(spec.metric.grain)
    assert delta is not None
    status = _status(spec)
    kind = query_shape(spec).kind
    if delta >= timedelta(minutes=1):
        cron = spec.schedule.cron if spec.schedule and spec.schedule.cron else close_cron(spec)

        def _tick(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
            tick = context.scheduled_execution_time or datetime.now(UTC)
            return _subhour_request(spec, kind, tick, None)

        return dg.ScheduleDefinition(
            name=f"{spec.asset_name}_schedule",
            job=job,
            cron_schedule=cron,
            default_status=status,
            description=f"Collects {spec.name} every {spec.metric.grain}",
            execution_fn=_tick,
        )
    seconds = int(delta.total_seconds())

    @dg.sensor(
        name=f"{spec.asset_name}_sensor",
        job=job,
        minimum_interval_seconds=seconds,
        default_status=dg.DefaultSensorStatus(status.value),
        description=f"Collects {spec.name} every {spec.metric.grain}",
    )
    def _every(context: dg.SensorEvaluationContext) -> dg.RunRequest:
        slot = int(datetime.now(UTC).timestamp()) // seconds * seconds
        tick = datetime.fromtimestamp(slot, UTC)
        return _subhour_request(spec, kind, tick, f"{spec.asset_name}:{slot}")

    return _every
