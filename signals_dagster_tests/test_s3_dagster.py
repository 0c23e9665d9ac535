"""The S3 sink in Dagster (real SeaweedFS): ranged runs, metadata, missing bucket, load_input."""

import io
import time
from pathlib import Path

import dagster as dg
import pyarrow.parquet as pq
import pytest

from signals_dagster.catalog import load_catalog
from signals_dagster.derived import weekly_sum
from signals_dagster.orchestration.factory import build_definitions
from signals_dagster_tests.servers.common import free_port
from signals_dagster_tests.servers.s3 import S3Server
from signals_dagster_tests.sqlite_shop import collector_yaml, expected_sums, make_shop

pytestmark = pytest.mark.usefixtures("aws_env")
ASSET = dg.AssetKey("shop_revenue_daily")
DAYS = ["2026-02-02", "2026-02-03", "2026-02-04", "2026-02-05"]


def lake_sink(endpoint: str, bucket: str, fmt: str = "parquet") -> str:
    return f"""  lake:
    type: s3
    config:
      bucket: {bucket}
      prefix: signals
      format: {fmt}
      endpoint_url: '{endpoint}'
      region: us-east-1
      retries: 1
"""


def make_collectors(tmp_path: Path, sinks: str, with_file: bool = True) -> tuple[Path, Path, Path]:
    """(folder, shop db, audit path) for a daily revenue collector with the given extra sinks."""
    folder = tmp_path / "collectors"
    folder.mkdir()
    db = make_shop(tmp_path / "shop.sqlite")
    audit = tmp_path / "audit.jsonl"
    text = collector_yaml(db, audit, extra=sinks)
    if not with_file:
        text = text.replace(f"  audit:\n    type: file\n    config:\n      path: '{audit}'\n", "")
    (folder / "revenue.yaml").write_text(text)
    return folder, db, audit


def defs_of(folder: Path) -> dg.Definitions:
    return build_definitions(load_catalog(str(folder)), str(folder))


def materialize(defs: dg.Definitions, instance: dg.DagsterInstance, **kwargs: object) -> object:
    assets = [a for a in defs.assets or [] if isinstance(a, dg.AssetsDefinition)]
    return dg.materialize(assets, resources=defs.resources, instance=instance, **kwargs)


def object_key(day: str, fmt: str = "parquet") -> str:
    return f"signals/metric=shop.revenue/date={day}/shop_revenue_daily.{fmt}"


def by_customer(rows: list[dict]) -> dict[str, float]:
    return {r["tags"]["customer"]: r["value"] for r in rows}


def test_ranged_run_writes_one_object_per_partition(s3_server: S3Server, tmp_path: Path) -> None:
    bucket = s3_server.new_bucket()
    folder, db, _ = make_collectors(tmp_path, lake_sink(s3_server.endpoint, bucket))
    instance = dg.DagsterInstance.ephemeral()
    result = materialize(
        defs_of(folder),
        instance,
        tags={
            "dagster/asset_partition_range_start": DAYS[0],
            "dagster/asset_partition_range_end": DAYS[-1],
        },
    )
    assert result.success  # type: ignore[attr-defined]
    assert s3_server.keys(bucket) == [object_key(day) for day in DAYS]
    client = s3_server.client()
    for day in DAYS:
        key = object_key(day)
        data = client.get_object(Bucket=bucket, Key=key)["Body"].read()
        rows = pq.read_table(io.BytesIO(data)).to_pylist()
        expected = expected_sums(db, day)
        got = {dict(r["tags"])["customer"]: r["value"] for r in rows}
        assert got == pytest.approx(expected)
        event = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=ASSET, asset_partitions=[day]), limit=1
        ).records[0]
        meta = event.asset_materialization.metadata  # type: ignore[union-attr]
        assert meta["sink_lake_uri"].value == f"s3://{bucket}/{key}"
        assert meta["sink_lake_bytes"].value == len(data)
        assert meta["sink_lake_records"].value == len(expected)
        assert meta["record_count"].value == len(expected)


def test_rerun_overwrites_the_partition_object(s3_server: S3Server, tmp_path: Path) -> None:
    bucket = s3_server.new_bucket()
    folder, db, _ = make_collectors(tmp_path, lake_sink(s3_server.endpoint, bucket, "jsonl"))
    defs, instance = defs_of(folder), dg.DagsterInstance.ephemeral()
    materialize(defs, instance, partition_key="2026-02-03")
    client = s3_server.client()
    first = client.get_object(Bucket=bucket, Key=object_key("2026-02-03", "jsonl"))
    materialize(defs, instance, partition_key="2026-02-03")
    second = client.get_object(Bucket=bucket, Key=object_key("2026-02-03", "jsonl"))
    assert s3_server.keys(bucket) == [object_key("2026-02-03", "jsonl")]
    assert second["LastModified"] >= first["LastModified"]
    lines = second["Body"].read().decode().splitlines()
    assert len(lines) == len(expected_sums(db, "2026-02-03"))  # replaced, not appended


