"""MongoDB aggregation pipelines through pymongo; the window is bound as BSON datetimes.

With `time_field`, a leading `$match` selects the window (so an index on that field is used);
pipelines may also use `$$window_start` / `$$window_end`, passed through the aggregate `let`
option (MongoDB >= 5.0). Nothing is templated into the pipeline text. pymongo is imported lazily:
the shape helpers (kind, range capability) work without it.
"""

import json
import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from signals_dagster.errors import CollectorError, SourceError
from signals_dagster.redact import redact
from signals_dagster.sources.base import Fetched
from signals_dagster.spec.sources import MongoConfig
from signals_dagster.window import Window

# The aggregate command's `let` option arrived with MongoDB 5.0 (wire version 13).
LET_MIN_WIRE_VERSION = 13
DEFAULT_SERVER_SELECTION_MS = 10_000
GRAIN_FIELD = "grain_datetime"
_VARIABLE = re.compile(r"\$\$(window_start|window_end)\b")
_LET = re.compile(r"\blet\b")
# Stages in which `_id: <anything but 0/false>` names _id as a wanted result field.
_NAMING_STAGES = ("$project", "$addFields", "$set")


def _strings(value: object) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def _keys(value: object) -> Iterator[str]:
    if isinstance(value, Mapping):
        for key, item in value.items():
            yield str(key)
            yield from _keys(item)
    elif isinstance(value, list):
        for item in value:
            yield from _keys(item)


def window_variables(agg: Sequence[Mapping[str, Any]]) -> set[str]:
    """The window variables ($$window_start / $$window_end) a pipeline uses."""
    return {m for text in _strings(list(agg)) for m in _VARIABLE.findall(text)}


def mongo_kind(config: MongoConfig) -> str:
    """windowed (time_field or $$window_start), as-of ($$window_end only) or snapshot."""
    used = window_variables(config.agg)
    if config.time_field or "window_start" in used:
        return "windowed"
    if "window_end" in used:
        return "as-of"
    return "snapshot"


def outputs_grain(agg: Sequence[Mapping[str, Any]]) -> bool:
    """Whether the pipeline names a grain_datetime field (one aggregate can answer a range)."""
    return GRAIN_FIELD in set(_keys(list(agg)))


def names_id(agg: Sequence[Mapping[str, Any]]) -> bool:
    """Whether a $project / $addFields / $set stage keeps or sets `_id` (then it is a tag)."""
    for stage in agg:
        for name in _NAMING_STAGES:
            spec = stage.get(name)
            if isinstance(spec, Mapping) and "_id" in spec and spec["_id"] not in (0, False):
                return True
    return False


def _uri_options(uri: str) -> set[str]:
    """Lower-cased names of the options given in a MongoDB URI's query string."""
    return {key.lower() for key, _ in parse_qsl(urlsplit(uri).query)}


def _cell(key: str, value: Any, number: int) -> Any:
    """A result field as a plain value; nested documents and arrays are refused."""
    if isinstance(value, Mapping):
        raise CollectorError(
            f"field {key!r} of result document {number} is a nested document "
            f"({_preview(value)}): every result field must be a scalar; flatten it with "
            f'$project / $addFields (e.g. {{"{key}_x": "${key}.x"}})'
        )
    if isinstance(value, list):
        raise CollectorError(
            f"field {key!r} of result document {number} is an array ({_preview(value)}): "
            "every result field must be a scalar ($unwind or $arrayElemAt it)"
        )
    kind = type(value).__name__
    if kind == "Decimal128":
        return value.to_decimal()
    if kind == "ObjectId":
        return str(value)
    return value


def _preview(value: object) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= 80 else text[:77] + "..."


def result_table(
    docs: Sequence[Mapping[str, Any]], keep_id: bool, range_capable: bool
) -> tuple[list[str], list[tuple[Any, ...]]]:
    """Documents → columns (union of fields, first-seen order) and rows (None where absent)."""
    columns: dict[str, None] = {}
    items: list[dict[str, Any]] = []
    seen: dict[tuple[tuple[str, str], ...], tuple[int, Any]] = {}
    for number, doc in enumerate(docs, 1):
        item = {k: _cell(k, v, number) for k, v in doc.items() if keep_id or k != "_id"}
        if not keep_id and doc.get("_id") is not None:
            _check_dropped_id(seen, item, doc["_id"], number)
        columns.update(dict.fromkeys(item))
        items.append(item)
    if not items:
        # No document, no field names: an empty window is zero records, not a missing `value`.
        return ["value", *([GRAIN_FIELD] if range_capable else [])], []
    names = list(columns)
    return names, [tuple(item.get(name) for name in names) for item in items]


def _check_dropped_id(
    seen: dict[tuple[tuple[str, str], ...], tuple[int, Any]],
    item: Mapping[str, Any],
    doc_id: Any,
    number: int,
) -> None:
    """Two documents that differ only in the dropped `_id` would be one record: say why."""
    key = tuple(sorted((k, repr(v)) for k, v in item.items() if k != "value"))
    if key in seen and seen[key][1] != doc_id:
        first, other = seen[key]
        raise CollectorError(
            f"result documents {first} and {number} differ only in _id ({other!r} vs "
            f"{doc_id!r}), which is dropped: copy it into a named field "
            '(e.g. {"$addFields": {"account": "$_id"}}) or keep it as a tag by naming _id in '
            'a $project / $addFields / $set stage (e.g. {"$project": {"_id": 1, "value": 1}})'
        )
    seen.setdefault(key, (number, doc_id))


