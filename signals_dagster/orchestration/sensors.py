"""Sensors: late data (fingerprints of closed windows) and run failures (structured alerts)."""

import hashlib
import json
import logging
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import dagster as dg
from dagster._core.definitions.unresolved_asset_job_definition import (
    UnresolvedAssetJobDefinition as AssetJob,
)

from signals_dagster.errors import CollectorError
from signals_dagster.orchestration.partitions import partitions_def, window_for_key
from signals_dagster.orchestration.translator import pool_name
from signals_dagster.redact import redact
from signals_dagster.spec.models import CollectorSpec
from signals_dagster.spec.sources import DuckdbConfig, SqlConfig
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
    from signals_dagster.sources import duckdb
    from signals_dagster.sources.duckdb import DuckdbSource
    from signals_dagster.sources.sql import SqlSource

    assert spec.late_data is not None
    assert isinstance(spec.source.config, SqlConfig)
    config = spec.source.config
    sql = spec.late_data.fingerprint_sql
    source: SqlSource | DuckdbSource
    if duckdb.handles(config.uri):  # sandboxed like the collector's own query
        allowed = config.allowed_paths if isinstance(config, DuckdbConfig) else ()
        source = DuckdbSource(config.uri, sql, config.timeout, allowed)
    else:
        source = SqlSource(config.uri, sql, config.timeout)
    out: dict[str, str] = {}
    with source.session() as session:
        for window in windows:
            fetched = session.fetch(window)
            digest = hashlib.sha256()
            for row in fetched.rows or ():
                digest.update(json.dumps([str(v) for v in row]).encode())
            out[window.key] = digest.hexdigest()[:16]
    return out


@contextmanager
def pool_slot(instance: dg.DagsterInstance, pool: str) -> Iterator[bool]:
    """Hold one slot of a Dagster pool for the block: True when granted (or the pool has no
    limit), False when every slot is taken. The slot is held as a step of a pseudo run id
    (`sensor-<uuid>`) and freed on the way out, as an op of a run would."""
    storage = instance.event_log_storage
    if not storage.supports_global_concurrency_limits:
        yield True
        return
    limits = {p.name for p in storage.get_pool_limits()}
    if pool not in limits and storage.get_pool_config().default_pool_limit is not None:
        storage.initialize_concurrency_limit_to_default(pool)  # what a run's first claim does
        limits = {p.name for p in storage.get_pool_limits()}
    if pool not in limits:
        yield True
        return
    holder, step = f"sensor-{uuid.uuid4()}", "fingerprints"
    try:
        yield storage.claim_concurrency_slot(pool, holder, step).is_claimed
    finally:
        storage.free_concurrency_slot_for_step(holder, step)  # claimed or still pending


def changed_windows(previous: dict[str, str], current: dict[str, str]) -> list[str]:
    """Keys seen before whose fingerprint differs now (new keys only set the baseline)."""
    return [k for k, v in current.items() if k in previous and previous[k] != v]


def build_late_data_sensor(spec: CollectorSpec, job: AssetJob) -> dg.SensorDefinition:
    """Re-materialise exactly the closed windows whose fingerprint changed since last time."""
    assert spec.late_data is not None
    pool = pool_name(spec)

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
        # The fingerprint queries hit the collector's source: they take a slot of its pool like
        # a run does, and wait for the next evaluation when the pool is full.
        with pool_slot(context.instance, pool) as granted:
            if not granted:
                return dg.SensorResult(
                    skip_reason=f"pool {pool!r} is full: fingerprints wait for the next evaluation"
                )
            try:
                current = fingerprints(spec, windows)
            except CollectorError as exc:  # a failed tick, shown in the UI: not a quiet skip
                raise CollectorError(
                    f"{spec.name}: fingerprint query failed: {exc}", transient=exc.transient
                ) from None
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
    """POST the alert as JSON; raise on a non-2xx answer (or a host egress.allow refuses)."""
    import requests

    from signals_dagster.confine import check_egress, url_host

    check_egress("alert", *url_host(uri))
    answer = requests.post(
        uri, json=payload, headers=headers, timeout=timeout.total_seconds(), allow_redirects=False
    )
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
