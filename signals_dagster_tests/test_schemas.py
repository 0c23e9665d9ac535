"""The JSON schemas `signals schema collector|registry|settings` prints, for editors: every demo
and test collector validates against the collector schema (read as the loader reads it, with
template actions left as strings, and as a YAML 1.2 editor reads it); what the loader refuses
the schema refuses where JSON Schema can say so; every key is described."""

import copy
import functools
import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from signals_dagster.contracts.registry import is_registry_text
from signals_dagster.schemas import (
    DRAFT,
    HANDLED,
    KINDS,
    duration_text,
    generate,
    grain_text,
    json_schema,
)
from signals_dagster.settings import load_settings
from signals_dagster.spec import fields, templating
from signals_dagster.spec.loader import parse_text

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(__file__).parent / "data"
# Test data folders of collectors the loader refuses (each file is a case of a problem).
INVALID_FOLDERS = ("malformed", "hostile")
# Folders whose every file must load (elsewhere a file the loader refuses is skipped: another
# test's fixture, or a format still being added).
DEMO_FOLDERS = ("collectors", "examples", "seed")
ENV = {"R": "4", "AWS_KEY_ID": "AKIAEXAMPLE", "AWS_SECRET": "secret"}


@functools.cache
def _validator(kind: str) -> jsonschema.Draft202012Validator:
    schema = json_schema(kind)
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(
        schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )


def _errors(kind: str, data: object) -> list[str]:
    return [
        f"{'.'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}"
        for e in _validator(kind).iter_errors(data)
    ]


# --- reading YAML as the loader does, and as an editor does ------------------------------------


class _TextKeys(yaml.SafeLoader):
    """Keys as written (the loader's yamlpos, and JSON: `on:` is the key "on", not true)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        return {
            (key.value if isinstance(key, yaml.ScalarNode) else self.construct_object(key)): (
                self.construct_object(value, deep=True)
            )
            for key, value in node.value
        }


class _LoaderView(_TextKeys):
    """PyYAML's YAML 1.1, as the loader reads files, with dates kept as text (JSON has none)."""


_LoaderView.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


class _EditorView(_TextKeys):
    """YAML 1.2's core schema, as yaml-language-server reads a file (`yes` is a string)."""


