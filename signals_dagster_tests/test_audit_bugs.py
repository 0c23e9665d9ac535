"""Issue 16 part 5: correctness bugs found while auditing, each pinned by a test."""

import json
import math
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import dagster as dg
import pyarrow as pa
import pytest

from signals_dagster.catalog import load_catalog
from signals_dagster.orchestration.factory import build_definitions
from signals_dagster.orchestration.schedules import WINDOW_TAG
from signals_dagster.records import RecordBuilder, as_table, to_json_lines
from signals_dagster.spec.loader import parse_text
from signals_dagster_tests.sqlite_shop import make_shop
from signals_dagster_tests.test_record_path import DAY, NOW, spec_for

# --- ±inf values: dropped like NaN on both paths, never `Infinity` in JSON ------------------

INFINITE = [("a", 1.5), ("b", math.inf), ("c", -math.inf), ("d", math.nan), ("e", Decimal("2"))]


def test_infinite_values_are_dropped_and_counted_on_both_paths() -> None:
    spec = spec_for("SELECT 1")
    by_rows = RecordBuilder(spec, ["k", "value"])
    assert by_rows.add(DAY.grain_datetime, INFINITE) == (5, 3)
    batch = pa.record_batch(
        [pa.array([k for k, _ in INFINITE]), pa.array([float(v) for _, v in INFINITE])],
        ["k", "value"],
    )
    by_arrow = RecordBuilder(spec, ["k", "value"])
    assert by_arrow.add_arrow(DAY.grain_datetime, [batch]) == (5, 3)
    text = pa.record_batch(  # numeric text (Postgres numeric / Decimal): the cast path
        [pa.array(["a", "b", "c"]), pa.array(["1.5", "Infinity", "-inf"])], ["k", "value"]
    )
    by_text = RecordBuilder(spec, ["k", "value"])
    assert by_text.add_arrow(DAY.grain_datetime, [text]) == (3, 2)
    lines = to_json_lines(by_rows.table(NOW))
    assert lines == to_json_lines(by_arrow.table(NOW))
    assert [json.loads(line)["value"] for line in lines.splitlines()] == [1.5, 2]


@pytest.mark.parametrize("value", [math.inf, -math.inf, math.nan])
def test_json_text_never_prints_infinity_or_nan(value: float) -> None:
    good = RecordBuilder(spec_for("SELECT 1"), ["k", "value"])
    good.add(DAY.grain_datetime, [("a", 1.0), ("b", 2.5)])
    records = as_table(good.table(NOW))
    index = records.schema.get_field_index("value")
    bad = records.set_column(index, "value", pa.array([1.0, value]))
    with pytest.raises(ValueError, match="is not a JSON number"):
        to_json_lines(bad)


# --- postgresql+psycopg2:// is refused at validation, where it is written -------------------

PSYCOPG2 = """name: bad.driver
metric: {{name: bad.driver, type: COUNT}}
source:
  type: {kind}
  config:
    uri: {uri}
    sql: SELECT 1 AS value
sinks:
  console: {{type: console}}
"""


@pytest.mark.parametrize("kind", ["postgres", "sql"])
@pytest.mark.parametrize(
    "uri", ["postgresql+psycopg2://app@127.0.0.1:5432/shop", "postgres+psycopg://h/db"]
)
def test_unsupported_postgres_drivers_are_refused_at_validation(kind: str, uri: str) -> None:
    spec, _, problems = parse_text(PSYCOPG2.format(kind=kind, uri=uri), "c.yaml", {})
    assert spec is None
    (problem,) = problems
    assert (problem.line, problem.path) == (6, "source.config.uri")
    assert "is not supported for postgres" in problem.message


@pytest.mark.parametrize(
    "uri", ["postgresql://app@h/db", "postgresql+psycopg://app@h/db", "postgres://h/db"]
)
def test_psycopg3_postgres_uris_still_pass(uri: str) -> None:
    spec, _, problems = parse_text(PSYCOPG2.format(kind="postgres", uri=uri), "c.yaml", {})
    assert problems == []
    assert spec is not None


# --- code_version: only what defines the data ----------------------------------------------

VERSIONED = """name: cv.test
description: {description}
owners: [{owner}]
metric: {{name: cv.test, type: COUNT, grain: {grain}, tags: {{env: {env}}}}}
partitions: {{start: '{start}', timezone: {tz}}}
retries: {retries}
source:
  type: postgres
  config:
    uri: 'postgresql://app:{{{{ getEnv "PW" }}}}@db.internal:5432/shop'
    sql: {sql}
sinks:
  {sink}: {{type: console}}
"""
BASE = {
    "description": "first",
    "owner": "team:a",
    "grain": "24h",
    "env": "prod",
    "start": "2026-01-01",
    "tz": "UTC",
    "retries": 3,
    "sql": "SELECT 1 AS value",
    "sink": "console",
}


