"""Missing windows: `freshness: {grace, lookback}` of a collector.

A closed window is *due* once `end + partitions.lag + grace` has passed; a due window that
started within `lookback` of now (and not before partitions.start) and has no materialisation in
the instance is *missing*.

- The `freshness` asset check is one check of the asset, not one per partition: its evaluation
  names every missing partition (`missing`, `missing_partitions`), fails (severity ERROR, never
  blocking) while any window is missing and passes once all are back. A partitioned check would
  put its results on partitions that have no materialisation, need one passing result per
  partition that comes back, and could only judge the partition of the run that executes it.
- The check is its own `AssetChecksDefinition` (`build_freshness_check`), not a spec of the
  collector's op: an op's check is planned by every run of the collector, and a run that does not
  evaluate it leaves a planned (then skipped) execution as the check's latest state, hiding the
  missing windows. Executed on its own (the UI, or after the materialisation in a collector's
  job, which selects the checks of its asset) it judges the instance at that moment.
- The sensor `<asset>_freshness` (every 5 minutes) reports an evaluation only when the missing
  set differs from the one of the check's latest evaluation in the instance (or there is none
  yet): the latest evaluation stays true until the set changes, and an evaluation per tick would
  be 288 events a day per collector. It sends one alert per newly missing window through the
  channel of run failures (the log, and `alerts.http` of signals.yaml); its cursor remembers the
  windows alerted that are still missing (bounded by the lookback).
"""

import hashlib
import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import dagster as dg

from signals_dagster.orchestration.sensors import post_alert
from signals_dagster.partitioning import last_closed_window, partitioning, windows_between
from signals_dagster.redact import redact
from signals_dagster.spec.fields import format_duration
from signals_dagster.spec.models import CollectorSpec
from signals_dagster.spec.quality import FRESHNESS_CHECK
from signals_dagster.window import Window

SENSOR_INTERVAL = timedelta(minutes=5)
MAX_WINDOWS = 10_000  # the newest windows of a (very long) lookback watched
MAX_ALERTS = 20  # new alerts per tick; the others wait for the next ticks
SHOWN = 50  # partitions named in the metadata and description
_QUERY_CHUNK = 500  # partition keys per instance query (SQLite's bound parameters)

Clock = Callable[[], datetime]


def _utcnow() -> datetime:
    return datetime.now(UTC)


def due_windows(spec: CollectorSpec, now: datetime) -> list[Window]:
    """The windows watched at `now` (oldest first): `end + lag + grace <= now` and
    `start >= now - lookback`, from partitions.start on (the newest MAX_WINDOWS)."""
    assert spec.freshness is not None
    last = last_closed_window(spec, now - spec.partitions.lag - spec.freshness.grace)
    if last is None:
        return []
    since = now - spec.freshness.lookback
    return windows_between(spec, since, last.end.astimezone(UTC))[-MAX_WINDOWS:]


def materialised(instance: dg.DagsterInstance, key: dg.AssetKey, keys: Sequence[str]) -> set[str]:
    """The partitions among `keys` that have a materialisation (the latest materialisation id of
    each given partition: an indexed query bounded by the lookback, not the asset's history)."""
    found: set[str] = set()
    for first in range(0, len(keys), _QUERY_CHUNK):
        chunk = set(keys[first : first + _QUERY_CHUNK])  # never empty: an empty set means "all"
        found |= set(
            instance.get_latest_storage_id_by_partition(
                key, dg.DagsterEventType.ASSET_MATERIALIZATION, partitions=chunk
            )
        )
    return found


@dataclass(frozen=True)
class FreshnessState:
    """The watched windows of a collector at `now`, and the missing ones among them."""

    now: datetime
    watched: list[Window]
    missing: list[Window]

    @property
    def keys(self) -> list[str]:
        """The missing partitions, oldest first."""
        return [w.key for w in self.missing]

    @property
    def digest(self) -> str:
        """A short digest of the missing set (what the sensor compares)."""
        return hashlib.sha256("\n".join(self.keys).encode()).hexdigest()[:16]


