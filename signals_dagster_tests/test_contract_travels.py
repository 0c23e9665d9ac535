"""The contract version travels with the data: each published batch names `metric/version`
(Kafka header `contract`, S3 user metadata and Parquet key-value metadata `signals.contract`),
while the records themselves stay byte for byte what they are without a contract.

Against the real servers: tansu (Kafka protocol) and SeaweedFS (S3 API)."""

import io
import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from signals_dagster.contracts.model import Contract
from signals_dagster.orchestration.clients import s3_client
from signals_dagster.records import build_records
from signals_dagster.sinks.formats import decode, encode
from signals_dagster.sinks.kafka import HEADER_CONTRACT, KafkaWriter
from signals_dagster.sinks.s3 import CONTRACT_METADATA, S3Writer, read_partitions
from signals_dagster.spec.loader import parse_text
from signals_dagster.spec.models import CollectorSpec
from signals_dagster.spec.sinks import KafkaConfig, S3Config, S3Sink
from signals_dagster_tests.servers.kafka import TansuBroker, consume_all, create_topic
from signals_dagster_tests.servers.s3 import S3Server

REF = "shop.orders.revenue/1"
DAY = "2026-02-03"
COLLECTED = datetime(2026, 2, 4, 0, 15, 3, 120000, tzinfo=UTC)
CONTRACT: dict[str, Any] = {
    "name": "shop.orders.revenue",
    "version": 1,
    "type": "GAUGE",
    "owners": ["team:growth"],
    "tags": {"customer": {"required": True}, "env": {}},
}


def make_spec(
    bucket: str = "unused", endpoint: str = "http://127.0.0.1:9", fmt: str = "parquet"
) -> CollectorSpec:
    """A daily collector of `shop.orders.revenue` whose only sink is S3 (source never queried)."""
    text = f"""
name: shop.orders.revenue.daily
metric: {{name: shop.orders.revenue, type: GAUGE, grain: 24h, tags: {{env: test}}}}
source:
  type: sqlite
  config:
    uri: sqlite:///unused.db
    sql: SELECT customer, SUM(v) AS value FROM t WHERE ts >= :window_start AND ts < :window_end
      GROUP BY customer
sinks:
  lake:
    type: s3
    config: {{bucket: {bucket}, prefix: signals, format: {fmt}, endpoint_url: '{endpoint}',
              region: us-east-1, retries: 1}}
"""
    spec, _, problems = parse_text(text, "lake.yaml", {})
    assert spec is not None, problems
    return spec


def with_contract(spec: CollectorSpec) -> CollectorSpec:
    """The same spec, bound to the metric's contract (as the loader does from the registry)."""
    spec.bind_contract(Contract.model_validate(CONTRACT))
    assert spec.contract is not None
    assert spec.contract.ref == REF
    return spec


def records(spec: CollectorSpec, count: int = 5) -> pa.Table:
    rows = [(f"cust-{i:03d}", float(i) + 0.5) for i in range(count)]
    start = datetime.fromisoformat(DAY).replace(tzinfo=UTC)
    frame, _, _ = build_records(spec, start, ["customer", "value"], rows, COLLECTED)
    return frame


def uuids(frame: pa.Table) -> list[str]:
    return list(frame.column("uuid").to_pylist())


def test_records_do_not_depend_on_the_contract() -> None:
    plain, bound = make_spec(), with_contract(make_spec())
    a, b = records(plain), records(bound)
    assert uuids(a) == uuids(b)  # the record's identity ignores the contract
    assert encode(a, "jsonl") == encode(b, "jsonl")
    assert encode(a, "parquet") == encode(b, "parquet")  # no metadata asked: the same bytes


def test_parquet_bytes_carry_the_metadata_only_when_asked() -> None:
    frame = records(make_spec())
    plain = encode(frame, "parquet")
    named = encode(frame, "parquet", {CONTRACT_METADATA: REF})
    assert b"signals.contract" not in (pq.read_schema(pa.BufferReader(plain)).metadata or {})
    schema = pq.read_schema(pa.BufferReader(named))
    assert schema.metadata[b"signals.contract"] == REF.encode()
    footer = pq.ParquetFile(pa.BufferReader(named)).metadata.metadata  # the file's raw KV pairs
    assert footer[b"signals.contract"] == REF.encode()  # what any Parquet reader sees
    assert b"ARROW:schema" in footer  # beside Arrow's own entry
    assert pq.read_table(pa.BufferReader(named)).equals(pq.read_table(pa.BufferReader(plain)))
    pd.testing.assert_frame_equal(decode(named, "parquet", "x"), decode(plain, "parquet", "x"))
    assert encode(frame, "jsonl", {CONTRACT_METADATA: REF}) == encode(frame, "jsonl")


# --- Kafka -------------------------------------------------------------------------------