class MongoSource:
    """One aggregation pipeline over one collection."""

    def __init__(self, config: MongoConfig) -> None:
        self.config = config
        self.variables = window_variables(config.agg)
        self.kind = mongo_kind(config)
        self.range_capable = outputs_grain(config.agg)
        self.keep_id = names_id(config.agg)

    @property
    def where(self) -> str:
        """The redacted URI and namespace, for messages."""
        return f"{redact(self.config.uri)} {self.config.database}.{self.config.collection}"

    def describe(self) -> dict[str, str]:
        """Redacted URI and the pipeline as run (window bounds shown as placeholders)."""
        shown = self._stages("<window_start>", "<window_end>")
        return {"uri": redact(self.config.uri), "query": json.dumps(shown, indent=2, default=str)}

    def _stages(self, start: Any, end: Any) -> list[dict[str, Any]]:
        stages = [dict(stage) for stage in self.config.agg]
        if self.config.time_field:
            stages.insert(0, {"$match": {self.config.time_field: {"$gte": start, "$lt": end}}})
        return stages

    def pipeline(self, window: Window) -> list[dict[str, Any]]:
        """The pipeline for one window (a leading $match on time_field when configured)."""
        return self._stages(window.start, window.end)

    def client_options(self) -> dict[str, Any]:
        """pymongo options: aware datetimes, secondaryPreferred, bounded connection waits.

        Options given in the URI win over these defaults.
        """
        given = _uri_options(self.config.uri)
        options: dict[str, Any] = {"tz_aware": True, "appname": "signals_dagster"}
        defaults = {
            "readPreference": "secondaryPreferred",
            "serverSelectionTimeoutMS": DEFAULT_SERVER_SELECTION_MS,
            "connectTimeoutMS": DEFAULT_SERVER_SELECTION_MS,
            # A hung socket must not outlive the server-side limit by much.
            "socketTimeoutMS": self.config.max_time_ms + 15_000,
        }
        options.update({k: v for k, v in defaults.items() if k.lower() not in given})
        return options

    @contextmanager
    def session(self) -> Iterator["MongoSession"]:
        """One client (connection pool) for every window of a run."""
        import pymongo
        from pymongo.errors import PyMongoError

        try:
            client: Any = pymongo.MongoClient(self.config.uri, **self.client_options())
        except PyMongoError as exc:
            raise SourceError(f"{self.where}: {redact(str(exc))}") from None
        try:
            yield MongoSession(self, client)
        finally:
            client.close()

    def error(self, exc: Exception) -> SourceError:
        """A pymongo failure as a SourceError naming what was tried (password redacted)."""
        from pymongo import errors

        detail = redact(_detail(exc))
        if isinstance(exc, errors.ExecutionTimeout):
            return SourceError(
                f"{self.where}: the aggregation exceeded max_time_ms={self.config.max_time_ms} "
                f"({detail})"
            )
        if isinstance(exc, errors.ServerSelectionTimeoutError):
            return SourceError(f"{self.where}: no reachable server ({detail})", transient=True)
        if isinstance(exc, errors.ConnectionFailure):
            return SourceError(f"{self.where}: connection failed ({detail})", transient=True)
        if isinstance(exc, errors.OperationFailure) and self.variables and _LET.search(detail):
            return SourceError(_let_refused(self.where, detail))
        return SourceError(f"{self.where}: {detail}")


def _detail(exc: Exception) -> str:
    details = getattr(exc, "details", None)
    if isinstance(details, Mapping) and details.get("errmsg"):
        code = details.get("codeName") or details.get("code")
        return f"{details['errmsg']}" + (f" [{code}]" if code else "")
    # Server selection errors end with a long topology dump: keep the cause.
    return str(exc).split(", Timeout:")[0].strip()


def _let_refused(where: str, detail: str) -> str:
    return (
        f"{where}: the server does not support the aggregate `let` option (MongoDB >= 5.0) "
        "that passes $$window_start / $$window_end to the pipeline; use `time_field` for the "
        f"window instead ({detail})"
    )


class MongoSession:
    """An open client answering one window at a time."""

    def __init__(self, source: MongoSource, client: Any) -> None:
        self.source = source
        self.client = client
        self.let_checked = False

    def _check_let(self) -> None:
        """Refuse clearly, before running, when the server is too old for `let`."""
        if self.let_checked:
            return
        hello = self.client.admin.command("hello")
        version = int(hello.get("maxWireVersion", 0))
        if version < LET_MIN_WIRE_VERSION:
            raise SourceError(
                _let_refused(self.source.where, f"server wire version {version}, need 13")
            )
        self.let_checked = True

    def fetch(self, window: Window) -> Fetched:
        """Run the pipeline for `window` (any length: a whole backfill range works too)."""
        from pymongo.errors import PyMongoError

        source, config = self.source, self.source.config
        options: dict[str, Any] = {"maxTimeMS": config.max_time_ms}
        try:
            if source.variables:
                self._check_let()
                options["let"] = {"window_start": window.start, "window_end": window.end}
            collection = self.client[config.database][config.collection]
            docs = list(collection.aggregate(source.pipeline(window), **options))
        except PyMongoError as exc:
            raise source.error(exc) from None
        columns, rows = result_table(docs, source.keep_id, source.range_capable)
        return Fetched(columns, iter(rows))
