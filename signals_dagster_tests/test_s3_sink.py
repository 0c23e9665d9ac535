"""The S3 writer against a real S3 API (SeaweedFS): layout, overwrite, formats, failures."""

import io
import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pydantic import SecretStr

from signals_dagster.errors import SinkError
from signals_dagster.orchestration.clients import s3_client
from signals_dagster.records import build_records, to_pandas
from signals_dagster.sinks import SinkClients, open_writer
from signals_dagster.sinks.s3 import S3Writer, read_partitions
from signals_dagster.spec.loader import parse_text
from signals_dagster.spec.models import CollectorSpec
from signals_dagster.spec.sinks import S3Config, S3Sink
from signals_dagster_tests.servers.common import free_port
from signals_dagster_tests.servers.s3 import S3Server
from signals_dagster_tests.sqlite_shop import collector_yaml, expected_sums, make_shop

pytestmark = pytest.mark.usefixtures("aws_env")

COLLECTED = datetime(2026, 2, 4, 0, 15, 3, 120000, tzinfo=UTC)


def make_spec(
    endpoint: str,
    bucket: str,
    fmt: str = "parquet",
    prefix: str = "signals/prod",
    grain: str = "24h",
    retries: int = 1,
) -> CollectorSpec:
    """A collector whose only sink is S3 (source never queried here)."""
    text = f"""
name: shop.revenue.daily
metric: {{name: shop.revenue, type: GAUGE, grain: {grain}, tags: {{env: test}}}}
source:
  type: sqlite
  config:
    uri: sqlite:///unused.db
    sql: SELECT a, SUM(v) AS value FROM t WHERE ts >= :window_start AND ts < :window_end GROUP BY a
sinks:
  lake:
    type: s3
    config: {{bucket: {bucket}, prefix: '{prefix}', format: {fmt}, endpoint_url: '{endpoint}',
              region: us-east-1, retries: {retries}}}
"""
    spec, _, problems = parse_text(text, "lake.yaml", {})
    assert spec is not None, problems
    return spec


def s3_config(spec: CollectorSpec) -> S3Config:
    sink = spec.sinks["lake"]
    assert isinstance(sink, S3Sink)
    return sink.config


def records(spec: CollectorSpec, day: str, values: dict[str, float]) -> Any:
    start = datetime.fromisoformat(day).replace(tzinfo=UTC)
    frame, _, _ = build_records(spec, start, ["a", "value"], list(values.items()), COLLECTED)
    return frame


def write(spec: CollectorSpec, key: str | None, frame: Any) -> dict[str, object]:
    writer = S3Writer(s3_config(spec), s3_client)
    try:
        return writer.write(spec, key, frame)
    finally:
        writer.close()


def body(server: S3Server, bucket: str, key: str) -> bytes:
    return bytes(server.client().get_object(Bucket=bucket, Key=key)["Body"].read())


def test_layout_and_overwrite(s3_server: S3Server) -> None:
    bucket = s3_server.new_bucket()
    spec = make_spec(s3_server.endpoint, bucket, fmt="jsonl")
    key = "signals/prod/metric=shop.revenue/date=2026-02-03/shop_revenue_daily.jsonl"
    first = write(spec, "2026-02-03", records(spec, "2026-02-03", {"acme": 1, "globex": 2}))
    assert s3_server.keys(bucket) == [key]
    size = len(body(s3_server, bucket, key))
    assert first == {"uri": f"s3://{bucket}/{key}", "bytes": size, "records": 2}
    second = write(spec, "2026-02-03", records(spec, "2026-02-03", {"acme": 5}))
    assert s3_server.keys(bucket) == [key]  # replaced, not added
    lines = [json.loads(line) for line in body(s3_server, bucket, key).splitlines()]
    assert [(r["tags"]["a"], r["value"]) for r in lines] == [("acme", 5)]
    assert second["records"] == 1
    write(spec, "2026-02-04", records(spec, "2026-02-04", {"acme": 7}))
    assert s3_server.keys(bucket) == [key, key.replace("02-03", "02-04")]


def test_empty_prefix_has_no_leading_slash(s3_server: S3Server) -> None:
    bucket = s3_server.new_bucket()
    spec = make_spec(s3_server.endpoint, bucket, prefix="")
    write(spec, "2026-02-03", records(spec, "2026-02-03", {"acme": 1}))
    assert s3_server.keys(bucket) == [
        "metric=shop.revenue/date=2026-02-03/shop_revenue_daily.parquet"
    ]


def test_empty_partition_is_still_one_object(s3_server: S3Server) -> None:
    bucket = s3_server.new_bucket()
    spec = make_spec(s3_server.endpoint, bucket)
    write(spec, "2026-02-03", records(spec, "2026-02-03", {"acme": 1}))
    result = write(spec, "2026-02-03", records(spec, "2026-02-03", {}))
    assert result["records"] == 0
    (key,) = s3_server.keys(bucket)
    assert pq.read_table(io.BytesIO(body(s3_server, bucket, key))).num_rows == 0
    assert len(read_partitions(s3_config(spec), spec, ["2026-02-03"], s3_client)) == 0


