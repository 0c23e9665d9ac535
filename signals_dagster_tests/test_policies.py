"""Policies in Rego (signals_dagster/quality/policies.py): loading and locating errors, the input
document, evaluation into check results, and violation records written through signals.yaml."""

import json
import textwrap
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pytest

from signals_dagster.contracts.model import Contract
from signals_dagster.errors import SinkError, SpecError
from signals_dagster.quality.checks import Figures
from signals_dagster.quality.policies import (
    VIOLATIONS_METRIC,
    Policy,
    check_policies,
    evaluate_policies,
    load_policies,
    policies_dir,
    policy_input,
    policy_results,
    policy_sink_problems,
    project_policies,
    publish_violations,
    rego_errors,
    violation_records,
    violation_table,
)
from signals_dagster.records import build_records, record_uuid, to_dicts
from signals_dagster.settings import load_settings
from signals_dagster.spec.loader import parse_text
from signals_dagster.spec.models import CollectorSpec
from signals_dagster.window import Window

REPO = Path(__file__).resolve().parents[1]
COLLECTED_AT = datetime(2026, 7, 1, 12, tzinfo=UTC)

COLLECTOR = """
name: shop.revenue.test
owners: [team:growth]
group: shop
metric:
  name: {metric}
  type: GAUGE
  grain: 24h
  unit: USD
  tags: {{env: test}}
partitions: {{start: '2026-06-01'}}
source:
  type: {source}
  config:
    uri: '{uri}'
    sql: SELECT country, SUM(amount) AS value FROM orders GROUP BY country
sinks:
  out: {{type: console}}
"""

DENY_NEGATIVE = """
package signals.policies.no_negative

import rego.v1

applies_to := {"shop.revenue"}

deny contains msg if {
	some record in input.records
	record.value < 0
	msg := sprintf("negative value %v in %s", [record.value, record.tags.country])
}
"""

WARN_MANY = """
package signals.policies.many_records

import rego.v1

applies_to := {"*"}

deny contains msg if {
	false
	msg := "never"
}

warn contains msg if {
	count(input.records) > 2
	msg := sprintf("%d records", [count(input.records)])
}
"""


@pytest.fixture(autouse=True)
def _no_policies_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SIGNALS_POLICIES_DIR", raising=False)


def collector(
    metric: str = "shop.revenue", source: str = "sqlite", uri: str = "sqlite:///shop.sqlite"
) -> CollectorSpec:
    text = COLLECTOR.format(metric=metric, source=source, uri=uri)
    spec, _, problems = parse_text(text, "c.yaml", {"PW": "s3cret-pa55word"})
    assert problems == [], problems
    assert spec is not None
    return spec


def window(day: int = 1) -> Window:
    return Window(
        f"2026-06-{day:02d}",
        datetime(2026, 6, day, tzinfo=UTC),
        datetime(2026, 6, day + 1, tzinfo=UTC),
    )


def records(spec: CollectorSpec, rows: list[tuple[str, float]], day: int = 1) -> pa.Table:
    table, _, _ = build_records(
        spec, window(day).grain_datetime, ["country", "value"], rows, COLLECTED_AT
    )
    return table


@pytest.fixture
def rego(tmp_path: Path) -> Callable[..., Path]:
    """Write a policy module (dedented) under tmp_path/policies and return its path."""

    def write(text: str, name: str = "policy.rego", folder: Path | None = None) -> Path:
        path = (folder or tmp_path / "policies") / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
        return path

    return write


def loaded(folder: Path) -> list[Policy]:
    policies, problems = load_policies(folder)
    assert problems == [], [str(p) for p in problems]
    return policies


# ---- loading ----------------------------------------------------------------------------------


def test_a_deny_fails_the_check_as_an_error(rego: Callable[..., Path], tmp_path: Path) -> None:
    file = rego(DENY_NEGATIVE)
    [policy] = loaded(tmp_path / "policies")
    assert (policy.name, policy.check_name, policy.file) == (
        "no_negative",
        "policy_no_negative",
        file,
    )
    spec = collector()
    bad = records(spec, [("de", 10.0), ("fr", -2.5)])
    [result] = evaluate_policies([policy], spec, window(), bad, None)
    assert (result.window, result.name, result.kind) == (
        "2026-06-01",
        "policy_no_negative",
        "policy",
    )
    assert (result.severity, result.passed, result.blocking) == ("error", False, True)
    assert result.message == "negative value -2.5 in fr"
    assert result.figures == {"deny": 1, "warn": 0, "policy_file": str(file)}
    [good] = evaluate_policies([policy], spec, window(), records(spec, [("de", 1.0)]), None)
    assert (good.passed, good.blocking, good.message) == (True, False, "no deny")
    assert good.figures["deny"] == 0


