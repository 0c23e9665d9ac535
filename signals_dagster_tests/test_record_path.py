"""The columnar record path gives exactly the records of the row-by-row implementation it
replaced: the same uuids, the same JSON text, the same NULL / duplicate / type rules."""

import json
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pandas as pd
import psycopg
import pyarrow as pa
import pytest

from signals_dagster.collect import collect
from signals_dagster.errors import CollectorError
from signals_dagster.records import (
    TAGS_TYPE,
    RecordBuilder,
    as_table,
    json_line_chunks,
    record_uuid,
    to_dicts,
    to_json_lines,
    value_sum,
)
from signals_dagster.records.uuids import BULK, bulk_uuids
from signals_dagster.sinks.formats import decode, encode
from signals_dagster.sources import open_source
from signals_dagster.spec.models import CollectorSpec
from signals_dagster.window import Window

DATA = Path(__file__).parent / "data" / "records"
NOW = datetime(2026, 11, 2, 12, 0, 3, 120000, tzinfo=UTC)
DAY = Window("2026-02-10", datetime(2026, 2, 10, tzinfo=UTC), datetime(2026, 2, 11, tzinfo=UTC))


def corpus() -> list[dict]:
    return [json.loads(line) for line in (DATA / "corpus.jsonl").read_text().splitlines()]


def spec_for(
    sql: str, uri: str = "sqlite:///unused.db", metric: str = "rp.test", **tags: str
) -> CollectorSpec:
    source_type = "postgres" if uri.startswith("postgresql") else "sqlite"
    return CollectorSpec.model_validate(
        {
            "name": metric,
            "metric": {
                "name": metric,
                "type": "GAUGE",
                "grain": "24h",
                "tags": [{"key": k, "value": v} for k, v in tags.items()],
            },
            "source": {"type": source_type, "config": {"uri": uri, "sql": sql}},
            "sinks": {"c": {"type": "console"}},
        }
    )


def test_uuids_are_those_of_the_fixed_corpus() -> None:
    # corpus.jsonl was written by the pre-Arrow implementation: uuid and JSON line per record.
    rows = corpus()
    assert len(rows) == 600
    for row in rows:
        tags = dict(row["tags"])
        grain = datetime.fromisoformat(row["grain_datetime"])
        assert record_uuid(row["name"], tags, grain) == row["uuid"]
        columns = {k: pa.array([v]) for k, v in tags.items()}
        assert bulk_uuids(row["name"], grain, columns, 1)[0].to_pylist() == [row["uuid"]]


def test_json_lines_are_those_of_the_fixed_corpus() -> None:
    rows = corpus()
    frame = pd.DataFrame(
        [
            {
                "uuid": r["uuid"],
                "name": r["name"],
                "value": r["value"],
                "type": r["type"],
                "tags": dict(r["tags"]),
                "timestamp": pd.Timestamp(r["timestamp"]),
                "grain_datetime": pd.Timestamp(r["grain_datetime"]),
            }
            for r in rows
        ]
    )
    assert to_json_lines(frame) == "".join(r["line"] for r in rows)
    # The same text a few records at a time, and from a slice of the table.
    table = as_table(frame)
    assert b"".join(json_line_chunks(table, chunk=7)).decode() == to_json_lines(frame)
    assert to_json_lines(table.slice(100, 50)) == "".join(r["line"] for r in rows[100:150])


@pytest.mark.parametrize("count", [BULK - 1, BULK + 10])
def test_bulk_uuids_equal_the_one_record_formula(count: int) -> None:
    grain = datetime(2026, 3, 29, 1, tzinfo=UTC)
    odd = '\\"'  # a backslash and a quote: escaped in the hashed text
    texts = [f"c{i}\u00e9" + (odd if i % 97 == 0 else "") for i in range(count)]
    ids, fingerprints = bulk_uuids(
        "m.x", grain, {"customer": pa.array(texts), "env": "prod"}, count
    )
    expected = [record_uuid("m.x", {"customer": t, "env": "prod"}, grain) for t in texts]
    assert ids.to_pylist() == expected
    assert len(set(fingerprints.tolist())) == count
    assert {uuid.UUID(u).version for u in expected} == {5}


ROWS = [
    ("acme", 1, Decimal("10.50")),
    ("bolt", None, None),  # NULL value: dropped and counted
    ("crest", 2, float("nan")),  # NaN value: dropped and counted
    ("dyna", None, 3),
    (None, 3, Decimal("0.1")),
]


def test_python_rows_and_arrow_batches_give_the_same_records() -> None:
    spec = spec_for("SELECT 1", env="prod")
    columns = ["account", "n", "value"]
    by_rows = RecordBuilder(spec, columns)
    assert by_rows.add(DAY.grain_datetime, ROWS) == (5, 2)
    arrow = pa.record_batch(
        [
            pa.array([r[0] for r in ROWS]),
            pa.array([r[1] for r in ROWS], pa.int64()),
            pa.array([None if r[2] is None else str(r[2]) for r in ROWS]).cast(pa.float64()),
        ],
        names=columns,
    )
    by_arrow = RecordBuilder(spec, columns)
    assert by_arrow.add_arrow(DAY.grain_datetime, [arrow]) == (5, 2)
    records = to_dicts(by_rows.table(NOW))
    assert to_dicts(by_arrow.table(NOW)) == records
    assert [r["tags"] for r in records] == [
        {"account": "acme", "n": "1", "env": "prod"},
        {"account": "dyna", "n": "", "env": "prod"},
        {"account": "", "n": "3", "env": "prod"},
    ]
    assert [r["value"] for r in records] == [10.5, 3, 0.1]