def test_parquet_schema_and_round_trip(s3_server: S3Server) -> None:
    bucket = s3_server.new_bucket()
    spec = make_spec(s3_server.endpoint, bucket)
    frame = records(spec, "2026-02-03", {"acme": 12.5, "globex": 3})
    write(spec, "2026-02-03", frame)
    (key,) = s3_server.keys(bucket)
    table = pq.read_table(io.BytesIO(body(s3_server, bucket, key)))
    utc = pa.timestamp("us", tz="UTC")
    assert table.schema.field("uuid").type == pa.string()
    assert table.schema.field("name").type == pa.string()
    assert table.schema.field("type").type == pa.string()
    assert table.schema.field("value").type == pa.float64()
    assert table.schema.field("tags").type == pa.map_(pa.string(), pa.string())
    assert table.schema.field("timestamp").type == utc
    assert table.schema.field("grain_datetime").type == utc
    rows = sorted(table.to_pylist(), key=lambda r: r["value"])
    assert [r["value"] for r in rows] == [3.0, 12.5]
    assert [dict(r["tags"]) for r in rows] == [
        {"a": "globex", "env": "test"},
        {"a": "acme", "env": "test"},
    ]
    assert {r["grain_datetime"] for r in rows} == {datetime(2026, 2, 3, tzinfo=UTC)}
    assert {r["timestamp"] for r in rows} == {COLLECTED}
    assert {r["name"] for r in rows} == {"shop.revenue"}
    back = read_partitions(s3_config(spec), spec, ["2026-02-03"], s3_client)
    assert list(back.columns) == list(to_pandas(frame).columns)
    assert dict(back.dtypes.astype(str)) == dict(to_pandas(frame).dtypes.astype(str))
    assert back.to_dict("records") == to_pandas(frame).to_dict("records")


def test_jsonl_round_trip(s3_server: S3Server) -> None:
    bucket = s3_server.new_bucket()
    spec = make_spec(s3_server.endpoint, bucket, fmt="jsonl")
    frame = records(spec, "2026-02-03", {"acme": 12.5, "globex": 3})
    write(spec, "2026-02-03", frame)
    (key,) = s3_server.keys(bucket)
    lines = [json.loads(line) for line in body(s3_server, bucket, key).decode().splitlines()]
    assert [(r["tags"], r["value"]) for r in lines] == [
        ({"a": "acme", "env": "test"}, 12.5),
        ({"a": "globex", "env": "test"}, 3),
    ]
    assert {r["grain_datetime"] for r in lines} == {"2026-02-03T00:00:00Z"}
    assert {r["timestamp"] for r in lines} == {"2026-02-04T00:15:03.120Z"}
    back = read_partitions(s3_config(spec), spec, ["2026-02-03"], s3_client)
    assert dict(back.dtypes.astype(str)) == dict(to_pandas(frame).dtypes.astype(str))
    assert back.to_dict("records") == to_pandas(frame).to_dict("records")


def test_several_partitions_read_back_concatenated(s3_server: S3Server) -> None:
    bucket = s3_server.new_bucket()
    spec = make_spec(s3_server.endpoint, bucket)
    for day, value in (("2026-02-03", 1.0), ("2026-02-04", 2.0), ("2026-02-05", 4.0)):
        write(spec, day, records(spec, day, {"acme": value}))
    back = read_partitions(s3_config(spec), spec, ["2026-02-03", "2026-02-05"], s3_client)
    assert back["value"].tolist() == [1.0, 4.0]
    with pytest.raises(SinkError, match=r"partition 2026-02-06 of shop\.revenue\.daily was never"):
        read_partitions(s3_config(spec), spec, ["2026-02-03", "2026-02-06"], s3_client)


def test_unpartitioned_key_is_the_window_and_latest_is_read(s3_server: S3Server) -> None:
    bucket = s3_server.new_bucket()
    spec = make_spec(s3_server.endpoint, bucket, grain="5m")
    for minute, value in (("10:05", 1.0), ("10:10", 2.0)):
        start = datetime.fromisoformat(f"2026-02-03T{minute}:00+00:00")
        frame, _, _ = build_records(spec, start, ["a", "value"], [("acme", value)], COLLECTED)
        write(spec, None, frame)
    assert s3_server.keys(bucket) == [
        f"signals/prod/metric=shop.revenue/date=2026-02-03T10:{m}:00Z/shop_revenue_daily.parquet"
        for m in ("05", "10")
    ]
    assert read_partitions(s3_config(spec), spec, None, s3_client)["value"].tolist() == [2.0]


def test_missing_bucket_is_a_clear_error_and_creates_nothing(s3_server: S3Server) -> None:
    before = s3_server.client().list_buckets()["Buckets"]
    spec = make_spec(s3_server.endpoint, "no-such-bucket")
    sink = spec.sinks["lake"]
    with pytest.raises(SinkError) as info:
        open_writer(sink, clients=SinkClients(s3=s3_client))  # checked when opened
    message = str(info.value)
    assert "bucket 'no-such-bucket' does not exist" in message
    assert s3_server.endpoint in message
    assert s3_server.client().list_buckets()["Buckets"] == before


