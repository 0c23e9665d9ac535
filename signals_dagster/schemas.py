"""JSON schemas of the YAML formats (for editors: `# yaml-language-server: $schema=…`), made
from the pydantic models that validate them.

pydantic's own schema describes what its validators *produce*; a file is read more leniently.
The generator below describes what they *accept*, keyed by the validator function (so a
validator shared by several fields is described everywhere it runs):

- before-validators widen the input: durations as text (`24h`, `1h30m`) or seconds, a grain as
  its accepted spellings, tags as a mapping or a list of {key, value} (numbers and booleans as
  tag values), a metric type in any case, a Mongo pipeline as JSON text, signals-collector's and
  latte's keys (grain from `schedule.interval` or latte's tumbling `time.window`, `metric.postgres`
  for `postgres`, Kafka's `uri`, S3's `endpoint`);
- pydantic's lax mode reads numbers and booleans written as text (`"3"`, `yes`, `on`): so does
  the schema (YAML 1.2 editors read `enabled: yes` as a string; the loader's YAML 1.1 as true);
- in collector files and signals.yaml a template (`{{ getEnv "V" }}`) may stand in any string
  value, whole or in part, so every constrained string (pattern, enum, length, number text)
  also accepts a string holding one. Write a template in a number or boolean field quoted
  (`retries: '{{ getEnv "R" }}'`): unquoted, `{{` opens a YAML flow mapping for an editor. The
  discriminators (`type: postgres`) and the strict integers of quality checks take no template;
- after-validators narrow it where JSON Schema can say so (URI schemes, host:port brokers, cron
  fields, owners, exactly one of interval / cron…); what it cannot say (an interval equal to the
  grain, unique check names, the egress allow-list…) is left to `signals validate`.

A before-, wrap- or plain-validator this module does not know is recorded in `generate(kind)
.unhandled` (a test keeps it empty): such a validator may accept input the schema would refuse.
"""

import fnmatch
import functools
import re
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any, NamedTuple

from pydantic import BaseModel, TypeAdapter, ValidationError
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaValue

from signals_dagster.spec import fields

DRAFT = "https://json-schema.org/draft/2020-12/schema"
KINDS = ("collector", "registry", "settings")
# Files whose values may hold templates: collector files (expanded value by value) and
# signals.yaml (rendered as a whole); registry files are not templated.
TEMPLATED_KINDS = ("collector", "settings")
# Tag names taken by the query's own columns (spec/models.py Metric._unique, contracts/model.py).
RESERVED_TAGS = ("value", "grain_datetime")

Json = dict[str, Any]

TEMPLATE: Json = {
    "type": "string",
    "pattern": r"\{\{[\s\S]*\}\}",
    "description": 'Holds a template: {{ getEnv "VAR" }} or {{ getEnvOrDefault "VAR" "default" }}',
}
INT_TEXT = r"^\s*[-+]?\d+(_\d+)*(\.0+)?\s*$"
FLOAT_TEXT = (
    r"^\s*[-+]?(\d+(_\d+)*(\.(\d+(_\d+)*)?)?|\.\d+(_\d+)*)([eE][-+]?\d+)?\s*$"
    r"|^\s*[-+]?([iI][nN][fF]([iI][nN][iI][tT][yY])?|[nN][aA][nN])\s*$"
)
BOOL_TEXT = (
    r"^([tT]([rR][uU][eE])?|[fF]([aA][lL][sS][eE])?|[yY]([eE][sS])?|[nN][oO]?"
    r"|[oO]([nN]|[fF][fF])|[01])$"
)
_DURATION = r"(\d+(\.\d+)?(ms|s|m|h|d|w))+"
DURATION_TEXT = rf"^\s*{_DURATION}\s*$"
POSITIVE_DURATION_TEXT = rf"^(?=[\s\S]*[1-9])\s*{_DURATION}\s*$"
DURATION_EXAMPLES = ["30s", "15m", "1h", "24h", "7d"]
DATE_TEXT = r"^(\d{4}-\d{2}-\d{2}|\d{8}|\d{4}-?W\d{2}(-?[1-7])?)$"
CRON_TEXT = r"^\s*\S+(\s+\S+){4}\s*$"
BROKER_TEXT = r"^[\s\S]+:0*([1-9]\d{0,3}|[1-5]\d{4}|6[0-4]\d{3}|65[0-4]\d{2}|655[0-2]\d|6553[0-5])$"
HTTP_TEXT = (
    r"^[hH][tT][tT][pP][sS]?://([^/?#]*@)?(\[[^\]/?#]+\]|[^@/?#:\[\]]+)(:\d*)?([/?#][\s\S]*)?$"
)
MONGO_TEXT = r"^mongodb(\+srv)?://([^/?#]*@)?[^@/?#]+"
NOT_BLANK = r"\S"


