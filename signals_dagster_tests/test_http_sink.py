"""The HTTP sink against a real HTTP server in the test process: batches, retries, failures."""

import json
import time
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from signals_dagster.catalog import load_catalog
from signals_dagster.errors import SinkError
from signals_dagster.orchestration.factory import build_definitions
from signals_dagster.records import build_records, to_dicts
from signals_dagster.sinks.http import HttpWriter
from signals_dagster.spec.loader import load_file
from signals_dagster.spec.models import CollectorSpec
from signals_dagster.spec.sinks import HttpConfig
from signals_dagster_tests.servers.common import free_port
from signals_dagster_tests.servers.http import Answer, RecordingServer
from signals_dagster_tests.sqlite_shop import collector_yaml, expected_sums, make_shop

GRAIN = datetime(2026, 2, 3, tzinfo=UTC)


def http_sink(uri: str, **config: object) -> str:
    """The YAML of an http sink (appended under `sinks:`)."""
    lines = [f"      {key}: {json.dumps(value)}" for key, value in config.items()]
    return "\n".join(["  http:", "    type: http", "    config:", f"      uri: '{uri}'", *lines])


@pytest.fixture
def spec(tmp_path: Path) -> CollectorSpec:
    path = tmp_path / "c.yaml"
    path.write_text(collector_yaml(tmp_path / "none.sqlite", tmp_path / "audit.jsonl"))
    return load_file(path)


def records(spec: CollectorSpec, count: int) -> pd.DataFrame:
    rows = ((f"cust-{i:03d}", i * 1.5) for i in range(count))
    frame, _, _ = build_records(spec, GRAIN, ["customer", "value"], rows, datetime.now(UTC))
    return frame


def writer(server: RecordingServer, **config: object) -> HttpWriter:
    settings: dict[str, object] = {"uri": server.url(), "backoff": "10ms", "timeout": "2s"}
    return HttpWriter(HttpConfig.model_validate({**settings, **config}))


def test_records_are_posted_as_json_arrays_in_batches(
    http_server: RecordingServer, spec: CollectorSpec
) -> None:
    frame = records(spec, 12)
    sink = writer(http_server, batch_size=5, headers={"Authorization": "Bearer t0ken"})
    try:
        result = sink.write(spec, "2026-02-03", frame)
    finally:
        sink.close()
    assert [len(r.json()) for r in http_server.requests] == [5, 5, 2]
    sent = [item for r in http_server.requests for item in r.json()]
    assert sent == to_dicts(frame)  # the seed's records, unchanged, in order
    first = http_server.requests[0]
    assert first.path == "/ingest"
    assert first.headers["Content-Type"] == "application/json"
    assert first.headers["Authorization"] == "Bearer t0ken"
    assert result["records"] == 12
    assert result["batches"] == 3
    assert result["retries"] == 0
    assert result["bytes"] == sum(len(r.body) for r in http_server.requests)


def test_an_empty_partition_posts_nothing(
    http_server: RecordingServer, spec: CollectorSpec
) -> None:
    result = writer(http_server).write(spec, "2026-02-03", records(spec, 0))
    assert http_server.requests == []
    assert result["batches"] == 0


@pytest.mark.parametrize(
    "answers",
    [
        [Answer(503), Answer(503)],
        [Answer(429, headers={"Retry-After": "0"})],
        [Answer(502, body="<html>bad gateway</html>"), Answer(500)],
    ],
)
def test_retried_until_accepted(
    http_server: RecordingServer, spec: CollectorSpec, answers: list[Answer]
) -> None:
    http_server.script(*answers)
    frame = records(spec, 3)
    result = writer(http_server, retries=3).write(spec, "2026-02-03", frame)
    assert result["retries"] == len(answers)
    assert len(http_server.requests) == len(answers) + 1
    assert {r.body for r in http_server.requests} == {http_server.requests[0].body}  # the same


def test_backoff_doubles(http_server: RecordingServer, spec: CollectorSpec) -> None:
    http_server.script(Answer(503), Answer(503), Answer(503))
    started = time.monotonic()
    writer(http_server, retries=3, backoff="100ms").write(spec, None, records(spec, 1))
    assert time.monotonic() - started >= 0.1 + 0.2 + 0.4


