"""The fast record serialiser gives exactly the text of json.dumps over to_dicts."""

import json
from datetime import UTC, datetime, timedelta

import pandas as pd
import pyarrow as pa
import pytest

from signals_dagster.records import (
    RECORD_COLUMNS,
    as_table,
    empty_records,
    from_dicts,
    to_dicts,
    to_json_lines,
    to_json_values,
)


def _frame(rows: list[dict]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=RECORD_COLUMNS)
    frame["value"] = frame["value"].astype("float64")
    for column in ("timestamp", "grain_datetime"):
        frame[column] = pd.Series(
            [pd.Timestamp(v) for v in frame[column]], dtype="datetime64[ns, UTC]"
        )
    return frame


def _slow(frame: pd.DataFrame) -> list[str]:
    return [json.dumps(r, separators=(",", ":")) for r in to_dicts(frame)]


T0 = datetime(2026, 1, 2, 0, 15, 3, 120000, tzinfo=UTC)
G0 = datetime(2026, 1, 1, tzinfo=UTC)

VALUES = [
    0.0,
    -0.0,
    1.0,
    -7.0,
    3.25,
    0.1,
    1 / 3,
    1e-7,
    123456789.125,
    2.0**53,
    2.0**53 - 1,
    -(2.0**53) + 1,
    1e20,
    1.5e300,
    5e-324,
    -1.7976931348623157e308,
]  # NaN and ±inf are no JSON number: refused (test_audit_bugs), never printed as NaN / Infinity
TAGS = [
    {},
    {"env": "prod"},
    {"customer": "acme", "env": "prod"},
    {"b": "2", "a": "1"},  # insertion order is kept, as json.dumps keeps it
    {"city": "Zürich", "emoji": "📈"},
    {"quote": 'say "hi"', "slash": "a\\b", "ctl": "tab\there\nnl"},
    {"braces": "},{", "more": "{}", "comma": '","'},
    {"weird": '\\",'},
]


def test_matches_json_dumps_on_awkward_values_and_tags() -> None:
    rows = []
    for i, value in enumerate(VALUES):
        for j, tags in enumerate(TAGS):
            rows.append(
                {
                    "uuid": f"00000000-0000-5000-8000-{i:06d}{j:06d}",
                    "name": "shop.revenue" if (i + j) % 2 else "shop.ünits",
                    "value": value,
                    "type": "GAUGE" if j % 2 else "COUNT",
                    "tags": tags,
                    "timestamp": T0 + timedelta(milliseconds=i),
                    "grain_datetime": G0 + timedelta(days=j),
                }
            )
    frame = _frame(rows)
    assert to_json_values(frame) == _slow(frame)


@pytest.mark.parametrize(
    "uuid",
    ["not-a-uuid with space", 'quo"te', "ünï", "back\\slash"],
)
def test_uuids_that_need_escaping(uuid: str) -> None:
    frame = _frame(
        [
            {
                "uuid": uuid,
                "name": "m",
                "value": 1.0,
                "type": "COUNT",
                "tags": {},
                "timestamp": T0,
                "grain_datetime": G0,
            },
            {
                "uuid": "plain-0",
                "name": "m",
                "value": 2.5,
                "type": "COUNT",
                "tags": {"k": "v"},
                "timestamp": T0,
                "grain_datetime": G0,
            },
        ]
    )
    assert to_json_values(frame) == _slow(frame)


def test_tags_that_are_not_plain_string_dicts() -> None:
    class Tags(dict):  # a dict subclass: the C encoder handles it as a dict
        pass

    frame = _frame(
        [
            {
                "uuid": "a",
                "name": "m",
                "value": 1.0,
                "type": "COUNT",
                "tags": Tags(x="1"),
                "timestamp": T0,
                "grain_datetime": G0,
            },
            {
                "uuid": "b",
                "name": "m",
                "value": 1.0,
                "type": "COUNT",
                "tags": {"nested": {"a": 1}, "n": 2},
                "timestamp": T0,
                "grain_datetime": G0,
            },
        ]
    )
    assert to_json_values(frame) == _slow(frame)


