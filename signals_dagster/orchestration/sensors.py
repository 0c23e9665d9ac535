"""Sensors: late data (fingerprints of closed windows) and run failures (structured alerts)."""

import hashlib
import json
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import dagster as dg
from dagster._core.definitions.unresolved_asset_job_definition import (
    UnresolvedAssetJobDefinition as AssetJob,
)

from signals_dagster.errors import CollectorError
from signals_dagster.orchestration.partitions import partitions_def, window_for_key
from signals_dagster.redact import redact
from signals_dagster.spec.models import CollectorSpec
from signals_dagster.spec.sources import SqlConfig
from signals_dagster.window import Window

log = logging.getLogger("signals_dagster")
MAX_WINDOWS = 1000


def lookback_windows(spec: CollectorSpec, now: datetime) -> list[Window]:
    """Closed windows whose end lies within `late_data.lookback` of now (oldest first)."""
    assert spec.late_data is not None
    pdef = partitions_def(spec)
    assert pdef is not None
    since = now - spec.late_data.lookback
    keys = pdef.get_partition_keys(current_time=now)
    windows = []
    for key in reversed(keys[-MAX_WINDOWS:]):
        window = window_for_key(spec, key)
        if window.end <= since:
            break
        windows.append(window)
    return list(reversed(windows))


def fingerprints(spec: CollectorSpec, windows: list[Window]) -> dict[str, str]:
    """A digest of the fingerprint query's answer for each window (one connection)."""
    from signals_dagster.sources.sql import SqlSource

    assert spec.late_data is not None
    assert isinstance(spec.source.config, SqlConfig)
    config = spec.source.config
    source = SqlSource(config.uri, spec.late_data.fingerprint_sql, config.timeout)
    out: dict[str, str] = {}
    with source.session() as session:
        for window in windows:
            fetched = session.fetch(window)
            digest = hashlib.sha256()
            for row in fetched.rows or ():
                digest.update(json.dumps([str(v) for v in row]).encode())
            out[window.key] = digest.hexdigest()[:16]
    return out


def changed_windows(previous: dict[str, str], current: dict[str, str]) -> list[str]:
    """Keys seen before whose fingerprint differs now (new keys only set the baseline)."""
    return [k for k, v in current.items() if k in previous and previous[k] != v]


def build_late_data_sensor(spec: CollectorSpec, job: AssetJob) -> dg.SensorDefinition:
    """Re-materialise exactly the closed windows whose fingerprint changed since last time."""
    assert spec.late_data is not None

    @dg.sensor(
        name=f"{spec.asset_name}_late_data",
        job=job,
        minimum_interval_seconds=int(spec.late_data.interval.total_seconds()),
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=f"Re-collects windows of {spec.name} whose source data changed "
        f"(lookback {spec.late_data.lookback})",
    )
    def _late(context: dg.SensorEvaluationContext) -> dg.SensorResult:
        previous: dict[str, str] = json.loads(context.cursor) if context.cursor else {}
        windows = lookback_windows(spec, datetime.now(UTC))
        try:
            current = fingerprints(spec, windows)
        except CollectorError as exc:
            return dg.SensorResult(skip_reason=f"fingerprint query failed: {exc}")
        requests = [
            dg.RunRequest(run_key=f"{key}:{current[key]}", partition_key=key)
            for key in changed_windows(previous, current)
        ]
        return dg.SensorResult(run_requests=requests, cursor=json.dumps(current, sort_keys=True))

    return _late


def alert_payload(run: dg.DagsterRun, message: str, failed_steps: list[str]) -> dict[str, Any]:
    """One structured alert: collector(s), partition(s), error."""
    tags = run.tags
    partition = tags.get("dagster/partition") or (
        f"{tags['dagster/asset_partition_range_start']}...{tags['dagster/asset_partition_range_end']}"
        if "dagster/asset_partition_range_start" in tags
        else None
    )
    assets = sorted(k.to_user_string() for k in run.asset_selection or []) or sorted(failed_steps)
    return {
        "alert": "signals_dagster.run_failure",
        "run_id": run.run_id,
        "job": run.job_name,
        "collectors": assets,
        "partition": partition,
        "error": redact(message),
        "time": datetime.now(UTC).isoformat(),
    }


def post_alert(
    payload: dict[str, Any], uri: str, headers: dict[str, str], timeout: timedelta
) -> None:
    """POST the alert as JSON; raise on a non-2xx answer."""
    import requests

    answer = requests.post(uri, json=payload, headers=headers, timeout=timeout.total_seconds())
    answer.raise_for_status()


@dg.run_failure_sensor(name="signals_run_failures", default_status=dg.DefaultSensorStatus.RUNNING)
def run_failure_alerts(context: dg.RunFailureSensorContext) -> None:
    """Write one structured alert per failed run; POST it where signals.yaml says."""
    from signals_dagster.settings import load_settings

    failures = context.get_step_failure_events()
    errors = [
        event.step_failure_data.error.message.strip()
        for event in failures
        if event.step_failure_data.error is not None
    ]
    message = "; ".join(errors) or context.failure_event.message or "run failed"
    steps = [event.step_key for event in failures if event.step_key]
    payload = alert_payload(context.dagster_run, message, steps)
    context.log.error(json.dumps(payload, sort_keys=True))
    http = load_settings().alerts.http
    if http is not None:
        try:
            post_alert(payload, http.uri, http.headers, http.timeout)
        except Exception as exc:  # an alert that cannot be sent must not hide the failure
            context.log.error(f"alert not delivered to {redact(http.uri)}: {redact(str(exc))}")
