"""Records as the bytes of one object: Parquet (typed, pyarrow) or JSON lines."""

import io
import json
from typing import Any

import pandas as pd

from signals_dagster.errors import SinkError
from signals_dagster.records import RECORD_COLUMNS, empty_records, from_dicts, to_json_lines


def parquet_schema() -> Any:
    """The Parquet schema of metric records."""
    import pyarrow as pa

    utc = pa.timestamp("us", tz="UTC")
    return pa.schema(
        [
            pa.field("uuid", pa.string(), nullable=False),
            pa.field("name", pa.string(), nullable=False),
            pa.field("value", pa.float64(), nullable=False),
            pa.field("type", pa.string(), nullable=False),
            pa.field("tags", pa.map_(pa.string(), pa.string()), nullable=False),
            pa.field("timestamp", utc, nullable=False),
            pa.field("grain_datetime", utc, nullable=False),
        ]
    )


def encode(records: pd.DataFrame, fmt: str) -> bytes:
    """Records as the bytes of one object (Parquet or JSON lines)."""
    if fmt == "jsonl":
        return to_json_lines(records).encode()
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = parquet_schema()
    columns = {
        "uuid": records["uuid"].astype(str).tolist(),
        "name": records["name"].astype(str).tolist(),
        "value": records["value"].astype("float64").tolist(),
        "type": records["type"].astype(str).tolist(),
        "tags": [sorted(dict(tags).items()) for tags in records["tags"]],
        "timestamp": records["timestamp"].dt.floor("us").tolist(),
        "grain_datetime": records["grain_datetime"].dt.floor("us").tolist(),
    }
    table = pa.Table.from_pydict(columns, schema=schema)
    out = io.BytesIO()
    pq.write_table(table, out)
    return out.getvalue()


def decode(body: bytes, fmt: str, where: str) -> pd.DataFrame:
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
        return empty_records()
    frame = table.select(RECORD_COLUMNS).to_pandas(maps_as_pydicts="strict")
    frame["value"] = frame["value"].astype("float64")
    for column in ("timestamp", "grain_datetime"):
        frame[column] = frame[column].astype("datetime64[ns, UTC]")
    return frame
