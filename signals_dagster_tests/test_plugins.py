"""Plug-in types end to end: the test suite's package `signals_demo_plugin` (installed into the
venv by `make install`) provides the source type `static` and the sink type `ndjson_dir` through
entry points; validation, the JSON schema, kinds, Dagster runs, `invoke` and `redrive` treat
them like built-in types."""

import json
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

import dagster as dg
import jsonschema
import pytest
import yaml

from signals_dagster.catalog import load_catalog
from signals_dagster.errors import SpecError
from signals_dagster.orchestration.factory import build_definitions
from signals_dagster.plugins import SINK_GROUP, SOURCE_GROUP, external_sinks, external_sources
from signals_dagster.redrive import redrive
from signals_dagster.schemas import json_schema
from signals_dagster.spec.loader import load_collectors

COLLECTOR = """\
name: plugin.static.daily
metric: {{name: plugin.static, type: GAUGE}}
partitions: {{start: '2026-06-01'}}
source:
  type: static
  config:
    rows:
      - {{country: de, value: 3}}
      - {{country: fr, value: 4.5}}
sinks:
  folder:
    type: ndjson_dir
    config: {{folder: {folder}}}
  audit:
    type: file
    config: {{path: {audit}}}
"""


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    collectors = tmp_path / "collectors"
    collectors.mkdir()
    text = COLLECTOR.format(folder=tmp_path / "out", audit=tmp_path / "audit.jsonl")
    (collectors / "p.yaml").write_text(text)
    return collectors


def test_the_plugin_package_is_installed_and_found() -> None:
    assert "static" in {p.name for p in entry_points(group=SOURCE_GROUP)}
    assert "ndjson_dir" in {p.name for p in entry_points(group=SINK_GROUP)}
    assert [p.type for p in external_sources()] == ["static"]
    assert [p.type for p in external_sinks()] == ["ndjson_dir"]


def test_plugin_types_validate_with_located_errors(folder: Path) -> None:
    (spec,) = load_collectors([folder]).values()
    assert spec.source.type == "static"
    assert spec.sinks["folder"].type == "ndjson_dir"
    bad = (folder / "p.yaml").read_text().replace("rows:\n", "rows: []\n    colour: red\n    x:\n")
    (folder / "p.yaml").write_text(bad)
    with pytest.raises(SpecError) as caught:
        load_collectors([folder])
    found = {(p.line, p.path) for p in caught.value.problems}
    assert (8, "source.config.colour") in found
    assert any(p.path == "source.config.rows" for p in caught.value.problems)


def test_an_unknown_type_lists_the_plugin_types(folder: Path) -> None:
    text = (folder / "p.yaml").read_text().replace("type: ndjson_dir", "type: ndjson_dirs")
    (folder / "p.yaml").write_text(text)
    with pytest.raises(SpecError) as caught:
        load_collectors([folder])
    (problem,) = caught.value.problems
    assert (problem.line, problem.path) == (12, "sinks.folder.type")
    assert "'ndjson_dir'" in problem.message


def test_the_json_schema_describes_plugin_types(folder: Path) -> None:
    schema = json_schema("collector")
    data = yaml.safe_load((folder / "p.yaml").read_text())
    jsonschema.Draft202012Validator(schema).validate(data)
    data["sinks"]["folder"]["config"]["colour"] = "red"
    assert not jsonschema.Draft202012Validator(schema).is_valid(data)


def test_dagster_runs_write_the_plugin_sink_and_show_its_kinds(folder: Path) -> None:
    defs = build_definitions(load_catalog(str(folder)), str(folder))
    (asset,) = [a for a in defs.assets or [] if isinstance(a, dg.AssetsDefinition)]
    assert {"static", "ndjson_dir", "file"} <= set(asset.specs_by_key[asset.key].kinds)
    job = defs.resolve_job_def("plugin_static_daily_job")
    result = job.execute_in_process(
        instance=dg.DagsterInstance.ephemeral(), partition_key="2026-06-03"
    )
    assert result.success
    out = folder.parent / "out" / "2026-06-03.jsonl"
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert sorted((r["tags"]["country"], r["value"]) for r in records) == [("de", 3), ("fr", 4.5)]


def test_invoke_and_redrive_use_the_plugin_types(folder: Path) -> None:
    collector = folder / "p.yaml"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "signals_dagster.cli",
            "invoke",
            str(collector),
            "--partition",
            "2026-06-04",
        ],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert "sink folder (ndjson_dir)" in done.stderr
    out = folder.parent / "out" / "2026-06-04.jsonl"
    first = out.read_text()
    out.unlink()
    report = redrive(str(folder.parent / "audit.jsonl"), str(collector), "folder")
    assert out.read_text() == first  # the same records, unchanged
    assert report is not None