def freshness_state(
    spec: CollectorSpec, key: dg.AssetKey, instance: dg.DagsterInstance, now: datetime
) -> FreshnessState:
    """Which watched windows of the collector have no materialisation at `now`."""
    watched = due_windows(spec, now)
    present = materialised(instance, key, [w.key for w in watched])
    return FreshnessState(now, watched, [w for w in watched if w.key not in present])


def _named(keys: Sequence[str]) -> str:
    shown = ", ".join(keys[:SHOWN])
    return shown + (f" (+{len(keys) - SHOWN} more)" if len(keys) > SHOWN else "")


def _judgement(spec: CollectorSpec, state: FreshnessState) -> tuple[dict[str, Any], str]:
    assert spec.freshness is not None
    grace, lookback = spec.freshness.grace, spec.freshness.lookback
    metadata: dict[str, Any] = {
        "missing": len(state.missing),
        "missing_partitions": _named(state.keys),
        "missing_digest": state.digest,
        "watched": len(state.watched),
        "grace": format_duration(grace),
        "lookback": format_duration(lookback),
        "evaluated_at": state.now.astimezone(UTC).isoformat(),
    }
    if state.watched:
        metadata["watched_partitions"] = f"{state.watched[0].key} .. {state.watched[-1].key}"
    if state.missing:
        description = (
            f"{len(state.missing)} window(s) not materialised {format_duration(grace)} after "
            f"their end + lag: {_named(state.keys)}"
        )
    else:
        description = (
            f"every closed window of the last {format_duration(lookback)} is materialised "
            f"({len(state.watched)} watched)"
        )
    return metadata, description


def freshness_evaluation(
    spec: CollectorSpec, key: dg.AssetKey, state: FreshnessState
) -> dg.AssetCheckEvaluation:
    """The `freshness` check's evaluation of a state: failed (ERROR, not blocking) while any
    window is missing, naming them."""
    metadata, description = _judgement(spec, state)
    return dg.AssetCheckEvaluation(
        asset_key=key,
        check_name=FRESHNESS_CHECK,
        passed=not state.missing,
        metadata=metadata,
        severity=dg.AssetCheckSeverity.ERROR,
        description=description,
        blocking=False,
    )


def freshness_check_spec(spec: CollectorSpec, key: dg.AssetKey) -> dg.AssetCheckSpec | None:
    """The `freshness` check of a collector's asset (one per asset, not blocking); None without
    `freshness` (or for a sub-hour grain, which has no partitions to watch)."""
    if spec.freshness is None or partitioning(spec) is None:
        return None
    about = (
        f"Every closed window of the last {format_duration(spec.freshness.lookback)} is "
        f"materialised {format_duration(spec.freshness.grace)} after its end + lag; "
        f"reported by the sensor {spec.asset_name}_freshness"
    )
    return dg.AssetCheckSpec(FRESHNESS_CHECK, asset=key, description=about, blocking=False)


def build_freshness_check(
    spec: CollectorSpec, key: dg.AssetKey, clock: Clock = _utcnow
) -> dg.AssetChecksDefinition | None:
    """The `freshness` check as an executable check of its own: it judges the instance when it
    runs (no alerts: those are the sensor's). None without `freshness`."""
    check_spec = freshness_check_spec(spec, key)
    if check_spec is None:
        return None

    @dg.multi_asset_check(
        specs=[check_spec], name=f"{spec.asset_name}__freshness", description=check_spec.description
    )
    def _freshness(context: dg.AssetCheckExecutionContext) -> Iterator[dg.AssetCheckResult]:
        state = freshness_state(spec, key, context.instance, clock())
        metadata, description = _judgement(spec, state)
        yield dg.AssetCheckResult(
            asset_key=key,
            check_name=FRESHNESS_CHECK,
            passed=not state.missing,
            metadata=metadata,
            severity=dg.AssetCheckSeverity.ERROR,
            description=description,
        )

    return _freshness


