"""The Prometheus source against a real Prometheus holding known, backfilled history.

Expectations come from the samples the fixture wrote (servers/prometheus.py), never from
Prometheus itself.
"""

from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from signals_dagster.collect import Collected, collect
from signals_dagster.errors import CollectorError, SourceError, SpecError
from signals_dagster.orchestration.partitions import window_for_key
from signals_dagster.records import to_pandas
from signals_dagster.sources.base import query_shape
from signals_dagster.sources.prometheus import PrometheusSource, query_url, render_query
from signals_dagster.spec.loader import load_file
from signals_dagster.spec.models import CollectorSpec
from signals_dagster.spec.sources import PrometheusConfig
from signals_dagster.window import Window
from signals_dagster_tests.servers.common import free_port
from signals_dagster_tests.servers.prometheus import (
    COUNTER,
    GAUGE,
    History,
    PrometheusServer,
)
from signals_dagster_tests.source_helpers import (
    CONSOLE,
    collector_yaml,
    file_sink,
    materialise_partition,
)

ROOT = Path(__file__).resolve().parents[1]
LATER = datetime(2026, 1, 1, tzinfo=UTC)
FUTURE = datetime(2030, 1, 1, tzinfo=UTC)  # every window of the unit tests has closed
DAYS = [f"2025-10-{d}" for d in range(24, 29)]
INCREASE = f"increase({COUNTER}[$__range])"
Write = Callable[..., Path]


def collector(
    uri: str,
    query: str,
    *,
    sql: str | None = None,
    timezone: str = "UTC",
    grain: str = "24h",
    extra: str = "",
    sink: str = CONSOLE,
) -> str:
    """A Prometheus collector YAML."""
    config = [f"uri: '{uri}'", f"query: '{query}'"]
    config += ["sql: |", *(f"  {line}" for line in sql.splitlines())] if sql else []
    config += [extra] if extra else []
    return collector_yaml(
        "shop.prom.orders", "prometheus", config, grain=grain, timezone=timezone, sink=sink
    )


def load(write_collector: Write, text: str) -> CollectorSpec:
    """Write a collector file and load it."""
    return load_file(write_collector(text))


def run(spec: CollectorSpec, key: str) -> Collected:
    """Collect one partition."""
    (result,) = collect(spec, [window_for_key(spec, key)], now=LATER)
    return result


def series_key(tags: dict[str, str]) -> tuple[tuple[str, str], ...]:
    """The labels of a record's series: its tags without the static env=test."""
    assert tags["env"] == "test"
    return tuple(sorted((k, v) for k, v in tags.items() if k != "env"))


def tagged(result: Collected) -> dict[tuple[tuple[str, str], ...], float]:
    """{series labels: value} of a collection."""
    records = to_pandas(result.records)
    return {series_key(t): v for t, v in zip(records["tags"], records["value"], strict=True)}


def increases(history: History, start: datetime, end: datetime) -> dict[tuple, float]:
    """Per-series counter increase over [start, end] from the written samples."""
    return {
        key: history.value_at(samples, end) - history.value_at(samples, start)
        for key, samples in history.counters.items()
    }


def test_per_day_increase_equals_the_written_samples(
    prometheus: PrometheusServer, write_collector: Write
) -> None:
    spec = load(write_collector, collector(prometheus.query_url, INCREASE))
    assert query_shape(spec).kind == "windowed"
    results = collect(spec, [window_for_key(spec, day) for day in DAYS], now=LATER)
    for result in results:
        expected = increases(prometheus.history, result.window.start, result.window.end)
        assert tagged(result) == pytest.approx(expected), result.window.key
        assert min(expected.values()) > 0
    # Labels become tags (account and region); distinct days give distinct values.
    assert {k for k, _ in next(iter(tagged(results[0])))} == {"account", "region"}
    assert len({to_pandas(r.records)["value"].sum() for r in results}) == len(DAYS)


def test_range_is_the_real_length_of_a_dst_day(
    prometheus: PrometheusServer, write_collector: Write
) -> None:
    text = collector(prometheus.query_url, INCREASE, timezone="Europe/Berlin")
    spec = load(write_collector, text)
    window = window_for_key(spec, "2025-10-26")
    assert PrometheusSource(spec.source.config, "Europe/Berlin").render(window) == (
        f"increase({COUNTER}[25h])"
    )
    expected = increases(prometheus.history, window.start, window.end)
    assert tagged(run(spec, "2025-10-26")) == pytest.approx(expected)


