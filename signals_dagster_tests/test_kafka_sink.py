"""The Kafka sink against a real Kafka-protocol broker (tansu): keyed, confirmed, idempotent."""

import json
import sqlite3
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from signals_dagster.catalog import load_catalog
from signals_dagster.errors import SinkError
from signals_dagster.orchestration.factory import build_definitions
from signals_dagster.orchestration.resources import KafkaProducerResource
from signals_dagster.records import build_records
from signals_dagster.sinks import kafka as kafka_sink
from signals_dagster.sinks.kafka import KafkaWriter, key_partitions, murmur2, producer_settings
from signals_dagster.spec.loader import load_file
from signals_dagster.spec.models import CollectorSpec
from signals_dagster.spec.sinks import KafkaConfig
from signals_dagster_tests.servers.common import free_port
from signals_dagster_tests.servers.kafka import (
    TansuBroker,
    consume_all,
    create_topic,
    topic_names,
)
from signals_dagster_tests.sqlite_shop import collector_yaml, make_shop

ASSET = dg.AssetKey("shop_revenue_daily")


def kafka_sink_yaml(brokers: str, topic: str, **config: object) -> str:
    """The YAML of a kafka sink named `kafka` (appended under `sinks:`)."""
    lines = [f"      {key}: {json.dumps(value)}" for key, value in config.items()]
    return "\n".join(
        [
            "  kafka:",
            "    type: kafka",
            "    config:",
            f"      brokers: ['{brokers}']",
            f"      topic: {topic}",
            *lines,
        ]
    )


def unique_topic(prefix: str = "signals") -> str:
    return f"{prefix}-{time.monotonic_ns()}"


def materialize(
    folder: Path, kafka: KafkaProducerResource | None = None, **kwargs: object
) -> tuple[dg.ExecuteInProcessResult, float]:
    """Materialise the folder's collectors in process (with the deployment's Kafka resource
    when given); the result and the seconds it took."""
    defs = build_definitions(load_catalog(str(folder)), str(folder), kafka=kafka)
    started = time.monotonic()
    result = dg.materialize(
        list(defs.assets or []),
        resources=defs.resources,
        instance=kwargs.pop("instance", None) or dg.DagsterInstance.ephemeral(),
        raise_on_error=False,
        **kwargs,  # type: ignore[arg-type]
    )
    return result, time.monotonic() - started


def failure_message(result: dg.ExecuteInProcessResult) -> str:
    """The step failure's message with those of its causes."""
    failures = result.get_step_failure_events()
    assert failures, "the run should have failed"
    error = failures[0].step_failure_data.error
    texts = []
    while error is not None:
        texts.append(error.message)
        error = error.cause
    return "\n".join(texts)


def audit_lines(path: Path) -> list[str]:
    return path.read_text().splitlines()


@pytest.fixture
def shop(tmp_path: Path) -> dict[str, Path]:
    folder = tmp_path / "collectors"
    folder.mkdir()
    return {
        "dir": folder,
        "db": make_shop(tmp_path / "shop.sqlite"),
        "audit": tmp_path / "audit.jsonl",
    }


def write_collector(
    shop: dict[str, Path], brokers: str, topic: str, retries: int = 0, **config: object
) -> Path:
    """The shop collector with its file sink and a kafka sink; no step retries unless asked."""
    path = shop["dir"] / "revenue.yaml"
    sink = kafka_sink_yaml(brokers, topic, **config)
    text = collector_yaml(shop["db"], shop["audit"], extra=f"{sink}\nretries: {retries}")
    path.write_text(text)
    return path


# --- Dagster: a collector with kafka + file sinks ------------------------------------------


