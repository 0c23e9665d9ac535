"""Metric contracts when loading: bad registry files and contracts, and collectors that disagree
with their contract, each reported as `file:line: field.path: message`, all in one pass."""

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from signals_dagster.errors import Problem, SpecError
from signals_dagster.spec.loader import load_collectors, load_file

REPO = Path(__file__).parents[1]

GOOD = """\
metrics:
  - name: shop.orders.revenue
    version: 1
    type: GAUGE
    unit: USD
    description: Revenue of paid orders per country
    owners: [team:growth]
    stability: stable
    tags:
      country: {required: true, allowed: [br, de, fr, jp, us]}
      env: {required: true, pattern: '^(demo|prod|staging)$'}
      channel: {required: false}
    values: {min: 0}
    max_records: 1000
"""


def collector(metric: str = "shop.orders.revenue", extra: str = "", name: str = "rev") -> str:
    """A valid SQLite collector of `metric` (`extra`: lines under `metric:`)."""
    return (
        f"name: {name}\n"
        "metric:\n"
        f"  name: {metric}\n"
        "  type: GAUGE\n"
        f"{textwrap.indent(textwrap.dedent(extra), '  ')}"
        "source:\n"
        "  type: sqlite\n"
        "  config:\n"
        "    uri: sqlite:///shop.sqlite\n"
        "    sql: SELECT country, SUM(amount) AS value FROM orders GROUP BY country\n"
        "sinks:\n"
        "  console: {type: console}\n"
    )


def problems_of(tmp_path: Path, registry: str, *collectors: str) -> list[Problem]:
    """Every problem of a folder with `metrics.yaml` and the collectors (none: [])."""
    (tmp_path / "metrics.yaml").write_text(registry)
    for index, text in enumerate(collectors):
        (tmp_path / f"c{index}.yaml").write_text(text)
    try:
        load_collectors([tmp_path])
    except SpecError as exc:
        return exc.problems
    return []


def located(problems: list[Problem], tmp_path: Path) -> list[tuple[str, int, str]]:
    return [(Path(p.file).name, p.line, p.path) for p in problems]


# (registry text, [(line, path, message fragment)]) — each a bad registry or contract.
BAD_REGISTRIES = {
    "not a list": ("metrics: {a: 1}\n", [(1, "metrics", "must be a list of contracts")]),
    "unknown top key": (GOOD + "owner: me\n", [(15, "owner", "unknown key")]),
    "unknown contract key": (
        GOOD.replace("    stability: stable\n", "    stability: stable\n    colour: red\n"),
        [(9, "metrics[0].colour", "unknown key")],
    ),
    "name missing": (
        GOOD.replace("  - name: shop.orders.revenue\n    version: 1\n", "  - version: 1\n"),
        [(2, "metrics[0].name", "required")],
    ),
    "bad name": (
        GOOD.replace("name: shop.orders.revenue", "name: 'shop orders'"),
        [(2, "metrics[0].name", "must match")],
    ),
    "version missing": (
        GOOD.replace("    version: 1\n", ""),
        [(2, "metrics[0].version", "required")],
    ),
    "version zero": (
        GOOD.replace("version: 1", "version: 0"),
        [(3, "metrics[0].version", "greater than or equal to 1")],
    ),
    "version text": (
        GOOD.replace("version: 1", "version: 'one'"),
        [(3, "metrics[0].version", "valid integer")],
    ),
    "version float": (
        GOOD.replace("version: 1", "version: 1.5"),
        [(3, "metrics[0].version", "valid integer")],
    ),
    "bad type": (
        GOOD.replace("type: GAUGE", "type: HISTOGRAM"),
        [(4, "metrics[0].type", "'COUNT' or 'GAUGE'")],
    ),
    "bad stability": (
        GOOD.replace("stability: stable", "stability: beta"),
        [(8, "metrics[0].stability", "'development', 'stable' or 'deprecated'")],
    ),
    "bad owner": (
        GOOD.replace("owners: [team:growth]", "owners: [growth]"),
        [(7, "metrics[0].owners", "must be an email or team:name")],
    ),
    "bad regex": (
        GOOD.replace("'^(demo|prod|staging)$'", "'^(demo|prod'"),
        [(11, "metrics[0].tags.env.pattern", "invalid regular expression")],
    ),
    "unknown tag rule key": (
        GOOD.replace("channel: {required: false}", "channel: {optional: true}"),
        [(12, "metrics[0].tags.channel.optional", "unknown key")],
    ),
    "required not a bool": (
        GOOD.replace("channel: {required: false}", "channel: {required: maybe}"),
        [(12, "metrics[0].tags.channel.required", "valid boolean")],
    ),
    "empty allowed": (
        GOOD.replace("allowed: [br, de, fr, jp, us]", "allowed: []"),
        [(10, "metrics[0].tags.country.allowed", "at least 1 item")],
    ),
    "allowed twice": (
        GOOD.replace("allowed: [br, de, fr, jp, us]", "allowed: [br, de, br]"),
        [(10, "metrics[0].tags.country.allowed", "value 'br' is listed twice")],
    ),
    "bad tag key": (
        GOOD.replace("channel: {required: false}", "'bad key': {required: false}"),
        [(12, "metrics[0].tags.bad key", "must match")],
    ),
    "reserved tag": (
        GOOD.replace("channel: {required: false}", "value: {required: false}"),
        [(9, "metrics[0].tags", "clashes with the query column")],
    ),
    "min above max": (
        GOOD.replace("values: {min: 0}", "values: {min: 10, max: 1}"),
        [(13, "metrics[0].values", "min 10 is greater than max 1")],
    ),
    "unknown values key": (
        GOOD.replace("values: {min: 0}", "values: {minimum: 0}"),
        [(13, "metrics[0].values.minimum", "unknown key")],
    ),
    "max_records zero": (
        GOOD.replace("max_records: 1000", "max_records: 0"),
        [(14, "metrics[0].max_records", "greater than or equal to 1")],
    ),
    "max_records text": (
        GOOD.replace("max_records: 1000", "max_records: many"),
        [(14, "metrics[0].max_records", "valid integer")],
    ),
    "tags not a mapping": (
        GOOD.replace(
            "    tags:\n      country: {required: true, allowed: [br, de, fr, jp, us]}\n"
            "      env: {required: true, pattern: '^(demo|prod|staging)$'}\n"
            "      channel: {required: false}\n",
            "    tags: [country, env]\n",
        ),
        [(9, "metrics[0].tags", "valid dictionary")],
    ),
    "a contract not a mapping": (
        "metrics:\n  - shop.orders.revenue\n",
        [(2, "metrics[0]", "valid dictionary")],
    ),
    "yaml syntax": (GOOD + "  - name: [unclosed\n", [(16, "yaml", "expected ',' or ']'")]),
    "duplicate key": (
        GOOD.replace("    version: 1\n", "    version: 1\n    version: 2\n"),
        [(4, "metrics[0].version", "duplicate key 'version'")],
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_REGISTRIES))
def test_bad_registry_is_located(tmp_path: Path, case: str) -> None:
    text, expected = BAD_REGISTRIES[case]
    problems = problems_of(tmp_path, text)
    got = [(p.line, p.path, p.message) for p in problems]
    assert len(got) == len(expected), got
    for (line, path, fragment), (got_line, got_path, message) in zip(
        expected, sorted(got), strict=True
    ):
        assert (got_line, got_path) == (line, path), got
        assert fragment in message, got
        assert all(Path(p.file).name == "metrics.yaml" for p in problems)


