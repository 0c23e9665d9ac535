"""signals-collector (Go) example files validate unchanged and parse to the values they state."""

import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
import yaml

from signals_dagster.spec.fields import format_duration, parse_duration
from signals_dagster.spec.loader import load_collectors, load_file
from signals_dagster.spec.models import CollectorSpec
from signals_dagster.spec.sqltext import bind_params, collector_kind, output_aliases

SEED = Path(__file__).parent / "data" / "seed"
SEED_FILES = sorted(SEED.glob("*.yaml"))
REPO = Path(__file__).parents[1]
SEED_ENV = ("SC_POSTGRES_HOST", "SC_MONGO_HOST", "SC_PROM_HOST")
SEED_TOP_KEYS = {"name", "metric", "schedule", "source", "sinks", "state_store"}
PG_URI = "postgresql://test:test@127.0.0.1:5432/test?sslmode=disable"


@pytest.fixture(autouse=True)
def _seed_env_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in SEED_ENV:
        monkeypatch.delenv(var, raising=False)


def seed(name: str) -> CollectorSpec:
    """Load one seed file."""
    return load_file(SEED / name)


def test_seed_corpus_present() -> None:
    assert len(SEED_FILES) >= 6


@pytest.mark.parametrize("path", SEED_FILES, ids=lambda p: p.stem)
def test_seed_file_has_the_seed_shape(path: Path) -> None:
    # Guard the fixtures themselves: only keys signals-collector files use, and no grain.
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert set(raw) <= SEED_TOP_KEYS
    assert set(raw["metric"]) <= {"name", "type", "tags"}
    assert set(raw["schedule"]) == {"interval"}
    assert all(set(tag) == {"key", "value"} for tag in raw["metric"].get("tags", []))
    assert set(raw["source"]) <= {"type", "config", "strategy"}
    assert all(set(sink) <= {"type", "config"} for sink in raw["sinks"].values())


@pytest.mark.parametrize("path", SEED_FILES, ids=lambda p: p.stem)
def test_seed_file_validates_unchanged(path: Path) -> None:
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    spec = load_file(path)
    assert spec.name == raw["name"]
    assert spec.metric.name == raw["metric"]["name"]
    assert spec.metric.type == raw["metric"]["type"]
    interval = parse_duration(raw["schedule"]["interval"])
    assert spec.schedule is not None
    assert spec.schedule.interval == interval
    assert spec.metric.grain == format_duration(interval)  # no grain key: the interval is it
    assert set(spec.sinks) == set(raw["sinks"])
    assert "{{" not in spec.source.config.uri


def test_seed_folder_validates_in_one_call() -> None:
    specs = load_collectors([SEED])
    assert sorted(specs) == SEED_FILES


def test_cli_validates_seed_folder() -> None:
    env = {k: v for k, v in os.environ.items() if k not in SEED_ENV}
    result = subprocess.run(
        [sys.executable, "-m", "signals_dagster.cli", "validate", str(SEED)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
        env=env,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    count = len(SEED_FILES)
    assert result.stdout.strip() == f"ok: {count} collector(s) valid in {count} file(s)"


def test_postgres_kafka_seed() -> None:
    spec = seed("postgres_kafka.yaml")
    assert spec.metric.grain == "10s"
    assert spec.schedule is not None
    assert spec.schedule.interval == timedelta(seconds=10)
    assert spec.metric.static_tags == {"env": "prod"}
    assert spec.source.type == "postgres"
    assert spec.source.config.uri == PG_URI
    sql = spec.source.config.sql
    assert "GROUP BY account" in sql
    assert output_aliases(sql) == {"customer", "value"}
    assert collector_kind(bind_params(sql)) == "snapshot"
    assert {name: sink.type for name, sink in spec.sinks.items()} == {
        "console": "console",
        "kafka": "kafka",
    }
    kafka = spec.sinks["kafka"].config
    assert kafka.brokers == ["localhost:9092"]
    assert kafka.topic == "signals"
    assert kafka.allow_auto_topic_creation is True
    assert spec.partitions.start == "2026-01-01"
    assert spec.partitions.timezone == "UTC"


def test_seed_env_variable_overrides_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SC_POSTGRES_HOST", "db.internal")
    uri = seed("postgres_kafka.yaml").source.config.uri
    assert uri == "postgresql://test:test@db.internal:5432/test?sslmode=disable"


def test_seed_empty_env_variable_uses_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SC_POSTGRES_HOST", "")  # empty counts as unset, as in the Go original
    assert seed("postgres_kafka.yaml").source.config.uri == PG_URI


def test_file_and_http_sinks_seed() -> None:
    spec = seed("postgres_file_http.yaml")
    assert spec.metric.grain == "30s"
    assert spec.metric.static_tags == {"env": "prod", "region": "eu"}
    assert [sink.type for sink in spec.sinks.values()] == ["console", "file", "http"]
    assert spec.sinks["file"].config.path == "/tmp/log/signals.audit.log"
    assert spec.sinks["http"].config.uri == "http://127.0.0.1:9999/metrics"


def test_mongodb_seed() -> None:
    spec = seed("mongodb.yaml")
    assert spec.metric.grain == "10s"
    assert spec.metric.static_tags == {"env": "prod"}
    config = spec.source.config
    assert spec.source.type == "mongodb"
    assert config.uri == "mongodb://127.0.0.1:27017"
    assert (config.database, config.collection) == ("test", "orders")
    assert config.agg == [
        {"$group": {"_id": "$account", "value": {"$count": {}}}},
        {"$addFields": {"customer": {"$toString": "$_id"}}},
        {"$project": {"_id": 0}},
    ]
    assert config.time_field is None


def test_prometheus_seed() -> None:
    spec = seed("prometheus.yaml")
    assert spec.metric.grain == "1m"
    config = spec.source.config
    assert spec.source.type == "prometheus"
    assert config.uri == "http://localhost:9090/api/v1/query"
    assert config.query == (
        "sum(round(increase(collector_invoke_count_total[5m]))) by (result_status_code)"
    )
    assert "metric->>'result_status_code' as status_code" in config.sql
    assert "round(value::DOUBLE, 0) as value" in config.sql
    assert config.time_expression is None
    assert config.time is None


def test_later_seed_version_state_store_and_strategy() -> None:
    spec = seed("postgres_state_store.yaml")
    assert spec.state_store is not None
    assert spec.state_store.type == "memory"
    assert spec.source.strategy == "tick"
    assert spec.metric.type == "GAUGE"
    assert spec.metric.static_tags == {"env": "staging", "shard": "1"}  # YAML int → tag string
    assert spec.metric.grain == "1m"


def test_later_seed_version_prometheus_time_window() -> None:
    spec = seed("prometheus_time_window.yaml")
    config = spec.source.config
    assert config.time_expression == "$start_of_day"
    assert config.time is not None
    assert config.time.window == timedelta(minutes=5)
    assert spec.source.strategy == "tick"
    assert spec.state_store is not None
    assert spec.state_store.type == "memory"
    assert spec.sinks["kafka"].config.brokers == ["localhost:9092"]


def test_seed_specs_differ_in_code_version() -> None:
    versions = {spec.code_version for spec in load_collectors([SEED]).values()}
    assert len(versions) == len(SEED_FILES)