def test_partition_is_delivered_keyed_with_headers(
    kafka_broker: TansuBroker, shop: dict[str, Path]
) -> None:
    topic = unique_topic()
    create_topic(kafka_broker.bootstrap, topic, partitions=3)
    write_collector(shop, kafka_broker.bootstrap, topic, timeout="10s")
    instance = dg.DagsterInstance.ephemeral()
    result, _ = materialize(shop["dir"], partition_key="2026-02-03", instance=instance)
    assert result.success
    lines = audit_lines(shop["audit"])  # the file sink got the records too
    assert len(lines) == 3
    messages = consume_all(kafka_broker.bootstrap, topic, expected=len(lines))
    assert sorted(m.value().decode() for m in messages) == sorted(lines)  # same JSON, byte for byte
    for message in messages:
        record = json.loads(message.value())
        assert message.key().decode() == record["uuid"]
        assert dict(message.headers()) == {
            "collector": b"shop.revenue.daily",
            "partition_key": b"2026-02-03",
        }
    event = instance.get_latest_materialization_event(ASSET)
    assert event is not None
    assert event.asset_materialization is not None
    confirmed = json.loads(event.asset_materialization.metadata["sink_kafka"].value)  # type: ignore[arg-type]
    assert confirmed["messages"] == 3
    assert confirmed["topic"] == topic
    assert confirmed["bytes"] == sum(len(line) for line in lines)
    assert confirmed["delivery_seconds"] >= 0
    touched = sorted({m.partition() for m in messages})
    assert confirmed["partitions"] == touched
    assert confirmed["partitions_touched"] == len(touched)


def test_rerun_sends_the_same_keys(kafka_broker: TansuBroker, shop: dict[str, Path]) -> None:
    topic = unique_topic()
    create_topic(kafka_broker.bootstrap, topic)
    write_collector(shop, kafka_broker.bootstrap, topic)
    for _ in range(2):
        result, _ = materialize(shop["dir"], partition_key="2026-02-04")
        assert result.success
    messages = consume_all(kafka_broker.bootstrap, topic, expected=6)
    assert len(messages) == 6
    keys = [m.key() for m in messages]
    assert len(set(keys)) == 3  # compaction keeps one message per record
    by_key: dict[bytes, set[int]] = {}
    for message in messages:
        by_key.setdefault(message.key(), set()).add(message.partition())
    assert all(len(p) == 1 for p in by_key.values())  # same key, same Kafka partition