def test_warn_alone_warns(rego: Callable[..., Path], tmp_path: Path) -> None:
    rego(WARN_MANY)
    [policy] = loaded(tmp_path / "policies")
    assert policy.has_warn
    spec = collector()
    many = records(spec, [("de", 1.0), ("fr", 2.0), ("us", 3.0)])
    [result] = evaluate_policies([policy], spec, window(), many, None)
    assert (result.severity, result.passed, result.blocking) == ("warn", False, False)
    assert result.message == "3 records"
    assert (result.figures["deny"], result.figures["warn"]) == (0, 1)
    [few] = evaluate_policies([policy], spec, window(), records(spec, [("de", 1.0)]), None)
    assert few.passed


def test_a_rego_syntax_error_is_located(rego: Callable[..., Path], tmp_path: Path) -> None:
    file = rego(
        """
        package signals.policies.broken

        applies_to := {"*"}

        deny contains msg if {
          msg :=
        }
        """
    )
    policies, problems = load_policies(tmp_path / "policies")
    assert policies == []
    assert [str(p) for p in problems] == [f"{file}:6: rego: Invalid assignment operator"]


def test_several_syntax_errors_each_on_its_line(rego: Callable[..., Path], tmp_path: Path) -> None:
    file = rego('package signals.policies.junk\n\napplies_to := {"*"}\n}}\n')
    _, problems = load_policies(tmp_path / "policies")
    # rego-cpp flags the stray braces, and the rule before them as unterminated.
    assert {(p.file, p.line, p.path) for p in problems} == {
        (str(file), 3, "rego"),
        (str(file), 4, "rego"),
    }
    assert all(p.message == "Syntax error" for p in problems)


def test_rego_error_terms_are_parsed() -> None:
    term = (
        "(rego-errorseq\n  (error 10:dir/b.rego|78|2\n    (errormsg 27:Invalid assignment "
        "operator)\n    (errorast |78|2\n      (rego-assign |78|2))\n    (rego-errorcode)))\n"
    )
    [error] = rego_errors(term)
    assert (error.message, error.offset) == ("Invalid assignment operator", 78)
    [bare] = rego_errors("(error\n  (errormsg 23:Function not found: foo)\n  (rego-errorcode))")
    assert (bare.message, bare.offset) == ("Function not found: foo", None)


def test_a_wrong_package_is_located(rego: Callable[..., Path], tmp_path: Path) -> None:
    file = rego('# the shop\n\npackage shop.checks\n\napplies_to := {"*"}\n\ndeny := set()\n')
    rego('package signals.policies.9lives\napplies_to := {"*"}\ndeny := set()\n', "b.rego")
    rego('applies_to := {"*"}\n', "c.rego")
    policies, problems = load_policies(tmp_path / "policies")
    assert policies == []
    by_file = {Path(p.file).name: p for p in problems}
    assert str(by_file["policy.rego"]).startswith(
        f"{file}:3: package: package 'shop.checks' is not"
    )
    assert by_file["b.rego"].line == 1  # rego-cpp refuses the NAME itself
    assert by_file["b.rego"].message == "Invalid package declaration"
    assert by_file["c.rego"].path in ("package", "rego")


def test_applies_to_and_deny_must_be_defined(rego: Callable[..., Path], tmp_path: Path) -> None:
    rego('package signals.policies.no_deny\n\napplies_to := {"*"}\n\nwarn contains "x"\n')
    rego(
        "package signals.policies.no_scope\n\ndeny contains msg if {\n  msg := 1\n  false\n}\n",
        "b.rego",
    )
    rego('package signals.policies.scope_text\napplies_to := "*"\ndeny := set()\n', "c.rego")
    policies, problems = load_policies(tmp_path / "policies")
    assert policies == []
    found = {(Path(p.file).name, p.line, p.path) for p in problems}
    assert found == {
        ("policy.rego", 1, "deny"),
        ("b.rego", 1, "applies_to"),
        ("c.rego", 2, "applies_to"),
    }
    assert "`deny` is not defined" in next(p.message for p in problems if p.path == "deny")