def test_time_expression_starts_the_range_at_start_of_day(
    prometheus: PrometheusServer, write_collector: Write
) -> None:
    text = collector(
        prometheus.query_url, INCREASE, grain="1h", extra="time_expression: $start_of_day"
    )
    spec = load(write_collector, text)
    assert query_shape(spec).kind == "as-of"
    result = run(spec, "2025-10-25-05:00")
    day = datetime(2025, 10, 25, tzinfo=UTC)
    expected = increases(prometheus.history, day, day + timedelta(hours=6))
    assert tagged(result) == pytest.approx(expected)
    assert to_pandas(result.records)["grain_datetime"].iloc[0] == day + timedelta(hours=5)


def test_without_range_it_is_as_of_window_end_and_drops_name(
    prometheus: PrometheusServer, write_collector: Write
) -> None:
    spec = load(write_collector, collector(prometheus.query_url, GAUGE))
    assert query_shape(spec).kind == "as-of"
    result = run(spec, "2025-10-27")
    end = datetime(2025, 10, 28, tzinfo=UTC)
    expected = {
        key: prometheus.history.value_at(samples, end)
        for key, samples in prometheus.history.gauges.items()
    }
    assert tagged(result) == expected  # no __name__ tag
    scalar = load(write_collector, collector(prometheus.query_url, f"scalar(sum({GAUGE}))"))
    assert tagged(run(scalar, "2025-10-27")) == {(): sum(expected.values())}


def test_seed_style_sql_post_processing(
    prometheus: PrometheusServer, write_collector: Write
) -> None:
    sql = (
        "SELECT\n  metric->>'region' as region,\n  round(value::DOUBLE, 0) as value\n"
        "FROM prom_metrics"
    )
    query = f"sum(round(increase({COUNTER}[$__range]))) by (region)"
    spec = load(write_collector, collector(prometheus.query_url, query, sql=sql))
    window = window_for_key(spec, "2025-10-25")
    expected: dict[tuple, float] = defaultdict(float)
    for key, value in increases(prometheus.history, window.start, window.end).items():
        expected[(("region", dict(key)["region"]),)] += value
    assert tagged(run(spec, "2025-10-25")) == pytest.approx(dict(expected))
    # The table's other columns: the whole label set as JSON and the evaluation time.
    sql = (
        "SELECT metric->>'account' AS account, metric->>'__name__' AS name,\n"
        "  epoch(timestamp)::BIGINT AS at, value FROM prom_metrics"
    )
    spec = load(write_collector, collector(prometheus.query_url, COUNTER, sql=sql))
    result = run(spec, "2025-10-25")
    tags = sorted(to_pandas(result.records)["tags"], key=lambda t: t["account"])
    end = int(window.end.timestamp())
    assert tags == [
        {"account": a, "name": COUNTER, "at": str(end), "env": "test"}
        for a in ("acme", "globex", "initech")
    ]


def test_promql_errors_surface_prometheus_text_redacted(
    prometheus: PrometheusServer, write_collector: Write
) -> None:
    uri = prometheus.query_url.replace("http://", "http://ana:hunter2@")
    spec = load(write_collector, collector(uri, "sum(rate(x[5m]"))
    with pytest.raises(SourceError) as caught:
        run(spec, "2025-10-25")
    message = str(caught.value)
    assert "HTTP 400: bad_data:" in message
    assert "parse error: unclosed left parenthesis" in message
    assert "hunter2" not in message
    assert "http://ana:***@127.0.0.1" in message
    assert not caught.value.transient


def test_http_error_and_timeout_text(prometheus: PrometheusServer, write_collector: Write) -> None:
    spec = load(write_collector, collector(f"{prometheus.url}/nope", COUNTER))
    with pytest.raises(SourceError, match=r"/nope/api/v1/query: HTTP 404 Not Found: 404 page"):
        run(spec, "2025-10-25")
    # Prometheus checks its deadline between evaluation stages: 0.1 ms has passed by the first.
    heavy = f"count_over_time({COUNTER}[5d:1s])"
    spec = load(write_collector, collector(prometheus.url, heavy, extra="timeout: 0.1ms"))
    with pytest.raises(SourceError, match=r"HTTP 503: timeout: query timed out"):
        run(spec, "2025-10-28")


def test_server_down_is_a_clear_transient_failure(write_collector: Write) -> None:
    spec = load(write_collector, collector(f"http://127.0.0.1:{free_port()}", COUNTER))
    with pytest.raises(SourceError, match=r"/api/v1/query: request failed: .*refused") as caught:
        run(spec, "2025-10-25")
    assert caught.value.transient


