"""latte's collector files (signals-collector's later name, github.com/turbolytics/latte) work
unchanged: latte's 8 example files validate, and the files of data/latte/ — one per key of latte's
format — validate and, where their source runs here, run against real servers."""

import contextlib
import io
import json
import os
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pyarrow.parquet as pq
import pytest

from signals_dagster.collect import collect
from signals_dagster.errors import SinkError, SpecError
from signals_dagster.invoke import invoke_collector
from signals_dagster.partitioning import current_window, window_for_key
from signals_dagster.sinks import close_writers, open_writers
from signals_dagster.sinks.s3 import (
    S3Access,
    default_client,
    metric_prefix,
    object_key,
    read_partitions,
)
from signals_dagster.spec.loader import load_collectors, load_file, parse_text
from signals_dagster.spec.models import CollectorSpec
from signals_dagster.spec.sinks import (
    ConsoleSink,
    FileSink,
    HttpSink,
    KafkaSink,
    S3Config,
    S3Sink,
)
from signals_dagster.spec.sources import SqlConfig, source_types
from signals_dagster.spec.sqltext import bind_params, collector_kind
from signals_dagster.spec.templating import render_lake_sql, render_window
from signals_dagster.window import Window
from signals_dagster_tests.conftest import PG_ADMIN
from signals_dagster_tests.servers.http import RecordingServer
from signals_dagster_tests.servers.kafka import TansuBroker, consume_all
from signals_dagster_tests.servers.prometheus import HISTORY, PrometheusServer
from signals_dagster_tests.servers.s3 import S3Server

LATTE = Path(__file__).parent / "data" / "latte"
OWN = sorted(LATTE.glob("*.yaml"))
UPSTREAM = LATTE / "upstream"
UPSTREAM_FILES = sorted(UPSTREAM.glob("*.yaml"))
UPSTREAM_COMMIT = "25c6e5a559edf658e8e025dad7324c50489b7ff3"
REPO = Path(__file__).parents[1]
# Every variable the latte files read; the tests set the ones they need.
LATTE_ENV = (
    "SC_POSTGRES_HOST",
    "SC_POSTGRES_USER",
    "SC_POSTGRES_DB",
    "SC_MONGO_HOST",
    "SC_MONGO_DB",
    "SC_PROM_HOST",
    "SC_KAFKA_HOST",
    "SC_VECTOR_HOST",
    "LATTE_AUDIT_LOG",
    "LATTE_S3_BUCKET",
    "LATTE_S3_ENDPOINT",
    "LATTE_S3_HOST",
    "LATTE_INGEST_TOKEN",
)
TOKEN = "tok-latte-1234"
# latte's `metric.s3` is the lake source `type: s3`: until that source is in the union, the
# files using it cannot validate (their alias resolves to nothing).
LAKE = "s3" in source_types()
needs_lake = pytest.mark.skipif(not LAKE, reason="the lake source (type: s3) is not merged yet")


def _lake(path: Path) -> bool:
    return "metric.s3" in path.read_text(encoding="utf-8")


def _param(path: Path) -> Any:
    return pytest.param(path, id=path.stem, marks=[needs_lake] if _lake(path) else [])


@pytest.fixture(autouse=True)
def _latte_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in LATTE_ENV:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("LATTE_INGEST_TOKEN", TOKEN)  # the HTTP sink's Authorization header


def own(name: str) -> CollectorSpec:
    """One of data/latte/*.yaml, validated unchanged."""
    return load_file(LATTE / name)


def _sql(spec: CollectorSpec) -> str:
    assert isinstance(spec.source.config, SqlConfig)
    return spec.source.config.sql


def parse(text: str) -> tuple[CollectorSpec | None, list[tuple[int, str, str]]]:
    spec, _, problems = parse_text(text, "c.yaml", {"LATTE_INGEST_TOKEN": TOKEN})
    return spec, [(p.line, p.path, p.message) for p in problems]


# ---- latte's own examples --------------------------------------------------------------------


def test_upstream_examples_are_latte_s_last_commit() -> None:
    assert [p.name for p in UPSTREAM_FILES] == [
        "mongo.http.yaml",
        "postgres.fileaudit.yaml",
        "postgres.http.yaml",
        "postgres.kafka.yaml",
        "postgres.s3.yaml",
        "postgres.stdout.yaml",
        "prometheus.fileaudit.yaml",
        "s3.kafka.yaml",
    ]
    for path in UPSTREAM_FILES:
        assert UPSTREAM_COMMIT in path.read_text(encoding="utf-8").splitlines()[0]


