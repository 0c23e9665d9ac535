"""Many collectors in one code location: each fast path gives exactly what the slow one did.

libyaml and the pure-Python YAML parser; the URL grammar of spec/uris and SQLAlchemy's make_url;
assets built directly and with @dg.asset; collector jobs resolved alone and with
define_asset_job over the whole graph; schedules built directly and with @dg.schedule. And one IO
manager bound to every collector's spec. (bench/many_collectors.py measures the load times.)
"""

import json
from collections.abc import Set as AbstractSet
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import dagster as dg
import pyarrow as pa
import pytest
import yaml
from dagster._core.remote_representation.external_data import RepositorySnap
from dagster_shared.serdes import serialize_value
from sqlalchemy.engine import make_url

from signals_dagster.catalog import Catalog, load_catalog
from signals_dagster.errors import SpecError
from signals_dagster.orchestration import factory
from signals_dagster.orchestration.factory import SINKS_IO_MANAGER_KEY, build_definitions
from signals_dagster.orchestration.schedules import close_cron, closed_key
from signals_dagster.orchestration.translator import AssetFacts
from signals_dagster.spec import yamlpos
from signals_dagster.spec.loader import load_collectors
from signals_dagster.spec.models import CollectorSpec
from signals_dagster.spec.uris import parse_sql_url
from signals_dagster_tests.sqlite_shop import collector_yaml, make_shop

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(__file__).parent / "data"
YAML_FILES = sorted(
    [*DATA.glob("*/*.yaml"), *(ROOT / "collectors").glob("*.yaml"), *ROOT.glob("examples/*.yaml")]
)

# Collectors covering every shape the factory builds: partitioned grains (1h, 6h, 24h, 7d, 1mo;
# a local timezone), sub-hour grains (a cron schedule, a sensor), schedules given or not, late
# data, multi-run backfills, snapshots without a backfill policy, several sinks, owners.
VARIED = {
    "hourly.yaml": """
        name: v.hourly
        owners: [team:web, ana@example.com]
        group: web
        metric: {name: v.hourly, type: COUNT, grain: 1h, unit: visits, tags: {env: prod}}
        schedule: {cron: '5 * * * *'}
        partitions: {start: '2026-03-01', lag: 5m}
        source:
          type: sqlite
          pool: shared
          config: {uri: 'sqlite:////tmp/v.db', sql: 'SELECT 1 AS value WHERE :window_start < 1'}
        sinks: {console: {type: console}, audit: {type: file, config: {path: out/v.jsonl}}}
        retries: 5
        retry_delay: 30s
        late_data:
          lookback: 2d
          fingerprint_sql: SELECT count(*) FROM t WHERE :window_start < :window_end
    """,
    "six_hours.yaml": """
        name: v.six_hours
        metric: {name: v.six, type: GAUGE, grain: 6h}
        partitions: {timezone: Europe/Berlin}
        source:
          type: postgres
          config: {uri: 'postgresql://app:secret@db:5432/shop', sql: 'SELECT 1 AS value'}
        sinks: {k: {type: kafka, config: {brokers: ['b:9092'], topic: t}}}
    """,
    "daily.yaml": """
        name: v.daily
        metric: {name: v.daily, type: COUNT}
        schedule: {interval: 24h, enabled: false}
        partitions: {timezone: America/New_York, lag: 90m}
        source:
          type: duckdb
          config: {uri: 'duckdb:////tmp/v.duckdb', sql: 'SELECT 1 AS value WHERE x < :window_end'}
        sinks: {lake: {type: s3, config: {bucket: lake-bucket, endpoint_url: 'http://s3:9000'}}}
    """,
    "weekly.yaml": """
        name: v.weekly
        metric: {name: v.weekly, type: COUNT, grain: 7d}
        backfill: {policy: multi_run, max_partitions_per_run: 5}
        source:
          type: sqlite
          config: {uri: 'sqlite:////tmp/v.db', sql: 'SELECT 1 AS value WHERE :window_start < 1'}
        sinks: {api: {type: http, config: {uri: 'https://ingest.example.com/m'}}}
    """,
    "monthly.yaml": """
        name: v.monthly
        metric: {name: v.monthly, type: GAUGE, grain: 1mo}
        source:
          type: sqlite
          config: {uri: 'sqlite:////tmp/v.db', sql: 'SELECT 1 AS value WHERE :window_start < 1'}
        sinks: {console: {type: console}}
    """,
    "five_minutes.yaml": """
        name: v.five_minutes
        metric: {name: v.five, type: COUNT, grain: 5m}
        source:
          type: sqlite
          config: {uri: 'sqlite:////tmp/v.db', sql: 'SELECT 1 AS value'}
        sinks: {console: {type: console}}
    """,
    "ten_seconds.yaml": """
        name: v.ten_seconds
        metric: {name: v.ten, type: COUNT, grain: 10s}
        source:
          type: sqlite
          config: {uri: 'sqlite:////tmp/v.db', sql: 'SELECT 1 AS value WHERE :window_end > 0'}
        sinks: {console: {type: console}}
    """,
}