def test_every_problem_of_a_registry_in_one_pass(tmp_path: Path) -> None:
    text = GOOD.replace("version: 1", "version: 0").replace("type: GAUGE", "type: RATE")
    text = text.replace("values: {min: 0}", "values: {min: 3, max: 2}")
    problems = problems_of(tmp_path, text)
    assert [(p.line, p.path) for p in problems] == [
        (3, "metrics[0].version"),
        (4, "metrics[0].type"),
        (13, "metrics[0].values"),
    ]


def test_two_contracts_with_one_name_name_both_locations(tmp_path: Path) -> None:
    (tmp_path / "team").mkdir()
    (tmp_path / "team" / "more.yaml").write_text(
        "metrics:\n  - name: shop.orders.revenue\n    version: 2\n    type: GAUGE\n"
    )
    problems = problems_of(tmp_path, GOOD)
    assert len(problems) == 1
    (problem,) = problems
    assert (problem.file, problem.line, problem.path) == (
        str(tmp_path / "team" / "more.yaml"),
        2,
        "metrics[0].name",
    )
    first = tmp_path / "metrics.yaml"
    assert problem.message == (
        f"a second contract for 'shop.orders.revenue' (the first is at {first}:2)"
    )


# (collector text, (file line, path, fragments)) — a collector that disagrees with the contract.
DISAGREEING = {
    "type": (
        collector().replace("type: GAUGE", "type: COUNT"),
        (4, "metric.type", ["type COUNT disagrees", "type GAUGE", "metrics.yaml:4"]),
    ),
    "unit": (
        collector(extra="unit: EUR\n"),
        (5, "metric.unit", ["unit 'EUR' disagrees", "unit 'USD'", "metrics.yaml:5"]),
    ),
    "unknown static tag (list)": (
        collector(extra="tags:\n  - key: team\n    value: growth\n"),
        (6, "metric.tags[0]", ["tag 'team' is not in the contract", "channel, country, env"]),
    ),
    "static tag not allowed (mapping)": (
        collector(extra="tags: {country: it}\n"),
        (5, "metric.tags.country", ["value 'it' is not allowed", "br, de, fr, jp, us"]),
    ),
    "static tag not matching": (
        collector(extra="tags:\n  - key: env\n    value: dev\n"),
        (7, "metric.tags[0].value", ["value 'dev' does not match '^(demo|prod|staging)$'"]),
    ),
}


