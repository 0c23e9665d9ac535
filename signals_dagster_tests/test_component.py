"""The Dagster Component `signals_dagster.SignalsCollectors`, in process with Dagster's
component sandbox (dagster.components.testing): what it scaffolds, what it builds (what
signals_dagster.definitions builds), its located errors, and its settings and policies
attributes. `dg` itself runs against a scratch project in test_dagster_commands.py."""

import os
import runpy
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
from dagster.components.core.package_entry import discover_entry_point_package_objects
from dagster.components.testing import DefsFolderSandbox, create_defs_folder_sandbox
from dagster_shared.serdes.objects import EnvRegistryKey

import signals_dagster
from signals_dagster import component
from signals_dagster.component import SignalsCollectors
from signals_dagster.errors import SpecError

ROOT = Path(__file__).resolve().parents[1]
TYPE = "signals_dagster.SignalsCollectors"
EXAMPLE = dg.AssetKey("metrics_example_daily")


@pytest.fixture(autouse=True)
def _fresh_process(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test is a process of its own as far as the component's settings pin goes."""
    monkeypatch.setattr(component, "_BUILT_WITH", None)
    for var in (component.SETTINGS_ENV, component.POLICIES_ENV):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture
def sandbox() -> Iterator[DefsFolderSandbox]:
    with create_defs_folder_sandbox() as box:
        yield box


def summary(defs: dg.Definitions) -> dict[str, Any]:
    """What a code location shows: assets, checks, jobs, schedules, sensors, resources."""
    repo = defs.get_repository_def()
    graph = repo.asset_graph
    return {
        "assets": sorted(k.to_user_string() for k in graph.get_all_asset_keys()),
        "checks": sorted(
            f"{k.asset_key.to_user_string()}:{k.name}" for k in graph.asset_check_keys
        ),
        "jobs": sorted(j.name for j in repo.get_all_jobs() if not j.name.startswith("__")),
        "schedules": sorted((s.name, s.cron_schedule) for s in repo.schedule_defs),
        "sensors": sorted(s.name for s in repo.sensor_defs),
        "resources": sorted(repo.get_top_level_resources()),
    }


def attributes(sandbox: DefsFolderSandbox, name: str, **attrs: object) -> Path:
    """A component folder `name` whose defs.yaml has these attributes (nothing scaffolded)."""
    body = {"type": TYPE, "attributes": attrs}
    return sandbox.scaffold_component(SignalsCollectors, defs_path=name, defs_yaml_contents=body)


def build_error(sandbox: DefsFolderSandbox, path: Path) -> str:
    """The messages of the exception (and its causes: Dagster wraps ours) of a failed build."""
    with (
        pytest.raises(Exception) as caught,  # noqa: PT011 — Dagster's wrapper, ours inside
        sandbox.load_component_and_build_defs(defs_path=path),
    ):
        pass
    return "\n".join(str(c) for c in _causes(caught.value))


def test_the_component_is_registered_for_dg() -> None:
    """The `dagster_dg_cli.registry_modules` entry point names the package, which exports the
    component lazily (the `signals` commands import no Dagster: test_cli_imports)."""
    found = discover_entry_point_package_objects()
    assert found[EnvRegistryKey(name="SignalsCollectors", namespace="signals_dagster")] is (
        SignalsCollectors
    )
    assert signals_dagster.SignalsCollectors is SignalsCollectors
    assert "SignalsCollectors" in dir(signals_dagster)
    schema = SignalsCollectors.get_model_cls().model_json_schema()  # type: ignore[union-attr]
    assert set(schema["properties"]) == {"collectors_dir", "settings", "policies_dir"}
    assert all(field.get("description") for field in schema["properties"].values())
    assert schema.get("additionalProperties") is False


def test_scaffolded_component_materialises_its_example(sandbox: DefsFolderSandbox) -> None:
    path = sandbox.scaffold_component(SignalsCollectors, defs_path="metrics")
    assert (path / "collectors" / "example.yaml").is_file()
    assert "collectors_dir: collectors" in (path / "defs.yaml").read_text()
    with sandbox.load_component_and_build_defs(defs_path=path) as (loaded, defs):
        assert isinstance(loaded, SignalsCollectors)
        assert loaded.collectors_dir == "collectors"
        assert summary(defs) == {
            "assets": ["metrics_example_daily"],
            "checks": ["metrics_example_daily:freshness", "metrics_example_daily:range"],
            "jobs": ["metrics_example_daily_job"],
            "schedules": [("metrics_example_daily_schedule", "15 0 * * *")],
            "sensors": ["metrics_example_daily_freshness", "signals_run_failures"],
            "resources": ["signals_kafka", "signals_sinks"],
        }
        job = defs.resolve_job_def("metrics_example_daily_job")
        result = job.execute_in_process(
            partition_key="2026-01-02", instance=dg.DagsterInstance.ephemeral()
        )
    assert result.success
    [materialised] = result.asset_materializations_for_node("metrics_example_daily")
    assert materialised.partition == "2026-01-02"
    assert materialised.metadata["record_count"].value == 2
    checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    assert checks["range"] is True


def test_component_builds_what_definitions_builds(
    sandbox: DefsFolderSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The repository's collectors (with their policies and the demo's derived asset) through
    the component and through signals_dagster.definitions: the same code location."""
    monkeypatch.setenv("SIGNALS_COLLECTORS_DIR", str(ROOT / "collectors"))
    module = runpy.run_module("signals_dagster.definitions")  # a fresh module, not sys.modules'
    expected = summary(module["defs"])
    assert "shop_orders_revenue_weekly" in expected["assets"]  # derived_definitions
    assert "shop_orders_revenue_daily:policy_revenue_sanity" in expected["checks"]  # policies/
    path = attributes(sandbox, "shop", collectors_dir=str(ROOT / "collectors"))
    with sandbox.load_component_and_build_defs(defs_path=path) as (_, defs):
        assert summary(defs) == expected


def test_a_bad_collector_is_a_located_error(sandbox: DefsFolderSandbox) -> None:
    path = sandbox.scaffold_component(SignalsCollectors, defs_path="metrics")
    example = path / "collectors" / "example.yaml"
    example.write_text(example.read_text().replace("grain: 24h", "grain: 25h"))
    with (
        pytest.raises(Exception) as caught,  # noqa: PT011 — Dagster's wrapper, ours inside
        sandbox.load_component_and_build_defs(defs_path=path),
    ):
        pass
    [spec_error] = [c for c in _causes(caught.value) if isinstance(c, SpecError)]
    [problem] = spec_error.problems
    assert (Path(problem.file), problem.line, problem.path) == (example, 10, "metric.grain")
    assert str(problem).startswith(f"{example}:10: metric.grain: unsupported grain '25h'")


def test_a_missing_collectors_folder_is_an_error(sandbox: DefsFolderSandbox) -> None:
    path = attributes(sandbox, "metrics", collectors_dir="nowhere")
    assert f"{path}: collectors_dir {path / 'nowhere'} does not exist" in build_error(sandbox, path)
    path = attributes(sandbox, "itself", collectors_dir=".")
    assert "collectors_dir is this component's folder" in build_error(sandbox, path)


def _copy_example(sandbox: DefsFolderSandbox, name: str, **attrs: object) -> Path:
    """A component `name` with the scaffolded example collector and these attributes."""
    path = sandbox.scaffold_component(SignalsCollectors, defs_path=name)
    (path / "defs.yaml").write_text(
        textwrap.dedent(
            f"""\
            type: {TYPE}
            attributes:
              collectors_dir: collectors
            """
        )
        + "".join(f"  {key}: {value}\n" for key, value in attrs.items())
    )
    return path


def test_the_settings_attribute_is_the_settings_of_the_build_and_of_the_runs(
    sandbox: DefsFolderSandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A strict registry (signals.yaml) refuses the example's metric, which has no contract.
    strict = _copy_example(sandbox, "strict", settings="signals.yaml")
    (strict / "signals.yaml").write_text("registry:\n  strict: true\n")
    assert "'strict.example' has no contract" in build_error(sandbox, strict)

    monkeypatch.setattr(component, "_BUILT_WITH", None)
    monkeypatch.delenv(component.SETTINGS_ENV, raising=False)
    relaxed = _copy_example(sandbox, "relaxed", settings="../relaxed.yaml")
    settings = relaxed.parent / "relaxed.yaml"
    settings.write_text("registry:\n  strict: false\n")
    with sandbox.load_component_and_build_defs(defs_path=relaxed) as (_, defs):
        assert summary(defs)["assets"] == ["relaxed_example_daily"]
    # Run time reads the settings too (egress, file roots, alerts): the variable stays set.
    assert os.environ[component.SETTINGS_ENV] == str(settings.resolve())

    # A second component of the process with another settings file (or none) is refused.
    other = _copy_example(sandbox, "other", settings="signals.yaml")
    (other / "signals.yaml").write_text("{}\n")
    assert "use one settings file" in build_error(sandbox, other)
    # ...and one naming the same file is fine.
    same = _copy_example(sandbox, "same", settings="../relaxed.yaml")
    with sandbox.load_component_and_build_defs(defs_path=same) as (_, defs):
        assert summary(defs)["assets"] == ["same_example_daily"]


def test_a_settings_attribute_against_the_environment_is_an_error(
    sandbox: DefsFolderSandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    elsewhere = tmp_path / "elsewhere.yaml"
    elsewhere.write_text("{}\n")
    monkeypatch.setenv(component.SETTINGS_ENV, str(elsewhere))
    path = _copy_example(sandbox, "metrics", settings="signals.yaml")
    (path / "signals.yaml").write_text("{}\n")
    assert "name the settings file in one place only" in build_error(sandbox, path)
    assert os.environ[component.SETTINGS_ENV] == str(elsewhere)
    other = _copy_example(sandbox, "other", settings="missing.yaml")
    missing = other / "missing.yaml"
    assert f"settings file {missing} does not exist" in build_error(sandbox, other)


def test_the_policies_dir_attribute_is_set_for_the_build_only(
    sandbox: DefsFolderSandbox, tmp_path: Path
) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "positive.rego").write_text(
        textwrap.dedent(
            """\
            package signals.policies.positive

            import rego.v1

            applies_to := {"metrics.example"}

            deny contains msg if {
                some record in input.records
                record.value <= 0
                msg := sprintf("%v is not positive", [record.value])
            }
            """
        )
    )
    path = _copy_example(sandbox, "metrics", policies_dir=str(rules))
    with sandbox.load_component_and_build_defs(defs_path=path) as (_, defs):
        assert "metrics_example_daily:policy_positive" in summary(defs)["checks"]
        result = defs.resolve_job_def("metrics_example_daily_job").execute_in_process(
            partition_key="2026-01-02", instance=dg.DagsterInstance.ephemeral()
        )
    assert result.success
    checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    assert checks["policy_positive"] is True
    assert component.POLICIES_ENV not in os.environ  # restored after the build
    other = _copy_example(sandbox, "other", policies_dir="none")
    assert f"policies_dir {other / 'none'} is not a folder" in build_error(sandbox, other)


def _causes(exc: BaseException) -> Iterator[BaseException]:
    cause: BaseException | None = exc
    while cause is not None:
        yield cause
        cause = cause.__cause__