@pytest.fixture
def varied(tmp_path: Path) -> Catalog:
    """A catalog of the VARIED collectors."""
    folder = tmp_path / "varied"
    folder.mkdir()
    for name, text in VARIED.items():
        lines = text.strip("\n").splitlines()
        (folder / name).write_text("\n".join(line[8:] for line in lines) + "\n")
    return load_catalog(str(folder))


# --- YAML: libyaml where present, the pure parser's messages and lines for what it rejects ---


def test_libyaml_composes_when_present() -> None:
    if not yaml.__with_libyaml__:
        pytest.skip("PyYAML built without libyaml")
    assert yamlpos._FAST_LOADER is yaml.CSafeLoader


def _loaded(paths: list[Path]) -> object:
    try:
        return {str(path): spec for path, spec in load_collectors(paths).items()}
    except SpecError as exc:
        return exc.problems


@pytest.mark.parametrize("path", YAML_FILES, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_libyaml_and_the_pure_parser_agree(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    text = path.read_text(encoding="utf-8")
    fast_data, fast_pos, fast_problems = yamlpos.parse(text)
    fast_loaded = _loaded([path])
    monkeypatch.setattr(yamlpos, "_FAST_LOADER", None)
    pure_data, pure_pos, pure_problems = yamlpos.parse(text)
    assert fast_data == pure_data
    assert fast_pos == pure_pos  # the line of every key and item, the span of every scalar
    assert [vars(p) for p in fast_problems] == [vars(p) for p in pure_problems]
    assert fast_loaded == _loaded([path])  # specs, or every located problem


# --- SQL URLs without SQLAlchemy ---------------------------------------------------------------

URLS = [
    "postgresql://u:p@h:5432/db",
    "postgresql+psycopg://h/db",
    "postgresql://u@h: 5432/db",
    "postgresql://%40u:p%2F@h/d%20b?sslmode=require",
    "mysql://root@[::1]:3306/x?charset=utf8",
    "mysql+pymysql://root@[::1]/x",
    "sqlite:///relative.db",
    "sqlite:////abs/x.db",
    "sqlite://",
    "duckdb:///:memory:",
    "p+q://h",
    "postgresql://h:/db",
    "postgresql://h:abc/db",
    "postgresql:/x",
    "://x",
    "nope",
    "",
]


@pytest.mark.parametrize("uri", URLS)
def test_sql_urls_split_as_make_url_splits_them(uri: str) -> None:
    try:
        url = make_url(uri)
    except Exception:  # ArgumentError or ValueError: refused either way
        with pytest.raises(ValueError):  # noqa: PT011 — whichever message: check_sql_uri has its own
            parse_sql_url(uri)
        return
    parts = parse_sql_url(uri)
    assert (parts.backend, parts.host, parts.port, parts.database) == (
        url.get_backend_name(),
        url.host,
        url.port,
        url.database,
    )


# --- Dagster objects built directly are the ones the decorators build ---------------------------


def _decorated_asset(
    spec: CollectorSpec,
    facts: AssetFacts,
    pdef: dg.PartitionsDefinition | None,
    resource_keys: AbstractSet[str],
) -> dg.AssetsDefinition:
    """The asset as @dg.asset declares it (what factory._asset builds without the decorator)."""

    @dg.asset(
        required_resource_keys=set(resource_keys) or None,
        name=facts.key,
        description=facts.description,
        partitions_def=pdef,
        backfill_policy=factory.backfill_policy(spec, facts.kind) if pdef is not None else None,
        pool=facts.pool,
        retry_policy=dg.RetryPolicy(
            max_retries=spec.retries,
            delay=spec.retry_delay.total_seconds(),
            backoff=dg.Backoff.EXPONENTIAL,
            jitter=dg.Jitter.PLUS_MINUS,
        ),
        io_manager_key=SINKS_IO_MANAGER_KEY,
        kinds=facts.kinds,
        owners=facts.owners or None,
        group_name=facts.group,
        code_version=facts.code_version,
        metadata=facts.metadata,
        tags=facts.tags,
    )
    def _collector(context: dg.AssetExecutionContext) -> dg.Output[pa.Table]:
        raise NotImplementedError

    return _collector


def _decorated_schedule(spec: CollectorSpec, job: Any) -> dg.ScheduleDefinition:
    """The schedule as @dg.schedule declares it (what build_schedule builds without it)."""
    cron = spec.schedule.cron if spec.schedule and spec.schedule.cron else close_cron(spec)
    enabled = spec.schedule.enabled if spec.schedule else True

    @dg.schedule(
        name=f"{spec.asset_name}_schedule",
        job=job,
        cron_schedule=cron,
        execution_timezone=spec.partitions.timezone,
        default_status=dg.DefaultScheduleStatus.RUNNING
        if enabled
        else dg.DefaultScheduleStatus.STOPPED,
        description=f"Collects each closed {spec.metric.grain} window of {spec.name}",
    )
    def _tick(context: dg.ScheduleEvaluationContext) -> dg.SkipReason:
        raise NotImplementedError

    return _tick


def _snapshots(defs: dg.Definitions) -> dict[str, object]:
    """Everything the UI and the daemon get to see of a code location, by name."""
    snap = RepositorySnap.from_def(defs.get_repository_def())
    named: list[tuple[str, Any]] = [
        *((f"asset {n.asset_key.to_user_string()}", n) for n in snap.asset_nodes),
        *((f"job {j.name}", j) for j in snap.job_datas or []),
        *((f"schedule {s.name}", s) for s in snap.schedules),
        *((f"sensor {s.name}", s) for s in snap.sensors),
    ]
    return {name: json.loads(serialize_value(value)) for name, value in named}


def test_assets_jobs_and_schedules_are_what_the_decorators_build(
    varied: Catalog, monkeypatch: pytest.MonkeyPatch
) -> None:
    ours = _snapshots(build_definitions(varied, "varied"))
    direct = factory._asset

    def decorated(
        spec: CollectorSpec,
        facts: AssetFacts,
        pdef: dg.PartitionsDefinition | None,
        policies: object = (),
    ) -> dg.AssetsDefinition:
        keys = direct(spec, facts, pdef).node_def.required_resource_keys
        return _decorated_asset(spec, facts, pdef, keys)

    with monkeypatch.context() as patch:
        patch.setattr(factory, "_asset", decorated)
        patch.setattr(factory, "build_schedule", _decorated_schedule)
        patch.setattr(
            factory,
            "collector_job",
            lambda spec: dg.define_asset_job(
                f"{spec.asset_name}_job", selection=[dg.AssetKey(spec.asset_name)]
            ),
        )
        reference = _snapshots(build_definitions(varied, "varied"))
    assert sorted(ours) == sorted(reference)
    assert len([name for name in ours if name.startswith("job v_")]) == len(VARIED)
    for name, snapshot in reference.items():
        assert ours[name] == snapshot, name


def test_every_collector_keeps_its_job_and_triggers(varied: Catalog) -> None:
    defs = build_definitions(varied, "varied")
    repo = defs.get_repository_def()
    for spec in varied.specs.values():
        job = defs.resolve_job_def(f"{spec.asset_name}_job")
        assert job.asset_layer.executable_asset_keys == {dg.AssetKey(spec.asset_name)}
    names: dict[str, str | None] = {s.name: s.job_name for s in repo.schedule_defs}
    names |= {s.name: s.job_name for s in repo.sensor_defs if s.name != "signals_run_failures"}
    assert names == {
        "v_hourly_schedule": "v_hourly_job",
        "v_hourly_late_data": "v_hourly_job",
        "v_six_hours_schedule": "v_six_hours_job",
        "v_daily_schedule": "v_daily_job",
        "v_weekly_schedule": "v_weekly_job",
        "v_monthly_schedule": "v_monthly_job",
        "v_five_minutes_schedule": "v_five_minutes_job",
        "v_ten_seconds_sensor": "v_ten_seconds_job",
    }


def test_schedule_requests_the_window_that_closed(varied: Catalog) -> None:
    repo = build_definitions(varied, "varied").get_repository_def()
    schedule = repo.get_schedule_def("v_daily_schedule")
    tick = datetime(2026, 3, 10, 6, 30, tzinfo=UTC)  # 01:30 in New York: 90m after midnight
    context = dg.build_schedule_context(scheduled_execution_time=tick, repository_def=repo)
    data = schedule.evaluate_tick(context)
    key = closed_key(varied.specs["v.daily"], tick)
    assert key == "2026-03-09"
    assert [(r.run_key, r.partition_key) for r in data.run_requests or []] == [(key, key)]
    assert schedule.default_status == dg.DefaultScheduleStatus.STOPPED  # enabled: false


# --- One IO manager for every collector, each spec bound when the definitions are built -------


def test_one_io_manager_serves_every_collector(varied: Catalog) -> None:
    defs = build_definitions(varied, "varied")
    resources = dict(defs.resources or {})
    io_managers = [k for k, r in resources.items() if isinstance(r, dg.IOManagerDefinition)]
    assert io_managers == [SINKS_IO_MANAGER_KEY]
    assert len(resources) < len(varied.specs)  # nothing per collector
    for asset in defs.assets or []:
        assert isinstance(asset, dg.AssetsDefinition)
        (output,) = asset.node_def.output_defs
        assert output.io_manager_key == SINKS_IO_MANAGER_KEY


@pytest.fixture
def two_collectors(tmp_path: Path) -> tuple[Path, Path]:
    """A folder with two valid daily collectors over a SQLite shop; (folder, audit log)."""
    folder = tmp_path / "collectors"
    folder.mkdir()
    db = make_shop(tmp_path / "shop.sqlite")
    audit = tmp_path / "audit.jsonl"
    (folder / "a.yaml").write_text(collector_yaml(db, audit, name="shop.a.daily"))
    (folder / "b.yaml").write_text(collector_yaml(db, audit, name="shop.b.daily"))
    return folder, audit


def test_a_file_broken_after_loading_does_not_fail_another_collectors_run(
    two_collectors: tuple[Path, Path],
) -> None:
    folder, audit = two_collectors
    defs = build_definitions(load_catalog(str(folder)), str(folder))
    (folder / "b.yaml").write_text("name: [unclosed\n")  # someone is editing b.yaml
    with pytest.raises(SpecError):
        load_catalog(str(folder))
    result = defs.resolve_job_def("shop_a_daily_job").execute_in_process(
        partition_key="2026-02-03", instance=dg.DagsterInstance.ephemeral()
    )
    assert result.success
    records = [json.loads(line) for line in audit.read_text().splitlines()]
    assert records
    assert {r["grain_datetime"] for r in records} == {"2026-02-03T00:00:00Z"}


def test_io_manager_refuses_an_asset_that_is_not_a_collector(
    two_collectors: tuple[Path, Path],
) -> None:
    folder, _ = two_collectors
    sinks = factory.SinksIOManager(load_catalog(str(folder)).specs.values())
    context = dg.build_output_context(asset_key=dg.AssetKey("not_a_collector"))
    with pytest.raises(Exception, match="not_a_collector is not a collector"):
        sinks.handle_output(context, pa.table({"uuid": pa.array([], pa.string())}))


def test_collector_job_runs_the_checks_of_its_asset(
    varied: Catalog, monkeypatch: pytest.MonkeyPatch
) -> None:
    @dg.asset_check(asset=dg.AssetKey("v_daily"))
    def v_daily_has_rows() -> dg.AssetCheckResult:
        return dg.AssetCheckResult(passed=True)

    def with_check() -> dg.Definitions:
        return dg.Definitions.merge(
            build_definitions(varied, "varied"), dg.Definitions(asset_checks=[v_daily_has_rows])
        )

    ours = with_check().resolve_job_def("v_daily_job")
    with monkeypatch.context() as patch:
        patch.setattr(
            factory,
            "collector_job",
            lambda spec: dg.define_asset_job(
                f"{spec.asset_name}_job", selection=[dg.AssetKey(spec.asset_name)]
            ),
        )
        reference = with_check().resolve_job_def("v_daily_job")
    check = dg.AssetCheckKey(dg.AssetKey("v_daily"), "v_daily_has_rows")
    assert check in ours.asset_layer.asset_graph.asset_check_keys
    assert serialize_value(ours.get_job_snapshot()) == serialize_value(reference.get_job_snapshot())
