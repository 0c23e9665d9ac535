"""The records frame: one Arrow table per run, exactly signals-collector's record per row.

Columns: uuid, name, value (float64), type, tags (map<string, string>, in the record's own key
order), timestamp and grain_datetime (UTC, microseconds). pandas is imported only to convert
to and from DataFrames (derived assets, read-back), never on the collection path.
"""

import functools
import os
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

if TYPE_CHECKING:
    import pandas as pd

if "ARROW_DEFAULT_MEMORY_POOL" not in os.environ:
    # The C library's allocator gives a run's large, short-lived buffers (hashed texts, JSON
    # chunks) back to the OS; mimalloc keeps them: about 30 MB more peak RSS per million records.
    pa.set_memory_pool(pa.system_memory_pool())

RECORD_COLUMNS = ["uuid", "name", "value", "type", "tags", "timestamp", "grain_datetime"]
TEXT_TAGS = pa.map_(pa.string(), pa.string())  # in files
# In memory the keys are dictionary-encoded: a run's records share a handful of tag keys.
TAGS_TYPE = pa.map_(pa.dictionary(pa.int16(), pa.string()), pa.string())
UTC_US = pa.timestamp("us", tz="UTC")
# In memory, columns that hold one value per run (name, type, timestamp) or per window
# (grain_datetime) are dictionary-encoded: a 2-byte index per record.
LABEL = pa.dictionary(pa.int16(), pa.string())
INSTANT = pa.dictionary(pa.int16(), UTC_US)


def _schema(label: pa.DataType, tags: pa.DataType, instant: pa.DataType = UTC_US) -> pa.Schema:
    return pa.schema(
        [
            pa.field("uuid", pa.string(), nullable=False),
            pa.field("name", label, nullable=False),
            pa.field("value", pa.float64(), nullable=False),
            pa.field("type", label, nullable=False),
            pa.field("tags", tags, nullable=False),
            pa.field("timestamp", instant, nullable=False),
            pa.field("grain_datetime", instant, nullable=False),
        ]
    )


RECORD_SCHEMA = _schema(LABEL, TAGS_TYPE, INSTANT)  # in memory
STORED_SCHEMA = _schema(pa.string(), TEXT_TAGS)  # in files (Parquet): plain texts


def iso_z(moment: datetime, millis: bool = False) -> str:
    """ISO-8601 in UTC with a trailing Z (milliseconds when asked)."""
    utc = moment.astimezone(UTC)
    text = utc.isoformat(timespec="milliseconds" if millis else "seconds")
    return text.replace("+00:00", "Z")


def empty_records() -> pa.Table:
    """A records table with no rows."""
    return RECORD_SCHEMA.empty_table()


def repeated(value: object, count: int, kind: pa.DataType | None = None) -> pa.Array:
    """`count` copies of one value as an Arrow array (text by default; built in C++)."""
    kind = kind or pa.string()
    return pc.fill_null(pa.nulls(count, kind), pa.scalar(value, kind))


def constant(value: object, count: int, kind: pa.DataType | None = None) -> pa.Array:
    """`count` copies of one value, dictionary-encoded: one entry, a 2-byte index per record."""
    indices = pa.array(np.zeros(count, dtype=np.int16))
    return pa.DictionaryArray.from_arrays(indices, pa.array([value], kind or pa.string()))


def grain_micros(records: pa.Table) -> np.ndarray:
    """grain_datetime of every record as µs since the epoch (int64)."""
    column = records.column("grain_datetime").cast(UTC_US)
    return np.asarray(pc.cast(column, pa.int64()).to_numpy())


def make_records(
    uuids: pa.Array,
    name: str,
    values: pa.Array,
    kind: str,
    tags: pa.Array,
    collected_at: datetime,
    grain: datetime,
) -> pa.Table:
    """One window's records table from its columns (constants for name, type, timestamp and
    grain_datetime)."""
    count = len(uuids)
    return pa.Table.from_arrays(
        [
            uuids,
            constant(name, count),
            values,
            constant(kind, count),
            tags,
            constant(collected_at.astimezone(UTC), count, UTC_US),
            constant(grain.astimezone(UTC), count, UTC_US),
        ],
        schema=RECORD_SCHEMA,
    )


def concat_records(tables: Sequence[Any]) -> pa.Table:
    """Several records frames as one table (in order)."""
    parts = [as_table(t) for t in tables if len(t)]
    if not parts:
        return empty_records()
    return pa.concat_tables(parts).combine_chunks() if len(parts) > 1 else parts[0]


def as_table(records: Any) -> pa.Table:
    """A records table from a table or a pandas DataFrame of records (tags as mappings)."""
    if isinstance(records, pa.Table):
        if records.schema.equals(RECORD_SCHEMA):
            return records
        return records.select(RECORD_COLUMNS).cast(RECORD_SCHEMA)
    import pandas as pd

    frame: pd.DataFrame = records
    if not len(frame):
        return empty_records()
    stamps = [
        pa.array(
            pd.to_datetime(frame[c], utc=True).dt.floor("us").astype("datetime64[us, UTC]"),
            UTC_US,
        )
        .dictionary_encode()
        .cast(INSTANT)
        for c in ("timestamp", "grain_datetime")
    ]
    tags = pa.array([_tag_items(t) for t in frame["tags"]], TEXT_TAGS).cast(TAGS_TYPE)
    return pa.Table.from_arrays(
        [
            pa.array(frame["uuid"].astype(str).tolist(), pa.string()),
            pa.array(frame["name"].astype(str).tolist(), pa.string())
            .dictionary_encode()
            .cast(LABEL),
            pa.array(frame["value"].astype("float64").to_numpy(), pa.float64()),
            pa.array(frame["type"].astype(str).tolist(), pa.string())
            .dictionary_encode()
            .cast(LABEL),
            tags,
            *stamps,
        ],
        schema=RECORD_SCHEMA,
    )