@pytest.mark.parametrize("case", sorted(DISAGREEING))
def test_collector_disagreeing_with_its_contract(tmp_path: Path, case: str) -> None:
    text, (line, path, fragments) = DISAGREEING[case]
    problems = problems_of(tmp_path, GOOD, text)
    assert [(Path(p.file).name, p.line, p.path) for p in problems] == [("c0.yaml", line, path)]
    for fragment in fragments:
        assert fragment in problems[0].message
    assert "contract shop.orders.revenue v1 at " in problems[0].message


def test_a_conforming_collector_carries_its_contract(tmp_path: Path) -> None:
    assert problems_of(tmp_path, GOOD, collector(extra="unit: USD\ntags: {env: prod}\n")) == []
    spec = load_file(tmp_path / "c0.yaml")  # alone: the registry of its folder still applies
    assert spec.contract is not None
    assert spec.contract.ref == "shop.orders.revenue/1"
    (other,) = load_collectors([tmp_path]).values()
    assert other.contract == spec.contract


def test_no_contract_is_fine_unless_strict(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert problems_of(tmp_path, GOOD, collector(metric="shop.other")) == []
    settings = tmp_path.parent / f"{tmp_path.name}-signals.yaml"  # outside the folder
    settings.write_text("registry: {strict: true}\n")
    monkeypatch.setenv("SIGNALS_SETTINGS", str(settings))
    problems = problems_of(tmp_path, GOOD, collector(metric="shop.other"))
    assert [(Path(p.file).name, p.line, p.path) for p in problems] == [
        ("c0.yaml", 3, "metric.name")
    ]
    assert "metric 'shop.other' has no contract" in problems[0].message


def test_strict_without_a_registry_refuses_every_collector(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "c.yaml").write_text(collector())
    settings = tmp_path.parent / f"{tmp_path.name}-signals.yaml"
    settings.write_text("registry:\n  strict: true\n")
    monkeypatch.setenv("SIGNALS_SETTINGS", str(settings))
    with pytest.raises(SpecError, match="has no contract"):
        load_collectors([tmp_path])


def test_deprecated_metric_warns_and_validate_exits_zero(tmp_path: Path) -> None:
    deprecated = GOOD.replace("stability: stable", "stability: deprecated")
    (tmp_path / "metrics.yaml").write_text(deprecated)
    (tmp_path / "c0.yaml").write_text(collector())
    warnings: list[Problem] = []
    load_collectors([tmp_path], warnings=warnings)
    where = [(Path(w.file).name, w.line, w.path) for w in warnings]
    assert where == [("c0.yaml", 3, "metric.name")]
    assert "is deprecated" in warnings[0].message
    result = subprocess.run(
        [sys.executable, "-m", "signals_dagster.cli", "validate", str(tmp_path)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    warning = f"warning: {tmp_path / 'c0.yaml'}:3: metric.name: metric 'shop.orders.revenue'"
    assert f"{warning} is deprecated" in result.stderr
    assert "1 under contract (1 registry file(s))" in result.stdout


def test_validate_reports_registry_and_collector_problems_together(tmp_path: Path) -> None:
    (tmp_path / "metrics.yaml").write_text(GOOD.replace("version: 1", "version: 0"))
    (tmp_path / "c0.yaml").write_text(collector().replace("sinks:\n", "sinks:\n  bad: 1\n"))
    result = subprocess.run(
        [sys.executable, "-m", "signals_dagster.cli", "validate", str(tmp_path)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    bad_version = "metrics[0].version: Input should be greater than or equal to 1"
    assert f"{tmp_path / 'metrics.yaml'}:3: {bad_version}" in lines
    assert any(line.startswith(f"{tmp_path / 'c0.yaml'}:11: sinks.bad") for line in lines), lines
    assert "Traceback" not in result.stderr


def test_the_demo_registry_covers_every_demo_collector() -> None:
    specs = load_collectors([REPO / "collectors"])
    assert specs
    assert all(spec.contract is not None for spec in specs.values())


def test_the_registry_json_schema_accepts_the_demo_and_refuses_bad_contracts() -> None:
    import jsonschema
    import yaml

    result = subprocess.run(
        [sys.executable, "-m", "signals_dagster.cli", "schema", "registry"],
        capture_output=True,
        text=True,
        check=True,
    )
    schema = json.loads(result.stdout)
    validator = jsonschema.Draft202012Validator(schema)
    validator.validate(yaml.safe_load((REPO / "collectors" / "metrics.yaml").read_text()))
    validator.validate(yaml.safe_load(GOOD.replace("channel: {required: false}", "channel:")))
    for bad in (
        GOOD.replace("version: 1", "version: 0"),
        GOOD.replace("stability: stable", "stability: beta"),
        GOOD.replace("max_records: 1000", "max_records: 1000\n    colour: red"),
        GOOD.replace("channel: {required: false}", "channel: {optional: true}"),
    ):
        assert not validator.is_valid(yaml.safe_load(bad)), bad