def test_missing_bucket_fails_the_run_and_writes_nothing(
    s3_server: S3Server, tmp_path: Path
) -> None:
    folder, _, audit = make_collectors(tmp_path, lake_sink(s3_server.endpoint, "absent-bucket"))
    buckets_before = s3_server.client().list_buckets()["Buckets"]
    instance = dg.DagsterInstance.ephemeral()
    result = materialize(
        defs_of(folder), instance, partition_key="2026-02-03", raise_on_error=False
    )
    assert not result.success  # type: ignore[attr-defined]
    failure = result.get_step_failure_events()[0].step_failure_data.error  # type: ignore[attr-defined]
    assert failure is not None

    assert "bucket 'absent-bucket' does not exist" in str(failure)
    assert not audit.exists()  # the file sink (listed first) was not written either
    assert s3_server.client().list_buckets()["Buckets"] == buckets_before
    assert instance.get_latest_materialization_event(ASSET) is None


def test_derived_weekly_asset_reads_several_partitions_from_s3(
    s3_server: S3Server, tmp_path: Path
) -> None:
    bucket = s3_server.new_bucket()
    folder, db, audit = make_collectors(tmp_path, lake_sink(s3_server.endpoint, bucket))
    defs = defs_of(folder)
    (collector,) = [a for a in defs.assets or [] if isinstance(a, dg.AssetsDefinition)]
    weekly = weekly_sum(load_catalog(str(folder)).get("shop.revenue.daily"), "shop.revenue.weekly")
    week = [f"2026-02-{d:02d}" for d in range(2, 9)]  # Monday 2 .. Sunday 8
    instance = dg.DagsterInstance.ephemeral()
    materialize(
        defs,
        instance,
        tags={
            "dagster/asset_partition_range_start": week[0],
            "dagster/asset_partition_range_end": week[-1],
        },
    )
    audit.unlink()  # proves the records come back from S3, not from the file sink
    result = dg.materialize(
        [collector, weekly],
        selection=[weekly],
        resources=defs.resources,
        instance=instance,
        partition_key="2026-02-02",
    )
    assert result.success
    out = result.output_for_node("shop_revenue_weekly")
    expected: dict[str, float] = {}
    for day in week:
        for customer, value in expected_sums(db, day).items():
            expected[customer] = expected.get(customer, 0.0) + value
    assert by_customer(out.to_dict("records")) == pytest.approx(expected)
    assert set(out["name"]) == {"shop.revenue.weekly"}
    assert {str(t) for t in out["grain_datetime"]} == {"2026-02-02 00:00:00+00:00"}
    meta = result.asset_materializations_for_node("shop_revenue_weekly")[0].metadata
    assert meta["daily_records"].value == sum(len(expected_sums(db, d)) for d in week)


def test_derived_asset_refuses_an_incomplete_week(s3_server: S3Server, tmp_path: Path) -> None:
    bucket = s3_server.new_bucket()
    folder, _, _ = make_collectors(tmp_path, lake_sink(s3_server.endpoint, bucket), with_file=False)
    defs = defs_of(folder)
    (collector,) = [a for a in defs.assets or [] if isinstance(a, dg.AssetsDefinition)]
    weekly = weekly_sum(load_catalog(str(folder)).get("shop.revenue.daily"), "shop.revenue.weekly")
    instance = dg.DagsterInstance.ephemeral()
    materialize(defs, instance, partition_key="2026-02-03")
    result = dg.materialize(
        [collector, weekly],
        selection=[weekly],
        resources=defs.resources,
        instance=instance,
        partition_key="2026-02-02",
        raise_on_error=False,
    )
    assert not result.success
    error = result.get_step_failure_events()[0].step_failure_data.error
    assert error is not None

    assert "partition 2026-02-02 of shop.revenue.daily was never written" in str(error)


def test_endpoint_down_fails_the_run_after_bounded_retries(tmp_path: Path) -> None:
    endpoint = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    # botocore retries once inside the step; Dagster's RetryPolicy runs the step once more.
    extra = lake_sink(endpoint, "any-bucket") + "retries: 1\nretry_delay: 0.2s\n"
    folder, _, audit = make_collectors(tmp_path, extra)
    instance = dg.DagsterInstance.ephemeral()
    started = time.monotonic()
    result = materialize(
        defs_of(folder), instance, partition_key="2026-02-03", raise_on_error=False
    )
    elapsed = time.monotonic() - started
    assert not result.success  # type: ignore[attr-defined]
    events = result.all_events  # type: ignore[attr-defined]
    assert sum(e.event_type_value == "STEP_UP_FOR_RETRY" for e in events) == 1
    failure = result.get_step_failure_events()[0].step_failure_data.error  # type: ignore[attr-defined]
    assert failure is not None
    assert f"checking bucket s3://any-bucket/: {endpoint} failed after 2 attempt(s)" in str(failure)
    assert not audit.exists()
    assert elapsed < 20