def _key(func: object) -> str:
    """`module.qualname` of a validator function (bound class validators: their function)."""
    func = getattr(func, "__func__", func)
    return f"{getattr(func, '__module__', '?')}.{getattr(func, '__qualname__', repr(func))}"


def _annotated(alias: object) -> str:
    """The key of the last validator of an Annotated alias (`Grain`, `PositiveDuration`…)."""
    return _key(alias.__metadata__[-1].func)  # type: ignore[attr-defined]


def _has(key: str) -> Json:
    """`key` is given and not null."""
    return {"required": [key], "properties": {key: {"not": {"type": "null"}}}}


def _truthy() -> Json:
    return {"not": {"enum": [None, "", 0, False, [], {}]}}


def duration_text(delta: timedelta) -> str:
    """A duration as the files write it: the largest of h, m, s, ms that divides it."""
    ms = round(delta.total_seconds() * 1000)
    if ms == 0:
        return "0s"
    for unit, size in (("h", 3_600_000), ("m", 60_000), ("s", 1000)):
        if ms % size == 0:
            return f"{ms // size}{unit}"
    return f"{ms}ms"


def _caseless(word: str) -> str:
    return "".join(f"[{c.lower()}{c.upper()}]" if c.isalpha() else re.escape(c) for c in word)


@functools.cache
def grain_text() -> str:
    """A pattern of every one-part spelling `fields.Grain` accepts (`24h`, `1d`, `86400s`,
    `1440m`, `024H`, `1.0d`, `1mo`…), each checked against the validator itself."""
    seconds = [s for s in range(1, 3600) if 3600 % s == 0]
    seconds += [h * 3600 for h in range(1, 25) if 24 % h == 0] + [7 * 86400]
    units: list[tuple[str, float, str]] = [("ms", 0.001, "m[sS]"), ("s", 1, "[sS]")]
    units += [("m", 60, "m"), ("h", 3600, "[hH]"), ("d", 86400, "[dD]"), ("w", 604800, "[wW]")]
    grain = TypeAdapter(fields.Grain)
    parts = []
    for unit, size, letters in units:
        numbers = []
        for s in seconds:
            count = s / size
            if count != int(count):
                continue
            try:
                grain.validate_python(f"{int(count)}{unit}")
            except ValidationError:
                continue
            numbers.append(str(int(count)))
        if numbers:
            parts.append(f"0*({'|'.join(sorted(numbers, key=int))})(\\.0+)?{letters}")
    parts.append("1m[oO]([nN][tT][hH])?")
    return rf"^\s*({'|'.join(parts)})\s*$"