def test_result_shapes_that_cannot_be_records(
    prometheus: PrometheusServer, write_collector: Write
) -> None:
    spec = load(write_collector, collector(prometheus.url, f"{GAUGE}[5m]"))
    with pytest.raises(CollectorError, match="range vector"):
        run(spec, "2025-10-25")
    clash = f'label_replace({GAUGE}, "value", "$1", "queue", "(.*)")'
    spec = load(write_collector, collector(prometheus.url, clash))
    with pytest.raises(CollectorError, match="label 'value' clashes"):
        run(spec, "2025-10-25")
    spec = load(write_collector, collector(prometheus.url, GAUGE, sql="SELECT nope FROM x"))
    with pytest.raises(CollectorError, match=r"sql post-processing .* failed"):
        run(spec, "2025-10-25")


def test_sql_cannot_reach_files(prometheus: PrometheusServer, write_collector: Write) -> None:
    sql = "SELECT count(*) AS value FROM read_csv('/etc/passwd')"
    spec = load(write_collector, collector(prometheus.url, GAUGE, sql=sql))
    with pytest.raises(CollectorError, match="file system operations are disabled"):
        run(spec, "2025-10-25")


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("http://p:9090/api/v1/query", "http://p:9090/api/v1/query"),
        ("http://p:9090", "http://p:9090/api/v1/query"),
        ("https://p/prom/", "https://p/prom/api/v1/query"),
    ],
)
def test_query_url(uri: str, expected: str) -> None:
    assert query_url(uri) == expected


def test_render_query_forms() -> None:
    query = "increase(x[$__range]) / $__range_s + $__range_ms"
    assert render_query(query, timedelta(days=31)) == "increase(x[744h]) / 2678400 + 2678400000"
    assert render_query("rate(x[$__range])", timedelta(minutes=1)) == "rate(x[1m])"
    config = PrometheusConfig(uri="http://p:9090", query="increase(x[$__range])")
    source = PrometheusSource(config, "UTC")
    feb = Window("2026-02", datetime(2026, 2, 1, tzinfo=UTC), datetime(2026, 3, 1, tzinfo=UTC))
    assert source.render(feb, FUTURE) == "increase(x[672h])"
    # An open window is evaluated now, over what has elapsed of it.
    now = datetime(2026, 2, 10, 6, 30, 15, 250_000, tzinfo=UTC)
    assert source.evaluation(feb, now) == (now.replace(microsecond=0), "increase(x[801015s])")
    berlin = ZoneInfo("Europe/Berlin")
    week = Window(
        "w", datetime(2026, 3, 25, 14, tzinfo=berlin), datetime(2026, 3, 25, 15, tzinfo=berlin)
    )
    week_config = config.model_copy(update={"time_expression": "$start_of_week"})
    # Monday 2026-03-23 00:00 Berlin → Wednesday 15:00: two days and 15 hours.
    assert PrometheusSource(week_config, "Europe/Berlin").render(week, FUTURE) == "increase(x[63h])"


def test_unknown_time_expression_is_a_spec_error(write_collector: Write) -> None:
    text = collector("http://p:9090", "up", extra="time_expression: $start_of_decade")
    with pytest.raises(SpecError, match="time_expression must be one of"):
        load(write_collector, text)


def test_dagster_materialises_a_prometheus_partition(
    prometheus: PrometheusServer, tmp_path: Path
) -> None:
    text = collector(prometheus.query_url, INCREASE, sink=file_sink(tmp_path / "audit.jsonl"))
    records, meta = materialise_partition(text, tmp_path, "2025-10-27", "shop_prom_orders")
    start = datetime(2025, 10, 27, tzinfo=UTC)
    expected = increases(prometheus.history, start, start + timedelta(days=1))
    assert {series_key(r["tags"]): r["value"] for r in records} == expected
    assert {r["grain_datetime"] for r in records} == {"2025-10-27T00:00:00Z"}
    assert meta["record_count"] == 3
    assert meta["value_sum"] == sum(expected.values())


def test_the_example_collector_runs(prometheus: PrometheusServer) -> None:
    env = {"SIGNALS_PROM_URL": prometheus.url}
    spec = load_file(ROOT / "examples" / "prometheus_orders_daily.yaml", env=env)
    assert query_shape(spec).kind == "windowed"
    result = run(spec, "2025-10-26")
    expected: dict[str, float] = defaultdict(float)
    for key, value in increases(prometheus.history, result.window.start, result.window.end).items():
        expected[dict(key)["region"]] += value
    assert {
        t["region"]: v
        for t, v in zip(
            to_pandas(result.records)["tags"], to_pandas(result.records)["value"], strict=True
        )
    } == expected