def _tag_items(tags: Any) -> list[tuple[str, str]]:
    """A record's tags as (key, text) pairs: tags are text (a number becomes its text)."""
    from signals_dagster.records.convert import tag_text

    items = dict(tags).items()
    if all(type(k) is str and type(v) is str for k, v in items):
        return list(items)
    return [(str(k), v if isinstance(v, str) else tag_text(v)) for k, v in items]


def to_pandas(records: Any) -> "pd.DataFrame":
    """Records as a pandas DataFrame: tags as dicts, timestamps as datetime64[ns, UTC]."""
    import pandas as pd

    if isinstance(records, pd.DataFrame):
        return records
    table = as_table(records).cast(STORED_SCHEMA)
    frame = table.to_pandas(maps_as_pydicts="strict")
    if not len(frame):
        frame["tags"] = frame["tags"].astype(object)
    for column in ("timestamp", "grain_datetime"):
        frame[column] = frame[column].astype("datetime64[ns, UTC]")
    frame["value"] = frame["value"].astype("float64")
    return frame


def tag_columns(tags: pa.Array) -> tuple[list[str], list[pa.Array]] | None:
    """(keys, one text column per key) when every record's tags have the same keys in the same
    order and no NULL text (the shape our records have); None for any other shape."""
    if isinstance(tags, pa.ChunkedArray):
        tags = tags.combine_chunks()
    count = len(tags)
    offsets = np.frombuffer(
        tags.buffers()[1], dtype=np.int32, count=count + 1, offset=tags.offset * 4
    )
    start, end = int(offsets[0]), int(offsets[-1])
    lengths = np.diff(offsets)
    width = int(lengths[0]) if count else 0
    if count and not (lengths == width).all():
        return None
    keys = tags.keys.slice(start, end - start)
    items = tags.items.slice(start, end - start)
    first = keys.slice(0, width).to_pylist()
    if width and count > 1:
        if pa.types.is_dictionary(keys.type):  # compare the codes: one integer per key
            codes = keys.indices.to_numpy(zero_copy_only=False)
            if not (codes.reshape(count, width) == codes[:width]).all():
                return None
        else:
            tiled = pc.take(
                pa.array(first, pa.string()), pa.array(np.tile(np.arange(width), count))
            )
            if not pc.all(pc.equal(keys, tiled)).as_py():
                return None
    if items.null_count:
        return None
    columns = [items.take(pa.array(np.arange(i, width * count, width))) for i in range(width)]
    return first, columns


def json_number(value: float) -> int | float:
    """A value as the record's JSON gives it: integral floats as ints."""
    return int(value) if value.is_integer() and abs(value) < 2**53 else value


def to_dicts(records: Any) -> list[dict[str, Any]]:
    """Records as the seed's JSON objects (ISO-8601 Z timestamps; integral values as ints).

    Column by column: the dictionary-encoded columns (name, type, timestamp, grain_datetime)
    are converted once per distinct value, then picked by their indices."""
    table = as_table(records)
    if not len(table):
        return []
    stamp = functools.partial(iso_z, millis=True)
    columns = {
        "uuid": table.column("uuid").to_pylist(),
        "name": _decoded(table.column("name"), str),
        "value": [json_number(float(v)) for v in table.column("value").to_pylist()],
        "type": _decoded(table.column("type"), str),
        "tags": [dict(t) for t in table.column("tags").to_pylist()],
        "timestamp": _decoded(table.column("timestamp"), stamp),
        "grain_datetime": _decoded(table.column("grain_datetime"), iso_z),
    }
    values = [columns[name] for name in RECORD_COLUMNS]
    return [dict(zip(RECORD_COLUMNS, row, strict=True)) for row in zip(*values, strict=True)]


def _decoded(column: pa.ChunkedArray, convert: Callable[[Any], Any]) -> list[Any]:
    """A dictionary-encoded column as Python values, `convert` applied once per distinct one
    (of those the chunk uses: a slice keeps its whole table's dictionary)."""
    found: list[Any] = []
    for chunk in column.chunks:
        indices = chunk.indices.to_pylist()
        dictionary = chunk.dictionary
        converted: dict[int, Any] = {}
        for i in set(indices):
            if i is not None:
                value = dictionary[i].as_py()
                converted[i] = None if value is None else convert(value)
        found += [None if i is None else converted[i] for i in indices]
    return found


def from_dicts(items: Iterable[dict[str, Any]]) -> "pd.DataFrame":
    """Records read back from JSON objects (the inverse of `to_dicts`), as a DataFrame."""
    import pandas as pd

    rows = list(items)
    if not rows:
        return to_pandas(empty_records())
    frame = pd.DataFrame(rows, columns=RECORD_COLUMNS)
    frame["value"] = frame["value"].astype("float64")
    for column in ("timestamp", "grain_datetime"):
        frame[column] = pd.to_datetime(frame[column], utc=True, format="ISO8601")
    return frame


def value_sum(values: pa.Array | pa.ChunkedArray) -> float:
    """The sum of values without float noise: summed exactly (fsum) and rounded to the finest
    decimal precision among the values, so cents add up to cents (6658.31, not
    6658.3099999999995); values with no short decimal form are summed as they are."""
    import math

    array = np.asarray(pc.drop_null(values).to_numpy(), dtype="float64") if len(values) else None
    if array is None or not len(array):
        return 0.0
    if not np.isfinite(array).all():
        return float(array.sum())
    total = math.fsum(array.tolist()) if len(array) < 4096 else math.fsum(array)
    for places in range(16):
        if np.array_equal(np.round(array, places), array):
            return round(total, places)
    return total