def test_ranged_run_uses_one_producer(
    kafka_broker: TansuBroker, shop: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    made: list[KafkaConfig] = []
    original = KafkaProducerResource.producer

    def counting(self: KafkaProducerResource, config: KafkaConfig) -> object:
        made.append(config)
        return original(self, config)

    monkeypatch.setattr(KafkaProducerResource, "producer", counting)
    topic = unique_topic()
    write_collector(shop, kafka_broker.bootstrap, topic, allow_auto_topic_creation=True)
    result, _ = materialize(
        shop["dir"],
        tags={
            "dagster/asset_partition_range_start": "2026-02-01",
            "dagster/asset_partition_range_end": "2026-02-08",
        },
    )
    assert result.success
    assert len(made) == 1
    messages = consume_all(kafka_broker.bootstrap, topic, expected=24)
    assert len({m.key() for m in messages}) == 24
    partition_keys = {dict(m.headers())["partition_key"] for m in messages}
    assert partition_keys == {f"2026-02-0{d}".encode() for d in range(1, 9)}


# --- topics ---------------------------------------------------------------------------------


@pytest.fixture
def spec(tmp_path: Path) -> CollectorSpec:
    path = tmp_path / "c.yaml"
    path.write_text(collector_yaml(tmp_path / "none.sqlite", tmp_path / "audit.jsonl"))
    return load_file(path)


def records(spec: CollectorSpec, count: int, day: int = 3) -> pd.DataFrame:
    rows = ((f"cust-{i:06d}", float(i)) for i in range(count))
    grain = datetime(2026, 2, day, tzinfo=UTC)
    frame, _, _ = build_records(spec, grain, ["customer", "value"], rows, datetime.now(UTC))
    return frame


def test_missing_topic_fails_naming_it(kafka_broker: TansuBroker) -> None:
    topic = unique_topic("absent")
    with pytest.raises(SinkError) as info:
        KafkaWriter(KafkaConfig(brokers=[kafka_broker.bootstrap], topic=topic))
    assert f"topic {topic!r} on {kafka_broker.bootstrap} does not exist" in str(info.value)
    assert "allow_auto_topic_creation" in str(info.value)
    assert not info.value.transient  # a retry would meet the same missing topic
    assert topic not in topic_names(kafka_broker.bootstrap)  # the lookup did not create it


def test_missing_topic_is_created_when_allowed(
    kafka_broker: TansuBroker, spec: CollectorSpec
) -> None:
    topic = unique_topic("auto")
    config = KafkaConfig(
        brokers=[kafka_broker.bootstrap], topic=topic, allow_auto_topic_creation=True
    )
    writer = KafkaWriter(config)
    try:
        assert writer.topic_created
        assert topic in topic_names(kafka_broker.bootstrap)
        result = writer.write(spec, "2026-02-03", records(spec, 50))
    finally:
        writer.close()
    assert result["messages"] == 50
    assert len(consume_all(kafka_broker.bootstrap, topic, expected=50)) == 50
    # An existing topic is used as it is.
    again = KafkaWriter(config)
    again.close()
    assert not again.topic_created


def test_partitions_touched_match_the_broker(
    kafka_broker: TansuBroker, spec: CollectorSpec
) -> None:
    for partitioner in ("consistent_random", "murmur2_random"):
        topic = unique_topic(partitioner)
        create_topic(kafka_broker.bootstrap, topic, partitions=8)
        config = KafkaConfig(
            brokers=[kafka_broker.bootstrap], topic=topic, producer={"partitioner": partitioner}
        )
        writer = KafkaWriter(config)
        frame = records(spec, 12)
        try:
            result = writer.write(spec, "2026-02-03", frame)
        finally:
            writer.close()
        messages = consume_all(kafka_broker.bootstrap, topic, expected=12)
        assert result["partitions"] == sorted({m.partition() for m in messages}), partitioner
        for message in messages:  # each key where the partitioner put it
            assert key_partitions([message.key().decode()], 8, partitioner) == [message.partition()]


def test_murmur2_matches_the_java_client() -> None:
    # Kafka's own test vectors (org.apache.kafka.common.utils.UtilsTest), as signed ints.
    cases = {
        b"21": -973932308,
        b"foobar": -790332482,
        b"a-little-bit-long-string": -985981536,
        b"a-little-bit-longer-string": -1486304829,
        b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971,
        b"abc": 479470107,
    }
    for data, expected in cases.items():
        value = murmur2(data)
        assert (value - (1 << 32) if value >= 1 << 31 else value) == expected, data


def test_unknown_partitioner_reports_no_partitions() -> None:
    assert key_partitions(["a", "b"], 4, "random") is None
    assert key_partitions(["a"] * 100, 4, "consistent_random") == key_partitions(
        ["a"], 4, "consistent_random"
    )


# --- failures -------------------------------------------------------------------------------


def test_broker_down_fails_at_once(shop: dict[str, Path]) -> None:
    # Nothing listens there: the connection is refused, so the run fails without waiting for
    # the timeout (a broker that accepts and does not answer gets it: test_sink_preflight.py).
    write_collector(shop, f"127.0.0.1:{free_port()}", "signals", timeout="60s")
    result, seconds = materialize(shop["dir"], partition_key="2026-02-03")
    assert not result.success
    assert seconds < 10  # Dagster's own start-up and teardown, not the 60 s timeout
    message = failure_message(result)
    assert "cannot look up topic 'signals'" in message
    assert "no broker reachable" in message
    assert "is the broker up?" in message
    assert "Connection refused" in message
    with pytest.raises(SinkError) as info:  # the writer itself: Dagster may retry this one
        KafkaWriter(KafkaConfig(brokers=[f"127.0.0.1:{free_port()}"], topic="t", timeout=60))
    assert info.value.transient


def test_stopped_broker_fails_the_run_within_the_timeout(
    kafka_faulty_broker: TansuBroker, shop: dict[str, Path]
) -> None:
    write_collector(shop, kafka_faulty_broker.bootstrap, "signals", timeout="2s")
    kafka_faulty_broker.kill()
    result, seconds = materialize(shop["dir"], partition_key="2026-02-03")
    assert not result.success
    assert seconds < 2 + 10
    assert f"cannot look up topic 'signals' on {kafka_faulty_broker.bootstrap}" in (
        failure_message(result)
    )


def test_undelivered_messages_fail_the_write_with_count_and_first_error(
    kafka_faulty_broker: TansuBroker, spec: CollectorSpec
) -> None:
    topic = unique_topic()
    create_topic(kafka_faulty_broker.bootstrap, topic)
    config = KafkaConfig(brokers=[kafka_faulty_broker.bootstrap], topic=topic, timeout="2s")
    writer = KafkaWriter(config)  # the topic check passes, then the broker dies
    kafka_faulty_broker.kill()
    started = time.monotonic()
    try:
        with pytest.raises(SinkError) as info:
            writer.write(spec, "2026-02-03", records(spec, 2000))
    finally:
        writer.close()
    assert time.monotonic() - started < 2 + kafka_sink.GRACE + 3
    message = str(info.value)
    assert "2000 of 2000 message(s) of partition 2026-02-03 not confirmed" in message
    assert f"topic {topic!r} on {kafka_faulty_broker.bootstrap}" in message
    assert "first error: _MSG_TIMED_OUT" in message
    assert info.value.transient  # Dagster's RetryPolicy may try again


def make_big_shop(path: Path, days: int, accounts: int) -> int:
    """`accounts` orders a day for `days` days from 2026-02-01: one record per account and day."""
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE orders (account TEXT, amount REAL, created_at TEXT)")
    start = datetime(2026, 2, 1, tzinfo=UTC)
    db.executemany(
        "INSERT INTO orders VALUES (?, ?, ?)",
        (
            (
                f"acct-{a:05d}",
                1 + a % 97,
                (start + timedelta(days=d, seconds=a)).strftime("%Y-%m-%d %H:%M:%S"),
            )
            for d in range(days)
            for a in range(accounts)
        ),
    )
    db.execute("CREATE INDEX orders_at ON orders (created_at)")
    db.commit()
    db.close()
    return days * accounts


def test_broker_killed_mid_backfill_then_rerun_delivers_every_key(
    kafka_faulty_broker: TansuBroker, shop: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    days, accounts = 30, 4000
    shop["db"] = shop["db"].with_name("big.sqlite")
    expected = make_big_shop(shop["db"], days, accounts)
    topic = unique_topic("backfill")
    write_collector(
        shop, kafka_faulty_broker.bootstrap, topic, allow_auto_topic_creation=True, timeout="3s"
    )
    last_day = f"2026-03-{days - 28:02d}"
    tags = {
        "dagster/asset_partition_range_start": "2026-02-01",
        "dagster/asset_partition_range_end": last_day,
    }
    # Kill the broker while the 12th partition of 30 is being produced.
    written: list[str | None] = []
    original = KafkaWriter.write

    def write_and_kill(self: KafkaWriter, spec: CollectorSpec, key: str | None, frame):  # type: ignore[no-untyped-def]
        written.append(key)
        if len(written) == 12:
            threading.Timer(0.01, kafka_faulty_broker.kill).start()
        return original(self, spec, key, frame)

    monkeypatch.setattr(KafkaWriter, "write", write_and_kill)
    result, seconds = materialize(shop["dir"], tags=tags)
    assert not result.success
    assert not kafka_faulty_broker.running()
    assert 12 <= len(written) < days  # it stopped at the failing partition
    message = failure_message(result)
    assert "not confirmed" in message
    assert seconds < 60

    # Restart (in-memory storage: an empty broker) and run the same range again.
    monkeypatch.setattr(KafkaWriter, "write", original)
    kafka_faulty_broker.start()
    result, _ = materialize(shop["dir"], tags=tags)
    assert result.success
    messages = consume_all(kafka_faulty_broker.bootstrap, topic, expected=expected, idle=3)
    keys = {m.key() for m in messages}
    assert len(keys) == expected
    audit = {json.loads(line)["uuid"].encode() for line in audit_lines(shop["audit"])}
    assert keys == audit  # every record the collection made, each under its uuid


# --- settings -------------------------------------------------------------------------------


def test_producer_settings_keep_the_guarantees() -> None:
    config = KafkaConfig(
        brokers=["127.0.0.1:9092", "127.0.0.2:9092"],
        topic="t",
        compression="lz4",
        timeout="7s",
        producer={"linger.ms": 50, "security.protocol": "SASL_SSL", "sasl.mechanism": "PLAIN"},
    )
    settings = producer_settings(config, {"client.id": "deploy", "linger.ms": 5})
    assert settings["bootstrap.servers"] == "127.0.0.1:9092,127.0.0.2:9092"
    assert settings["enable.idempotence"] is True
    assert settings["acks"] == "all"
    assert settings["compression.type"] == "lz4"
    assert settings["message.timeout.ms"] == 7000
    assert settings["linger.ms"] == 50  # the collector's setting beats the deployment's
    assert settings["client.id"] == "deploy"
    assert settings["security.protocol"] == "SASL_SSL"


@pytest.mark.parametrize(
    ("key", "hint"),
    [
        ("enable.idempotence", "idempotent"),
        ("acks", "acks=all"),
        ("bootstrap.servers", "use brokers"),
        ("compression.type", "use compression"),
        ("message.timeout.ms", "use timeout"),
        ("delivery.timeout.ms", "use timeout"),
        ("transactional.id", "transactions"),
        ("delivery.report.only.error", "confirmed"),
        ("error_cb", "set by the sink"),
    ],
)
def test_producer_settings_that_undo_guarantees_are_refused(key: str, hint: str) -> None:
    with pytest.raises(ValueError, match=f"setting '{key}' is managed by the Kafka sink") as info:
        KafkaConfig(brokers=["h:1"], topic="t", producer={key: "x"})
    assert hint in str(info.value)


def test_resource_settings_are_checked_too() -> None:
    resource = KafkaProducerResource(settings={"acks": "1"})
    with pytest.raises(ValueError, match="acks"):
        resource.producer(KafkaConfig(brokers=["127.0.0.1:1"], topic="t"))


def test_signals_invoke_writes_to_kafka(kafka_broker: TansuBroker, shop: dict[str, Path]) -> None:
    topic = unique_topic("invoke")
    path = write_collector(shop, kafka_broker.bootstrap, topic, allow_auto_topic_creation=True)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "signals_dagster.cli",
            "invoke",
            str(path),
            "--partition",
            "2026-02-05",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    printed = result.stdout.splitlines()
    messages = consume_all(kafka_broker.bootstrap, topic, expected=len(printed))
    assert sorted(m.value().decode() for m in messages) == sorted(printed)
    assert "sink kafka (kafka)" in result.stderr


# --- KafkaProducerResource.settings reach the clients of a Dagster run ------------------------

BAD_SETTING = {"socket.timeout.ms": "not-a-number"}  # librdkafka refuses it when a client is made


def materialize_with(
    folder: Path, kafka: KafkaProducerResource, **kwargs: object
) -> dg.ExecuteInProcessResult:
    return materialize(folder, kafka, partition_key="2026-02-03", **kwargs)[0]


def test_resource_settings_apply_to_the_run(
    kafka_broker: TansuBroker, shop: dict[str, Path]
) -> None:
    topic = unique_topic()
    create_topic(kafka_broker.bootstrap, topic, partitions=1)
    write_collector(shop, kafka_broker.bootstrap, topic, timeout="10s")
    bad = materialize_with(shop["dir"], KafkaProducerResource(settings=BAD_SETTING))
    assert not bad.success
    assert "socket.timeout.ms" in failure_message(bad)
    assert not shop["audit"].exists()  # refused before the query, nothing written
    good = materialize_with(
        shop["dir"], KafkaProducerResource(settings={"client.id": "signals-test"})
    )
    assert good.success
    assert len(consume_all(kafka_broker.bootstrap, topic, expected=3)) == 3


def test_resource_settings_from_run_config_apply_too(
    kafka_broker: TansuBroker, shop: dict[str, Path]
) -> None:
    topic = unique_topic()
    create_topic(kafka_broker.bootstrap, topic, partitions=1)
    write_collector(shop, kafka_broker.bootstrap, topic, timeout="10s")
    run_config = {"resources": {"signals_kafka": {"config": {"settings": BAD_SETTING}}}}
    result = materialize_with(shop["dir"], KafkaProducerResource(), run_config=run_config)
    assert not result.success
    assert "socket.timeout.ms" in failure_message(result)