def test_duplicate_tags_and_bad_values_fail_the_same_way_on_both_paths() -> None:
    spec = spec_for("SELECT 1")
    rows = [("a", 1), ("b", None), ("a", 2)]
    batch = pa.record_batch([pa.array(["a", "b", "a"]), pa.array([1, None, 2])], ["k", "value"])
    message = r"result rows 1 and 3 have the same tags \{'k': 'a'\}: every row must"
    with pytest.raises(CollectorError, match=message):
        RecordBuilder(spec, ["k", "value"]).add(DAY.grain_datetime, rows)
    with pytest.raises(CollectorError, match=message):
        RecordBuilder(spec, ["k", "value"]).add_arrow(DAY.grain_datetime, [batch])
    bad = pa.record_batch([pa.array(["a"]), pa.array(["abc"])], ["k", "value"])
    with pytest.raises(CollectorError, match="non-numeric value 'abc'"):
        RecordBuilder(spec, ["k", "value"]).add_arrow(DAY.grain_datetime, [bad])
    flag = pa.record_batch([pa.array(["a"]), pa.array([True])], ["k", "value"])
    with pytest.raises(CollectorError, match="is a boolean"):
        RecordBuilder(spec, ["k", "value"]).add_arrow(DAY.grain_datetime, [flag])


def test_value_sum_has_no_float_noise() -> None:
    values = pa.array([1234.56, 2345.67, 3078.08])  # float sum: 6658.3099999999995
    assert sum(values.to_pylist()) != 6658.31
    assert value_sum(values) == 6658.31
    assert str(value_sum(values)) == "6658.31"
    assert value_sum(pa.array([1 / 3, 1 / 3])) == pytest.approx(2 / 3)
    assert value_sum(pa.array([], pa.float64())) == 0.0


def test_parquet_is_written_from_arrow_with_sorted_tags() -> None:
    spec = spec_for("SELECT 1", env="prod")
    builder = RecordBuilder(spec, ["zone", "account", "value"])
    builder.add(DAY.grain_datetime, [("eu", "acme", 1), ("us", "bolt", 2)])
    table = builder.table(NOW)
    import pyarrow.parquet as pq

    stored = pq.read_table(pa.BufferReader(encode(table, "parquet")))
    assert [list(dict(t)) for t in stored.column("tags").to_pylist()] == [
        ["account", "env", "zone"]
    ] * 2
    back = decode(encode(table, "parquet"), "parquet", "x")
    assert sorted(map(json.dumps, to_dicts(back))) == sorted(
        json.dumps({**r, "tags": dict(sorted(r["tags"].items()))}) for r in to_dicts(table)
    )


@pytest.fixture
def pg_types(pg_url: str) -> str:
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS rt_types")
        conn.execute((DATA / "pg_types.sql").read_text())
    return pg_url


COLUMNS = (
    "t_text, t_varchar, t_int2, t_int4, t_int8, t_numeric, t_float4, t_float8, t_bool, t_date, "
    "t_ts, t_tstz, t_uuid, t_char"
)


def test_postgres_types_give_the_tags_psycopg_gave(pg_types: str) -> None:
    # pg_types.jsonl: the records of this query from the row-by-row psycopg implementation.
    sql = (
        f"SELECT {COLUMNS}, value_num AS value FROM rt_types "
        "WHERE :window_start < :window_end ORDER BY i"
    )
    spec = spec_for(sql, pg_types, metric="pg.types", env="test")
    assert type(open_source(spec)).__name__ == "PostgresSource"
    (collected,) = collect(spec, [DAY], now=NOW)
    assert to_json_lines(collected.records) == (DATA / "pg_types.jsonl").read_text()


def test_postgres_types_arrow_cannot_mirror_run_through_psycopg(pg_types: str) -> None:
    sql = """
        SELECT interval '1 day 2 hours' AS span, inet '10.0.0.1' AS ip, ARRAY[1.5, 2]::numeric[]
               AS list, count(*) AS value
        FROM rt_types WHERE :window_start < :window_end
    """
    (collected,) = collect(spec_for(sql, pg_types), [DAY], now=NOW)
    (record,) = to_dicts(collected.records)
    assert record["tags"] == {
        "span": str(timedelta(days=1, hours=2)),
        "ip": "10.0.0.1",
        "list": str([Decimal("1.5"), Decimal("2")]),
    }
    assert record["value"] == 120


def test_a_million_row_shape_stays_columnar() -> None:
    # Tags stay Arrow columns end to end: no dict per record is built for a uniform result.
    spec = spec_for("SELECT 1", env="prod")
    count = 50_000
    batch = pa.record_batch(
        [pa.array([f"u{i}" for i in range(count)]), pa.array(range(count), pa.int64())],
        ["user", "value"],
    )
    builder = RecordBuilder(spec, ["user", "value"])
    builder.add_arrow(DAY.grain_datetime, [batch])
    table = builder.table(NOW)
    assert table.num_rows == count
    assert table.column("tags").type == TAGS_TYPE  # keys dictionary-encoded in memory
    lines = to_json_lines(table).splitlines()
    assert json.loads(lines[123]) == to_dicts(table.slice(123, 1))[0]
    assert json.loads(lines[123])["uuid"] == record_uuid(
        "rp.test", {"user": "u123", "env": "prod"}, DAY.grain_datetime
    )