def _version(pw: str = "s3cret", **changes: object) -> str:
    from signals_dagster.orchestration.translator import translate

    spec, _, problems = parse_text(VERSIONED.format(**{**BASE, **changes}), "c.yaml", {"PW": pw})
    assert problems == []
    assert spec is not None
    return translate(spec).code_version


def test_code_version_ignores_what_does_not_define_the_data() -> None:
    base = _version()
    assert _version(pw="rotated") == base
    assert _version(description="second", owner="team:b", retries=5, sink="shout") == base


@pytest.mark.parametrize(
    "change",
    [
        {"sql": "SELECT 2 AS value"},
        {"env": "test"},
        {"grain": "1h"},
        {"tz": "Europe/Berlin"},
        {"start": "2026-02-01"},
    ],
)
def test_code_version_follows_what_defines_the_data(change: dict[str, object]) -> None:
    assert _version(**change) != _version()


# --- sub-hour runs collect the window of the tick that requested them ------------------------

SUBHOUR = """name: tick.subhour
metric: {{name: tick.subhour, type: COUNT, grain: {grain}}}
schedule: {{interval: {grain}}}
source:
  type: sqlite
  config: {{uri: 'sqlite:///{db}', sql: "SELECT 1 AS value WHERE :window_start < :window_end"}}
sinks:
  audit: {{type: file, config: {{path: '{audit}'}}}}
"""


def _subhour_defs(tmp_path: Path, grain: str) -> tuple[dg.Definitions, Path]:
    folder = tmp_path / "collectors"
    folder.mkdir()
    audit = tmp_path / "audit.jsonl"
    db = make_shop(tmp_path / "shop.sqlite")
    (folder / "c.yaml").write_text(SUBHOUR.format(grain=grain, audit=audit, db=db))
    return build_definitions(load_catalog(str(folder)), str(folder)), audit


def test_subhour_run_collects_the_window_of_its_tick_not_of_the_wall_clock(
    tmp_path: Path,
) -> None:
    defs, audit = _subhour_defs(tmp_path, "5m")
    schedule = defs.get_schedule_def("tick_subhour_schedule")
    when = datetime(2026, 2, 11, 0, 5, tzinfo=UTC)
    context = dg.build_schedule_context(
        scheduled_execution_time=when, repository_def=defs.get_repository_def()
    )
    (request,) = schedule.evaluate_tick(context).run_requests or []
    assert request.tags[WINDOW_TAG] == "2026-02-11T00:00:00Z"  # the window that just closed
    job = defs.resolve_job_def("tick_subhour_job")
    instance = dg.DagsterInstance.ephemeral()
    for _ in range(2):  # run long after the tick, twice (a retry): the same window each time
        result = job.execute_in_process(instance=instance, tags=request.tags)
        assert result.success
    grains = [json.loads(line)["grain_datetime"] for line in audit.read_text().splitlines()]
    assert grains == ["2026-02-11T00:00:00Z", "2026-02-11T00:00:00Z"]


def test_subhour_sensor_tags_its_window_and_a_bad_tag_fails_the_run(tmp_path: Path) -> None:
    defs, audit = _subhour_defs(tmp_path, "10s")
    sensor = defs.get_sensor_def("tick_subhour_sensor")
    result = sensor.evaluate_tick(dg.build_sensor_context(repository_def=defs.get_repository_def()))
    (request,) = result.run_requests or []
    slot = int(str(request.run_key).rsplit(":", 1)[1])
    start = datetime.fromtimestamp(slot - 10, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert request.tags[WINDOW_TAG] == start  # the last closed 10 s window of the tick
    job = defs.resolve_job_def("tick_subhour_job")
    bad = job.execute_in_process(
        instance=dg.DagsterInstance.ephemeral(),
        tags={WINDOW_TAG: "2026-02-11T00:00:05Z"},
        raise_on_error=False,
    )
    assert not bad.success
    assert not audit.exists()


# --- the demo's derived asset belongs to the demo's folder -----------------------------------


def test_demo_rollup_only_for_the_demo_folder_or_on_opt_in(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from signals_dagster.derived import DEMO_DIR, DEMO_OPT_IN, derived_definitions

    weekly = dg.AssetKey("shop_orders_revenue_weekly")
    monkeypatch.delenv(DEMO_OPT_IN, raising=False)
    assert {a.key for a in derived_definitions(load_catalog(str(DEMO_DIR))).assets or []} == {
        weekly
    }
    folder = tmp_path / "team"
    folder.mkdir()  # a team's folder with a collector of the demo's name
    (folder / "revenue.yaml").write_text((DEMO_DIR / "orders_revenue_daily.yaml").read_text())
    catalog = load_catalog(str(folder))
    assert "shop.orders.revenue.daily" in catalog.specs
    assert not list(derived_definitions(catalog).assets or [])
    monkeypatch.setenv(DEMO_OPT_IN, "1")
    assert {a.key for a in derived_definitions(catalog).assets or []} == {weekly}
