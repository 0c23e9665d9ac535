"""Run a collector for windows: source → records. No Dagster here."""

import contextlib
import logging
import time
from collections.abc import Callable, Hashable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pyarrow as pa
import pyarrow.compute as pc

from signals_dagster.errors import CollectorError
from signals_dagster.records import RecordBuilder, empty_records, grain_micros, value_sum
from signals_dagster.sources import Fetched, Source, SourceSession, open_source
from signals_dagster.spec.models import CollectorSpec
from signals_dagster.window import Window, check_window

log = logging.getLogger("signals_dagster")


@dataclass
class Collected:
    """One window's records and how they were obtained."""

    window: Window
    records: pa.Table
    source_rows: int
    null_values: int
    query_seconds: float
    suppressed: int | None = None  # rows below the contract's min_group_size (None: no rule)

    def metadata(self) -> dict[str, float | int | str]:
        """Plain figures about the collection (plotted by the UI across partitions)."""
        figures: dict[str, float | int | str] = {
            "record_count": len(self.records),
            "value_sum": value_sum(self.records.column("value")),
            "source_rows": self.source_rows,
            "null_values_dropped": self.null_values,
            "query_seconds": round(self.query_seconds, 6),
            "window_start": self.window.start.isoformat(),
            "window_end": self.window.end.isoformat(),
        }
        if self.suppressed is not None:
            figures["suppressed_records"] = self.suppressed
        return figures


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
    stream: Any = fetched.batches if fetched.batches is not None else fetched.rows
    close = getattr(stream, "close", None)
    return contextlib.closing(stream) if close is not None else contextlib.nullcontext()


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
                counts[window.key] = _add(builders[columns], window, fetched)
            except CollectorError as exc:
                raise _located(exc, spec, window) from None
        seconds[window.key] = time.perf_counter() - started
    if not builders:
        return []
    return _split(windows, list(builders.values()), now, counts, seconds)


def _located(exc: CollectorError, spec: CollectorSpec, window: Window) -> CollectorError:
    """The same error (type, transience) prefixed with the collector and window."""
    return type(exc)(f"{spec.name}, {window.describe()}: {exc}", transient=exc.transient)


def _add(builder: RecordBuilder, window: Window, fetched: Fetched) -> tuple[int, int]:
    if fetched.batches is not None:
        return builder.add_arrow(window.grain_datetime, fetched.batches)
    return builder.add(window.grain_datetime, fetched.rows or ())


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
        table, spans = builders[0].table(now), builders[0].spans
        parts = {}
        for window in windows:
            first, last = spans.get(window.grain_micros, (0, 0))
            parts[window.key] = table.slice(first, last - first)
    else:
        tables = [builder.table(now) for builder in builders]
        table = pa.concat_tables(tables) if tables else empty_records()
        grains = pa.array(grain_micros(table))
        parts = {
            window.key: table.filter(pc.equal(grains, window.grain_micros)) for window in windows
        }
    grouped = any(builder.group is not None for builder in builders)
    suppressed: dict[int, int] = {}
    for builder in builders:
        for grain, count in builder.suppressed.items():
            suppressed[grain] = suppressed.get(grain, 0) + count
    return [
        Collected(
            window,
            parts[window.key],
            *counts[window.key],
            seconds[window.key],
            suppressed.get(window.grain_micros, 0) if grouped else None,
        )
        for window in windows
    ]


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
    tz = ZoneInfo(spec.partitions.timezone)
    starts = {w.grain_datetime: i for i, w in enumerate(windows)}

    def window_of(raw: Any) -> int:
        instant = _grain_instant(raw, tz)
        if instant not in starts:
            raise CollectorError(
                f"{spec.name}, {span.describe()}: a row has grain_datetime "
                f"{instant.isoformat()}, which is not the start of a "
                f"{spec.metric.grain} window in {spec.partitions.timezone} (truncate to the "
                "grain in the collector's timezone)"
            )
        return starts[instant]

    builder = RecordBuilder(spec, columns)
    counts: dict[str, tuple[int, int]] = {}
    with _closing(fetched):
        if fetched.batches is not None:
            parts = _split_batches(fetched.batches, grain_index, window_of, len(windows))
        else:
            parts = _split_rows(fetched.rows or iter(()), grain_index, window_of, len(windows))
        for index, window in enumerate(windows):
            try:
                if fetched.batches is not None:
                    counts[window.key] = builder.add_arrow(window.grain_datetime, parts[index])
                else:
                    counts[window.key] = builder.add(window.grain_datetime, parts[index])
            except CollectorError as exc:
                raise _located(exc, spec, window) from None
    share = (time.perf_counter() - started) / len(windows)
    return _split(windows, [builder], now, counts, dict.fromkeys(counts, share))


def _split_rows(
    rows: Iterator[Sequence[Any]], grain_index: int, window_of: Callable[[Any], int], size: int
) -> list[list[Sequence[Any]]]:
    """Python rows bucketed by window (a range has few distinct grains: each converted once)."""
    buckets: list[list[Sequence[Any]]] = [[] for _ in range(size)]
    indexes: dict[Any, int] = {}
    for row in rows:
        raw = row[grain_index]
        index = indexes.get(raw) if isinstance(raw, Hashable) else None
        if index is None:
            index = window_of(raw)
            if isinstance(raw, Hashable):
                indexes[raw] = index
        buckets[index].append(row)
    return buckets


def _split_batches(
    batches: Iterable[Any], grain_index: int, window_of: Callable[[Any], int], size: int
) -> list[list[pa.Table]]:
    """Arrow rows grouped by window, each window's rows in their source order."""
    items = [b for b in batches if b.num_rows]
    if not items:
        return [[] for _ in range(size)]
    table = pa.Table.from_batches(items) if isinstance(items[0], pa.RecordBatch) else None
    table = table if table is not None else pa.concat_tables(items)
    grains = table.column(grain_index).combine_chunks()
    uniques = pc.unique(grains)
    index_of = pa.array([window_of(v) for v in uniques.to_pylist()], pa.int32())
    windows = pc.take(index_of, pc.index_in(grains, value_set=uniques))
    order = pc.sort_indices(windows)  # stable: source order kept within a window
    table = table.take(order)
    counts = pc.value_counts(windows)
    sizes = dict(
        zip(counts.field("values").to_pylist(), counts.field("counts").to_pylist(), strict=True)
    )
    parts: list[list[pa.Table]] = []
    first = 0
    for index in range(size):
        length = sizes.get(index, 0)
        parts.append([table.slice(first, length)] if length else [])
        first += length
    return parts