def test_empty_and_round_trip() -> None:
    assert to_json_values(empty_records()) == []
    assert to_json_lines(empty_records()) == ""
    frame = _frame(
        [
            {
                "uuid": f"u{i}",
                "name": "m",
                "value": i / 4,
                "type": "GAUGE",
                "tags": {"i": str(i)},
                "timestamp": T0,
                "grain_datetime": G0,
            }
            for i in range(10)
        ]
    )
    lines = to_json_lines(frame)
    assert lines.splitlines() == _slow(frame)
    again = from_dicts(json.loads(line) for line in lines.splitlines())
    assert to_json_values(again) == to_json_values(frame)


UNIFORM_TAGS = [
    # every record has the same keys in the same order: built key by key
    [{"customer": f"c{i}", "env": "prod"} for i in range(6)],
    [{"env": "prod", "customer": f"c{i}", "region": "eu", "shard": str(i % 2)} for i in range(6)],
    [{"city": "Zürich", "q": 'say "hi"', "n": f"{i}"} for i in range(6)],  # static, escaped
    [{"k": f"v{i}"} for i in range(6)],
    [{"only": "static"} for _ in range(6)],
    [{} for _ in range(6)],
    # not plain: falls back to the general path
    [{"customer": f"c{i}\u00e9", "env": "prod"} for i in range(6)],
    [{"customer": f'c"{i}', "env": "prod"} for i in range(6)],
    [{"customer": f"c{i}\\", "env": "prod"} for i in range(6)],
    [{"customer": f"c{i}\x7f", "env": "prod"} for i in range(6)],
    [{"a": "1", "b": "2"}] * 5 + [{"b": "2", "a": "1"}],  # same keys, another order
    [{"a": "1"}] * 5 + [{"a": "1", "b": "2"}],
    [{"n": i} for i in range(6)],  # not strings
]


@pytest.mark.parametrize("tags", UNIFORM_TAGS)
@pytest.mark.parametrize("same_window", [True, False])
def test_matches_json_dumps_on_uniform_tags(tags: list[dict], same_window: bool) -> None:
    rows = [
        {
            "uuid": f"u-{i}",
            "name": "m" if same_window else f"m{i % 2}",
            "value": i * 0.5,
            "type": "COUNT",
            "tags": t,
            "timestamp": T0,
            "grain_datetime": G0 if same_window else G0 + timedelta(days=i),
        }
        for i, t in enumerate(tags)
    ]
    frame = _frame(rows)
    assert to_json_values(frame) == _slow(frame)


def _row_by_row(table: pa.Table) -> list[dict]:
    """The records' JSON objects built one row at a time from Arrow's own row conversion."""
    rows = table.to_pylist()
    for row in rows:
        value = float(row["value"])
        row["value"] = int(value) if value.is_integer() and abs(value) < 2**53 else value
        row["tags"] = dict(row["tags"])
        row["timestamp"] = (
            row["timestamp"].isoformat(timespec="milliseconds").replace("+00:00", "Z")
        )
        row["grain_datetime"] = (
            row["grain_datetime"].isoformat(timespec="seconds").replace("+00:00", "Z")
        )
    return rows


def test_to_dicts_of_slices_and_chunked_tables() -> None:
    """to_dicts converts the dictionary-encoded columns once per distinct value: a slice (which
    keeps its table's whole dictionary) and a table of several chunks (each with its own
    dictionary) give exactly the row-by-row objects, key order included."""
    rows = [
        {
            "uuid": f"u-{i}",
            "name": ("a.count", "b.sum", "c.ünits")[i % 3],
            "value": VALUES[i % len(VALUES)],
            "type": ("COUNT", "GAUGE")[i % 2],
            "tags": TAGS[i % len(TAGS)],
            "timestamp": T0 + timedelta(milliseconds=i % 4),
            "grain_datetime": G0 + timedelta(days=i % 7),
        }
        for i in range(120)
    ]
    table = as_table(_frame(rows))
    chunked = pa.concat_tables([table.slice(0, 50), table.slice(50)])
    assert chunked.column("name").num_chunks == 2
    for part in (table, table.slice(0, 1), table.slice(37, 40), table.slice(119), chunked):
        assert [list(r.items()) for r in to_dicts(part)] == [
            list(r.items()) for r in _row_by_row(part)
        ]
    assert to_dicts(table.slice(0, 0)) == []
