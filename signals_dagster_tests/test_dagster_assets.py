"""The Dagster layer: asset declaration, in-process materialisation, metadata, sinks."""

import json
from collections.abc import Callable
from pathlib import Path

import dagster as dg
import pytest

from signals_dagster.catalog import load_catalog
from signals_dagster.orchestration.factory import build_definitions
from signals_dagster_tests.sqlite_shop import collector_yaml, expected_sums, make_shop

Materialize = Callable[..., dg.ExecuteInProcessResult]


@pytest.fixture
def shop(tmp_path: Path) -> dict[str, Path]:
    """A shop database, an audit path and a collectors folder with one windowed collector."""
    folder = tmp_path / "collectors"
    folder.mkdir()
    db = make_shop(tmp_path / "shop.sqlite")
    audit = tmp_path / "audit.jsonl"
    (folder / "revenue.yaml").write_text(collector_yaml(db, audit))
    return {"dir": folder, "db": db, "audit": audit}


def _defs(folder: Path) -> dg.Definitions:
    return build_definitions(load_catalog(str(folder)), str(folder))


def _materialize(defs: dg.Definitions, instance: dg.DagsterInstance, **kwargs: object):
    return dg.materialize(
        list(defs.assets or []), resources=defs.resources, instance=instance, **kwargs
    )


def _audit(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_asset_is_declared_from_the_collector(shop: dict[str, Path]) -> None:
    defs = _defs(shop["dir"])
    (asset,) = list(defs.assets or [])
    key = dg.AssetKey("shop_revenue_daily")
    assert asset.key == key
    spec = asset.specs_by_key[key]
    assert spec.kinds == {"sqlite", "file"}
    assert spec.owners == ["team:growth", "ana@example.com"]
    assert spec.group_name == "shop"
    assert spec.description == "Revenue per customer"
    assert spec.code_version
    assert len(spec.code_version) == 16
    assert spec.metadata["collector_kind"] == "windowed"
    pdef = asset.partitions_def
    assert isinstance(pdef, dg.TimeWindowPartitionsDefinition)
    assert pdef.get_first_partition_key() == "2026-02-01"
    assert pdef.fmt == "%Y-%m-%d"
    assert asset.backfill_policy == dg.BackfillPolicy.single_run()


def test_code_version_follows_the_spec(shop: dict[str, Path], tmp_path: Path) -> None:
    before = next(iter(_defs(shop["dir"]).assets or [])).code_versions_by_key
    path = shop["dir"] / "revenue.yaml"
    path.write_text(path.read_text().replace("value: test", "value: prod"))
    after = next(iter(_defs(shop["dir"]).assets or [])).code_versions_by_key
    assert before != after


def test_materialise_one_partition(shop: dict[str, Path]) -> None:
    defs = _defs(shop["dir"])
    instance = dg.DagsterInstance.ephemeral()
    result = _materialize(defs, instance, partition_key="2026-02-03")
    assert result.success
    records = _audit(shop["audit"])
    expected = expected_sums(shop["db"], "2026-02-03")
    assert {r["tags"]["customer"]: r["value"] for r in records} == pytest.approx(expected)
    assert all(r["grain_datetime"] == "2026-02-03T00:00:00Z" for r in records)
    assert all(r["tags"]["env"] == "test" for r in records)
    event = instance.get_latest_materialization_event(dg.AssetKey("shop_revenue_daily"))
    assert event is not None
    assert event.asset_materialization is not None
    meta = event.asset_materialization.metadata
    assert meta["record_count"].value == len(expected)
    assert meta["value_sum"].value == pytest.approx(sum(expected.values()))
    assert meta["source_rows"].value == len(expected)
    assert meta["query_seconds"].value >= 0
    table = meta["sample"].value
    assert len(table.records) == len(expected)


def test_rerun_gives_the_same_uuids(shop: dict[str, Path]) -> None:
    defs = _defs(shop["dir"])
    instance = dg.DagsterInstance.ephemeral()
    _materialize(defs, instance, partition_key="2026-02-04")
    first = [r["uuid"] for r in _audit(shop["audit"])]
    _materialize(defs, instance, partition_key="2026-02-04")
    second = [r["uuid"] for r in _audit(shop["audit"])][len(first) :]
    assert first == second
    assert len(set(first)) == len(first)


def test_ranged_run_equals_single_partitions(shop: dict[str, Path], tmp_path: Path) -> None:
    defs = _defs(shop["dir"])
    instance = dg.DagsterInstance.ephemeral()
    result = _materialize(
        defs,
        instance,
        tags={
            "dagster/asset_partition_range_start": "2026-02-02",
            "dagster/asset_partition_range_end": "2026-02-05",
        },
    )
    assert result.success
    ranged = {(r["uuid"], r["value"]) for r in _audit(shop["audit"])}
    shop["audit"].unlink()
    for day in ("2026-02-02", "2026-02-03", "2026-02-04", "2026-02-05"):
        _materialize(defs, instance, partition_key=day)
    single = {(r["uuid"], r["value"]) for r in _audit(shop["audit"])}
    assert ranged == single
    assert len(ranged) == 12
    # Per-partition metadata: each partition has its own figures.
    key = dg.AssetKey("shop_revenue_daily")
    for day in ("2026-02-02", "2026-02-05"):
        records = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=key, asset_partitions=[day]), limit=1
        ).records
        meta = records[0].asset_materialization.metadata  # type: ignore[union-attr]
        assert meta["value_sum"].value == pytest.approx(
            sum(expected_sums(shop["db"], day).values())
        )


