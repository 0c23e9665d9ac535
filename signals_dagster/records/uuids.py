"""Deterministic record ids: UUIDv5 of (metric name, sorted tags, grain_datetime).

The name hashed is `json.dumps([name, sorted(tags.items()), iso_z(grain)],
separators=(",", ":"))`. Small batches hash in Python; large ones build the same text column by
column and hash it with DuckDB's sha1 over Arrow (in bulk, no Python object per record).
"""

import hashlib
import json
import uuid
from collections.abc import Sequence
from datetime import datetime
from json.encoder import encode_basestring_ascii
from typing import Any, TypeAlias

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from signals_dagster.records.frame import iso_z, repeated

# Fixed namespace: the same (metric, tags, grain) gives the same uuid on every machine, forever.
RECORD_NAMESPACE = uuid.UUID("6f1c1c8e-3b7a-5d2e-9a41-5e0d7c2f8b13")
BULK = 4096  # from this many records on, DuckDB hashes faster than a Python loop
HASH_CHUNK = 65_536  # records hashed at a time (bounds the memory of the hashed texts)
_PLAIN = r"^[ !#-\[\]-~]*$"  # printable ASCII but " and \: JSON text as it is


def record_uuid(name: str, tags: dict[str, str], grain_datetime: datetime) -> str:
    """UUIDv5 of (metric name, sorted tags, grain_datetime), for one record."""
    key = json.dumps([name, sorted(tags.items()), iso_z(grain_datetime)], separators=(",", ":"))
    return str(uuid.uuid5(RECORD_NAMESPACE, key))


def json_escaped(column: pa.Array) -> pa.Array:
    """Each text as it stands between the quotes of a JSON string (json.dumps, ASCII only)."""
    plain = pc.match_substring_regex(column, _PLAIN)
    if pc.all(plain).as_py() is not False:
        return column
    rows = pc.indices_nonzero(pc.invert(plain))
    escaped = pa.array(
        [encode_basestring_ascii(v)[1:-1] for v in pc.take(column, rows).to_pylist()],
        pa.string(),
    )
    mask = pc.invert(plain)
    return pc.replace_with_mask(column, mask, escaped)


Part: TypeAlias = str | pa.Array  # a constant text, or one text per record


def join(parts: Sequence[Part], count: int) -> pa.Array:
    """Concatenate constant texts and text columns record by record (in C++)."""
    merged: list[Part] = []
    for part in parts:
        last = merged[-1] if merged else None
        if isinstance(part, str) and isinstance(last, str):
            merged[-1] = last + part
        elif not (isinstance(part, str) and not part):
            merged.append(part)
    if not any(isinstance(p, pa.Array) for p in merged):
        return repeated("".join(p for p in merged if isinstance(p, str)), count)
    arrays = [p if isinstance(p, pa.Array) else pa.scalar(p, pa.string()) for p in merged]
    return pc.binary_join_element_wise(*arrays, "")


def key_texts(name: str, grain_datetime: datetime, tags: dict[str, Part], count: int) -> list[Part]:
    """The hashed text as parts: constants and escaped tag columns, keys sorted."""
    parts: list[Part] = [f"[{json.dumps(name)},["]
    for index, key in enumerate(sorted(tags)):
        value = tags[key]
        escaped = encode_basestring_ascii(value) if isinstance(value, str) else None
        parts.append(("," if index else "") + "[" + encode_basestring_ascii(key) + ",")
        if escaped is not None:
            parts.append(escaped)
        else:
            assert isinstance(value, pa.Array)
            parts += ['"', json_escaped(value), '"']
        parts.append("]")
    parts.append(f"],{json.dumps(iso_z(grain_datetime))}]")
    return parts


