"""Run a collector for windows: source → records. No Dagster here."""

import contextlib
import logging
import time
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pandas as pd

from signals_dagster.errors import CollectorError
from signals_dagster.records import RecordBuilder
from signals_dagster.sources import Fetched, Source, SourceSession, open_source
from signals_dagster.spec.models import CollectorSpec
from signals_dagster.window import Window, check_window

log = logging.getLogger("signals_dagster")


@dataclass
class Collected:
    """One window's records and how they were obtained."""

    window: Window
    records: pd.DataFrame
    source_rows: int
    null_values: int
    query_seconds: float

    def metadata(self) -> dict[str, float | int | str]:
        """Plain figures about the collection (plotted by the UI across partitions)."""
        return {
            "record_count": len(self.records),
            "value_sum": float(self.records["value"].sum()) if len(self.records) else 0.0,
            "source_rows": self.source_rows,
            "null_values_dropped": self.null_values,
            "query_seconds": round(self.query_seconds, 6),
            "window_start": self.window.start.isoformat(),
            "window_end": self.window.end.isoformat(),
        }


def collect(
    spec: CollectorSpec,
    windows: Sequence[Window],
    now: datetime | None = None,
    source: Source | None = None,
) -> list[Collected]:
    """Collect every window over one source session; all windows are checked before any query.

    A range-capable query (it returns grain_datetime) answers up to
    `backfill.max_partitions_per_run` windows with one query; any other query runs per window.
    """
    now = now or datetime.now(UTC)
    source = source or open_source(spec)
    for window in windows:
        check_window(window, source.kind, now)
    results: list[Collected] = []
    with source.session() as session:
        if source.range_capable:
            size = spec.backfill.max_partitions_per_run
            for first in range(0, len(windows), size):
                results += _collect_range(spec, session, windows[first : first + size], now)
        else:
            results += _collect_windows(spec, session, windows, now)
    for item in results:
        if item.null_values:
            log.warning(
                "%s %s: %d row(s) with a NULL value dropped",
                spec.name,
                item.window.key,
                item.null_values,
            )
    return results


def _closing(fetched: Fetched) -> Any:
    """Close a row stream (and its cursor) however the consumer ends."""
    close = getattr(fetched.rows, "close", None)
    return contextlib.closing(fetched.rows) if close is not None else contextlib.nullcontext()


def _collect_windows(
    spec: CollectorSpec, session: SourceSession, windows: Sequence[Window], now: datetime
) -> list[Collected]:
    """One query per window, over one session; the records are built as one DataFrame."""
    builders: dict[tuple[str, ...], RecordBuilder] = {}
    counts: dict[str, tuple[int, int]] = {}
    seconds: dict[str, float] = {}
    for window in windows:
        started = time.perf_counter()
        fetched = session.fetch(window)
        with _closing(fetched):
            try:
                columns = tuple(str(c) for c in fetched.columns)
                if columns not in builders:
                    builders[columns] = RecordBuilder(spec, columns)
                counts[window.key] = builders[columns].add(window.grain_datetime, fetched.rows)
            except CollectorError as exc:
                raise CollectorError(f"{spec.name}, {window.describe()}: {exc}") from None
        seconds[window.key] = time.perf_counter() - started
    if not builders:
        return []
    return _split(windows, list(builders.values()), now, counts, seconds)


def _split(
    windows: Sequence[Window],
    builders: Sequence[RecordBuilder],
    now: datetime,
    counts: dict[str, tuple[int, int]],
    seconds: dict[str, float],
) -> list[Collected]:
    """One Collected per window, cut from the records of all of them."""
    if len(builders) == 1 and all(span[0] >= 0 for span in builders[0].spans.values()):
        # Each window's records are one contiguous run of rows: slice, do not group.
        frame, spans = builders[0].frame(now), builders[0].spans
        parts = {
            window.key: frame.iloc[slice(*spans.get(_ns(window), (0, 0)))] for window in windows
        }
    else:
        frame = pd.concat([builder.frame(now) for builder in builders])
        groups = {start.value: part for start, part in frame.groupby("grain_datetime")}
        empty = frame.iloc[0:0]
        parts = {
            window.key: groups.get(_ns(window), empty).reset_index(drop=True) for window in windows
        }
    return [
        Collected(window, parts[window.key], *counts[window.key], seconds[window.key])
        for window in windows
    ]


def _ns(window: Window) -> int:
    return int(pd.Timestamp(window.grain_datetime).value)


def _grain_instant(value: Any, tz: ZoneInfo) -> datetime:
    """A grain_datetime cell as an aware UTC instant (naive values are in the collector's zone)."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    elif isinstance(value, date) and not isinstance(value, datetime):
        value = datetime(value.year, value.month, value.day)
    elif hasattr(value, "to_pydatetime"):
        value = value.to_pydatetime()
    if not isinstance(value, datetime):
        raise CollectorError(f"grain_datetime {value!r} is not a timestamp")
    if value.tzinfo is None:
        value = value.replace(tzinfo=tz)
    return value.astimezone(UTC)


def _collect_range(
    spec: CollectorSpec, session: SourceSession, windows: Sequence[Window], now: datetime
) -> list[Collected]:
    """One query over [first start, last end); rows are split by their grain_datetime."""
    span = Window(f"{windows[0].key}...{windows[-1].key}", windows[0].start, windows[-1].end)
    started = time.perf_counter()
    fetched = session.fetch(span)
    columns = [str(c) for c in fetched.columns]
    lowered = [c.lower() for c in columns]
    if "grain_datetime" not in lowered:
        raise CollectorError(
            f"{spec.name}: the query mentions grain_datetime but returned no such column "
            f"(columns: {', '.join(columns)})"
        )
    grain_index = lowered.index("grain_datetime")
    buckets: dict[datetime, list[Sequence[Any]]] = {w.grain_datetime: [] for w in windows}
    tz = ZoneInfo(spec.partitions.timezone)
    instants: dict[Any, datetime] = {}  # a range has few distinct grains: convert each once
    with _closing(fetched):
        for row in fetched.rows:
            raw = row[grain_index]
            instant = instants.get(raw) if isinstance(raw, Hashable) else None
            if instant is None:
                instant = _grain_instant(raw, tz)
                if isinstance(raw, Hashable):
                    instants[raw] = instant
            if instant not in buckets:
                raise CollectorError(
                    f"{spec.name}, {span.describe()}: a row has grain_datetime "
                    f"{instant.isoformat()}, which is not the start of a "
                    f"{spec.metric.grain} window in {spec.partitions.timezone} (truncate to the "
                    "grain in the collector's timezone)"
                )
            buckets[instant].append(row)
    builder = RecordBuilder(spec, columns)
    counts: dict[str, tuple[int, int]] = {}
    for window in windows:
        try:
            counts[window.key] = builder.add(window.grain_datetime, buckets[window.grain_datetime])
        except CollectorError as exc:
            raise CollectorError(f"{spec.name}, {window.describe()}: {exc}") from None
    share = (time.perf_counter() - started) / len(windows)
    return _split(windows, [builder], now, counts, dict.fromkeys(counts, share))