class _Inputs(GenerateJsonSchema):
    """pydantic's generator, describing what each validator accepts (see the module doc)."""

    templates = False

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.used: set[str] = set()
        self.unhandled: set[str] = set()
        self.root_steps: list[Callable[[Json], None]] = []
        self._keys = 0  # > 0 while mapping keys are described (keys are never templated)

    # --- building blocks --------------------------------------------------------------------

    def templated_extra(self) -> list[Json]:
        """[a string holding a template] where templates are expanded, else []."""
        return [dict(TEMPLATE)] if self.templates and not self._keys else []

    def templated(self, json: Json) -> Json:
        """`json`, or a string holding a template where templates are expanded."""
        extra = self.templated_extra()
        return {"anyOf": [json, *extra]} if extra else json

    def text(self, pattern: str, **extra: Any) -> Json:
        return self.templated({"type": "string", "pattern": pattern, **extra})

    def duration(self, positive: bool) -> Json:
        pattern = POSITIVE_DURATION_TEXT if positive else DURATION_TEXT
        number: Json = {"type": "number"}
        if positive:
            number["exclusiveMinimum"] = 0
        text = {
            "type": "string",
            "pattern": pattern,
            "description": "A duration: 90s, 15m, 1h30m, 24h, 7d (units ms s m h d w)",
        }
        branches = [text, {**number, "description": "A number of seconds"}]
        return {"anyOf": [*branches, *self.templated_extra()], "examples": DURATION_EXAMPLES}

    def grain(self) -> Json:
        text = {
            "type": "string",
            "pattern": grain_text(),
            "description": f"One of {fields.VALID_GRAINS}",
        }
        return {"anyOf": [text, *self.templated_extra()], "examples": ["24h", "1h", "15m", "7d"]}

    def caseless(self, values: list[str], strip: bool) -> Json:
        space = r"\s*" if strip else ""
        words = "|".join(_caseless(v) for v in values)
        branches: list[Json] = [
            {"type": "string", "enum": values},
            {"type": "string", "pattern": f"^{space}({words}){space}$"},
        ]
        return {"anyOf": [*branches, *self.templated_extra()]}

    # --- scalars: pydantic's lax mode, templates ----------------------------------------------

    def str_schema(self, schema: Any) -> JsonSchemaValue:
        json = super().str_schema(schema)
        return self.templated(json) if len(json) > 1 else json

    def literal_schema(self, schema: Any) -> JsonSchemaValue:
        json = super().literal_schema(schema)
        # One value is a discriminator (`type: postgres`): it selects the shape, untemplated.
        return self.templated(json) if "enum" in json and json.get("type") == "string" else json

    def _lax(self, json: Json, schema: Any, pattern: str) -> Json:
        if schema.get("strict"):  # StrictInt: a quoted number or template is refused too
            return json
        return {"anyOf": [json, {"type": "string", "pattern": pattern}, *self.templated_extra()]}

    def int_schema(self, schema: Any) -> JsonSchemaValue:
        return self._lax(super().int_schema(schema), schema, INT_TEXT)

    def float_schema(self, schema: Any) -> JsonSchemaValue:
        return self._lax(super().float_schema(schema), schema, FLOAT_TEXT)

    def bool_schema(self, schema: Any) -> JsonSchemaValue:
        return self._lax(super().bool_schema(schema), schema, BOOL_TEXT)

    def dict_schema(self, schema: Any) -> JsonSchemaValue:
        # As pydantic's, but constrained keys are propertyNames (pydantic's patternProperties
        # let a key that does not match through), and keys are never templated.
        json: Json = {"type": "object"}
        self._keys += 1
        try:
            keys = (
                dict(self.generate_inner(schema["keys_schema"])) if "keys_schema" in schema else {}
            )
        finally:
            self._keys -= 1
        values = (
            dict(self.generate_inner(schema["values_schema"])) if "values_schema" in schema else {}
        )
        values.pop("title", None)
        keys.pop("title", None)
        json["additionalProperties"] = values or True
        if len(keys) > 1 or "$ref" in keys:
            keys.pop("type", None)
            json["propertyNames"] = keys
        self.update_with_validations(json, schema, self.ValidationsMapping.object)
        return json

    # --- validators ---------------------------------------------------------------------------

    def _validated(
        self, schema: Any, inner: Json, table: "dict[str, Handler]", track: bool
    ) -> Json:
        key = _key(schema["function"]["function"])
        handler = table.get(key)
        if handler is None:
            if track and not schema.get("json_schema_input_schema"):
                self.unhandled.add(key)
            return inner
        self.used.add(key)
        return handler(self, inner)

    def function_before_schema(self, schema: Any) -> JsonSchemaValue:
        inner = super().function_before_schema(schema)
        if schema.get("json_schema_input_schema"):  # the model states what it accepts
            return inner
        return self._validated(schema, inner, _BEFORE, track=True)

    def function_after_schema(self, schema: Any) -> JsonSchemaValue:
        return self._validated(schema, super().function_after_schema(schema), _AFTER, track=False)

    def function_wrap_schema(self, schema: Any) -> JsonSchemaValue:
        return self._validated(schema, super().function_wrap_schema(schema), {}, track=True)

    def function_plain_schema(self, schema: Any) -> JsonSchemaValue:
        self._validated(schema, {}, {}, track=True)
        return super().function_plain_schema(schema)

    # --- defaults as the files write them -------------------------------------------------------

    def encode_default(self, dft: Any) -> Any:
        if isinstance(dft, timedelta):
            return duration_text(dft)
        return super().encode_default(dft)

    def default_schema(self, schema: Any) -> JsonSchemaValue:
        json = super().default_schema(schema)
        default = json.get("default")
        if isinstance(default, bool) or not isinstance(default, int | float):
            return json
        if _is_duration(schema["schema"]):  # `timeout: 60`: written as 1m
            json["default"] = duration_text(timedelta(seconds=default))
        return json


class _Templated(_Inputs):
    templates = True


Handler = Callable[[_Inputs, Json], Json]
_DURATION_KEY = _annotated(fields.Duration)


def _is_duration(schema: Any) -> bool:
    while schema.get("type") in ("function-before", "function-after", "nullable"):
        function = schema.get("function")
        if function is not None and _key(function["function"]) == _DURATION_KEY:
            return True
        schema = schema["schema"]
    return False


# --- reshaping a generated schema ---------------------------------------------------------------


def _branches(json: Json) -> Iterator[Json]:
    """A schema's alternatives but the template: itself, or its anyOf members."""
    if "anyOf" in json:
        for branch in json["anyOf"]:
            yield from _branches(branch)
    elif json != TEMPLATE:
        yield json


def _constrain(gen: _Inputs, json: Json, **extra: Any) -> Json:
    """Add `extra` (a pattern, examples…) to the string branches of `json`, templated."""
    if "anyOf" in json:
        return {**json, "anyOf": [_constrain(gen, b, **extra) for b in json["anyOf"]]}
    if json.get("type") != "string" or json == TEMPLATE:
        return json
    return gen.templated({**json, **extra})