def bulk_uuids(
    name: str, grain_datetime: datetime, tags: dict[str, Part], count: int
) -> tuple[pa.Array, np.ndarray]:
    """The uuids of `count` records of one window (tags maps key → constant or text column),
    and a 64-bit fingerprint of each (equal tags give equal fingerprints)."""
    if not count:
        return pa.array([], pa.string()), np.zeros(0, dtype=np.uint64)
    text = np.empty((count, 36), dtype=np.uint8)  # the uuids' text, filled a chunk at a time
    fingerprints = np.empty(count, dtype=np.uint64)
    for start in range(0, count, HASH_CHUNK):  # hashed texts and digests: a chunk at a time
        size = min(HASH_CHUNK, count - start)
        part = {k: v if isinstance(v, str) else v.slice(start, size) for k, v in tags.items()}
        digits = _sha1(join(key_texts(name, grain_datetime, part, size), size))
        text[start : start + size] = _format(digits)
        fingerprints[start : start + size] = _fingerprints(digits)
    offsets = np.arange(0, (count + 1) * 36, 36, dtype=np.int32)
    uuids = pa.Array.from_buffers(
        pa.string(), count, [None, pa.py_buffer(offsets), pa.py_buffer(text)]
    )
    return uuids, fingerprints


def _sha1(keys: pa.Array) -> np.ndarray:
    """sha1(namespace + key) of every key as hex digits (n x 40)."""
    if len(keys) < BULK:
        prefix = RECORD_NAMESPACE.bytes
        sha1 = hashlib.sha1
        text = "".join(sha1(prefix + k.encode()).hexdigest() for k in keys.to_pylist())
        return np.frombuffer(text.encode(), dtype=np.uint8).reshape(len(keys), 40)
    return _duckdb_sha1(keys)


_HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
_VARIANT = np.frombuffer(b"89ab", dtype=np.uint8)
# uuid text position → sha1 hex position (-1: a dash); version 5 and the variant are set after.
_LAYOUT = np.array(
    [*range(8), -1, *range(8, 12), -1, *range(12, 16), -1, *range(16, 20), -1, *range(20, 32)]
)


def _nibbles(digits: np.ndarray) -> np.ndarray:
    return np.where(digits >= ord("a"), digits - (ord("a") - 10), digits - ord("0")).astype(
        np.uint8
    )


def _format(digits: np.ndarray) -> np.ndarray:
    """sha1 hex digests (n x 40 ASCII) → UUIDv5 texts (n x 36), as
    str(uuid.UUID(bytes=digest[:16], version=5)) gives them."""
    out = digits[:, np.maximum(_LAYOUT, 0)]
    out[:, _LAYOUT < 0] = ord("-")
    out[:, 14] = ord("5")
    out[:, 19] = _VARIANT[_nibbles(digits[:, 16]) & 3]
    return out


def _fingerprints(digits: np.ndarray) -> np.ndarray:
    """One integer per digest from its first 16 hex digits (equal digests, equal integers)."""
    pair = np.ascontiguousarray(digits[:, :16]).view(np.uint64)  # n x 2 words of ASCII
    return (pair[:, 0] * np.uint64(0x9E3779B97F4A7C15)) ^ pair[:, 1]


_SHA1_SQL = "SELECT sha1($namespace::BLOB || encode(k)) AS h FROM keys"
_DUCK: list[Any] = []


def _duckdb_sha1(keys: pa.Array) -> np.ndarray:
    """sha1(namespace + key) of every key, as hex digits (n x 40), computed by DuckDB."""
    import duckdb

    if not _DUCK:
        con = duckdb.connect(":memory:", config={"enable_external_access": False})
        con.execute("SET preserve_insertion_order = true")
        _DUCK.append(con)
    con = _DUCK[0].cursor()  # a cursor per call: safe from several threads
    try:
        con.register("keys", pa.table({"k": keys}))
        hexes = con.sql(_SHA1_SQL, params={"namespace": RECORD_NAMESPACE.bytes})
        column = hexes.to_arrow_table().column("h").combine_chunks().cast(pa.string())
    finally:
        con.close()
    count = len(column)
    start = column.offset
    offsets = np.frombuffer(column.buffers()[1], dtype=np.int32, count=count + 1, offset=start * 4)
    data = np.frombuffer(column.buffers()[2], dtype=np.uint8)[offsets[0] : offsets[-1]]
    return data.reshape(count, 40)
