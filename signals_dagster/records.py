"""Metric records: the seed's record, one per result row, as one pandas DataFrame per window."""

import json
import math
import re
import uuid
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from json.encoder import encode_basestring_ascii
from typing import Any

import numpy as np
import pandas as pd

from signals_dagster.errors import CollectorError
from signals_dagster.spec.models import CollectorSpec

RECORD_COLUMNS = ["uuid", "name", "value", "type", "tags", "timestamp", "grain_datetime"]
# Fixed namespace: the same (metric, tags, grain) gives the same uuid on every machine, forever.
RECORD_NAMESPACE = uuid.UUID("6f1c1c8e-3b7a-5d2e-9a41-5e0d7c2f8b13")
RESERVED_COLUMNS = ("value", "grain_datetime")


def record_uuid(name: str, tags: dict[str, str], grain_datetime: datetime) -> str:
    """UUIDv5 of (metric name, sorted tags, grain_datetime)."""
    return _UuidKey(name, grain_datetime).uuid(tags)


class _UuidKey:
    """The uuid key's constant parts for one (metric, grain): only the tags change per record.

    The key is json.dumps([name, sorted tags, grain iso], separators=(",", ":")), written as
    prefix + dumps(sorted tags) + suffix, which is the same text.
    """

    def __init__(self, name: str, grain_datetime: datetime) -> None:
        self.prefix = f"[{json.dumps(name)},"
        self.suffix = f",{json.dumps(iso_z(grain_datetime))}]"

    def uuid(self, tags: dict[str, str]) -> str:
        items = json.dumps(sorted(tags.items()), separators=(",", ":"))
        return str(uuid.uuid5(RECORD_NAMESPACE, f"{self.prefix}{items}{self.suffix}"))


def iso_z(moment: datetime, millis: bool = False) -> str:
    """ISO-8601 in UTC with a trailing Z (milliseconds when asked)."""
    utc = moment.astimezone(UTC)
    text = utc.isoformat(timespec="milliseconds" if millis else "seconds")
    return text.replace("+00:00", "Z")


def _number(value: Any, column: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool):
        raise CollectorError(
            f"column {column!r} is a boolean ({value}); the value must be a number"
        )
    if isinstance(value, int | float | Decimal):
        number = float(value)
    else:
        try:
            number = float(str(value))
        except ValueError:
            raise CollectorError(f"column {column!r} has non-numeric value {value!r}") from None
    if math.isnan(number):
        return None
    return number