def test_two_policies_with_one_name(rego: Callable[..., Path], tmp_path: Path) -> None:
    first = rego(DENY_NEGATIVE, "a.rego")
    second = rego(DENY_NEGATIVE, "team/b.rego")
    rego(WARN_MANY, "c.rego")
    policies, problems = load_policies(tmp_path / "policies")
    assert [p.name for p in policies] == ["many_records"]
    assert {p.file for p in problems} == {str(first), str(second)}
    for problem in problems:
        assert str(first) in problem.message
        assert str(second) in problem.message
        assert problem.path == "package"
        assert problem.line == 1


def test_hidden_folders_and_other_files_are_skipped(
    rego: Callable[..., Path], tmp_path: Path
) -> None:
    rego(DENY_NEGATIVE)
    rego("this is not rego", ".git/hooks/x.rego")
    rego("notes", "README.md")
    assert [p.name for p in loaded(tmp_path / "policies")] == ["no_negative"]


def test_compiled_once_per_content(rego: Callable[..., Path], tmp_path: Path) -> None:
    file = rego(DENY_NEGATIVE)
    [first] = loaded(tmp_path / "policies")
    [again] = loaded(tmp_path / "policies")
    assert again is first
    file.write_text(DENY_NEGATIVE.replace("negative value", "below zero"), encoding="utf-8")
    [changed] = loaded(tmp_path / "policies")
    assert changed is not first
    assert changed.digest != first.digest


# ---- where policies live ----------------------------------------------------------------------


def test_policies_beside_the_collectors(tmp_path: Path) -> None:
    collectors = tmp_path / "project" / "collectors"
    collectors.mkdir(parents=True)
    assert policies_dir(collectors) is None
    assert check_policies(collectors) == ([], [])
    (tmp_path / "project" / "policies").mkdir()
    assert policies_dir(collectors) == tmp_path / "project" / "policies"
    (collectors / "orders.yaml").write_text("name: x\n", encoding="utf-8")
    assert policies_dir(collectors / "orders.yaml") == tmp_path / "project" / "policies"