def test_wrong_secret_names_signature_mismatch(
    s3_server: S3Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    bucket = s3_server.new_bucket()
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "Wr0ngSecretValue")
    spec = make_spec(s3_server.endpoint, bucket)
    with pytest.raises(SinkError) as info:
        S3Writer(s3_config(spec), s3_client)
    message = str(info.value)
    assert "SignatureDoesNotMatch" in message
    assert "access key id 'ak' (from env)" in message
    assert "Wr0ngSecretValue" not in message
    assert s3_server.keys(bucket) == []


def test_unknown_access_key_names_invalid_access_key_id(
    s3_server: S3Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    bucket = s3_server.new_bucket()
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "nobody")
    spec = make_spec(s3_server.endpoint, bucket)
    with pytest.raises(SinkError, match=r"InvalidAccessKeyId.*'nobody'"):
        S3Writer(s3_config(spec), s3_client)


def test_templated_credentials_reach_the_client(
    s3_server: S3Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    bucket = s3_server.new_bucket()
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wrong-in-the-chain")
    spec = make_spec(s3_server.endpoint, bucket)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "nobody")
    config = s3_config(spec).model_copy(update={"aws_access_key_id": "ak"})
    good = config.model_copy(update={"aws_secret_access_key": SecretStr("sk")})
    bad = config.model_copy(update={"aws_secret_access_key": SecretStr("Wr0ngSecretValue")})
    S3Writer(good, s3_client).close()  # the YAML's credentials win over the chain
    with pytest.raises(SinkError) as info:
        S3Writer(bad, None)  # the plain boto3 client (no Dagster) takes them too
    assert "SignatureDoesNotMatch" in str(info.value)
    assert "Wr0ngSecretValue" not in str(info.value)


def test_no_credentials_anywhere(s3_server: S3Server, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    spec = make_spec(s3_server.endpoint, "any-bucket")
    with pytest.raises(SinkError, match="no AWS credentials found"):
        S3Writer(s3_config(spec), s3_client)


@pytest.mark.parametrize("factory", [s3_client, None], ids=["dagster-aws", "plain-boto3"])
def test_endpoint_down_fails_after_bounded_retries(factory: Any) -> None:
    endpoint = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    spec = make_spec(endpoint, "any-bucket", retries=2)
    attempts: list[str] = []

    def counting(config: S3Config) -> Any:
        client = (factory or _plain)(config)
        client.meta.events.register("before-send.s3.*", lambda **kw: attempts.append("x"))
        return client

    started = time.monotonic()
    with pytest.raises(SinkError) as info:
        S3Writer(s3_config(spec), counting)
    elapsed = time.monotonic() - started
    assert len(attempts) == 3  # the first attempt and 2 retries
    assert f"checking bucket s3://any-bucket/: {endpoint}" in str(info.value)
    assert "failed after 3 attempt(s)" in str(info.value)
    assert elapsed < 10


def _plain(config: S3Config) -> Any:
    from signals_dagster.sinks.s3 import default_client

    return default_client(config)


def test_signals_invoke_writes_s3_and_checks_before_any_sink(
    s3_server: S3Server, tmp_path: Path
) -> None:
    bucket = s3_server.new_bucket()
    db = make_shop(tmp_path / "shop.sqlite")
    audit = tmp_path / "audit.jsonl"

    def invoke(target: str) -> subprocess.CompletedProcess[str]:
        lake = f"""  lake:
    type: s3
    config: {{bucket: {target}, endpoint_url: '{s3_server.endpoint}', region: us-east-1}}
"""
        path = tmp_path / "revenue.yaml"
        path.write_text(collector_yaml(db, audit, extra=lake))
        args = ["invoke", str(path), "--partition", "2026-02-03"]
        return subprocess.run(
            [sys.executable, "-m", "signals_dagster.cli", *args],
            capture_output=True,
            text=True,
            timeout=120,
            env=dict(os.environ),
            check=False,
        )

    missing = invoke("absent-bucket")
    assert missing.returncode == 1, missing.stderr
    assert "bucket 'absent-bucket' does not exist" in missing.stderr
    assert "Traceback" not in missing.stderr
    assert not audit.exists()  # the file sink comes first, yet nothing was written
    done = invoke(bucket)
    assert done.returncode == 0, done.stderr
    key = "metric=shop.revenue/date=2026-02-03/shop_revenue_daily.parquet"
    assert s3_server.keys(bucket) == [key]
    rows = pq.read_table(io.BytesIO(body(s3_server, bucket, key))).to_pylist()
    got = {dict(r["tags"])["customer"]: r["value"] for r in rows}
    assert got == pytest.approx(expected_sums(db, "2026-02-03"))
    assert len(audit.read_text().splitlines()) == len(rows)