_EditorView.yaml_implicit_resolvers = {}
for _tag, _regexp, _first in (
    ("bool", r"^(?:true|True|TRUE|false|False|FALSE)$", "tTfF"),
    ("int", r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$", "-+0123456789"),
    (
        "float",
        r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
        r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$",
        "-+0123456789.",
    ),
    ("null", r"^(?:~|null|Null|NULL|)$", ["~", "n", "N", ""]),
):
    _EditorView.add_implicit_resolver(
        f"tag:yaml.org,2002:{_tag}", re.compile(_regexp), list(_first)
    )


def _restored(node: Any, actions: list[templating.Action]) -> Any:
    def back(match: re.Match[str]) -> str:
        return "{{" + actions[int(match[1])].body + "}}"

    if isinstance(node, dict):
        return {_restored(k, actions): _restored(v, actions) for k, v in node.items()}
    if isinstance(node, list):
        return [_restored(v, actions) for v in node]
    return templating.PLACEHOLDER.sub(back, node) if isinstance(node, str) else node


def loader_view(text: str) -> Any:
    """The file as the loader parses it (templates protected first), templates as strings."""
    protected, actions, problems = templating.protect(text)
    assert not problems
    return _restored(yaml.load(protected, Loader=_LoaderView), actions)


def editor_view(text: str) -> Any:
    return yaml.load(text, Loader=_EditorView)


def loader_accepts(text: str) -> list[str]:
    """The loader's problems with one collector's text (parse, shape and cross-field checks),
    every `getEnv` variable set."""
    env = {**dict.fromkeys(re.findall(r'getEnv\s+"([^"]+)"', text), "x"), **ENV}
    spec, _, problems = parse_text(text, "case.yaml", env, templating.Policy())
    return [] if spec is not None else [str(p) for p in problems] or ["refused"]


# --- the demo and test collectors -------------------------------------------------------------


def _yaml_files() -> list[Path]:
    folders = [ROOT / "collectors", ROOT / "examples"]
    folders += sorted(p for p in DATA.iterdir() if p.is_dir() and p.name not in INVALID_FOLDERS)
    return sorted(
        path
        for folder in folders
        if folder.is_dir()
        for path in folder.rglob("*")
        if path.suffix in (".yaml", ".yml") and path.is_file()
    )


FILES = _yaml_files()
COLLECTOR_FILES = [p for p in FILES if not is_registry_text(p.read_text(encoding="utf-8"))]
REGISTRY_FILES = [p for p in FILES if is_registry_text(p.read_text(encoding="utf-8"))]


def _name(path: Path) -> str:
    return str(path.relative_to(ROOT))


def test_the_collections_are_found() -> None:
    folders = {p.parent.name for p in COLLECTOR_FILES}
    assert {"collectors", "examples", "seed", "duplicates"} <= folders
    assert len(COLLECTOR_FILES) >= 15
    assert ROOT / "collectors" / "metrics.yaml" in REGISTRY_FILES


@pytest.mark.parametrize("path", COLLECTOR_FILES, ids=_name)
def test_every_demo_and_test_collector_validates(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    problems = loader_accepts(text)
    if path.parent.name in DEMO_FOLDERS:
        assert problems == []
    elif problems:
        pytest.skip(f"the loader refuses it: {problems[0]}")
    assert _errors("collector", loader_view(text)) == []
    assert _errors("collector", editor_view(text)) == []


@pytest.mark.parametrize("path", REGISTRY_FILES, ids=_name)
def test_registry_files_validate_against_the_registry_schema(path: Path) -> None:
    data = loader_view(path.read_text(encoding="utf-8"))
    assert _errors("registry", data) == []
    assert _errors("collector", data) != []


def _varied() -> dict[str, str]:
    from signals_dagster_tests.test_many_collectors import VARIED

    return {name: textwrap.dedent(text) for name, text in VARIED.items()}


def test_the_test_suites_inline_collectors_validate(tmp_path: Path) -> None:
    from signals_dagster_tests.sqlite_shop import collector_yaml

    texts = _varied()
    texts["sqlite_shop"] = collector_yaml(tmp_path / "shop.db", tmp_path / "audit.jsonl")
    texts["sqlite_shop_checks"] = collector_yaml(
        tmp_path / "shop.db",
        tmp_path / "audit.jsonl",
        extra="checks:\n  - type: not_empty\n  - {type: range, min: 0, severity: warn}\n",
    )
    for name, text in texts.items():
        assert loader_accepts(text) == [], name
        assert _errors("collector", loader_view(text)) == [], name
        assert _errors("collector", editor_view(text)) == [], name


def _readme_blocks() -> list[tuple[int, str]]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    return [
        (text.count("\n", 0, m.start()) + 1, textwrap.dedent(m[1]))
        for m in re.finditer(r"```yaml\n(.*?)```", text, re.DOTALL)
    ]


SETTINGS_ONLY = {"alerts", "sources", "templating", "egress", "registry", "policies"}


def test_the_readmes_yaml_blocks_validate() -> None:
    """Each README block against its file's schema; a collector fragment (`sinks:`, `source:`
    …) in the README's full collector example."""
    blocks = _readme_blocks()
    full = next(loader_view(b) for _, b in blocks if "name" in (loader_view(b) or {}))
    collector_keys = set(json_schema("collector")["properties"])
    kinds: dict[str, int] = {}
    for line, block in blocks:
        data = loader_view(block)
        if not isinstance(data, dict):
            continue
        if "metrics" in data:
            kind = "registry"
        elif "# signals.yaml" in block or set(data) & SETTINGS_ONLY:
            kind = "settings"
        elif set(data) <= collector_keys:
            kind, data = "collector", {**full, **data}
        else:
            continue
        kinds[kind] = kinds.get(kind, 0) + 1
        assert _errors(kind, data) == [], f"README.md:{line}"
    assert kinds.get("collector", 0) >= 6
    assert kinds.get("settings", 0) >= 3


# --- the loader and the schema agree ----------------------------------------------------------

BASE: dict[str, Any] = {
    "name": "shop.orders.daily",
    "metric": {"name": "shop.orders", "type": "COUNT", "grain": "24h"},
    "partitions": {"start": "2026-06-01"},
    "source": {
        "type": "sqlite",
        "config": {
            "uri": "sqlite:///shop.db",
            "sql": "SELECT COUNT(*) AS value FROM orders "
            "WHERE created_at >= :window_start AND created_at < :window_end",
        },
    },
    "sinks": {"console": {"type": "console"}},
}
DROP = object()


def _with(**changes: Any) -> str:
    """BASE with `a__b=value` set (DROP: removed), as YAML text."""
    data = copy.deepcopy(BASE)
    for dotted, value in changes.items():
        *parents, last = dotted.split("__")
        node = data
        for part in parents:
            node = node.setdefault(part, {})
        if value is DROP:
            node.pop(last, None)
        else:
            node[last] = value
    return yaml.safe_dump(data, sort_keys=False)


KAFKA: dict[str, Any] = {"type": "kafka", "config": {"brokers": ["kafka:9092"], "topic": "signals"}}
S3_KEYS: dict[str, Any] = {
    "type": "s3",
    "config": {
        "bucket": "signals-lake",
        "aws_access_key_id": '{{ getEnv "AWS_KEY_ID" }}',
        "aws_secret_access_key": '{{ getEnv "AWS_SECRET" }}',
    },
}
PROMETHEUS: dict[str, Any] = {
    "type": "prometheus",
    "config": {"uri": "http://prometheus:9090", "query": "up"},
}
MONGO: dict[str, Any] = {
    "type": "mongodb",
    "config": {
        "uri": "mongodb://db:27017/",
        "database": "shop",
        "collection": "orders",
        "agg": [{"$group": {"_id": "$account", "value": {"$sum": 1}}}],
    },
}

ACCEPTED = {
    "type in lower case": _with(metric__type="count"),
    "type in mixed case": _with(metric__type="Gauge"),
    "tags as a mapping, numbers and booleans as values": _with(
        metric__tags={"env": "prod", "shard": 1, "canary": True, "ratio": 0.5}
    ),
    "tags as signals-collector's list": _with(
        metric__tags=[{"key": "env", "value": "prod"}, {"key": "shard", "value": 3}]
    ),
    "tags empty": _with(metric__tags=None),
    "grain from schedule.interval": _with(metric__grain=DROP, schedule={"interval": "1h"}),
    "grain spelled 1d": _with(metric__grain="1d"),
    "grain spelled 60m": _with(metric__grain="60m"),
    "grain spelled 024H": _with(metric__grain=" 024H"),
    "grain 1.0d": _with(metric__grain="1.0d"),
    "grain of a month": _with(metric__grain="1mo"),
    "grain templated": _with(metric__grain='{{ getEnvOrDefault "G" "1h" }}'),
    "duration as seconds": _with(retry_delay=30),
    "duration of two parts": _with(partitions__lag="1h30m"),
    "duration as a fraction of seconds": _with(source__config__timeout=2.5),
    "integer as text": _with(retries="4"),
    "integer templated": _with(retries='{{ getEnv "R" }}'),
    "number as text": _with(checks=[{"type": "range", "min": "0", "max": "1e6"}]),
    "boolean as text": _with(schedule={"interval": "24h", "enabled": "yes"}),
    "cron with extra spaces": _with(schedule={"cron": "15  0 * * *"}),
    "timezone templated": _with(partitions__timezone='{{ getEnvOrDefault "TZ" "Europe/Berlin" }}'),
    "start date templated": _with(partitions__start='{{ getEnvOrDefault "S" "2026-06-01" }}'),
    "template inside a patterned string": _with(
        sinks={
            "k": {
                "type": "kafka",
                "config": {
                    "brokers": ['{{ getEnvOrDefault "KAFKA" "127.0.0.1:9092" }}'],
                    "topic": 'signals-{{ getEnvOrDefault "ENV" "dev" }}',
                },
            }
        }
    ),
    "latte's kafka uri": _with(
        sinks={"k": {"type": "kafka", "config": {"uri": "kafka:9092", "topic": "t"}}}
    ),
    "http method in lower case": _with(
        sinks={
            "h": {"type": "http", "config": {"uri": "https://in.example.com/m", "method": "put"}}
        }
    ),
    "latte's bare s3 endpoint": _with(
        sinks={"s": {"type": "s3", "config": {"bucket": "signals-lake", "endpoint": "minio:9000"}}}
    ),
    "s3 keys from the environment": _with(sinks={"s": S3_KEYS}),
    "latte's source type name": _with(
        source={
            "type": "metric.postgres",
            "config": {"uri": "postgresql://app@db/shop", "sql": "SELECT 1 AS value"},
        }
    ),
    "latte's tumbling window as the grain": _with(
        metric__grain=DROP,
        collector={"type": "metric", "invocation_strategy": "historic_tumbling_window"},
        source={**PROMETHEUS, "config": {**PROMETHEUS["config"], "time": {"window": "1h"}}},
        schedule={"interval": "5m"},
    ),
    "a mongo pipeline as a YAML list": _with(source=MONGO),
    "a mongo pipeline as JSON text": _with(
        source={**MONGO, "config": {**MONGO["config"], "agg": '[{"$match": {}}]'}}
    ),
}

REFUSED = {
    "an unknown key": _with(colour="red"),
    "an unknown nested key": _with(metric__colour="red"),
    "no name": _with(name=DROP),
    "a name with a leading dash": _with(name="-orders"),
    "a metric name starting with a digit": _with(metric__name="1orders"),
    "an integer that is no number": _with(retries="many"),
    "too many retries": _with(retries=11),
    "a duration that is a boolean": _with(source__config__timeout=True),
    "a metric type": _with(metric__type="SUM"),
    "a source type": _with(source__type="oracle"),
    "sinks as a list": _with(sinks=[{"type": "console"}]),
    "no sinks": _with(sinks={}),
    "a grain that divides no hour": _with(metric__grain="7m"),
    "a grain in capital M": _with(metric__grain="1MO"),
    "a grain as a number": _with(metric__grain=3600),
    "an interval as grain that is no grain": _with(metric__grain=DROP, schedule={"interval": "7m"}),
    "interval and cron": _with(schedule={"interval": "24h", "cron": "0 0 * * *"}),
    "neither interval nor cron": _with(schedule={"enabled": True}),
    "a cron of four fields": _with(schedule={"cron": "0 0 * *"}),
    "a duration in words": _with(partitions__lag="15 minutes"),
    "a zero retry delay": _with(retry_delay="0s"),
    "a negative retry delay": _with(retry_delay=-5),
    "a date with a time": _with(partitions__start="2026-06-01 10:00"),
    "a reserved tag (mapping)": _with(metric__tags={"value": "x"}),
    "a reserved tag (list)": _with(metric__tags=[{"key": "grain_datetime", "value": "x"}]),
    "a tag without a value": _with(metric__tags={"env": None}),
    "a range check without bounds": _with(checks=[{"type": "range"}]),
    "an owner that is neither": _with(owners=["nobody"]),
    "a sqlite source with a mysql uri": _with(source__config__uri="mysql://db/shop"),
    "a sqlite uri with options": _with(source__config__uri="sqlite:///shop.db?mode=rwc"),
    "blank sql": _with(source__config__sql="   "),
    "a broker without a port": _with(
        sinks={"k": {**KAFKA, "config": {**KAFKA["config"], "brokers": ["localhost"]}}}
    ),
    "kafka without brokers": _with(sinks={"k": {"type": "kafka", "config": {"topic": "t"}}}),
    "a producer setting off the allow-list": _with(
        sinks={
            "k": {**KAFKA, "config": {**KAFKA["config"], "producer": {"ssl.engine.location": "x"}}}
        }
    ),
    "an http uri without a scheme": _with(
        sinks={"h": {"type": "http", "config": {"uri": "ingest.example.com/metrics"}}}
    ),
    "an http method without a body": _with(
        sinks={
            "h": {"type": "http", "config": {"uri": "https://in.example.com/m", "method": "get"}}
        }
    ),
    "an s3 key without its secret": _with(
        sinks={"s": {"type": "s3", "config": {**S3_KEYS["config"], "aws_secret_access_key": None}}}
    ),
    "a mongo pipeline that is a number": _with(
        source={**MONGO, "config": {**MONGO["config"], "agg": 5}}
    ),
    "a strict integer as text": _with(checks=[{"type": "anomaly", "lookback": "14"}]),
}

# Where the schema is deliberately stricter than the loader (a mistake the loader forgives, or
# a value no JSON Schema can foresee), and where it is looser (left to `signals validate`).
STRICTER = {
    "a boolean as an integer (pydantic reads true as 1)": _with(retries=True),
    "a grain in two parts": _with(metric__grain="1h0m"),
    "a grain as a fraction": _with(metric__grain="0.5h"),
    "a discriminator templated": _with(source__type='{{ getEnvOrDefault "T" "sqlite" }}'),
}
LOOSER = {
    "an interval other than the grain": _with(schedule={"interval": "1h"}),
    "a tag given twice (list form)": _with(
        metric__tags=[{"key": "env", "value": "a"}, {"key": "env", "value": "b"}]
    ),
    "integer text out of range": _with(retries="99"),
    "a lag as long as the grain": _with(partitions__lag="24h"),
    "a bind parameter the window has not": _with(source__config__sql="SELECT :day AS value"),
}


@pytest.mark.parametrize("case", ACCEPTED)
def test_what_the_loader_accepts_the_schema_accepts(case: str) -> None:
    text = ACCEPTED[case]
    assert loader_accepts(text) == []
    assert _errors("collector", loader_view(text)) == []


@pytest.mark.parametrize("case", REFUSED)
def test_what_the_loader_refuses_the_schema_refuses(case: str) -> None:
    text = REFUSED[case]
    assert loader_accepts(text) != []
    assert _errors("collector", loader_view(text)) != []


@pytest.mark.parametrize("case", STRICTER)
def test_where_the_schema_is_stricter_than_the_loader(case: str) -> None:
    text = STRICTER[case]
    assert loader_accepts(text) == []
    assert _errors("collector", loader_view(text)) != []


@pytest.mark.parametrize("case", LOOSER)
def test_where_the_schema_leaves_it_to_signals_validate(case: str) -> None:
    text = LOOSER[case]
    assert loader_accepts(text) != []
    assert _errors("collector", loader_view(text)) == []


def test_an_editor_reads_yaml_1_2_and_the_schema_follows() -> None:
    # yes/on/off are strings in YAML 1.2 (booleans for the loader's YAML 1.1); a quoted
    # template in a number field; an unquoted date is a string for an editor.
    text = _with(schedule={"interval": "24h"}) + "retries: '{{ getEnv \"R\" }}'\n"
    text = text.replace("interval: 24h", "interval: 24h\n  enabled: on")
    text = text.replace("start: '2026-06-01'", "start: 2026-06-01")
    assert "start: 2026-06-01" in text
    assert "enabled: on" in text
    assert loader_accepts(text) == []
    assert editor_view(text)["schedule"]["enabled"] == "on"
    assert _errors("collector", editor_view(text)) == []
    assert _errors("collector", loader_view(text)) == []


# --- the patterns are the validators' ----------------------------------------------------------


def test_the_grain_pattern_is_the_grain_validator() -> None:
    from pydantic import TypeAdapter, ValidationError

    grain = TypeAdapter(fields.Grain)
    pattern = re.compile(grain_text())
    spellings = [
        f"{n}{u}"
        for n in (1, 2, 5, 7, 10, 24, 30, 45, 60, 90, 1440, 86400)
        for u in ("s", "m", "h", "d", "w", "ms")
    ]
    spellings += [
        "1mo",
        "1month",
        "1Mo",
        "1mO",
        " 24h ",
        "24H",
        "1D",
        "0024h",
        "1.0h",
        "10000ms",
        "7S",
    ]
    for text in spellings:
        try:
            grain.validate_python(text)
            accepted = True
        except ValidationError:
            accepted = False
        assert (pattern.search(text) is not None) == accepted, text


def test_duration_defaults_are_written_as_files_write_them() -> None:
    from datetime import timedelta

    assert [duration_text(timedelta(seconds=s)) for s in (0, 0.5, 10, 60, 300, 5400, 86400)] == [
        "0s",
        "500ms",
        "10s",
        "1m",
        "5m",
        "90m",
        "24h",
    ]
    defs = json_schema("collector")["$defs"]
    assert defs["LateData"]["properties"]["interval"]["default"] == "5m"
    assert defs["Partitions"]["properties"]["lag"]["default"] == "0s"
    assert json_schema("collector")["properties"]["retry_delay"]["default"] == "10s"
    for text in ("5m", "0s", "10s", "1m", "500ms"):
        fields.parse_duration(text)


# --- signals.yaml -------------------------------------------------------------------------------

SETTINGS = """\
alerts:
  http:
    uri: 'https://hooks.example.com/signals'
    headers: {Authorization: 'Bearer {{ getEnv "ALERT_TOKEN" }}'}
    timeout: 10s
sources:
  allow_unguarded: [mssql]
templating:
  secret_env: ['*PASSWORD*', '*SECRET*', '*TOKEN*', '*KEY*', 'AWS_*']
  allow_env: ['SIGNALS_*', 'PG*', 'ALERT_*']
sinks:
  file:
    roots: [/var/lib/signals, .demo]
egress:
  allow: [ingest.example.com:443, 'kafka-*.internal:9092']
registry:
  strict: true
"""
POLICIES = """\
policies:
  sinks:
    audit: {type: file, config: {path: .demo/policies.jsonl}}
"""


def _settings_text() -> str:
    has_policies = "policies" in json_schema("settings")["properties"]
    return SETTINGS + (POLICIES if has_policies else "")


def test_the_settings_schema_accepts_an_example_signals_yaml(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = _settings_text()
    path = tmp_path / "signals.yaml"
    path.write_text(text, encoding="utf-8")
    monkeypatch.setenv("ALERT_TOKEN", "t0ken")
    settings = load_settings(path)  # the example is a valid signals.yaml
    assert settings.registry.strict
    assert settings.sources.allow_unguarded == ["mssql"]
    assert _errors("settings", loader_view(text)) == []
    assert _errors("settings", editor_view(text)) == []
    assert _errors("settings", {}) == []


@pytest.mark.parametrize(
    "change",
    [
        ("alerts:", "alert:"),
        ("strict: true", "strict: maybe"),
        ("allow: [ingest.example.com:443, 'kafka-*.internal:9092']", "allow: everything"),
        ("https://hooks.example.com/signals", "ftp://hooks.example.com/signals"),
        ("timeout: 10s", "timeout: 0s"),
    ],
    ids=lambda change: change[1],
)
def test_the_settings_schema_refuses_what_load_settings_refuses(
    change: tuple[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from signals_dagster.errors import SpecError

    text = _settings_text().replace(*change)
    path = tmp_path / "signals.yaml"
    path.write_text(text, encoding="utf-8")
    monkeypatch.setenv("ALERT_TOKEN", "t0ken")
    with pytest.raises(SpecError):
        load_settings(path)
    assert _errors("settings", loader_view(text)) != []


# --- the schemas themselves -------------------------------------------------------------------


def _cli_schema(kind: str) -> dict[str, Any]:
    result = subprocess.run(
        [sys.executable, "-m", "signals_dagster.cli", "schema", kind],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    schema: dict[str, Any] = json.loads(result.stdout)
    return schema


def test_signals_schema_collector_prints_a_described_draft_2020_12_schema() -> None:
    schema = _cli_schema("collector")
    assert schema["$schema"] == DRAFT == "https://json-schema.org/draft/2020-12/schema"
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["title"]
    assert schema["description"]
    assert {"name", "metric", "source", "sinks"} <= set(schema["required"])
    undescribed = [key for key, prop in schema["properties"].items() if not prop.get("description")]
    assert undescribed == []
    assert schema == json.loads(json.dumps(json_schema("collector")))


@pytest.mark.parametrize("kind", KINDS)
def test_every_key_of_every_schema_is_described(kind: str) -> None:
    schema = json_schema(kind)
    missing = [f"<root>.{k}" for k, v in schema["properties"].items() if "description" not in v]
    for name, definition in schema.get("$defs", {}).items():
        if "description" not in definition:
            missing.append(name)
        missing += [
            f"{name}.{key}"
            for key, prop in definition.get("properties", {}).items()
            if "description" not in prop
        ]
    # A new model field: give it a Field(description=...) or an entry in schemas._DOCS.
    assert missing == []


def test_every_validator_that_widens_the_input_is_known() -> None:
    generated = {kind: generate(kind) for kind in KINDS}
    unhandled = {kind: sorted(g.unhandled) for kind, g in generated.items() if g.unhandled}
    # A before-, wrap- or plain-validator accepts input its field's type does not: describe it
    # in schemas._BEFORE (or give it json_schema_input_type in the model).
    assert unhandled == {}
    used = frozenset().union(*(g.used for g in generated.values()))
    assert sorted(HANDLED - used) == []  # no entry for a validator that no longer exists


def test_templates_are_only_for_the_templated_files() -> None:
    assert "{{" in json.dumps(json_schema("collector"))
    assert "{{" in json.dumps(json_schema("settings"))
    assert "getEnv" not in json.dumps(json_schema("registry"))
    registry = _validator("registry")
    contract = {"name": "m", "version": 1, "type": "count", "tags": {"channel": None}}
    assert registry.is_valid({"metrics": [contract]})
    assert not registry.is_valid({"metrics": [{**contract, "version": '{{ getEnv "V" }}'}]})
    assert not registry.is_valid({"metrics": [{**contract, "tags": {"value": None}}]})