def _constrain_items(gen: _Inputs, json: Json, **extra: Any) -> Json:
    for branch in _branches(json):
        if branch.get("type") == "array" and isinstance(branch.get("items"), dict):
            branch["items"] = _constrain(gen, branch["items"], **extra)
    return json


def _enum(json: Json) -> list[str]:
    return next(b["enum"] for b in _branches(json) if "enum" in b)


def _add(json: Json, keyword: str, value: Any) -> Json:
    """Add a subschema to the model's `allOf` (conditions compose)."""
    json.setdefault("allOf", []).append({keyword: value} if keyword else value)
    return json


def _metric_tags(gen: _Inputs, inner: Json) -> Json:
    # Metric._tags: null, a mapping (key: value) or signals-collector's [{key, value}].
    names = {k: v for k, v in TypeAdapter(fields.TagKey).json_schema().items() if k != "title"}
    names["not"] = {"enum": list(RESERVED_TAGS)}
    listed = dict(inner)
    listed["items"] = {
        **listed["items"],
        "properties": {"key": {"not": {"enum": list(RESERVED_TAGS)}}},
    }
    mapping = {
        "type": "object",
        "propertyNames": names,
        "additionalProperties": {"type": ["string", "number", "boolean"]},
    }
    return {"anyOf": [mapping, listed, {"type": "null"}]}


def _contract_tags(gen: _Inputs, inner: Json) -> Json:
    # Contract._tags: null, and a tag given by its key alone (`channel:`).
    tags = dict(inner)
    names = dict(tags.get("propertyNames", {}))
    names["not"] = {"enum": list(RESERVED_TAGS)}
    tags["propertyNames"] = names
    tags["additionalProperties"] = {"anyOf": [tags["additionalProperties"], {"type": "null"}]}
    return {"anyOf": [tags, {"type": "null"}]}


def _agg(gen: _Inputs, inner: Json) -> Json:
    # MongoConfig._agg: signals-collector's JSON text, or a YAML list of stages.
    text = {
        "type": "string",
        "contentMediaType": "application/json",
        "description": "A JSON array of pipeline stages",
    }
    return {"anyOf": [text, inner]}


def _kafka_uri(gen: _Inputs, json: Json) -> Json:
    # KafkaConfig._uri_is_a_broker: latte's `uri: host:port` stands for brokers: [uri].
    json["required"] = [k for k in json.get("required", []) if k != "brokers"]
    if not json["required"]:
        del json["required"]
    broker = gen.text(BROKER_TEXT)
    given = [{"required": ["brokers"]}, {"required": ["uri"], "properties": {"uri": broker}}]
    return _add(json, "anyOf", given)


def _s3_latte(gen: _Inputs, json: Json) -> Json:
    # S3Config._latte_keys: latte's `endpoint` (a bare host is https://host) becomes
    # endpoint_url; its `encoding` becomes format.
    props = json.get("properties", {})
    if "endpoint" in props:
        bare = r"^(?![\s\S]*://)[^\s/?#@:][\s\S]*$"
        props["endpoint"] = _constrain(gen, props["endpoint"], pattern=f"{HTTP_TEXT}|{bare}")
    return json


def _collector_root(gen: _Inputs, json: Json) -> Json:
    # CollectorSpec._grain_from_interval acts on the whole file: see _collector_forms.
    gen.root_steps.append(functools.partial(_collector_forms, gen))
    return json


def _collector_forms(gen: _Inputs, root: Json) -> None:
    """latte's source type names, and the grain a file without `metric.grain` takes from
    `schedule.interval` (or latte's tumbling `source.config.time.window`)."""
    from signals_dagster.spec import sources

    source = root.get("properties", {}).get("source", {})
    mapping = source.get("discriminator", {}).get("mapping", {})
    for alias in getattr(sources, "SOURCE_TYPE_ALIASES", {}):
        target = sources.canonical_source_type(alias)
        if target == alias or target not in mapping:
            continue
        mapping[alias] = mapping[target]
        kind = _resolve(root, mapping[target])["properties"]["type"]
        values = kind.pop("enum", None) or [kind.pop("const")]
        kind["enum"] = [*values, alias]
    grain = gen.grain()
    interval = {
        "if": {
            "required": ["schedule"],
            "properties": {
                "schedule": {
                    "type": "object",
                    "required": ["interval"],
                    "properties": {"interval": _truthy()},
                }
            },
        },
        "then": {"properties": {"schedule": {"properties": {"interval": grain}}}},
    }
    rule: Json = interval
    if "collector" in root.get("properties", {}):
        window_is_given = {
            "type": "object",
            "required": ["time"],
            "properties": {
                "time": {
                    "type": "object",
                    "required": ["window"],
                    "properties": {"window": _truthy()},
                }
            },
        }
        window = {"properties": {"time": {"properties": {"window": grain}}}}
        rule = {
            "if": {
                "required": ["collector", "source"],
                "properties": {
                    "collector": {
                        "type": "object",
                        "required": ["invocation_strategy"],
                        "properties": {
                            "invocation_strategy": {"const": "historic_tumbling_window"}
                        },
                    },
                    "source": {
                        "type": "object",
                        "required": ["config"],
                        "properties": {"config": window_is_given},
                    },
                },
            },
            "then": {"properties": {"source": {"properties": {"config": window}}}},
            "else": interval,
        }
    no_grain = {
        "required": ["metric"],
        "properties": {"metric": {"type": "object", "not": {"required": ["grain"]}}},
    }
    _add(root, "", {"if": no_grain, "then": rule})


