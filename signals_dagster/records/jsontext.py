"""Records as JSON text: exactly json.dumps(record, separators=(",", ":")) for each record of
to_dicts, built column by column in Arrow (one pass per column, no Python object per record for
the common shapes: every record with the same tag keys, printable-ASCII texts)."""

import json
from collections.abc import Callable, Iterator
from json.encoder import encode_basestring_ascii
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from signals_dagster.records.frame import as_table, iso_z, tag_columns
from signals_dagster.records.uuids import Part, join, json_escaped

CHUNK = 16_384  # records serialised at a time: the text of a chunk is the only copy in memory


def _encoder() -> Any:
    """json.dumps(obj, separators=(",", ":")) as one C call, without per-call set-up."""
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:  # no C accelerator: the pure-Python encoder gives the same text
        return json.JSONEncoder(separators=(",", ":"), allow_nan=False).encode

    def default(obj: object) -> object:
        raise TypeError(f"Object of type {type(obj).__name__} is not JSON serializable")

    # markers, default, encoder, indent, key/item separators, sort_keys, skipkeys, allow_nan
    # (False: NaN and ±inf raise ValueError rather than print the invalid `NaN` / `Infinity`)
    encode = make(None, default, encode_basestring_ascii, None, ":", ",", False, False, False)
    joined = "".join
    return lambda obj: joined(encode(obj, 0))


dumps = _encoder()


def _column(table: pa.Table, name: str) -> pa.Array:
    column = table.column(name)
    return column.combine_chunks() if column.num_chunks != 1 else column.chunk(0)


def _distinct(column: pa.Array, text: Callable[[Any], str]) -> Part:
    """text(value) once per distinct value in the column: one constant when the column holds
    one value. (A slice of a dictionary column converts only the entries it uses.)"""
    encoded = column if pa.types.is_dictionary(column.type) else column.dictionary_encode()
    used = pc.unique(encoded.indices)
    values = pc.take(encoded.dictionary, used).to_pylist()
    if len(values) == 1:
        return text(values[0])
    texts = pa.array([text(v) for v in values], pa.string())
    return pc.take(texts, pc.index_in(encoded.indices, value_set=used))


# Where Arrow's shortest text of a non-integral float is Python's repr (both print the
# shortest round-trip digits; only the switch to exponent notation differs, outside this range).
ARROW_FLOAT_TEXT = (1e-2, 1e10)


def _values(values: pa.Array) -> pa.Array:
    """JSON text of each value (integral floats as ints; others as Python's repr); ValueError
    for NaN, ±inf or NULL, which JSON has no number for (sources drop them before)."""
    array = values.to_numpy(zero_copy_only=False)
    finite = np.isfinite(array)
    if not finite.all():
        raise ValueError(
            f"value {array[~finite][0]} is not a JSON number (records need finite values)"
        )
    magnitude = np.abs(array)
    integral = (np.trunc(array) == array) & (magnitude < 2**53)
    if integral.all():
        return pa.array(array.astype(np.int64)).cast(pa.string())
    low, high = ARROW_FLOAT_TEXT
    by_arrow = ~integral & (magnitude >= low) & (magnitude < high)
    texts = pc.if_else(
        pa.array(integral),
        pa.array(np.where(integral, array, 0).astype(np.int64)).cast(pa.string()),
        values.cast(pa.string()),
    )
    rest = ~(integral | by_arrow)
    if rest.any():  # tiny, huge and non-finite values: Python's own text
        python = pa.array(dumps(array[rest].tolist())[1:-1].split(","), pa.string())
        texts = pc.replace_with_mask(texts, pa.array(rest), python)
    return texts


def _map_parts(tags: pa.Array) -> list[Part] | None:
    """The text between a tags object's braces as parts, when every record has the same keys
    in the same order (None otherwise)."""
    shape = tag_columns(tags)
    if shape is None:
        return None
    parts: list[Part] = []
    for index, (key, column) in enumerate(zip(*shape, strict=True)):
        parts.append(("," if index else "") + encode_basestring_ascii(key) + ":")
        values = column.dictionary_encode()
        if len(values.dictionary) == 1:  # a static tag: one text for every record
            parts.append(encode_basestring_ascii(values.dictionary[0].as_py()))
        else:
            parts += ['"', json_escaped(column), '"']
    return parts


def _map_rows(tags: pa.Array) -> pa.Array:
    """The text between each tags object's braces, record by record (any shape)."""
    return pa.array([dumps(dict(row))[1:-1] for row in tags.to_pylist()], pa.string())


def json_texts(records: Any, newline: bool = False) -> pa.Array:
    """One JSON text per record (with a trailing newline when asked), as an Arrow string array."""
    table = as_table(records)
    count = table.num_rows
    if not count:
        return pa.array([], pa.string())
    tags = _column(table, "tags")
    tag_parts = _map_parts(tags)
    if tag_parts is None:
        tag_parts = [_map_rows(tags)]
    parts: list[Part] = [
        '{"uuid":"',
        json_escaped(_column(table, "uuid")),
        '","name":',
        _distinct(_column(table, "name"), dumps),
        ',"value":',
        _values(_column(table, "value")),
        ',"type":',
        _distinct(_column(table, "type"), dumps),
        ',"tags":{',
        *tag_parts,
        '},"timestamp":',
        _distinct(_column(table, "timestamp"), lambda t: dumps(iso_z(t, millis=True))),
        ',"grain_datetime":',
        _distinct(_column(table, "grain_datetime"), lambda t: dumps(iso_z(t))),
        "}\n" if newline else "}",
    ]
    return join(parts, count)


def to_json_values(records: Any) -> list[str]:
    """Each record as compact JSON text."""
    return list(json_texts(records).to_pylist())


def json_line_chunks(records: Any, chunk: int = CHUNK) -> Iterator[bytes]:
    """The records as JSON lines, `chunk` records at a time (bytes, each line ending in \\n)."""
    table = as_table(records)
    for start in range(0, table.num_rows, chunk):
        texts = json_texts(table.slice(start, chunk), newline=True)
        offsets = np.frombuffer(
            texts.buffers()[1], dtype=np.int32, count=len(texts) + 1, offset=texts.offset * 4
        )
        first, last = int(offsets[0]), int(offsets[-1])
        yield texts.buffers()[2][first:last].to_pybytes()


def to_json_lines(records: Any) -> str:
    """Records as JSON lines (each ending in a newline)."""
    return b"".join(json_line_chunks(records)).decode()