def produce(broker: TansuBroker, spec: CollectorSpec, frame: pa.Table) -> list[Any]:
    """Write one partition through the Kafka writer to a fresh topic; the messages read back."""
    topic = f"contract-{time.monotonic_ns()}"
    create_topic(broker.bootstrap, topic, partitions=3)
    writer = KafkaWriter(KafkaConfig(brokers=[broker.bootstrap], topic=topic, timeout="10s"))
    try:
        result = writer.write(spec, DAY, frame)
    finally:
        writer.close()
    assert result["messages"] == len(frame)
    messages = consume_all(broker.bootstrap, topic, expected=len(frame))
    assert len(messages) == len(frame)
    return sorted(messages, key=lambda m: m.key())


def test_kafka_messages_name_the_contract(kafka_broker: TansuBroker) -> None:
    plain_spec, bound_spec = make_spec(), with_contract(make_spec())
    frame = records(plain_spec)
    plain = produce(kafka_broker, plain_spec, frame)
    bound = produce(kafka_broker, bound_spec, frame)
    for message in bound:
        assert dict(message.headers()) == {
            "collector": b"shop.orders.revenue.daily",
            "partition_key": DAY.encode(),
            HEADER_CONTRACT: REF.encode(),
        }
    for message in plain:  # no contract: no header, the headers exactly as before
        assert dict(message.headers()) == {
            "collector": b"shop.orders.revenue.daily",
            "partition_key": DAY.encode(),
        }
    # The messages themselves are the same: keys (uuids) and values (record JSON) byte for byte.
    assert [m.key() for m in bound] == [m.key() for m in plain]
    assert [m.value() for m in bound] == [m.value() for m in plain]
    assert sorted(m.key().decode() for m in bound) == sorted(uuids(frame))
    for message in bound:
        record = json.loads(message.value())
        assert not {"contract", "signals.contract"} & set(record)
        assert record["uuid"] == message.key().decode()


# --- S3 ----------------------------------------------------------------------------------


def s3_config(spec: CollectorSpec) -> S3Config:
    sink = spec.sinks["lake"]
    assert isinstance(sink, S3Sink)
    return sink.config


def put(spec: CollectorSpec, frame: pa.Table) -> str:
    """Write one partition through the S3 writer; the object's key."""
    writer = S3Writer(s3_config(spec), s3_client)
    try:
        uri = str(writer.write(spec, DAY, frame)["uri"])
    finally:
        writer.close()
    return uri.split("/", 3)[3]


@pytest.mark.usefixtures("aws_env")
@pytest.mark.parametrize("fmt", ["parquet", "jsonl"])
def test_s3_objects_name_the_contract(s3_server: S3Server, tmp_path: Path, fmt: str) -> None:
    client = s3_server.client()
    plain_bucket, bound_bucket = s3_server.new_bucket(), s3_server.new_bucket()
    plain_spec = make_spec(plain_bucket, s3_server.endpoint, fmt)
    bound_spec = with_contract(make_spec(bound_bucket, s3_server.endpoint, fmt))
    frame = records(plain_spec)
    key = put(plain_spec, frame)
    assert put(bound_spec, frame) == key  # same layout
    assert key == f"signals/metric=shop.orders.revenue/date={DAY}/shop_orders_revenue_daily.{fmt}"

    # S3 user metadata: sent as x-amz-meta-signals.contract, read back under its name.
    head = client.head_object(Bucket=bound_bucket, Key=key)
    assert head["Metadata"] == {"signals.contract": REF}
    assert head["ResponseMetadata"]["HTTPHeaders"]["x-amz-meta-signals.contract"] == REF
    assert client.head_object(Bucket=plain_bucket, Key=key)["Metadata"] == {}

    plain_body = client.get_object(Bucket=plain_bucket, Key=key)["Body"].read()
    bound_body = client.get_object(Bucket=bound_bucket, Key=key)["Body"].read()
    if fmt == "jsonl":
        assert bound_body == plain_body  # the records, byte for byte
    else:
        path = tmp_path / "object.parquet"  # a Parquet file, read as a file
        path.write_bytes(bound_body)
        assert pq.read_schema(path).metadata[b"signals.contract"] == REF.encode()
        plain_schema = pq.read_schema(io.BytesIO(plain_body))
        assert b"signals.contract" not in (plain_schema.metadata or {})
        assert pq.read_table(path).equals(pq.read_table(io.BytesIO(plain_body)))  # same rows
        assert pq.read_table(path).schema.equals(plain_schema)  # same columns and types
    # Read back through the sink: the very same records (uuids identical).
    back = read_partitions(s3_config(bound_spec), bound_spec, [DAY], s3_client)
    before = read_partitions(s3_config(plain_spec), plain_spec, [DAY], s3_client)
    pd.testing.assert_frame_equal(back, before)
    assert sorted(back["uuid"]) == sorted(uuids(frame))
