"""Result rows (Python rows or Arrow batches) → one records table, window by window."""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import islice
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from signals_dagster.contracts.model import Contract
from signals_dagster.errors import CollectorError
from signals_dagster.pseudonyms import Pseudonymizer
from signals_dagster.records import convert
from signals_dagster.records.frame import (
    TAGS_TYPE,
    concat_records,
    empty_records,
    make_records,
    repeated,
)
from signals_dagster.records.uuids import Part, bulk_uuids
from signals_dagster.spec.models import CollectorSpec
from signals_dagster.window import micros

RESERVED_COLUMNS = ("value", "grain_datetime")
ROW_BATCH = 65_536  # Python rows are converted this many at a time (bounded memory)


@dataclass
class _Window:
    """One window's records, column by column (tags in the builder's key order)."""

    grain: datetime
    uuids: pa.Array
    values: pa.Array
    tags: list[pa.Array]


class RecordBuilder:
    """Turns result rows into records for one or many windows, building one table at the end.

    Every window's rows are checked (value column, NULL values, duplicate tag sets) exactly as
    one record at a time would be; the work is done a column at a time.
    """

    def __init__(self, spec: CollectorSpec, columns: Sequence[str]) -> None:
        self.columns = [str(c) for c in columns]
        lowered = [c.lower() for c in self.columns]
        if "value" not in lowered:
            raise CollectorError(
                "the query result has no 'value' column "
                f"(columns: {', '.join(self.columns) or 'none'})"
            )
        self.value_index = lowered.index("value")
        self.tag_indexes = [i for i, c in enumerate(lowered) if c not in RESERVED_COLUMNS]
        self.static = spec.metric.static_tags
        for i in self.tag_indexes:
            if self.columns[i] in self.static:
                raise CollectorError(
                    f"column {self.columns[i]!r} clashes with the static tag of the same name"
                )
        self._privacy(spec.contract, lowered)
        self.tag_names = [self.columns[i] for i in self.tag_indexes]
        self.name, self.kind = spec.metric.name, spec.metric.type
        self.windows: list[_Window] = []
        self.spans: dict[int, tuple[int, int]] = {}  # grain (µs) -> its rows [first, last)
        self.suppressed: dict[int, int] = {}  # grain (µs) -> rows below min_group_size
        self._size = 0

    def _privacy(self, contract: Contract | None, lowered: list[str]) -> None:
        """The contract's privacy rules: the count column of min_group_size (never a tag),
        `pii: drop` tags removed, `pii: hash` tags pseudonymised (static ones now)."""
        self.group: tuple[int, int] | None = None  # (column index, k)
        self.dropped: list[str] = []
        self.hashed: list[int] = []  # positions in tag_indexes
        self.pseudonyms: Pseudonymizer | None = None
        if contract is None:
            return
        if contract.min_group_size is not None:
            column, k = contract.min_group_size.column, contract.min_group_size.k
            if column.lower() not in lowered:
                raise CollectorError(
                    f"the query result has no column {column!r} (the contract's "
                    f"min_group_size.column; columns: {', '.join(self.columns)})"
                )
            index = lowered.index(column.lower())
            self.group = (index, k)
            self.tag_indexes = [i for i in self.tag_indexes if i != index]
        # Matched ignoring case, like every column the builder looks for: a database that
        # answers `EMAIL` for `email` must not publish the raw value under another spelling.
        drop = {t.lower() for t in contract.dropped_tags}
        hashed = {t.lower() for t in contract.hashed_tags}
        self.dropped = [c for c in (self.columns[i] for i in self.tag_indexes) if c.lower() in drop]
        self.dropped += [key for key in self.static if key.lower() in drop]
        self.tag_indexes = [i for i in self.tag_indexes if lowered[i] not in drop]
        self.static = {k: v for k, v in self.static.items() if k.lower() not in drop}
        self.hashed = [n for n, i in enumerate(self.tag_indexes) if lowered[i] in hashed]
        if self.hashed or any(k.lower() in hashed for k in self.static):
            self.pseudonyms = Pseudonymizer.from_env()
            self.static = {
                k: self.pseudonyms.one(v) if k.lower() in hashed else v
                for k, v in self.static.items()
            }

    # -- input -----------------------------------------------------------------------------

    def add(self, grain_datetime: datetime, rows: Iterable[Sequence[Any]]) -> tuple[int, int]:
        """Add one window's Python rows; return (source rows, rows dropped for a NULL value)."""
        values: list[pa.Array] = []
        tags: list[list[pa.Array]] = []
        groups: list[pa.Array] = []
        iterator = iter(rows)
        value_name = self.columns[self.value_index]
        while batch := list(islice(iterator, ROW_BATCH)):
            cells = list(zip(*batch, strict=True))
            values.append(convert.python_values(cells[self.value_index], value_name))
            tags.append([convert.python_tags(cells[i]) for i in self.tag_indexes])
            if self.group is not None:
                index = self.group[0]
                groups.append(convert.python_values(cells[index], self.columns[index]))
        return self._add_window(grain_datetime, values, tags, groups)

    def add_arrow(self, grain_datetime: datetime, batches: Iterable[Any]) -> tuple[int, int]:
        """Add one window's rows as Arrow record batches (or tables) with this builder's
        columns; return (source rows, rows dropped for a NULL value)."""
        values: list[pa.Array] = []
        tags: list[list[pa.Array]] = []
        groups: list[pa.Array] = []
        value_name = self.columns[self.value_index]
        for batch in batches:
            if not batch.num_rows:
                continue
            values.append(convert.arrow_values(batch.column(self.value_index), value_name))
            tags.append([convert.arrow_tags(batch.column(i)) for i in self.tag_indexes])
            if self.group is not None:
                index = self.group[0]
                groups.append(convert.arrow_values(batch.column(index), self.columns[index]))
        return self._add_window(grain_datetime, values, tags, groups)

    def _add_window(
        self,
        grain: datetime,
        values: list[pa.Array],
        tags: list[list[pa.Array]],
        groups: list[pa.Array],
    ) -> tuple[int, int]:
        value = _concat(values, pa.float64())
        columns = [_concat([t[i] for t in tags], pa.string()) for i in range(len(self.tag_indexes))]
        count = len(value)
        keep = value.is_valid()
        dropped = count - pc.sum(keep.cast(pa.int64())).as_py() if count else 0
        suppressed = 0
        if self.group is not None and count:  # a NULL count is no evidence of a large group
            large = pc.fill_null(
                pc.greater_equal(_concat(groups, pa.float64()), self.group[1]), False
            )
            kept = pc.and_(keep, large)
            suppressed = (
                pc.sum(keep.cast(pa.int64())).as_py() - pc.sum(kept.cast(pa.int64())).as_py()
            )
            keep = kept
        start = micros(grain)
        if self.group is not None:
            self.suppressed[start] = self.suppressed.get(start, 0) + suppressed
        rows = None  # source row numbers of the kept rows (None: all kept), for messages
        if dropped or suppressed:
            value = value.filter(keep)
            columns = [c.filter(keep) for c in columns]
            rows = np.flatnonzero(keep.to_numpy(zero_copy_only=False)) + 1
        if self.pseudonyms is not None:
            for position in self.hashed:
                columns[position] = self.pseudonyms.column(columns[position])
        size = len(value)
        by_key: dict[str, Part] = dict(zip(self.tag_names, columns, strict=True))
        by_key.update(self.static)
        uuids, fingerprints = bulk_uuids(self.name, grain.astimezone(UTC), by_key, size)
        pa.default_memory_pool().release_unused()  # the hashed texts' pages, back to the OS
        fingerprints.sort()  # in place: only equal neighbours matter
        if size and (fingerprints[1:] == fingerprints[:-1]).any():
            self._duplicate(uuids, rows, columns)  # equal fingerprints; equal uuids: an error
        self.windows.append(_Window(grain.astimezone(UTC), uuids, value, columns))
        self.spans[start] = (self._size, self._size + size) if start not in self.spans else (-1, -1)
        self._size += size
        return count, dropped

    def _duplicate(self, uuids: pa.Array, rows: np.ndarray | None, columns: list[pa.Array]) -> None:
        """Raise for the first two rows with the same tags (none: a fingerprint collision)."""
        seen: dict[str, int] = {}
        for index, record_id in enumerate(uuids.to_pylist()):
            if record_id in seen:
                first = seen[record_id]
                tags = {n: c[index].as_py() for n, c in zip(self.tag_names, columns, strict=True)}
                tags.update(self.static)
                numbers = rows if rows is not None else np.arange(1, len(uuids) + 1)
                if self.dropped:
                    dropped = ", ".join(repr(d) for d in self.dropped)
                    raise CollectorError(
                        f"result rows {numbers[first]} and {numbers[index]} have the same tags "
                        f"{tags} once the `pii: drop` tag(s) {dropped} are dropped: records "
                        "are not re-aggregated (not safe for every metric type); aggregate "
                        "without the dropped column in the query, or hash it (`pii: hash`)"
                    )
                raise CollectorError(
                    f"result rows {numbers[first]} and {numbers[index]} have the same tags {tags}: "
                    "every row must have a distinct tag set (group by every non-value column)"
                )
            seen[record_id] = index

    # -- output ----------------------------------------------------------------------------

    def table(self, collected_at: datetime) -> pa.Table:
        """Every record added so far, as one table (windows in the order they were added).

        Called once: the builder hands its columns over to the table."""
        if not self._size:
            return empty_records()
        parts = []
        windows, self.windows = self.windows, []  # each window's columns are freed once used
        while windows:
            window = windows.pop(0)
            count = len(window.uuids)
            if not count:
                continue
            parts.append(
                make_records(
                    window.uuids,
                    self.name,
                    window.values,
                    self.kind,
                    tag_map(self.tag_names, window.tags, self.static, count),
                    collected_at,
                    window.grain,
                )
            )
        return concat_records(parts)


