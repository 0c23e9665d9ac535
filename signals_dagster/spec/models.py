"""The collector spec: signals-collector's format (and latte's, its later name) plus this
project's optional keys."""

import functools
import hashlib
import re
from datetime import timedelta
from typing import Any, Literal

from pydantic import Field, PrivateAttr, field_validator, model_validator

from signals_dagster.contracts.model import Contract
from signals_dagster.spec.base import Model
from signals_dagster.spec.fields import (
    Cron,
    Duration,
    Grain,
    IsoDate,
    MetricName,
    PositiveDuration,
    TagKey,
    TagValue,
    Timezone,
    check_owners,
    grain_timedelta,
)
from signals_dagster.spec.quality import Check, Freshness, OnFail
from signals_dagster.spec.sinks import Sink
from signals_dagster.spec.sources import Source, canonical_source_type

DEFAULT_PARTITIONS_START = "2026-01-01"


class Tag(Model):
    key: TagKey
    value: TagValue


class Metric(Model):
    name: MetricName
    type: Literal["COUNT", "GAUGE"]
    grain: Grain = "24h"
    unit: str | None = None
    tags: list[Tag] = Field(default_factory=list)

    @field_validator("type", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @field_validator("tags", mode="before")
    @classmethod
    def _tags(cls, value: object) -> object:
        # The seed's list form [{key, value}] and a plain mapping are both accepted.
        if value is None:
            return []
        if isinstance(value, dict):
            return [{"key": k, "value": v} for k, v in value.items()]
        return value

    @field_validator("tags")
    @classmethod
    def _unique(cls, value: list[Tag]) -> list[Tag]:
        seen: set[str] = set()
        for tag in value:
            if tag.key in ("value", "grain_datetime"):
                raise ValueError(f"tag {tag.key!r} clashes with the query column of the same name")
            if tag.key in seen:
                raise ValueError(f"tag {tag.key!r} is given twice")
            seen.add(tag.key)
        return value

    @property
    def static_tags(self) -> dict[str, str]:
        """Static tags as a mapping."""
        return {tag.key: tag.value for tag in self.tags}

    @property
    def grain_delta(self) -> timedelta | None:
        """Fixed grain length (None for months)."""
        return grain_timedelta(self.grain)


class Schedule(Model):
    interval: Duration | None = None
    cron: Cron | None = None
    enabled: bool = True

    @model_validator(mode="after")
    def _exactly_one(self) -> "Schedule":
        if (self.interval is None) == (self.cron is None):
            raise ValueError("give exactly one of interval or cron")
        return self


class Partitions(Model):
    start: IsoDate = DEFAULT_PARTITIONS_START
    timezone: Timezone = "UTC"
    lag: Duration = timedelta(0)


class Backfill(Model):
    """How history is recomputed."""

    policy: Literal["single_run", "multi_run"] = Field(
        default="single_run", description="single_run: a backfill is one run; multi_run: chunks"
    )
    max_partitions_per_run: int = Field(
        default=400, gt=0, description="Windows per range query (and per run with multi_run)"
    )


class LateData(Model):
    """Re-collect closed windows whose source data changed after they were collected."""

    lookback: PositiveDuration = Field(description="How far back closed windows are watched")
    fingerprint_sql: str = Field(
        min_length=1, description="Cheap query over the window whose answer changes with the data"
    )
    interval: PositiveDuration = Field(
        default=timedelta(minutes=5), description="Minimum time between two sensor evaluations"
    )


class StateStore(Model):
    """signals-collector's state store (accepted for compatibility; Dagster keeps the state)."""

    type: Literal["memory"]
    config: dict[str, Any] = Field(default_factory=dict)


InvocationStrategy = Literal["tick", "historic_tumbling_window", "incremental"]


class Collector(Model):
    """latte's `collector` block: what kind of collector and how it is invoked.

    `tick` runs as the query says (a snapshot unless it binds the window);
    `historic_tumbling_window` is a windowed collector over the grain (each closed window
    collected once, backfills included); `incremental` is refused by the cross-checks."""

    type: Literal["metric"] = Field(description="latte's collector type (only metric exists)")
    invocation_strategy: InvocationStrategy = "tick"


class CollectorSpec(Model):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:/-]*$", max_length=200)
    description: str | None = None
    owners: list[str] = Field(default_factory=list)
    group: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_]+$")
    collector: Collector | None = Field(default=None, description="latte compatibility")
    metric: Metric
    schedule: Schedule | None = None
    partitions: Partitions = Field(default_factory=Partitions)
    source: Source
    sinks: dict[str, Sink] = Field(min_length=1)
    state_store: StateStore | None = None
    backfill: Backfill = Field(default_factory=Backfill)
    late_data: LateData | None = None
    checks: list[Check] = Field(
        default_factory=list, description="Quality checks on each window's records"
    )
    on_fail: OnFail | None = None
    freshness: Freshness | None = None
    retries: int = Field(default=3, ge=0, le=10, description="Retries of transient failures")
    retry_delay: PositiveDuration = Field(
        default=timedelta(seconds=10), description="First retry delay (doubles each time)"
    )
    # The contract of the metric in the registry of the collector's folder (set when loading).
    _contract: Contract | None = PrivateAttr(default=None)

    @model_validator(mode="before")
    @classmethod
    def _grain_from_interval(cls, data: object) -> object:
        # signals-collector files have no grain: their interval is the grain, except under
        # latte's historic_tumbling_window, whose window is the source's `time.window` (the
        # interval is how often latte looked for a closed window).
        if not isinstance(data, dict):
            return data
        source = data.get("source")
        if isinstance(source, dict) and "type" in source:
            kind = canonical_source_type(source["type"])  # latte's `metric.postgres`...
            if kind != source["type"]:
                data = {**data, "source": {**source, "type": kind}}
        if isinstance(data.get("metric"), dict) and "grain" not in data["metric"]:
            grain = tumbling_window(data) or _interval(data)
            if grain:
                data = {**data, "metric": {**data["metric"], "grain": grain}}
        return data

    @field_validator("owners")
    @classmethod
    def _owners(cls, value: list[str]) -> list[str]:
        return check_owners(value)

    @functools.cached_property
    def asset_name(self) -> str:
        """Dagster asset key: every character outside [A-Za-z0-9_] becomes '_'."""
        return asset_name(self.name)

    @property
    def invocation_strategy(self) -> InvocationStrategy:
        """latte's invocation strategy (`tick` when the file has no `collector` block)."""
        return self.collector.invocation_strategy if self.collector else "tick"

    @property
    def contract(self) -> Contract | None:
        """The metric's contract, when the registry has one."""
        return self._contract

    def bind_contract(self, contract: Contract | None) -> None:
        """Attach the metric's contract (the loader does, once the registry is read)."""
        self._contract = contract

    @property
    def code_version(self) -> str:
        """Hash of the whole validated spec and its contract: changes whenever either does."""
        text = self.model_dump_json()
        if self._contract is not None:
            text += self._contract.model_dump_json()
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def asset_name(name: str) -> str:
    """Dagster asset key for a collector name."""
    return re.sub(r"[^A-Za-z0-9_]", "_", name)


def _interval(data: dict[str, Any]) -> object:
    schedule = data.get("schedule")
    return schedule.get("interval") if isinstance(schedule, dict) else None


def tumbling_window(data: object) -> object:
    """The `source.config.time.window` of a latte historic_tumbling_window collector (its
    grain when `metric.grain` is absent), from the unvalidated file data; None otherwise."""
    if not isinstance(data, dict):
        return None
    collector, source = data.get("collector"), data.get("source")
    if not isinstance(collector, dict) or not isinstance(source, dict):
        return None
    if collector.get("invocation_strategy") != "historic_tumbling_window":
        return None
    config = source.get("config")
    time = config.get("time") if isinstance(config, dict) else None
    return time.get("window") if isinstance(time, dict) else None