def test_snapshot_partition_refused_in_dagster(
    tmp_path: Path, write_collector: Callable[..., Path]
) -> None:
    folder = tmp_path / "snap"
    folder.mkdir()
    db = make_shop(tmp_path / "s.sqlite")
    text = collector_yaml(db, tmp_path / "a.jsonl", sql="SELECT COUNT(*) AS value FROM orders")
    (folder / "snap.yaml").write_text(text)
    defs = _defs(folder)
    (asset,) = list(defs.assets or [])
    assert asset.backfill_policy is None
    instance = dg.DagsterInstance.ephemeral()
    result = _materialize(defs, instance, partition_key="2026-02-03", raise_on_error=False)
    assert not result.success
    failure = result.get_step_failure_events()[0].step_failure_data.error
    assert failure is not None
    assert "snapshot" in failure.message
    assert not (tmp_path / "a.jsonl").exists()


def test_password_never_reaches_metadata_or_logs(tmp_path: Path) -> None:
    folder = tmp_path / "pw"
    folder.mkdir()
    (folder / "pg.yaml").write_text(
        """
name: pg.secret
metric: {name: pg.secret, type: COUNT}
retries: 0
source:
  type: postgres
  config:
    uri: 'postgresql://app:Sup3rSecretPw@127.0.0.1:1/shop'
    sql: SELECT COUNT(*) AS value FROM t WHERE ts >= :window_start AND ts < :window_end
sinks:
  console: {type: console}
"""
    )
    defs = _defs(folder)
    (asset,) = list(defs.assets or [])
    spec = asset.specs_by_key[dg.AssetKey("pg_secret")]
    assert "Sup3rSecretPw" not in repr(spec.metadata)
    assert "app:***@127.0.0.1" in str(spec.metadata["source_uri"])
    instance = dg.DagsterInstance.ephemeral()
    result = _materialize(defs, instance, partition_key="2026-02-03", raise_on_error=False)
    assert not result.success
    logs = instance.all_logs(result.run_id)
    assert logs
    assert not any("Sup3rSecretPw" in repr(entry) for entry in logs)
    assert any("127.0.0.1" in repr(entry) for entry in logs)  # the cause is still reported


def test_downstream_asset_reads_records_back(shop: dict[str, Path]) -> None:
    defs = _defs(shop["dir"])
    (collector,) = list(defs.assets or [])

    @dg.asset(
        partitions_def=collector.partitions_def,
        ins={"revenue": dg.AssetIn(key=dg.AssetKey("shop_revenue_daily"))},
    )
    def revenue_total(revenue):  # type: ignore[no-untyped-def]
        return float(revenue["value"].sum())

    instance = dg.DagsterInstance.ephemeral()
    resources = dict(defs.resources or {})
    resources["io_manager"] = dg.InMemoryIOManager()
    dg.materialize(
        [collector, revenue_total],
        resources=resources,
        instance=instance,
        partition_key="2026-02-06",
    )
    _materialize(defs, instance, partition_key="2026-02-06")  # a re-run must not double count
    result = dg.materialize(
        [collector, revenue_total],
        resources=resources,
        instance=instance,
        partition_key="2026-02-06",
        selection=[revenue_total],
    )
    total = result.output_for_node("revenue_total")
    assert total == pytest.approx(sum(expected_sums(shop["db"], "2026-02-06").values()))


def test_demo_collectors_load() -> None:
    root = Path(__file__).resolve().parents[1] / "collectors"
    defs = _defs(root)
    keys = {a.key.to_user_string() for a in defs.assets or []}
    assert len(keys) >= 4
    kinds = {a.specs_by_key[a.key].metadata["collector_kind"] for a in defs.assets or []}
    assert kinds == {"windowed", "as-of", "snapshot"}


def test_catalog_reloads_when_the_environment_changes(
    shop: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = shop["dir"] / "revenue.yaml"
    path.write_text(path.read_text().replace("value: test", 'value: {{ getEnvOrDefault "E" "a" }}'))
    first = load_catalog(str(shop["dir"])).get("shop.revenue.daily")
    monkeypatch.setenv("E", "b")
    second = load_catalog(str(shop["dir"])).get("shop.revenue.daily")
    assert first.metric.static_tags == {"env": "a"}
    assert second.metric.static_tags == {"env": "b"}
