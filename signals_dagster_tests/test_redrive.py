"""`signals redrive`: records from a file-sink audit log re-sent unchanged to another sink."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pytest

from signals_dagster.catalog import load_catalog
from signals_dagster.errors import CollectorError
from signals_dagster.orchestration.factory import build_definitions
from signals_dagster.redrive import redrive
from signals_dagster_tests.servers.http import RecordingServer
from signals_dagster_tests.servers.kafka import TansuBroker, consume_all, create_topic
from signals_dagster_tests.sqlite_shop import collector_yaml, make_shop

ROOT = Path(__file__).resolve().parents[1]


def signals(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "signals_dagster.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=os.environ.copy(),
        cwd=ROOT,
    )


def materialize(folder: Path, day: str) -> None:
    defs = build_definitions(load_catalog(str(folder)), str(folder))
    result = dg.materialize(
        list(defs.assets or []),
        resources=defs.resources,
        instance=dg.DagsterInstance.ephemeral(),
        partition_key=day,
    )
    assert result.success


@pytest.fixture(scope="module")
def audit_log(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """An audit log written by real runs: 3 days of shop.revenue (one day twice) and the same
    of another metric in the same file (4 x 3 records each)."""
    tmp = tmp_path_factory.mktemp("redrive")
    folder = tmp / "collectors"
    folder.mkdir()
    db = make_shop(tmp / "shop.sqlite")
    audit = tmp / "audit.jsonl"
    (folder / "revenue.yaml").write_text(collector_yaml(db, audit))
    other = collector_yaml(db, audit, name="shop.count.daily").replace(
        "name: shop.revenue\n", "name: shop.orders\n"
    )
    (folder / "count.yaml").write_text(other.replace("SUM(amount)", "COUNT(*)"))
    for day in ("2026-02-02", "2026-02-03", "2026-02-04", "2026-02-03"):
        materialize(folder, day)
    return {"audit": audit, "db": db, "dir": tmp}


def lines_of(audit: Path, metric: str, grain: str | None = None) -> dict[str, str]:
    """uuid -> the last audit line of that uuid (for one metric, optionally one day)."""
    latest: dict[str, str] = {}
    for line in audit.read_text().splitlines():
        record = json.loads(line)
        if record["name"] == metric and (grain is None or record["grain_datetime"] == grain):
            latest[record["uuid"]] = line
    return latest


def redrive_collector(audit_log: dict[str, Path], sink: str) -> Path:
    """The revenue collector as it is now: its audit sink plus another sink."""
    path = audit_log["dir"] / f"revenue-{time.monotonic_ns()}.yaml"
    path.write_text(collector_yaml(audit_log["db"], audit_log["audit"], extra=sink))
    return path


def kafka_sink(brokers: str, topic: str) -> str:
    return f"  kafka:\n    type: kafka\n    config: {{brokers: ['{brokers}'], topic: {topic}}}"


def test_redrive_into_kafka(kafka_broker: TansuBroker, audit_log: dict[str, Path]) -> None:
    topic = f"redrive-{time.monotonic_ns()}"
    create_topic(kafka_broker.bootstrap, topic)
    collector = redrive_collector(audit_log, kafka_sink(kafka_broker.bootstrap, topic))
    audit = audit_log["audit"]
    result = signals("redrive", str(audit), "--collector", str(collector), "--sink", "kafka")
    assert result.returncode == 0, result.stderr
    expected = lines_of(audit, "shop.revenue")
    assert len(expected) == 9  # 3 customers x 3 days; the re-run day's copies are dropped
    out = result.stdout
    assert f"read 24 record(s) from {audit}; 12 of metric shop.revenue" in out
    assert "3 older duplicate(s) dropped" in out
    assert "2026-02-02: 3 record(s)" in out
    assert "redriven: 9 record(s) in 3 partition(s) to sink kafka (kafka)" in out
    messages = consume_all(kafka_broker.bootstrap, topic, expected=9)
    # Unchanged: same uuids as keys, the same JSON text as the audit log's latest copy.
    assert {m.key().decode(): m.value().decode() for m in messages} == expected
    for message in messages:
        grain = json.loads(message.value())["grain_datetime"]
        assert dict(message.headers())["partition_key"].decode() == grain[:10]


def test_redrive_one_partition(kafka_broker: TansuBroker, audit_log: dict[str, Path]) -> None:
    topic = f"redrive-{time.monotonic_ns()}"
    create_topic(kafka_broker.bootstrap, topic)
    collector = redrive_collector(audit_log, kafka_sink(kafka_broker.bootstrap, topic))
    report = redrive(str(audit_log["audit"]), str(collector), "kafka", "2026-02-03")
    assert (report.matching, report.duplicates, report.sent) == (6, 3, 3)
    assert report.partitions == [("2026-02-03", 3)]
    messages = consume_all(kafka_broker.bootstrap, topic, expected=3)
    expected = lines_of(audit_log["audit"], "shop.revenue", "2026-02-03T00:00:00Z")
    assert {m.key().decode(): m.value().decode() for m in messages} == expected


def test_redrive_into_http(http_server: RecordingServer, audit_log: dict[str, Path]) -> None:
    sink = f"  api:\n    type: http\n    config: {{uri: '{http_server.url()}', batch_size: 2}}"
    collector = redrive_collector(audit_log, sink)
    report = redrive(str(audit_log["audit"]), str(collector), "api")
    assert report.sent == 9
    posted = {r["uuid"]: r for request in http_server.requests for r in request.json()}
    expected = lines_of(audit_log["audit"], "shop.revenue")
    assert posted == {uuid: json.loads(line) for uuid, line in expected.items()}
    assert len(http_server.requests) == 2 + 2 + 2  # three partitions of 3, in batches of 2


def test_nothing_to_redrive(http_server: RecordingServer, audit_log: dict[str, Path]) -> None:
    sink = f"  api:\n    type: http\n    config: {{uri: '{http_server.url()}'}}"
    collector = redrive_collector(audit_log, sink)
    report = redrive(str(audit_log["audit"]), str(collector), "api", "2026-02-09")
    assert report.sent == 0
    assert http_server.requests == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"sink_name": "nope"}, "has no sink named 'nope' (its sinks: api, audit)"),
        ({"partition": "2026-02-03T10"}, "invalid partition key '2026-02-03T10'"),
        ({"partition": "2025-12-31"}, "is before partitions.start"),
        ({"audit_file": "missing.jsonl"}, "audit log missing.jsonl does not exist"),
        ({"sink_name": "audit"}, "sink 'audit' is the audit log itself"),
    ],
)
def test_redrive_errors(
    audit_log: dict[str, Path], args: dict[str, str], message: str, http_server: RecordingServer
) -> None:
    sink = f"  api:\n    type: http\n    config: {{uri: '{http_server.url()}'}}"
    collector = redrive_collector(audit_log, sink)
    call = {"audit_file": str(audit_log["audit"]), "sink_name": "api", **args}
    with pytest.raises(CollectorError, match=message.replace("(", r"\(").replace(")", r"\)")):
        redrive(call["audit_file"], str(collector), call["sink_name"], call.get("partition"))
    assert http_server.requests == []


def test_redrive_cli_reports_errors_in_one_line(tmp_path: Path, audit_log: dict[str, Path]) -> None:
    collector = redrive_collector(audit_log, "")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"uuid": "x"}\n')
    result = signals("redrive", str(bad), "--collector", str(collector), "--sink", "audit")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1].startswith(f"error: {bad}:1: not a metric record")
    result = signals("redrive", str(audit_log["audit"]), "--collector", str(collector))
    assert result.returncode == 2
    assert "Missing option '--sink'" in result.stderr