def _resolve(root: Json, ref: str) -> Any:
    node: Any = root
    for part in ref.removeprefix("#/").split("/"):
        node = node[part]
    return node


def _s3_pair(gen: _Inputs, json: Json) -> Json:
    # S3Config._key_pair: both keys or neither; a session token needs them.
    key, secret = _has("aws_access_key_id"), _has("aws_secret_access_key")
    token = _has("aws_session_token")
    _add(json, "", {"if": key, "then": secret, "else": {"not": secret}})
    return _add(json, "", {"if": token, "then": key})


def _uri(pattern: str) -> Handler:
    return lambda gen, json: _constrain(gen, json, pattern=pattern)


def _sql_uri(backends: str, options: bool) -> Handler:
    rest = "" if options else r"[^?]*\??$"
    return _uri(rf"^({backends})(\+[\w+]*)?://{rest}")


def _owners(gen: _Inputs, json: Json) -> Json:

    return _constrain_items(gen, json, pattern=fields.OWNER.pattern)


def _time_expression(gen: _Inputs, json: Json) -> Json:
    from signals_dagster.spec.sources import TIME_EXPRESSIONS

    words = "|".join(re.escape(e) for e in TIME_EXPRESSIONS)
    return _constrain(gen, json, pattern=rf"^\s*({words})\s*$")


def _producer_key(gen: _Inputs, json: Json) -> Json:
    from signals_dagster.spec.sinks import PRODUCER_ALLOWED

    return {"type": "string", "enum": sorted(PRODUCER_ALLOWED)}


_S = "signals_dagster.spec."
_BEFORE: dict[str, Handler] = {
    _annotated(fields.Grain): lambda gen, json: gen.grain(),
    _DURATION_KEY: lambda gen, json: gen.duration(positive=False),
    _annotated(fields.TagValue): lambda gen, json: {"type": ["string", "number", "boolean"]},
    _annotated(fields.IsoDate): lambda gen, json: gen.text(DATE_TEXT, examples=["2026-01-01"]),
    f"{_S}models.Metric._upper": lambda gen, json: gen.caseless(_enum(json), strip=False),
    "signals_dagster.contracts.model.Contract._upper": lambda gen, json: gen.caseless(
        _enum(json), strip=False
    ),
    f"{_S}sinks.HttpConfig._method": lambda gen, json: gen.caseless(_enum(json), strip=True),
    f"{_S}models.Metric._tags": _metric_tags,
    "signals_dagster.contracts.model.Contract._tags": _contract_tags,
    f"{_S}sources.MongoConfig._agg": _agg,
    f"{_S}models.CollectorSpec._grain_from_interval": _collector_root,
    f"{_S}sinks.KafkaConfig._uri_is_a_broker": _kafka_uri,
    f"{_S}sinks.S3Config._latte_keys": _s3_latte,
}
_HTTP = _uri(HTTP_TEXT)
_AFTER: dict[str, Handler] = {
    _annotated(fields.PositiveDuration): lambda gen, json: gen.duration(positive=True),
    _annotated(fields.Cron): lambda gen, json: _constrain(gen, json, pattern=CRON_TEXT),
    f"{_S}uris.check_broker": _uri(BROKER_TEXT),
    f"{_S}sinks.check_producer_key": _producer_key,
    f"{_S}sources.PostgresConfig._uri": _uri(r"^(postgresql(\+psycopg)?|postgres)://"),
    f"{_S}sources.MysqlConfig._uri": _sql_uri("mysql|mariadb", options=True),
    f"{_S}sources.SqliteConfig._uri": _sql_uri("sqlite", options=False),
    f"{_S}sources.DuckdbConfig._uri": _sql_uri("duckdb", options=False),
    f"{_S}sources.GenericSqlConfig._uri": _uri(r"^[\w+]+://"),
    f"{_S}sources.MongoConfig._uri": _uri(MONGO_TEXT),
    f"{_S}sources.PrometheusConfig._uri": _HTTP,
    f"{_S}sinks.HttpConfig._uri": _HTTP,
    f"{_S}sinks.S3Config._endpoint": _HTTP,
    "signals_dagster.settings.HttpAlerts._uri": _HTTP,
    f"{_S}sources.SqlConfig._not_blank": _uri(NOT_BLANK),
    f"{_S}sources.DuckdbConfig._paths": lambda gen, json: _constrain_items(
        gen, json, pattern=NOT_BLANK
    ),
    f"{_S}sources.PrometheusConfig._time_expression": _time_expression,
    f"{_S}models.CollectorSpec._owners": _owners,
    "signals_dagster.contracts.model.Contract._owners": _owners,
    f"{_S}models.Schedule._exactly_one": lambda gen, json: _add(
        json, "oneOf", [_has("interval"), _has("cron")]
    ),
    f"{_S}quality.RangeCheck._bounds": lambda gen, json: _add(
        json, "anyOf", [_has("min"), _has("max")]
    ),
    f"{_S}sinks.S3Config._key_pair": _s3_pair,
}
HANDLED = frozenset(_BEFORE) | frozenset(_AFTER)


