"""Records as the bytes of one object: Parquet (typed, pyarrow) or JSON lines."""

import io
import json
from collections.abc import Mapping
from typing import Any

from signals_dagster.errors import SinkError
from signals_dagster.records import (
    RECORD_COLUMNS,
    STORED_SCHEMA,
    TEXT_TAGS,
    as_table,
    empty_records,
    from_dicts,
    json_line_chunks,
    tag_columns,
    to_pandas,
)


def _sorted_tags(tags: Any) -> Any:
    """The tags map with every record's entries sorted by key (Parquet's canonical form)."""
    import pyarrow as pa

    from signals_dagster.records.builder import tag_map

    shape = tag_columns(tags)
    if shape is None:
        return pa.array([sorted(row) for row in tags.to_pylist()], tags.type)
    keys, columns = shape
    order = sorted(range(len(keys)), key=lambda k: keys[k])
    return tag_map([keys[k] for k in order], [columns[k] for k in order], {}, len(tags))


def encode(records: Any, fmt: str, metadata: Mapping[str, str] | None = None) -> bytes:
    """Records as the bytes of one object (Parquet or JSON lines).

    `metadata`: Parquet key-value metadata (the Arrow schema's), e.g. `signals.contract`; JSON
    lines have nowhere to put it (the records stay exactly the records)."""
    if fmt == "jsonl":
        return b"".join(json_line_chunks(records))
    import pyarrow.parquet as pq

    table = as_table(records).cast(STORED_SCHEMA)
    tags = _sorted_tags(table.column("tags").combine_chunks())
    table = table.set_column(4, STORED_SCHEMA.field("tags"), tags.cast(TEXT_TAGS))
    if metadata:
        table = table.replace_schema_metadata({**(table.schema.metadata or {}), **metadata})
    out = io.BytesIO()
    pq.write_table(table, out)
    return out.getvalue()


def decode(body: bytes, fmt: str, where: str) -> Any:
    """The records of one object (the inverse of `encode`)."""
    if fmt == "jsonl":
        try:
            return from_dicts(json.loads(line) for line in body.decode().splitlines() if line)
        except (ValueError, KeyError) as exc:
            raise SinkError(f"{where} is not a JSON-lines records object: {exc}") from None
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(pa.BufferReader(body))
    except pa.ArrowException as exc:
        raise SinkError(f"{where} is not a Parquet file: {exc}") from None
    missing = [c for c in RECORD_COLUMNS if c not in table.column_names]
    if missing:
        raise SinkError(f"{where} lacks the record column(s) {', '.join(missing)}")
    if not table.num_rows:
        return to_pandas(empty_records())
    frame = table.select(RECORD_COLUMNS).to_pandas(maps_as_pydicts="strict")
    frame["value"] = frame["value"].astype("float64")
    for column in ("timestamp", "grain_datetime"):
        frame[column] = frame[column].astype("datetime64[ns, UTC]")
    return frame