def test_policies_from_a_separate_checkout(
    rego: Callable[..., Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    outside = tmp_path / "policy-repo"
    rego(DENY_NEGATIVE, "shop/no_negative.rego", folder=outside)
    project = tmp_path / "project"
    (project / "collectors").mkdir(parents=True)
    (project / "policies").mkdir()  # ignored: the variable wins
    monkeypatch.setenv("SIGNALS_POLICIES_DIR", str(outside))
    assert policies_dir(project / "collectors") == outside
    [policy] = project_policies(project / "collectors")
    assert policy.file == outside / "shop" / "no_negative.rego"
    spec = collector()
    [result] = evaluate_policies([policy], spec, window(), records(spec, [("de", -1.0)]), None)
    assert result.blocking


def test_a_missing_policies_folder_is_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SIGNALS_POLICIES_DIR", str(tmp_path / "nowhere"))
    with pytest.raises(
        SpecError, match=r"SIGNALS_POLICIES_DIR: the policies folder does not exist"
    ):
        policies_dir(tmp_path)
    _, problems = check_policies(tmp_path)
    assert [p.path for p in problems] == ["$SIGNALS_POLICIES_DIR"]
    with pytest.raises(SpecError):
        project_policies(tmp_path)


def test_a_broken_policy_stops_runs(rego: Callable[..., Path], tmp_path: Path) -> None:
    (tmp_path / "collectors").mkdir()
    rego("package signals.policies.x\n}\n")
    with pytest.raises(SpecError, match=r"policy\.rego:2: rego: "):
        project_policies(tmp_path / "collectors")


# ---- applying and evaluating ------------------------------------------------------------------


def test_applies_to_star_a_list_or_a_pattern(rego: Callable[..., Path], tmp_path: Path) -> None:
    rego(WARN_MANY, "star.rego")
    rego(DENY_NEGATIVE, "list.rego")
    rego(
        'package signals.policies.shop_wide\napplies_to := {"shop.*", "ops.uptime"}\n'
        "deny := set()\n",
        "glob.rego",
    )
    by_name = {p.name: p for p in loaded(tmp_path / "policies")}
    star, listed, glob = by_name["many_records"], by_name["no_negative"], by_name["shop_wide"]
    assert star.applies_to == ("*",)
    assert star.applies("anything.at.all")
    assert listed.applies("shop.revenue")
    assert not listed.applies("shop.revenue.net")
    assert [glob.applies(m) for m in ("shop.orders", "ops.uptime", "ops")] == [True, True, False]
    other = collector(metric="web.pageviews")
    results = evaluate_policies(list(by_name.values()), other, window(), records(other, []), None)
    assert [r.name for r in results] == ["policy_many_records"]


def test_the_input_document(rego: Callable[..., Path], tmp_path: Path) -> None:
    rego(
        """
        package signals.policies.shape

        import rego.v1

        applies_to := {"shop.revenue"}

        expected := {
          "metric": {"name": "shop.revenue", "type": "GAUGE", "grain": "24h", "unit": "USD",
                     "tags": {"env": "test"}},
          "collector": {"name": "shop.revenue.test", "owners": ["team:growth"], "group": "shop",
                        "source_type": "sqlite", "sinks": {"out": "console"}},
          "window": {"key": "2026-06-02", "start": "2026-06-02T00:00:00+00:00",
                     "end": "2026-06-03T00:00:00+00:00"},
          "previous": {"record_count": 3, "value_sum": 12.5},
        }

        deny contains sprintf("input.%s is %v", [key, input[key]]) if {
          some key, value in expected
          input[key] != value
        }

        deny contains "not the metric's contract" if not input.contract.name == "shop.revenue"

        deny contains "records are not the seed's JSON objects" if {
          some record in input.records
          object.keys(record) != {"uuid", "name", "value", "type", "tags", "timestamp",
                                  "grain_datetime"}
        }

        deny contains "not the window's records" if {
          [r.tags.country | some r in input.records] != ["de", "fr"]
        }

        deny contains "the de value" if {
          some r in input.records
          r.tags.country == "de"
          r.value != 7
        }

        deny contains "keys" if object.keys(input) != {"metric", "contract", "collector",
          "window", "records", "previous"}
        """
    )
    [policy] = loaded(tmp_path / "policies")
    spec = collector()
    spec.bind_contract(
        Contract.model_validate({"name": "shop.revenue", "version": 2, "type": "GAUGE"})
    )
    table = records(spec, [("de", 7.0), ("fr", 5.5)], day=2)
    previous = Figures(3, 12.5)
    [result] = evaluate_policies([policy], spec, window(2), table, previous)
    assert result.passed, result.message
    document = policy_input(spec, window(2), table, previous)
    assert document["records"] == to_dicts(table)
    assert document["contract"]["version"] == 2
    # Without history nor contract, both are null.
    spec.bind_contract(None)
    [blind] = evaluate_policies([policy], spec, window(2), table, None)
    assert not blind.passed
    assert "input.previous is null" in blind.message
    assert "not the metric's contract" in blind.message


def test_no_uri_nor_password_reaches_policies(rego: Callable[..., Path], tmp_path: Path) -> None:
    rego(
        """
        package signals.policies.leak

        import rego.v1

        applies_to := {"*"}

        text := json.marshal(input)

        deny contains "the password reached the policy" if contains(text, "s3cret-pa55word")

        deny contains "the URI reached the policy" if contains(text, "db.internal")
        """
    )
    [policy] = loaded(tmp_path / "policies")
    spec = collector(source="postgres", uri='postgresql://app:{{ getEnv "PW" }}@db.internal/shop')
    assert "s3cret-pa55word" in str(spec.source.config.model_dump())
    table = records(spec, [("de", 1.0)])
    [result] = evaluate_policies([policy], spec, window(), table, Figures(1, 1.0))
    assert result.passed, result.message
    text = json.dumps(policy_input(spec, window(), table, None))
    for secret in ("s3cret", "db.internal", "postgresql"):
        assert secret not in text
    assert json.loads(text)["collector"]["source_type"] == "postgres"


def test_an_evaluation_error_blocks(rego: Callable[..., Path], tmp_path: Path) -> None:
    rego(
        'package signals.policies.typo\napplies_to := {"*"}\n'
        "deny contains msg if {\n  count(input.records) > 0\n  msg := no_such_function(1)\n}\n"
    )
    [policy] = loaded(tmp_path / "policies")  # compiles: rego-cpp resolves functions when run
    spec = collector()
    [result] = evaluate_policies([policy], spec, window(), records(spec, [("de", 1.0)]), None)
    assert (result.passed, result.blocking) == (False, True)
    assert result.message.startswith("evaluation failed: ")
    assert "no_such_function" in result.message
    assert violation_records(spec, window(), [result], COLLECTED_AT) == []


def test_previous_is_the_window_before(rego: Callable[..., Path], tmp_path: Path) -> None:
    rego(
        'package signals.policies.prev\nimport rego.v1\napplies_to := {"*"}\ndeny := set()\n'
        'warn contains sprintf("%v", [input.previous]) if input.previous != null\n'
    )
    policies = loaded(tmp_path / "policies")
    spec = collector()
    windows = [(window(d), records(spec, [("de", float(d))], d)) for d in (2, 3)]
    first, second = policy_results(policies, spec, windows)
    assert first.passed  # no history: nothing before 2026-06-02
    assert second.message == '{"record_count": 1, "value_sum": 2}'
    stored = {"2026-06-01": Figures(4, 9.5)}
    first, _ = policy_results(policies, spec, windows, lambda ws: stored)
    assert first.message == '{"record_count": 4, "value_sum": 9.5}'


# ---- the demo policy --------------------------------------------------------------------------


def test_the_demo_policy_passes_on_the_demo_and_catches_bad_records(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from signals_dagster import demo
    from signals_dagster.collect import collect
    from signals_dagster.partitioning import next_window, window_for_key
    from signals_dagster.spec.loader import load_collectors

    monkeypatch.setenv("SIGNALS_DEMO_DB", str(demo.build(str(tmp_path / "shop.sqlite"))))
    specs = load_collectors([REPO / "collectors"])
    spec = next(s for s in specs.values() if s.name == "shop.orders.revenue.daily")
    policies = project_policies(REPO / "collectors")
    assert [p.name for p in policies] == ["revenue_sanity"]
    first = window_for_key(spec, "2026-06-01")
    windows = [first]
    while len(windows) < demo.DAYS:  # 2026-06-01 .. 2026-11-30: every day of the demo
        windows.append(next_window(spec, windows[-1]))
    collected = collect(spec, windows, now=datetime(2026, 12, 1, tzinfo=UTC))
    results = policy_results(policies, spec, [(c.window, c.records) for c in collected])
    assert len(results) == demo.DAYS
    assert windows[-1].key == "2026-11-30"
    assert all(r.passed for r in results), [r.line() for r in results if not r.passed]
    bad, _, _ = build_records(spec, windows[0].grain_datetime, ["value"], [(-3.0,)], COLLECTED_AT)
    [blocked] = evaluate_policies(policies, spec, windows[0], bad, Figures(1, 1.0))
    assert blocked.blocking
    assert "negative revenue -3" in blocked.message
    assert "without a country tag" in blocked.message
    assert blocked.figures["deny"] == 2
    tripled = records(spec, [("de", 301.0)])
    [warned] = evaluate_policies(policies, spec, windows[0], tripled, Figures(3, 100.0))
    assert (warned.passed, warned.severity) == (False, "warn")
    assert "more than 3 times the previous window's 100" in warned.message
    [calm] = evaluate_policies(policies, spec, windows[0], tripled, Figures(3, 150.0))
    assert calm.passed


# ---- violations as signals --------------------------------------------------------------------


def _violations_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, path: Path) -> Path:
    settings = tmp_path / "signals.yaml"
    settings.write_text(
        textwrap.dedent(
            f"""
            policies:
              sinks:
                compliance:
                  type: file
                  config:
                    path: '{path}'
            """
        ),
        encoding="utf-8",
    )
    monkeypatch.setenv("SIGNALS_SETTINGS", str(settings))
    return settings


def test_violation_records(rego: Callable[..., Path], tmp_path: Path) -> None:
    rego(DENY_NEGATIVE, "a.rego")
    rego(WARN_MANY, "b.rego")
    policies = loaded(tmp_path / "policies")
    spec = collector()
    table = records(spec, [("de", -1.0), ("fr", -2.0), ("us", 3.0)])
    results = evaluate_policies(policies, spec, window(), table, None)
    found = violation_records(spec, window(), results, COLLECTED_AT)
    assert sorted(found, key=lambda r: r["value"], reverse=True) == [
        {
            "uuid": record_uuid(
                VIOLATIONS_METRIC,
                {
                    "policy": "no_negative",
                    "metric": "shop.revenue",
                    "collector": "shop.revenue.test",
                },
                datetime(2026, 6, 1, tzinfo=UTC),
            ),
            "name": "signals.policy.violations",
            "value": 2,
            "type": "GAUGE",
            "tags": {
                "policy": "no_negative",
                "metric": "shop.revenue",
                "collector": "shop.revenue.test",
            },
            "timestamp": "2026-07-01T12:00:00.000Z",
            "grain_datetime": "2026-06-01T00:00:00Z",
        },
        {
            "uuid": record_uuid(
                VIOLATIONS_METRIC,
                {
                    "metric": "shop.revenue",
                    "policy": "many_records",
                    "collector": "shop.revenue.test",
                },
                datetime(2026, 6, 1, tzinfo=UTC),
            ),
            "name": "signals.policy.violations",
            "value": 0,  # a warning is no violation; the evaluation is still a data point
            "type": "GAUGE",
            "tags": {
                "policy": "many_records",
                "metric": "shop.revenue",
                "collector": "shop.revenue.test",
            },
            "timestamp": "2026-07-01T12:00:00.000Z",
            "grain_datetime": "2026-06-01T00:00:00Z",
        },
    ]
    # The same window, re-evaluated later: the same uuids (a re-run replaces, never duplicates).
    later = violation_records(spec, window(), results, datetime(2026, 8, 1, tzinfo=UTC))
    assert [r["uuid"] for r in later] == [r["uuid"] for r in found]
    assert violation_records(spec, window(2), results) == []  # results of another window
    assert to_dicts(violation_table(spec, window(), results, COLLECTED_AT)) == found


def test_violations_are_written_through_the_settings_sinks(
    rego: Callable[..., Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = tmp_path / "data" / "violations.jsonl"
    settings_file = _violations_settings(tmp_path, monkeypatch, log)
    settings = load_settings()
    assert list(settings.policies.sinks) == ["compliance"]
    assert policy_sink_problems(settings, settings_file) == []
    rego(DENY_NEGATIVE)
    policies = loaded(tmp_path / "policies")
    spec = collector()
    per_window = []
    for day, rows in ((1, [("de", -1.0)]), (2, [("de", 4.0)])):
        per_window.append(
            (
                window(day),
                evaluate_policies(policies, spec, window(day), records(spec, rows, day), None),
            )
        )
    written = publish_violations(settings, spec, per_window, now=COLLECTED_AT)
    assert [m["path"] for m in written["compliance"]] == [str(log.resolve())] * 2
    lines = [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines()]
    assert [(r["name"], r["value"], r["grain_datetime"]) for r in lines] == [
        (VIOLATIONS_METRIC, 1, "2026-06-01T00:00:00Z"),
        (VIOLATIONS_METRIC, 0, "2026-06-02T00:00:00Z"),
    ]
    assert all(
        r["tags"]
        == {"policy": "no_negative", "metric": "shop.revenue", "collector": "shop.revenue.test"}
        for r in lines
    )
    expected = record_uuid(
        VIOLATIONS_METRIC,
        {"policy": "no_negative", "metric": "shop.revenue", "collector": "shop.revenue.test"},
        datetime(2026, 6, 1, tzinfo=UTC),
    )
    assert lines[0]["uuid"] == expected


def test_no_policy_sinks_writes_nothing(rego: Callable[..., Path], tmp_path: Path) -> None:
    rego(DENY_NEGATIVE)
    spec = collector()
    results = evaluate_policies(
        loaded(tmp_path / "policies"), spec, window(), records(spec, []), None
    )
    assert (
        publish_violations(load_settings(tmp_path / "none.yaml"), spec, [(window(), results)]) == {}
    )


def test_a_violations_file_outside_the_roots_is_refused(
    rego: Callable[..., Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    outside = Path("/var/lib/signals-policies-test/violations.jsonl")
    settings_file = _violations_settings(tmp_path, monkeypatch, outside)
    settings = load_settings()
    [problem] = policy_sink_problems(settings, settings_file)
    assert (problem.file, problem.line) == (str(settings_file), 7)
    assert problem.path == "policies.sinks.compliance.config.path"
    assert "outside the file sink roots" in problem.message
    rego(DENY_NEGATIVE)
    spec = collector()
    results = evaluate_policies(
        loaded(tmp_path / "policies"), spec, window(), records(spec, []), None
    )
    with pytest.raises(SinkError, match=r"policy violations sink 'compliance'.*outside"):
        publish_violations(settings, spec, [(window(), results)])
    assert not outside.exists()


def test_policy_sinks_are_validated_with_located_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = tmp_path / "signals.yaml"
    settings.write_text(
        "policies:\n  sinks:\n    compliance:\n      type: file\n      config:\n"
        "        path: ''\n    other:\n      type: carrier-pigeon\n",
        encoding="utf-8",
    )
    with pytest.raises(SpecError) as caught:
        load_settings(settings)
    found = {(p.line, p.path.split(".")[2]) for p in caught.value.problems}
    assert (3, "compliance") in found or (6, "compliance") in found  # the sink, or its path
    assert (7, "other") in found or (8, "other") in found