def _concat(arrays: list[pa.Array], kind: pa.DataType) -> pa.Array:
    if not arrays:
        return pa.array([], kind)
    if len(arrays) == 1:
        return arrays[0]
    return pa.concat_arrays(arrays)


def tag_map(
    names: Sequence[str], columns: Sequence[pa.Array], static: dict[str, str], count: int
) -> pa.Array:
    """map<string, string> of column tags (in column order) then static tags, per record."""
    keys = [*names, *static]
    width = len(keys)
    offsets = pa.array(np.arange(0, (count + 1) * width, width, dtype=np.int32)) if width else None
    if not width:
        return pa.MapArray.from_arrays(
            pa.array(np.zeros(count + 1, dtype=np.int32)),
            pa.array([], pa.string()).dictionary_encode(),
            pa.array([], pa.string()),
        ).cast(TAGS_TYPE)
    items = [*columns, *(repeated(v, count) for v in static.values())]
    # Interleave: record r's entries are items[0][r], items[1][r], ...
    order = (np.arange(count)[:, None] + np.arange(width)[None, :] * count).ravel()
    flat_items = pa.chunked_array(items, pa.string()).take(pa.array(order)).combine_chunks()
    flat_keys = pc.take(pa.array(keys, pa.string()), pa.array(np.tile(np.arange(width), count)))
    return pa.MapArray.from_arrays(offsets, flat_keys, flat_items)