def test_a_client_error_fails_at_once_naming_status_and_redacted_uri(
    http_server: RecordingServer, spec: CollectorSpec
) -> None:
    http_server.script(Answer(400, body='{"error": "value must be positive"}'))
    uri = http_server.url("/ingest?api_key=s3cretkey", userinfo="user:hunter2pw")
    sink = writer(http_server, uri=uri, retries=3)
    with pytest.raises(SinkError) as info:
        sink.write(spec, "2026-02-03", records(spec, 2))
    message = str(info.value)
    assert "400 Bad Request" in message
    assert "not retried" in message
    assert "value must be positive" in message  # the server's explanation is passed on
    assert f"http://user:***@127.0.0.1:{http_server.port}/ingest?api_key=***" in message
    assert "hunter2pw" not in message
    assert not info.value.transient  # the same request would be refused again
    assert "s3cretkey" not in message
    assert len(http_server.requests) == 1
    assert http_server.requests[0].headers["Authorization"].startswith("Basic ")


def test_server_errors_fail_after_the_retries(
    http_server: RecordingServer, spec: CollectorSpec
) -> None:
    http_server.script(*[Answer(500)] * 10)
    with pytest.raises(SinkError) as info:
        writer(http_server, retries=2).write(spec, "2026-02-03", records(spec, 2))
    message = str(info.value)
    assert "after 3 attempt(s)" in message
    assert "500 Internal Server Error" in message
    assert "batch 1/1 of partition 2026-02-03" in message
    assert info.value.transient  # Dagster's RetryPolicy may try the step again later
    assert len(http_server.requests) == 3


def test_a_slow_server_times_out_and_is_retried(
    http_server: RecordingServer, spec: CollectorSpec
) -> None:
    http_server.script(Answer(200, delay=1.0))
    result = writer(http_server, timeout="200ms", retries=2).write(spec, None, records(spec, 1))
    assert result["retries"] == 1


def test_connection_refused_fails_after_the_retries(spec: CollectorSpec) -> None:
    config = HttpConfig(uri=f"http://127.0.0.1:{free_port()}/x", retries=2, backoff=0.01)
    with pytest.raises(SinkError) as info:
        HttpWriter(config).write(spec, "2026-02-03", records(spec, 1))
    assert "after 3 attempt(s)" in str(info.value)
    assert "ConnectionError" in str(info.value)


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"retries": -1}, "greater than or equal to 0"),
        ({"retries": 21}, "less than or equal to 20"),
        ({"backoff": "0s"}, "must be a positive duration"),
        ({"batch_size": 0}, "greater than 0"),
        ({"uri": "ftp://x/y"}, "http:// or https://"),
    ],
)
def test_config_validation(config: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        HttpConfig.model_validate({"uri": "http://127.0.0.1:1/x", **config})


def test_a_collector_with_an_http_sink_materialises(
    http_server: RecordingServer, tmp_path: Path
) -> None:
    folder = tmp_path / "collectors"
    folder.mkdir()
    db = make_shop(tmp_path / "shop.sqlite")
    audit = tmp_path / "audit.jsonl"
    sink = http_sink(http_server.url(), batch_size=2, backoff="10ms")
    (folder / "c.yaml").write_text(collector_yaml(db, audit, extra=sink))
    http_server.script(Answer(503))
    defs = build_definitions(load_catalog(str(folder)), str(folder))
    instance = dg.DagsterInstance.ephemeral()
    result = dg.materialize(
        list(defs.assets or []),
        resources=defs.resources,
        instance=instance,
        partition_key="2026-02-03",
    )
    assert result.success
    posted = [item for r in http_server.requests[1:] for item in r.json()]
    expected = expected_sums(db, "2026-02-03")
    assert {r["tags"]["customer"]: r["value"] for r in posted} == pytest.approx(expected)
    assert posted == [json.loads(line) for line in audit.read_text().splitlines()]
    event = instance.get_latest_materialization_event(dg.AssetKey("shop_revenue_daily"))
    assert event is not None
    assert event.asset_materialization is not None
    confirmed = json.loads(event.asset_materialization.metadata["sink_http"].value)  # type: ignore[arg-type]
    assert confirmed["records"] == len(expected)
    assert confirmed["retries"] == 1
    assert confirmed["uri"] == http_server.url()