def _tag(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


class RecordBuilder:
    """Turns result rows into records for one or many windows, building one DataFrame at the end."""

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
        self.name, self.kind = spec.metric.name, spec.metric.type
        self.uuids: list[str] = []
        self.values: list[float] = []
        self.tags: list[dict[str, str]] = []
        self.grains: list[int] = []  # ns since the epoch, UTC
        self.spans: dict[int, tuple[int, int]] = {}  # grain (ns) -> its rows [first, last)

    def add(self, grain_datetime: datetime, rows: Iterable[Sequence[Any]]) -> tuple[int, int]:
        """Add one window's rows; return (source rows, rows dropped for a NULL value)."""
        columns, value_index = self.columns, self.value_index
        seen: dict[str, int] = {}
        count = dropped = 0
        key = _UuidKey(self.name, grain_datetime)
        for row in rows:
            count += 1
            value = _number(row[value_index], columns[value_index])
            if value is None:
                dropped += 1
                continue
            tags = {columns[i]: _tag(row[i]) for i in self.tag_indexes}
            tags.update(self.static)
            record_id = key.uuid(tags)
            if record_id in seen:
                raise CollectorError(
                    f"result rows {seen[record_id]} and {count} have the same tags {tags}: every "
                    "row must have a distinct tag set (group by every non-value column)"
                )
            seen[record_id] = count
            self.uuids.append(record_id)
            self.values.append(value)
            self.tags.append(tags)
        grain = pd.Timestamp(grain_datetime).value
        first = len(self.grains)
        self.grains += [grain] * len(seen)
        self.spans[grain] = (first, len(self.grains)) if grain not in self.spans else (-1, -1)
        return count, dropped

    def frame(self, collected_at: datetime) -> pd.DataFrame:
        """Every record added so far, as one DataFrame."""
        size = len(self.uuids)
        return pd.DataFrame(
            {
                "uuid": self.uuids,
                "name": [self.name] * size,
                "value": pd.Series(self.values, dtype="float64"),
                "type": [self.kind] * size,
                "tags": self.tags,
                "timestamp": pd.Series(
                    [pd.Timestamp(collected_at)] * size, dtype="datetime64[ns, UTC]"
                ),
                "grain_datetime": pd.to_datetime(pd.Series(self.grains, dtype="int64"), utc=True),
            },
            columns=RECORD_COLUMNS,
        )


def build_records(
    spec: CollectorSpec,
    grain_datetime: datetime,
    columns: Sequence[str],
    rows: Iterable[Sequence[Any]],
    collected_at: datetime,
) -> tuple[pd.DataFrame, int, int]:
    """Rows → records DataFrame; also return source row count and rows dropped for a NULL value."""
    builder = RecordBuilder(spec, columns)
    count, dropped = builder.add(grain_datetime, rows)
    return builder.frame(collected_at), count, dropped


def empty_records() -> pd.DataFrame:
    """A records DataFrame with no rows."""
    frame = pd.DataFrame({c: pd.Series(dtype="object") for c in RECORD_COLUMNS})
    frame["value"] = frame["value"].astype("float64")
    for column in ("timestamp", "grain_datetime"):
        frame[column] = frame[column].astype("datetime64[ns, UTC]")
    return frame


def _json_value(value: float) -> int | float:
    return int(value) if value.is_integer() and abs(value) < 2**53 else value


def to_dicts(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Records as the seed's JSON objects (ISO-8601 Z timestamps; integral values as ints)."""
    return [
        {
            "uuid": row.uuid,
            "name": row.name,
            "value": _json_value(float(row.value)),
            "type": row.type,
            "tags": dict(row.tags),
            "timestamp": iso_z(row.timestamp.to_pydatetime(), millis=True),
            "grain_datetime": iso_z(row.grain_datetime.to_pydatetime()),
        }
        for row in frame.itertuples(index=False)
    ]


def _encoder() -> Any:
    """json.dumps(obj, separators=(",", ":")) as one C call, without per-call set-up."""
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:  # no C accelerator: the pure-Python encoder gives the same text
        return json.JSONEncoder(separators=(",", ":")).encode

    def default(obj: object) -> object:
        raise TypeError(f"Object of type {type(obj).__name__} is not JSON serializable")

    # markers, default, encoder, indent, key/item separators, sort_keys, skipkeys, allow_nan
    encode = make(None, default, encode_basestring_ascii, None, ":", ",", False, False, True)
    join = "".join
    return lambda obj: join(encode(obj, 0))


_dumps = _encoder()
_UUID_SAFE = re.compile(r"[0-9A-Za-z-]*")  # text that needs no JSON escaping (uuids)
_PLAIN = re.compile(r"[ !#-\[\]-~]*")  # printable ASCII but " and \: JSON text as it is


def _uuid_texts(uuids: list[Any]) -> list[str]:
    """What goes between the quotes of each uuid (escaped only when it has to be)."""
    try:
        if _UUID_SAFE.fullmatch("".join(uuids)):
            return uuids
    except TypeError:  # not all text
        pass
    return [encode_basestring_ascii(str(u))[1:-1] for u in uuids]


Tags = tuple[str, list[str] | None, str]  # constant head, per-record text (None: none), tail


def _tags_by_column(tags: list[Any]) -> Tags | None:
    """What goes between the braces of each tags object, built key by key when every record has
    the same keys in the same order and plain-text values (None otherwise). A key whose value is
    the same everywhere (a static tag) costs nothing per record."""
    keys = tuple(tags[0]) if type(tags[0]) is dict else None
    if keys is None or not all(type(t) is dict and tuple(t) == keys for t in tags):
        return None
    count = len(tags)
    head, texts = "", None
    pending = ""  # constant text since the last per-record value
    for index, key in enumerate(keys):
        column = [t[key] for t in tags]
        prefix = pending + ("," if index else "") + encode_basestring_ascii(key) + ":"
        first = column[0]
        if type(first) is str and column.count(first) == count:
            pending = prefix + encode_basestring_ascii(first)
            continue
        try:
            if not _PLAIN.fullmatch("".join(column)):
                return None
        except TypeError:  # not all text
            return None
        if texts is None:
            head, texts = prefix + '"', column
        else:
            texts = [f'{text}{prefix}"{value}' for text, value in zip(texts, column, strict=True)]
        pending = '"'
    if texts is None:
        return pending, None, ""
    return head, texts, pending


def _tags_texts(tags: list[Any]) -> Tags:
    """What goes between the braces of each tags object: head + text + tail."""
    by_column = _tags_by_column(tags)
    if by_column is not None:
        return by_column
    try:
        text = _dumps(tags)  # one C call for the whole column
    except TypeError:  # mappings that are not dicts
        text = None
    n = len(tags)
    # With exactly one brace pair per record every "},{" is a boundary between two records.
    if text is not None and text.count("{") == n and text.count("}") == n:
        return "", text[2:-2].split("},{"), ""
    return "", [_dumps(dict(t))[1:-1] for t in tags], ""


def _value_texts(values: pd.Series) -> list[str]:
    """JSON text of each value as to_dicts + json.dumps give it (integral floats as ints)."""
    array = values.to_numpy(dtype="float64")
    integral = np.isfinite(array) & (np.trunc(array) == array) & (np.abs(array) < 2**53)
    mixed = array.astype(object)
    mixed[integral] = array[integral].astype(np.int64).astype(object)
    return _dumps(mixed.tolist())[1:-1].split(",")  # numbers have no commas


def _distinct_texts(column: pd.Series, text: Any) -> str | list[str]:
    """JSON text of each value, computed once per distinct value (names, types, timestamps);
    one string when the whole column holds one value."""
    codes, uniques = pd.factorize(column)
    texts = [text(u) for u in uniques]
    if len(texts) == 1 and codes.min() == 0:
        return str(texts[0])
    return [texts[c] for c in codes.tolist()]


def _timestamp_text(moment: pd.Timestamp) -> str:
    return str(_dumps(iso_z(moment.to_pydatetime(), millis=True)))


def _grain_text(moment: pd.Timestamp) -> str:
    return str(_dumps(iso_z(moment.to_pydatetime())))


def to_json_values(frame: pd.DataFrame) -> list[str]:
    """Each record as compact JSON text: exactly json.dumps(r, separators=(",", ":")) for each r
    of to_dicts(frame), built column by column (ten times faster than through the dicts)."""
    count = len(frame)
    if not count:
        return []
    uuids = _uuid_texts(frame["uuid"].tolist())
    values = _value_texts(frame["value"])
    head, tags, tail = _tags_texts(frame["tags"].tolist())
    tags = tags or [""] * count
    name, kind = _distinct_texts(frame["name"], _dumps), _distinct_texts(frame["type"], _dumps)
    stamp = _distinct_texts(frame["timestamp"], _timestamp_text)
    grain = _distinct_texts(frame["grain_datetime"], _grain_text)
    if all(isinstance(c, str) for c in (name, kind, stamp, grain)):  # one window, one run
        middle = f'","name":{name},"value":'
        before_tags = f',"type":{kind},"tags":{{{head}'
        end = f'{tail}}},"timestamp":{stamp},"grain_datetime":{grain}}}'
        return [
            f'{{"uuid":"{u}{middle}{v}{before_tags}{t}{end}'
            for u, v, t in zip(uuids, values, tags, strict=True)
        ]
    names, kinds, stamps, grains = (
        [c] * count if isinstance(c, str) else c for c in (name, kind, stamp, grain)
    )
    columns = zip(uuids, names, values, kinds, tags, stamps, grains, strict=True)
    return [
        f'{{"uuid":"{u}","name":{n},"value":{v},"type":{k},"tags":{{{head}{t}{tail}}},'
        f'"timestamp":{ts},"grain_datetime":{g}}}'
        for u, n, v, k, t, ts, g in columns
    ]


def to_json_lines(frame: pd.DataFrame) -> str:
    """Records as JSON lines (each ending in a newline)."""
    return "".join(f"{value}\n" for value in to_json_values(frame))


def from_dicts(items: Iterable[dict[str, Any]]) -> pd.DataFrame:
    """Records read back from JSON objects (the inverse of `to_dicts`)."""
    rows = list(items)
    if not rows:
        return empty_records()
    frame = pd.DataFrame(rows, columns=RECORD_COLUMNS)
    frame["value"] = frame["value"].astype("float64")
    for column in ("timestamp", "grain_datetime"):
        frame[column] = pd.to_datetime(frame[column], utc=True, format="ISO8601")
    return frame