# --- descriptions and examples the models lack ----------------------------------------------------

Doc = str | tuple[str, list[Any]]
_DOCS: dict[str, dict[str, Doc]] = {
    "CollectorSpec": {
        "": "A signals_dagster collector file: one metric, its source, its sinks (signals-"
        "collector's and latte's formats, plus this project's optional keys)",
        "name": (
            "The collector's name, unique in the collectors folder; the Dagster asset key is the "
            "name with every character outside [A-Za-z0-9_] as _",
            ["shop.orders.revenue.daily"],
        ),
        "description": "Free text: the asset's description",
        "owners": ("The asset's owners: team:name or e-mail addresses", [["team:growth"]]),
        "group": ("The Dagster asset group (default: the source type)", ["commerce"]),
        "collector": "latte's `collector` block (type and invocation strategy)",
        "metric": "The metric the collector emits: name, type, grain, unit, static tags",
        "schedule": "When it runs: exactly one of interval (signals-collector's; the interval is "
        "the grain) or cron. Without it, every window is collected when it closes (+ lag)",
        "partitions": "The windows (Dagster partitions): first window, timezone, lag",
        "source": "Where the values come from (type: postgres, mysql, sqlite, duckdb, sql, "
        "mongodb, prometheus…)",
        "sinks": (
            "Where the records go: sink name → sink (at least one)",
            [{"console": {"type": "console"}}],
        ),
        "state_store": "signals-collector's state store: accepted for compatibility, unused "
        "(Dagster keeps the state)",
        "backfill": "How history is recomputed",
        "late_data": "Re-collect closed windows whose source data changed (a sensor)",
        "on_fail": "Where a batch an `error` check blocked is put aside",
        "freshness": "Report windows not materialised in time",
        "retries": ("Retries of transient failures", [3]),
        "retry_delay": ("First retry delay (doubles each time)", ["10s"]),
    },
    "Collector": {
        "type": "latte's collector type (only metric exists)",
        "invocation_strategy": "tick: run as the query says; historic_tumbling_window: each "
        "closed window of the grain once (latte's `time.window`); incremental: refused",
    },
    "Metric": {
        "": "The metric every record carries",
        "name": (
            "The records' name (a registry contract of that name applies)",
            ["shop.orders.count"],
        ),
        "type": "COUNT or GAUGE (any case)",
        "grain": "The window length (default 24h; a signals-collector file's schedule.interval)",
        "unit": ("Unit of the values", ["USD"]),
        "tags": (
            "Static tags on every record: a mapping, or signals-collector's list of {key, value}",
            [{"env": "prod"}, [{"key": "env", "value": "prod"}]],
        ),
    },
    "Tag": {
        "": "A static tag",
        "key": ("The tag's name", ["env"]),
        "value": ("The tag's value (numbers and booleans are written as text)", ["prod"]),
    },
    "Schedule": {
        "": "When the collector runs: exactly one of interval or cron",
        "interval": ("Run every interval; it must equal the grain", ["24h"]),
        "cron": ("A 5-field cron: minute hour day month weekday", ["15 0 * * *"]),
        "enabled": "false: the schedule exists, stopped",
    },
    "Partitions": {
        "": "The windows, as Dagster partitions",
        "start": ("The first window, YYYY-MM-DD", ["2026-01-01"]),
        "timezone": ("IANA timezone: windows follow its local midnight", ["UTC", "Europe/Berlin"]),
        "lag": ("Wait after a window closes before its scheduled run", ["15m"]),
    },
    "StateStore": {"type": "memory (the only one)", "config": "Ignored"},
    "*Source": {
        "": "A source",
        "type": "The source type",
        "config": "The source's settings",
    },
    **{
        name: {"": "A SQL query; the window reaches it as :window_start / :window_end"}
        for name in (
            "PostgresConfig",
            "MysqlConfig",
            "SqliteConfig",
            "DuckdbConfig",
            "GenericSqlConfig",
        )
    },
    "MongoConfig": {
        "uri": (
            "mongodb:// or mongodb+srv:// URI",
            ['mongodb://reader:{{ getEnv "MONGO_PASSWORD" }}@db:27017/'],
        ),
        "database": "The database",
        "collection": "The collection the pipeline runs on",
        "agg": "The aggregation pipeline: JSON text (signals-collector) or a YAML list of "
        "stages; $out and $merge are refused",
        "time_field": "When given, the window becomes a leading $match on this field",
        "max_time_ms": "Server-side time limit of the aggregate, in ms",
    },
    "PrometheusConfig": {
        "uri": ("Prometheus base URL (or its /api/v1/query)", ["http://prometheus:9090"]),
        "query": (
            "Instant PromQL, evaluated at the window's end; $__range is the window's length",
            ["sum by (service) (increase(http_requests_total[$__range]))"],
        ),
        "time_expression": "signals-collector compatibility: where the period $__range spans "
        "starts",
        "time": "signals-collector's time block (its window is latte's tumbling window)",
        "sql": "Optional DuckDB post-processing over prom_metrics(metric, value, timestamp)",
        "timeout": "Query timeout",
    },
    "PrometheusTime": {"window": "The window (latte's historic_tumbling_window grain)"},
    "*Sink": {"": "A sink", "type": "The sink type", "config": "The sink's settings"},
    "EmptyConfig": {"": "A sink without settings"},
    "ConsoleConfig": {"": "The console sink: JSON lines on standard output"},
    "FileConfig": {"": "An append-only JSON-lines file (an audit log `signals redrive` reads)"},
    "Encoding": {"type": "How each record is written"},
    "HttpConfig": {
        "": "Records POSTed as JSON, in batches",
        "uri": ("The http(s) endpoint", ["https://ingest.example.com/metrics"]),
        "headers": 'Extra request headers (credentials only as {{ getEnv "VAR" }})',
        "timeout": "Per request",
        "batch_size": "Records per request",
    },
    "KafkaConfig": {
        "": "Records produced to a Kafka topic (idempotent, acks=all)",
        "brokers": ("Bootstrap servers, host:port", [["kafka:9092"]]),
        "topic": ("The topic", ["signals"]),
        "allow_auto_topic_creation": "true: a missing topic is created with broker defaults",
        "compression": "Message compression",
    },
    "S3Config": {
        "": "One object per window in a bucket (Parquet or JSON lines)",
        "bucket": ("An existing bucket (never created)", ["signals-lake"]),
        "prefix": ("Key prefix (leading and trailing / dropped)", ["metrics/prod"]),
        "format": "Object format",
        "endpoint_url": (
            "An S3-compatible endpoint (MinIO, SeaweedFS, R2…)",
            ["http://minio:9000"],
        ),
        "region": ("The region (default: the AWS chain's)", ["eu-central-1"]),
        "aws_access_key_id": 'Only as {{ getEnv "VAR" }}; absent: the AWS credential chain',
        "aws_secret_access_key": 'Only as {{ getEnv "VAR" }}, with aws_access_key_id',
        "aws_session_token": 'Only as {{ getEnv "VAR" }}, with both keys',
    },
    "*Check": {
        "": "A quality check",
        "type": "The check type",
        "on": "The window's figure: the sum of the values or the number of records",
        "direction": "Which deviations fail: both, up only, down only",
    },
    "RangeCheck": {"min": "Lowest value allowed", "max": "Highest value allowed"},
    # signals.yaml
    "Settings": {
        "": "signals_dagster settings (signals.yaml or $SIGNALS_SETTINGS)",
        "alerts": "Where failure alerts go",
        "sources": "Which source dialects may run without a read-only session",
        "templating": "Which environment variables templates may read, and which are secrets",
        "sinks": "Limits of the file sink",
        "egress": "Which hosts sinks and sources may reach",
        "registry": "The metric registry",
        "policies": "Where policy outcomes are written",
    },
    "Alerts": {"": "Failure alerts", "http": "POST each alert as JSON"},
    "HttpAlerts": {
        "": "An HTTP endpoint for alerts",
        "uri": ("The http(s) endpoint", ["https://hooks.example.com/signals"]),
        "headers": "Extra request headers",
        "timeout": "Per request",
    },
    "SourcesSettings": {
        "allow_unguarded": (
            "Dialects (backend or backend+driver) allowed without a guaranteed read-only session",
            [["mssql"]],
        ),
    },
    "TemplatingSettings": {
        "secret_env": (
            "Glob patterns of secret variables (expanded only into credential fields)",
            [["*PASSWORD*", "*SECRET*", "*TOKEN*", "*KEY*", "AWS_*"]],
        ),
        "allow_env": (
            "Glob patterns of the variables templates may read (absent: all)",
            [["SIGNALS_*", "PG*"]],
        ),
    },
    "SinksSettings": {"": "Limits of the sinks", "file": "The file sink"},
    "FileSinkSettings": {
        "": "Where file sinks may write",
        "roots": (
            "Folders file sinks may write under (default: the working directory and "
            "$SIGNALS_DATA_DIR)",
            [["/var/lib/signals"]],
        ),
    },
    "EgressSettings": {
        "": "The hosts sinks and sources may reach",
        "allow": (
            "host[:port] glob patterns sinks and sources may reach (absent: every host)",
            [["ingest.example.com:443", "kafka-*.internal:9092"]],
        ),
    },
    "PoliciesSettings": {"sinks": "Sinks of the policy outcome records (a collector's sinks)"},
    "RegistrySettings": {"": "The metric registry"},
    # registry files
    "RegistryFile": {"metrics": "The contracts, one per metric name"},
    "Contract": {
        "type": "COUNT or GAUGE (any case)",
        "description": "Free text",
        "owners": "The metric's owners: team:name or e-mail addresses",
        "stability": "development, stable or deprecated",
        "values": "The range every value must be in",
        "min_group_size": "Suppress rows behind fewer than k people",
    },
    "TagRule": {"description": "Free text"},
    "ValueRange": {"min": "Lowest value allowed", "max": "Highest value allowed"},
}


