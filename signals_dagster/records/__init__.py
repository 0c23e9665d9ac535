"""Metric records: the seed's record, one per result row, as one Arrow table per run."""

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

import pyarrow as pa

from signals_dagster.records.builder import RESERVED_COLUMNS, RecordBuilder
from signals_dagster.records.frame import (
    RECORD_COLUMNS,
    RECORD_SCHEMA,
    STORED_SCHEMA,
    TAGS_TYPE,
    TEXT_TAGS,
    as_table,
    concat_records,
    empty_records,
    from_dicts,
    grain_micros,
    iso_z,
    json_number,
    tag_columns,
    to_dicts,
    to_pandas,
    value_sum,
)
from signals_dagster.records.jsontext import (
    json_line_chunks,
    json_texts,
    to_json_lines,
    to_json_values,
)
from signals_dagster.records.uuids import RECORD_NAMESPACE, record_uuid
from signals_dagster.spec.models import CollectorSpec

__all__ = [
    "RECORD_COLUMNS",
    "RECORD_NAMESPACE",
    "RECORD_SCHEMA",
    "RESERVED_COLUMNS",
    "STORED_SCHEMA",
    "TAGS_TYPE",
    "TEXT_TAGS",
    "RecordBuilder",
    "as_table",
    "build_records",
    "concat_records",
    "empty_records",
    "from_dicts",
    "grain_micros",
    "iso_z",
    "json_line_chunks",
    "json_number",
    "json_texts",
    "record_uuid",
    "tag_columns",
    "to_dicts",
    "to_json_lines",
    "to_json_values",
    "to_pandas",
    "value_sum",
]


def build_records(
    spec: CollectorSpec,
    grain_datetime: datetime,
    columns: Sequence[str],
    rows: Iterable[Sequence[Any]],
    collected_at: datetime,
) -> tuple[pa.Table, int, int]:
    """Rows → records table; also return source row count and rows dropped for a NULL value."""
    builder = RecordBuilder(spec, columns)
    count, dropped = builder.add(grain_datetime, rows)
    return builder.table(collected_at), count, dropped