def latest_digest(instance: dg.DagsterInstance, key: dg.AssetKey) -> str | None:
    """`missing_digest` of the check's latest evaluation (None: none yet, or planned only)."""
    check_key = dg.AssetCheckKey(key, FRESHNESS_CHECK)
    record = instance.event_log_storage.get_latest_asset_check_execution_by_key([check_key]).get(
        check_key
    )
    event = record.event.dagster_event if record is not None and record.event else None
    data = event.event_specific_data if event is not None else None
    if not isinstance(data, dg.AssetCheckEvaluation):
        return None
    value = data.metadata.get("missing_digest")
    return value.value if isinstance(value, dg.TextMetadataValue) else None


def missing_window_alert(spec: CollectorSpec, window: Window, now: datetime) -> dict[str, Any]:
    """One structured alert for one missing window (the fields of a run failure's alert)."""
    assert spec.freshness is not None
    due = window.end.astimezone(UTC) + spec.partitions.lag + spec.freshness.grace
    return {
        "alert": "signals_dagster.missing_window",
        "run_id": None,
        "job": f"{spec.asset_name}_job",
        "collectors": [spec.asset_name],
        "partition": window.key,
        "window_start": window.start.isoformat(),
        "window_end": window.end.isoformat(),
        "due": due.isoformat(),
        "error": redact(
            f"{spec.name}: partition {window.key} has no materialisation "
            f"{format_duration(spec.freshness.grace)} after its end + lag (due {due.isoformat()})"
        ),
        "time": now.astimezone(UTC).isoformat(),
    }


def _alert(
    context: dg.SensorEvaluationContext, spec: CollectorSpec, windows: list[Window], now: datetime
) -> list[str]:
    """Log and POST one alert per window (at most MAX_ALERTS); the keys alerted. Each window
    gets one delivery attempt, as a run failure does; after a failed POST the others wait for
    the next tick, so a dead endpoint costs one timeout per tick."""
    from signals_dagster.settings import load_settings

    if not windows:
        return []
    try:
        http = load_settings().alerts.http
    except Exception as exc:  # signals.yaml broken: the windows wait, the check is still reported
        context.log.error(f"freshness alerts not sent: {redact(str(exc))}")
        return []
    alerted: list[str] = []
    for window in windows[:MAX_ALERTS]:
        payload = missing_window_alert(spec, window, now)
        context.log.error(json.dumps(payload, sort_keys=True))
        alerted.append(window.key)
        if http is None:
            continue
        try:
            post_alert(payload, http.uri, http.headers, http.timeout)
        except Exception as exc:  # an alert that cannot be sent must not hide the others
            context.log.error(f"alert not delivered to {redact(http.uri)}: {redact(str(exc))}")
            break
    return alerted


def build_freshness_sensor(
    spec: CollectorSpec, key: dg.AssetKey, clock: Clock = _utcnow
) -> dg.SensorDefinition | None:
    """`<asset>_freshness`: reports the `freshness` check when the missing set changes, and one
    alert per newly missing window. None without `freshness`."""
    if freshness_check_spec(spec, key) is None:
        return None
    assert spec.freshness is not None

    @dg.sensor(
        name=f"{spec.asset_name}_freshness",
        minimum_interval_seconds=int(SENSOR_INTERVAL.total_seconds()),
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=f"Missing windows of {spec.name}: closed windows not materialised "
        f"{format_duration(spec.freshness.grace)} after their end + lag "
        f"(lookback {format_duration(spec.freshness.lookback)})",
    )
    def _fresh(context: dg.SensorEvaluationContext) -> dg.SensorResult:
        previous = set(json.loads(context.cursor).get("alerted", [])) if context.cursor else set()
        now = clock()
        state = freshness_state(spec, key, context.instance, now)
        changed = latest_digest(context.instance, key) != state.digest
        events = [freshness_evaluation(spec, key, state)] if changed else []
        # The alerts last: once they are sent, nothing else can fail the tick (and its cursor).
        alerted = previous & set(state.keys)  # a window back (or out of the lookback) leaves it
        new = [w for w in state.missing if w.key not in alerted]  # oldest first
        alerted |= set(_alert(context, spec, new, now))
        return dg.SensorResult(asset_events=events, cursor=json.dumps({"alerted": sorted(alerted)}))

    return _fresh