def _document(name: str, model: Json) -> None:
    for pattern, docs in _DOCS.items():
        if not fnmatch.fnmatchcase(name, pattern):
            continue
        for prop, doc in docs.items():
            text, examples = (doc, None) if isinstance(doc, str) else doc
            target = model if prop == "" else model.get("properties", {}).get(prop)
            if target is None:
                continue
            target.setdefault("description", text)
            if examples is not None:
                target.setdefault("examples", examples)


# --- the schema ---------------------------------------------------------------------------------


def _model(kind: str) -> type[BaseModel]:
    if kind == "collector":
        from signals_dagster.spec.models import CollectorSpec

        return CollectorSpec
    if kind == "registry":
        from signals_dagster.contracts.model import RegistryFile

        return RegistryFile
    if kind == "settings":
        from signals_dagster.settings import Settings

        return Settings
    raise ValueError(f"unknown schema {kind!r} (one of {', '.join(KINDS)})")


_SCHEMA_MAPS = ("properties", "patternProperties", "$defs", "dependentSchemas")
_SCHEMA_LISTS = ("anyOf", "oneOf", "allOf", "prefixItems")
_SCHEMA_ONE = ("items", "additionalProperties", "not", "if", "then", "else", "propertyNames")


def _tidy(node: Json) -> Json:
    """Flatten nested anyOf, drop duplicates and branches an unconstrained string covers."""
    node = dict(node)
    for key, value in node.items():
        if key in _SCHEMA_MAPS and isinstance(value, dict):
            node[key] = {k: _tidy(v) if isinstance(v, dict) else v for k, v in value.items()}
        elif key in _SCHEMA_LISTS and isinstance(value, list):
            node[key] = [_tidy(v) if isinstance(v, dict) else v for v in value]
        elif key in _SCHEMA_ONE and isinstance(value, dict):
            node[key] = _tidy(value)
    if "anyOf" not in node:
        return node
    flat: list[Json] = []
    for branch in node["anyOf"]:
        nested = branch["anyOf"] if set(branch) == {"anyOf"} else [branch]
        flat += [item for item in nested if item not in flat]
    if {"type": "string"} in flat:
        flat = [b for b in flat if b == {"type": "string"} or b.get("type") != "string"]
    node["anyOf"] = flat
    if len(flat) == 1 and not set(flat[0]) & (set(node) - {"anyOf"}):
        del node["anyOf"]
        node.update(flat[0])
    return node


class Generated(NamedTuple):
    """A schema, the validators it described and those it does not know."""

    schema: Json
    used: frozenset[str]
    unhandled: frozenset[str]


TITLES = {
    "collector": "signals_dagster collector file",
    "registry": "signals_dagster registry file (metric contracts)",
    "settings": "signals_dagster settings (signals.yaml)",
}


def generate(kind: str) -> Generated:
    """The JSON schema of a kind of file, with what the generator knew of its validators."""
    model = _model(kind)
    generator = (_Templated if kind in TEMPLATED_KINDS else _Inputs)(by_alias=True)
    schema = generator.generate(model.__pydantic_core_schema__, mode="validation")
    for step in generator.root_steps:
        step(schema)
    for name, definition in schema.get("$defs", {}).items():
        _document(name, definition)
    _document(model.__name__, schema)
    schema = _tidy(schema)
    out = {
        "$schema": DRAFT,
        "title": TITLES[kind],
        **{k: v for k, v in schema.items() if k != "title"},
    }
    return Generated(out, frozenset(generator.used), frozenset(generator.unhandled))


def json_schema(kind: str) -> dict[str, Any]:
    """The JSON schema of a collector file, a registry file or signals.yaml."""
    return generate(kind).schema