def _validate(*paths: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)  # the latte variables as the test set them (_latte_env)
    return subprocess.run(
        [sys.executable, "-m", "signals_dagster.cli", "validate", *map(str, paths)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
        env=env,  # $SIGNALS_DATA_DIR holds /tmp: latte's audit log /tmp/log/latte.audit.log
        check=False,
    )


@pytest.mark.parametrize("path", [_param(p) for p in UPSTREAM_FILES])
def test_upstream_example_validates_unchanged(path: Path) -> None:
    result = _validate(path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == "ok: 1 collector(s) valid in 1 file(s)"


def test_upstream_folder_only_repeats_a_collector_name() -> None:
    # latte never compares names across files; here a name is an asset key, so one folder may
    # not hold two (postgres.fileaudit.yaml and postgres.kafka.yaml share theirs).
    result = _validate(UPSTREAM)
    lines = (result.stdout + result.stderr).strip().splitlines()
    problems = [line for line in lines if ": " in line and "problem(s)" not in line]
    expected = [
        f"{UPSTREAM / 'postgres.kafka.yaml'}:3: name: duplicate collector name "
        f"'postgres_users_total_24h' (also in {UPSTREAM / 'postgres.fileaudit.yaml'}:3)"
    ]
    if not LAKE:
        expected.append(f"{UPSTREAM / 's3.kafka.yaml'}:19: source.type: unknown type 'metric.s3'")
    assert len(problems) == len(expected), lines
    for line, want in zip(sorted(problems), sorted(expected), strict=True):
        assert line.startswith(want), (line, want)


def test_upstream_examples_parse_to_what_they_say() -> None:
    specs = {p.name: load_file(p) for p in UPSTREAM_FILES if not _lake(p) or LAKE}
    kafka = specs["postgres.kafka.yaml"].sinks["kafka"]
    assert isinstance(kafka, KafkaSink)
    assert kafka.config.brokers == ["localhost:9092"]
    assert specs["postgres.kafka.yaml"].source.type == "postgres"
    assert specs["mongo.http.yaml"].source.type == "mongodb"
    vector = specs["mongo.http.yaml"].sinks["vector"]
    assert isinstance(vector, HttpSink)
    assert vector.config.method == "POST"
    s3 = specs["postgres.s3.yaml"].sinks["s3"]
    assert isinstance(s3, S3Sink)
    assert s3.config.endpoint_url == "http://localhost:4566"
    assert s3.config.force_path_style is True
    assert s3.config.partition == "year={{.Year}}/month={{.Month}}/day={{.Day}}"
    assert (s3.config.format, s3.config.extension) == ("jsonl", "json")  # latte's default
    prom = specs["prometheus.fileaudit.yaml"]
    assert prom.invocation_strategy == "historic_tumbling_window"
    assert prom.metric.grain == "24h"  # time.window, not the 4h interval
    assert prom.schedule is not None
    assert prom.schedule.interval == timedelta(hours=4)
    stdout = specs["postgres.stdout.yaml"]
    assert stdout.schedule is not None
    assert stdout.schedule.cron == "* * * * *"
    for spec in specs.values():
        assert spec.collector is not None
        assert spec.collector.type == "metric"


def test_upstream_env_variables_are_expanded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SC_KAFKA_HOST", "kafka.internal:9093")
    monkeypatch.setenv("SC_POSTGRES_HOST", "db.internal")
    spec = load_file(UPSTREAM / "postgres.kafka.yaml")
    kafka = spec.sinks["kafka"]
    assert isinstance(kafka, KafkaSink)
    assert kafka.config.brokers == ["kafka.internal:9093"]
    assert spec.source.config.uri == (
        "postgresql://test:test@db.internal:5432/test?sslmode=disable"
    )


# ---- our latte-format files: every key -------------------------------------------------------


def test_own_files_cover_every_latte_key() -> None:
    text = "\n".join(p.read_text(encoding="utf-8") for p in OWN)
    for needle in (
        "invocation_strategy: tick",
        "invocation_strategy: historic_tumbling_window",
        "state_store:",
        "type: metric.postgres",
        "type: metric.mongodb",
        "type: metric.prometheus",
        "type: metric.s3",
        "window: 24h",
        'uri: \'{{ getEnvOrDefault "SC_KAFKA_HOST"',
        "method: POST",
        "headers:",
        "region:",
        "endpoint:",
        "force_path_style: true",
        "prefix:",
        "partition: year={{.Year}}/month={{.Month}}/day={{.Day}}",
        "{{ .Hour }}",
        "{{ .Minute }}",
        "{{.Partition}}",
        "batch_size:",
        "type: json",
        "type: parquet",
    ):
        assert needle in text, needle


@pytest.mark.parametrize("path", [_param(p) for p in OWN])
def test_own_file_validates_unchanged(path: Path) -> None:
    spec = load_file(path)
    assert spec.collector is not None
    assert not spec.source.type.startswith("metric.")  # latte's name resolved to the union's


def test_own_files_validate_with_the_cli() -> None:
    files = [p for p in OWN if not _lake(p) or LAKE]
    result = _validate(*files)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == f"ok: {len(files)} collector(s) valid in {len(files)} file(s)"


def test_tick_collector_keys() -> None:
    spec = own("postgres_kafka_tick.yaml")
    assert spec.invocation_strategy == "tick"
    assert spec.state_store is not None
    assert spec.state_store.type == "memory"
    assert spec.metric.grain == "24h"
    assert collector_kind(bind_params(_sql(spec))) == "snapshot"  # as the query says
    kafka = spec.sinks["kafka"]
    assert isinstance(kafka, KafkaSink)
    assert kafka.config.uri == "localhost:9092"
    assert kafka.config.brokers == ["localhost:9092"]
    assert kafka.config.encoding is not None
    assert kafka.config.encoding.type == "json"
    audit = spec.sinks["audit"]
    assert isinstance(audit, FileSink)
    assert audit.config.path == "/tmp/log/latte.audit.log"
    console = spec.sinks["console"]
    assert isinstance(console, ConsoleSink)
    assert console.config.encoding is not None


def test_tumbling_collector_keys() -> None:
    spec = own("postgres_s3_tumbling.yaml")
    assert spec.invocation_strategy == "historic_tumbling_window"
    assert collector_kind(bind_params(_sql(spec))) == "windowed"
    sink = spec.sinks["s3"]
    assert isinstance(sink, S3Sink)
    config = sink.config
    assert config.region == "us-east-1"
    assert config.bucket == "localstack-latte"
    assert config.endpoint == "http://localhost:4566"
    assert config.endpoint_url == "http://localhost:4566"
    assert config.force_path_style is True
    assert config.prefix == "postgres/signups"
    assert config.partition == "year={{.Year}}/month={{.Month}}/day={{.Day}}"
    assert config.batch_size == 10000
    assert config.format == "jsonl"


def test_parquet_encoding_and_fine_partition() -> None:
    spec = own("postgres_s3_parquet.yaml")
    assert spec.invocation_strategy == "tick"  # no invocation_strategy: latte's default
    assert spec.metric.grain == "1m"
    sink = spec.sinks["s3"]
    assert isinstance(sink, S3Sink)
    assert sink.config.format == "parquet"
    assert sink.config.extension == "parquet"
    assert sink.config.partition == (
        "year={{.Year}}/month={{.Month}}/day={{.Day}}/hour={{.Hour}}/minute={{.Minute}}"
    )
    assert sink.config.force_path_style is False


def test_mongo_http_keys() -> None:
    spec = own("mongo_http.yaml")
    assert spec.source.type == "mongodb"
    assert spec.source.config.agg[0] == {"$group": {"_id": "$account", "value": {"$count": {}}}}
    sink = spec.sinks["vector"]
    assert isinstance(sink, HttpSink)
    assert sink.config.method == "POST"
    assert sink.config.headers == {"X-Collector": "latte", "Authorization": f"Bearer {TOKEN}"}


def test_prometheus_tumbling_window_is_the_grain() -> None:
    spec = own("prometheus_tumbling.yaml")
    assert spec.source.type == "prometheus"
    assert spec.metric.grain == "24h"
    config = spec.source.config
    assert config.time is not None
    assert config.time.window == timedelta(hours=24)


@needs_lake
def test_lake_source_keys() -> None:
    spec = own("s3_lake_kafka.yaml")
    assert spec.source.type == "s3"
    config = spec.source.config
    assert (
        getattr(config, "partition", None)
        == "year={{.Year}}/month={{.Month}}/day={{.Day}}/**/*.json"
    )
    assert "{{.Partition}}" in getattr(config, "sql", "")


def test_latte_names_and_ours_give_one_code_version() -> None:
    from signals_dagster.orchestration.translator import code_version

    text = (LATTE / "postgres_kafka_tick.yaml").read_text(encoding="utf-8")
    ours = text.replace("type: metric.postgres", "type: postgres")
    assert code_version(parse(text)[0]) == code_version(parse(ours)[0])  # type: ignore[arg-type]


# ---- window fields: rendered from the window, never the wall clock ----------------------------


def test_window_fields_render_unpadded() -> None:
    start = datetime(2024, 3, 1, 5, 7, tzinfo=UTC)
    text = "year={{.Year}}/month={{.Month}}/day={{.Day}}/h={{.Hour}}/m={{.Minute}}"
    assert render_window(text, start) == "year=2024/month=3/day=1/h=5/m=7"
    sql = "SELECT * FROM read_json_auto('s3://b/events/{{.Partition}}')"
    partition = "year={{.Year}}/month={{.Month}}/day={{.Day}}/**/*.json"
    assert render_lake_sql(sql, partition, start) == (
        "SELECT * FROM read_json_auto('s3://b/events/year=2024/month=3/day=1/**/*.json')"
    )
    with pytest.raises(ValueError, match=r"\{\{\.Partition\}\} has no value"):
        render_window("{{.Partition}}", start)


def test_s3_object_key_comes_from_the_partition_window() -> None:
    spec = own("postgres_s3_tumbling.yaml")
    sink = spec.sinks["s3"]
    assert isinstance(sink, S3Sink)
    key = object_key(sink.config, spec, "2026-03-01")
    assert key == ("postgres/signups/year=2026/month=3/day=1/latte_signups_daily.2026-03-01.json")


def test_s3_partition_is_rendered_on_the_collector_clock() -> None:
    spec = own("postgres_s3_tumbling.yaml")
    text = (LATTE / "postgres_s3_tumbling.yaml").read_text(encoding="utf-8")
    berlin, _ = parse(text + "partitions: {timezone: Europe/Berlin}\n")
    assert berlin is not None
    sink = berlin.sinks["s3"]
    assert isinstance(sink, S3Sink)
    window = window_for_key(berlin, "2026-03-01")  # 2026-02-28T23:00Z: still March 1 in Berlin
    assert window.start.astimezone(UTC).day == 28
    assert "/day=1/" in object_key(sink.config, berlin, "2026-03-01")
    assert spec.partitions.timezone == "UTC"


def test_s3_latte_layout_has_no_metric_folder() -> None:
    spec = own("postgres_s3_tumbling.yaml")
    sink = spec.sinks["s3"]
    assert isinstance(sink, S3Sink)
    with pytest.raises(SinkError, match="latte's partition layout"):
        metric_prefix(sink.config, spec)


def test_force_path_style_is_the_client_addressing_style() -> None:
    spec = own("postgres_s3_tumbling.yaml")
    sink = spec.sinks["s3"]
    assert isinstance(sink, S3Sink)
    client = default_client(sink.config)
    assert client.meta.config.s3 == {"addressing_style": "path"}
    plain = own("postgres_s3_parquet.yaml").sinks["s3"]
    assert isinstance(plain, S3Sink)
    assert (default_client(plain.config).meta.config.s3 or {}).get("addressing_style") in (
        None,
        "auto",
    )


def test_endpoint_without_scheme_is_https() -> None:
    config = S3Config.model_validate({"bucket": "lake-1", "endpoint": "s3.example.com:4566"})
    assert config.endpoint_url == "https://s3.example.com:4566"


# ---- misuse: located ----------------------------------------------------------------------------

BASE = """name: latte.misuse
collector:
  type: metric
  invocation_strategy: {strategy}
metric:
  name: latte.misuse
  type: COUNT
  tags:
    - key: env
      value: '{tag}'
schedule:
  interval: {interval}
source:
  type: metric.postgres
  config:
    uri: postgresql://app@127.0.0.1:5432/shop
    sql: {sql}
sinks:
  s3:
    type: s3
    config:
      bucket: lake-1
      endpoint: http://127.0.0.1:9000
      prefix: '{prefix}'
      partition: '{partition}'
"""
WINDOWED = "SELECT COUNT(*) AS value FROM t WHERE ts >= :window_start AND ts < :window_end"
DEFAULTS = {
    "strategy": "tick",
    "tag": "prod",
    "interval": "24h",
    "sql": "SELECT COUNT(*) AS value FROM t",
    "prefix": "p",
    "partition": "year={{.Year}}",
}


def misuse(**changes: str) -> list[tuple[int, str, str]]:
    spec, problems = parse(BASE.format(**{**DEFAULTS, **changes}))
    assert (spec is None) == bool(problems)
    return problems


def test_base_of_the_misuse_cases_is_valid() -> None:
    assert misuse() == []
    assert misuse(strategy="historic_tumbling_window", sql=WINDOWED) == []


@pytest.mark.parametrize(
    ("changes", "line", "path", "message"),
    [
        ({"tag": "{{.Year}}"}, 10, "metric.tags[0].value", "unknown template function '.Year'"),
        ({"tag": "{{ .Day }}"}, 10, "metric.tags[0].value", "an S3 sink's partition"),
        ({"prefix": "p/{{.Year}}"}, 24, "sinks.s3.config.prefix", "'.Year'"),
        ({"sql": "'SELECT {{.Year}} AS value'"}, 17, "source.config.sql", "'.Year'"),
        ({"sql": "'SELECT 1 AS value -- {{.Partition}}'"}, 17, "source.config.sql", "'.Partition'"),
        ({"partition": "{{.Partition}}"}, 25, "sinks.s3.config.partition", "'.Partition'"),
        ({"partition": "{{.Week}}"}, 25, "sinks.s3.config.partition", "'.Week'"),
        ({"partition": "y={{.Year}}/../x"}, 25, "sinks.s3.config.partition", "'..' segment"),
        ({"partition": "y={{.Year}} x"}, 25, "sinks.s3.config.partition", "may hold only"),
        (
            {"strategy": "incremental"},
            4,
            "collector.invocation_strategy",
            "incremental is not supported (latte never ran it either): use "
            "historic_tumbling_window",
        ),
        (
            {"strategy": "historic_tumbling_window"},
            17,
            "source.config.sql",
            "historic_tumbling_window collects each closed window of the grain (24h): the query "
            "must select that window with :window_start and :window_end (it uses neither)",
        ),
        ({"strategy": "sliding"}, 4, "collector.invocation_strategy", "'tick', "),
    ],
)
def test_misuse_is_located(changes: dict[str, str], line: int, path: str, message: str) -> None:
    problems = misuse(**changes)
    assert any(p[:2] == (line, path) and message in p[2] for p in problems), problems


def test_interval_longer_than_the_tumbling_window() -> None:
    text = BASE.format(**{**DEFAULTS, "strategy": "historic_tumbling_window", "sql": WINDOWED})
    text = text.replace("  type: COUNT\n", "  type: COUNT\n  grain: 1h\n")
    spec, problems = parse(text.replace("interval: 24h", "interval: 2h"))
    assert spec is None
    assert problems == [
        (
            13,
            "schedule.interval",
            "interval 2h must not exceed the metric grain 1h (historic_tumbling_window collects "
            "every closed window)",
        )
    ]


def test_collector_type_must_be_metric() -> None:
    text = BASE.format(**DEFAULTS).replace("  type: metric\n", "  type: entity\n")
    _, problems = parse(text)
    assert problems[0][:2] == (3, "collector.type"), problems


def test_time_window_must_be_the_grain() -> None:
    text = (LATTE / "prometheus_tumbling.yaml").read_text(encoding="utf-8")
    hourly = text.replace("  type: COUNT\n", "  type: COUNT\n  grain: 1h\n", 1)
    _, problems = parse(hourly.replace("interval: 4h", "interval: 1h"))
    assert problems == [
        (
            30,  # the grain line moved it down by one
            "source.config.time.window",
            "time.window 24h must equal the metric grain 1h: historic_tumbling_window collects "
            "windows of the grain",
        )
    ]
    _, problems = parse(text.replace("window: 24h", "window: 25h"))
    assert [(line, path) for line, path, _ in problems] == [(29, "source.config.time.window")]
    assert "unsupported grain '25h'" in problems[0][2]


SINKS = """name: latte.sinks
metric: {{name: latte.sinks, type: COUNT}}
source:
  type: metric.postgres
  config: {{uri: 'postgresql://app@127.0.0.1:5432/shop', sql: SELECT 1 AS value}}
sinks:
  one:
{sink}
"""


@pytest.mark.parametrize(
    ("sink", "path", "message"),
    [
        (
            "    type: kafka\n    config: {uri: 'a:9092', brokers: ['b:9092'], topic: t}",
            "sinks.one.config",
            "give brokers (a list of host:port) or latte's uri, not both",
        ),
        (
            "    type: kafka\n    config: {uri: 'nohost', topic: t}",
            "sinks.one.config.uri",
            "must be host:port",
        ),
        (
            "    type: kafka\n    config: {uri: 'a:9092', topic: t, encoding: {type: parquet}}",
            "sinks.one.config.encoding",
            "the kafka sink writes each record as JSON",
        ),
        (
            "    type: http\n    config: {uri: 'http://h/x', method: GET}",
            "sinks.one.config.method",
            "use POST (the default), PUT or PATCH",
        ),
        (
            "    type: s3\n    config: {bucket: lake-1, endpoint: 'h:1', endpoint_url: 'http://x'}",
            "sinks.one.config",
            "give endpoint_url or latte's endpoint, not both",
        ),
        (
            "    type: s3\n    config: {bucket: lake-1, endpoint: 'ftp://h'}",
            "sinks.one.config.endpoint",
            "http:// or https://",
        ),
        (
            "    type: s3\n    config: {bucket: lake-1, format: parquet, encoding: {type: json}}",
            "sinks.one.config",
            "encoding json and format parquet disagree",
        ),
        (
            "    type: s3\n    config: {bucket: lake-1, batch_size: 0}",
            "sinks.one.config.batch_size",
            "greater than 0",
        ),
        (
            "    type: file\n    config: {path: /tmp/x.log, encoding: {type: parquet}}",
            "sinks.one.config.encoding",
            "the file sink writes each record as JSON",
        ),
    ],
)
def test_latte_sink_keys_misused(sink: str, path: str, message: str) -> None:
    _, problems = parse(SINKS.format(sink=sink))
    assert any(p[1] == path and message in p[2] for p in problems), problems
    assert all(p[0] >= 7 for p in problems)  # on the sink's own lines


def test_http_method_is_sent(http_server: RecordingServer) -> None:
    from signals_dagster.sinks.http import HttpWriter
    from signals_dagster.spec.sinks import HttpConfig

    sent: list[str] = []

    class Session:
        def request(self, method: str, uri: str, **_: object) -> Any:
            import requests

            sent.append(method)
            response = requests.Response()
            response.status_code = 200
            return response

        def close(self) -> None:
            pass

    config = HttpConfig.model_validate({"uri": http_server.url(), "method": "put"})
    writer = HttpWriter(config, Session())  # type: ignore[arg-type]
    spec = own("mongo_http.yaml")
    from signals_dagster.records import build_records

    day = datetime(2026, 3, 1, tzinfo=UTC)
    frame, _, _ = build_records(spec, day, ["value"], [(1,)], day)
    writer.write(spec, None, frame)
    assert sent == ["PUT"]


def test_s3_endpoint_goes_through_egress(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = own("postgres_s3_tumbling.yaml")
    settings = tmp_path / "signals.yaml"
    settings.write_text("egress:\n  allow: ['s3.*.amazonaws.com']\n")
    monkeypatch.setenv("SIGNALS_SETTINGS", str(settings))
    path = tmp_path / "c.yaml"
    path.write_text((LATTE / "postgres_s3_tumbling.yaml").read_text(encoding="utf-8"))
    with pytest.raises(SpecError) as info:
        load_collectors([path], {})
    lines = [(p.line, p.path, p.message) for p in info.value.problems]
    assert (
        46,
        "sinks.s3.config.endpoint",
        "host localhost:4566 is not allowed by egress.allow in signals.yaml (s3.*.amazonaws.com)",
    ) in lines
    sink = spec.sinks["s3"]
    assert isinstance(sink, S3Sink)
    with pytest.raises(
        SinkError, match=r"s3 sink: endpoint http://localhost:4566: host .* egress\.allow"
    ):
        S3Access(sink.config)  # checked again right before any request


def test_kafka_uri_goes_through_egress(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = tmp_path / "signals.yaml"
    settings.write_text("egress:\n  allow: ['kafka.internal:9092']\n")
    monkeypatch.setenv("SIGNALS_SETTINGS", str(settings))
    with pytest.raises(SpecError) as info:
        load_collectors([UPSTREAM / "postgres.kafka.yaml"], {})
    lines = [(p.line, p.path, p.message) for p in info.value.problems]
    assert any(
        (line, path) == (37, "sinks.kafka.config.uri") and "localhost:9092" in message
        for line, path, message in lines
    ), lines


def test_window_field_never_reaches_a_secret_or_a_key(monkeypatch: pytest.MonkeyPatch) -> None:
    # A value read from the environment stays text: a `{{.Year}}` in it is not rendered in a
    # field that takes no window field.
    text = BASE.format(**{**DEFAULTS, "tag": '{{ getEnv "LATTE_TAG" }}'})
    spec, _, problems = parse_text(text, "c.yaml", {"LATTE_TAG": "{{.Year}}"})
    assert problems == []
    assert spec is not None
    assert spec.metric.static_tags == {"env": "{{.Year}}"}


# ---- runs against real servers -----------------------------------------------------------------


@pytest.fixture(scope="module")
def latte_db() -> Iterator[str]:
    """A throwaway Postgres database with latte's `users` table (account, created_at)."""
    name = f"latte_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = PG_ADMIN.rsplit("/", 1)[0] + f"/{name}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE TABLE users (account text, created_at timestamptz)")
        rows = [("google", "2026-03-01 01:00+00")] * 3 + [("amazon", "2026-03-01 23:59+00")]
        rows += [("google", "2026-03-02 00:00+00")]
        with conn.cursor() as cur:
            cur.executemany("INSERT INTO users VALUES (%s, %s)", rows)
    try:
        yield name
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def pg_env(latte_db: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SC_POSTGRES_USER", "postgres")
    monkeypatch.setenv("SC_POSTGRES_DB", latte_db)


def _run(path: Path, partition: str | None = None) -> tuple[int, str]:
    out = io.StringIO()
    count = invoke_collector(str(path), partition, False, out)
    return count, out.getvalue()


@pytest.mark.usefixtures("pg_env")
def test_tick_postgres_to_kafka_file_and_console(
    kafka_broker: TansuBroker, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    audit = tmp_path / "latte.audit.log"
    monkeypatch.setenv("LATTE_AUDIT_LOG", str(audit))
    monkeypatch.setenv("SC_KAFKA_HOST", kafka_broker.bootstrap)
    count, printed = _run(LATTE / "postgres_kafka_tick.yaml")
    assert count == 2
    records = [json.loads(line) for line in printed.splitlines()]
    values = {r["tags"]["customer"]: r["value"] for r in records}
    assert values == {"google": 4, "amazon": 1}
    assert all(r["tags"]["env"] == "prod" for r in records)
    assert all(r["name"] == "latte.users.total" for r in records)
    assert [json.loads(line) for line in audit.read_text().splitlines()] == records
    messages = [
        m
        for m in consume_all(kafka_broker.bootstrap, "latte")
        if dict(m.headers() or [])["collector"] == b"latte_users_total_tick"
    ]
    assert sorted(json.loads(m.value())["uuid"] for m in messages) == sorted(
        r["uuid"] for r in records
    )


@pytest.mark.usefixtures("pg_env", "aws_env")
def test_tumbling_postgres_to_s3_in_latte_layout(
    s3_server: S3Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    bucket = s3_server.new_bucket()
    monkeypatch.setenv("LATTE_S3_BUCKET", bucket)
    monkeypatch.setenv("LATTE_S3_ENDPOINT", s3_server.endpoint)
    path = LATTE / "postgres_s3_tumbling.yaml"
    assert _run(path, "2026-03-01")[0] == 2
    assert _run(path, "2026-03-02")[0] == 1
    assert _run(path, "2026-03-01")[0] == 2  # again: the same object, replaced
    assert s3_server.keys(bucket) == [
        "postgres/signups/year=2026/month=3/day=1/latte_signups_daily.2026-03-01.json",
        "postgres/signups/year=2026/month=3/day=2/latte_signups_daily.2026-03-02.json",
    ]
    body = s3_server.client().get_object(Bucket=bucket, Key=s3_server.keys(bucket)[0])["Body"]
    lines = [json.loads(line) for line in body.read().decode().splitlines()]
    assert {r["tags"]["customer"]: r["value"] for r in lines} == {"google": 3, "amazon": 1}
    assert {r["grain_datetime"] for r in lines} == {"2026-03-01T00:00:00Z"}
    spec = load_file(path)
    sink = spec.sinks["s3"]
    assert isinstance(sink, S3Sink)
    back = read_partitions(sink.config, spec, ["2026-03-02"])
    assert back["value"].tolist() == [1.0]
    latest = read_partitions(sink.config, spec, None)
    assert latest["grain_datetime"].iloc[0] == datetime(2026, 3, 2, tzinfo=UTC)
    access = S3Access(sink.config)
    try:
        assert [date for _, date in access.collector_objects(spec)] == ["2026-03-01", "2026-03-02"]
    finally:
        access.close()


@pytest.mark.usefixtures("pg_env", "aws_env")
def test_tick_postgres_to_s3_parquet_down_to_the_minute(
    s3_server: S3Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    bucket = s3_server.new_bucket()
    monkeypatch.setenv("LATTE_S3_BUCKET", bucket)
    monkeypatch.setenv("LATTE_S3_ENDPOINT", s3_server.endpoint)
    before = current_window(own("postgres_s3_parquet.yaml"))
    assert _run(LATTE / "postgres_s3_parquet.yaml")[0] == 2
    (key,) = s3_server.keys(bucket)
    match = re.fullmatch(
        r"postgres/total-users/year=(\d+)/month=(\d+)/day=(\d+)/hour=(\d+)/minute=(\d+)/"
        r"latte_users_total_1m\.(.+)\.parquet",
        key,
    )
    assert match is not None, key
    start = datetime.strptime(match[6], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    assert start - before.start in (timedelta(0), timedelta(minutes=1))  # the run's own window
    parts = [str(start.year), str(start.month), str(start.day), str(start.hour)]
    assert list(match.groups()[:5]) == [*parts, str(start.minute)]  # unpadded, from the window
    body = s3_server.client().get_object(Bucket=bucket, Key=key)["Body"].read()
    table = pq.read_table(io.BytesIO(body))
    assert sorted(table.column("value").to_pylist()) == [1.0, 4.0]


def test_mongo_to_http_with_method_and_headers(
    mongo_uri: str, http_server: RecordingServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    import pymongo

    database = f"latte_{uuid.uuid4().hex[:8]}"
    client: Any
    with pymongo.MongoClient(mongo_uri) as client:
        client[database]["users"].insert_many(
            [{"account": "google"}, {"account": "google"}, {"account": "amazon"}]
        )
    host = mongo_uri.split("//", 1)[1].split("/", 1)[0]
    monkeypatch.setenv("SC_MONGO_HOST", host)
    monkeypatch.setenv("SC_MONGO_DB", database)
    monkeypatch.setenv("SC_VECTOR_HOST", f"127.0.0.1:{http_server.port}")
    assert _run(LATTE / "mongo_http.yaml")[0] == 2
    (request,) = http_server.requests
    assert (request.method, request.path) == ("POST", "/metrics")
    assert request.headers["X-Collector"] == "latte"
    assert request.headers["Authorization"] == f"Bearer {TOKEN}"
    body = request.json()
    assert {r["tags"]["account"]: r["value"] for r in body} == {"google": 2, "amazon": 1}


def test_prometheus_tumbling_window_collects_the_window(
    prometheus: PrometheusServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    audit = tmp_path / "latte.audit.log"
    monkeypatch.setenv("LATTE_AUDIT_LOG", str(audit))
    monkeypatch.setenv("SC_PROM_HOST", prometheus.url.removeprefix("http://"))
    spec = own("prometheus_tumbling.yaml")
    start = datetime(2025, 10, 25, tzinfo=UTC)  # the server's history predates partitions.start
    window = Window("2025-10-25", start, start + timedelta(hours=24))
    (collected,) = collect(spec, [window])
    expected: dict[str, int] = {}
    for key, samples in HISTORY.counters.items():
        region = dict(key)["region"]
        increase = HISTORY.value_at(samples, window.end) - HISTORY.value_at(samples, start)
        expected[region] = expected.get(region, 0) + increase
    records = collected.records.to_pylist()
    assert {dict(r["tags"])["region"]: r["value"] for r in records} == expected
    assert all(dict(r["tags"])["env"] == "prod" for r in records)
    writers = open_writers(spec, include_console=False)
    try:
        writers["audit"].write(spec, window.key, collected.records)
    finally:
        close_writers(writers)
    assert len(audit.read_text().splitlines()) == len(expected)


def test_latte_folder_builds_dagster_definitions(tmp_path: Path) -> None:
    from signals_dagster.catalog import load_catalog
    from signals_dagster.orchestration.factory import build_definitions

    folder = tmp_path / "collectors"
    folder.mkdir()
    for path in OWN:
        if not _lake(path) or LAKE:
            (folder / path.name).write_text(path.read_text(encoding="utf-8"))
    defs = build_definitions(load_catalog(str(folder)), str(folder))
    graph = defs.resolve_asset_graph()
    names = {key.to_user_string() for key in graph.get_all_asset_keys()}
    assert {"latte_orders_24h", "latte_signups_daily", "latte_users_total_tick"} <= names
    schedule = defs.resolve_schedule_def("latte_orders_24h_schedule")
    assert schedule.cron_schedule == "0 0 * * *"  # each 24h window once, when it closes


@needs_lake
@pytest.mark.usefixtures("aws_env")
def test_lake_source_to_kafka_reads_the_window_s_partition(
    s3_server: S3Server, kafka_broker: TansuBroker, monkeypatch: pytest.MonkeyPatch
) -> None:
    # latte's bucket and prefix stand in the file (and its SQL): the test makes that bucket.
    client = s3_server.client()
    with contextlib.suppress(client.exceptions.BucketAlreadyOwnedByYou):
        client.create_bucket(Bucket="localstack-latte")
    events = {
        "activity-events/year=2026/month=3/day=1/a.json": [
            {"user_id": "u1", "customer_id": "acme"},
            {"user_id": "u1", "customer_id": "acme"},
            {"user_id": "u2", "customer_id": "acme"},
        ],
        "activity-events/year=2026/month=3/day=1/hour=7/b.json": [
            {"user_id": "u3", "customer_id": "globex"},
        ],
        "activity-events/year=2026/month=3/day=2/c.json": [  # another window
            {"user_id": "u9", "customer_id": "acme"},
        ],
    }
    for key, rows in events.items():
        body = "\n".join(json.dumps(row) for row in rows).encode()
        client.put_object(Bucket="localstack-latte", Key=key, Body=body)
    monkeypatch.setenv("LATTE_S3_HOST", s3_server.endpoint)
    monkeypatch.setenv("SC_KAFKA_HOST", kafka_broker.bootstrap)
    count, printed = _run(LATTE / "s3_lake_kafka.yaml", "2026-03-01")
    assert count == 2
    records = [json.loads(line) for line in printed.splitlines()]
    assert {r["tags"]["customer"]: r["value"] for r in records} == {"acme": 2, "globex": 1}
    messages = [
        m
        for m in consume_all(kafka_broker.bootstrap, "latte")
        if dict(m.headers() or [])["collector"] == b"latte_daily_users"
    ]
    assert len(messages) == 2
