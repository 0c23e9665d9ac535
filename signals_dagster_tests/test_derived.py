"""Derived assets: the demo's weekly revenue, read back from the file sink with zero services."""

import importlib
import sqlite3
from pathlib import Path

import dagster as dg
import pytest

from signals_dagster.catalog import load_catalog
from signals_dagster.demo import build
from signals_dagster.derived import derived_definitions, first_monday
from signals_dagster.orchestration.factory import build_definitions

ROOT = Path(__file__).resolve().parents[1]
DAILY = dg.AssetKey("shop_orders_revenue_daily")
WEEKLY = dg.AssetKey("shop_orders_revenue_weekly")
WEEK = [f"2026-06-{d:02d}" for d in range(1, 8)]  # Monday 1 .. Sunday 7


@pytest.fixture
def demo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """The demo collectors over a fresh demo database and audit log in tmp_path."""
    db = build(str(tmp_path / "shop.sqlite"))
    audit = tmp_path / "audit.jsonl"
    monkeypatch.setenv("SIGNALS_DEMO_DB", str(db))
    monkeypatch.setenv("SIGNALS_DEMO_AUDIT", str(audit))
    return {"db": db, "audit": audit}


def demo_defs() -> dg.Definitions:
    folder = str(ROOT / "collectors")
    catalog = load_catalog(folder)
    return dg.Definitions.merge(build_definitions(catalog, folder), derived_definitions(catalog))


def weekly_paid_revenue(db: Path) -> dict[str, float]:
    """Paid revenue per country for the week, straight from the database."""
    conn = sqlite3.connect(db)
    rows = conn.execute(
        "SELECT country, SUM(amount) FROM orders WHERE status = 'paid' "
        "AND created_at >= '2026-06-01 00:00:00' AND created_at < '2026-06-08 00:00:00' "
        "GROUP BY country"
    ).fetchall()
    conn.close()
    return dict(rows)


def run(defs: dg.Definitions, instance: dg.DagsterInstance, keys: list[dg.AssetKey], **kw: object):  # type: ignore[no-untyped-def]
    assets = [a for a in defs.assets or [] if isinstance(a, dg.AssetsDefinition)]
    return dg.materialize(assets, resources=defs.resources, instance=instance, selection=keys, **kw)


@pytest.mark.parametrize(
    ("start", "monday"),
    [("2026-06-01", "2026-06-01"), ("2026-06-03", "2026-06-08"), ("2026-01-01", "2026-01-05")],
)
def test_first_monday(start: str, monday: str) -> None:
    assert first_monday(start) == monday


def test_demo_weekly_revenue_from_the_file_sink(demo: dict[str, Path]) -> None:
    defs = demo_defs()
    instance = dg.DagsterInstance.ephemeral()
    daily = run(
        defs,
        instance,
        [DAILY],
        tags={
            "dagster/asset_partition_range_start": WEEK[0],
            "dagster/asset_partition_range_end": WEEK[-1],
        },
    )
    assert daily.success
    result = run(defs, instance, [WEEKLY], partition_key="2026-06-01")
    assert result.success
    out = result.output_for_node("shop_orders_revenue_weekly")
    got = {r["tags"]["country"]: r["value"] for r in out.to_dict("records")}
    expected = weekly_paid_revenue(demo["db"])
    assert set(got) == set(expected)
    for country, value in expected.items():
        assert got[country] == pytest.approx(value, abs=0.05)  # daily sums are rounded to cents
    assert all(r["tags"]["env"] == "demo" for r in out.to_dict("records"))
    meta = result.asset_materializations_for_node("shop_orders_revenue_weekly")[0].metadata
    assert meta["days"].value == 7
    assert meta["value_sum"].value == pytest.approx(sum(expected.values()), abs=0.5)


def test_rerun_of_a_day_does_not_double_count(demo: dict[str, Path]) -> None:
    defs = demo_defs()
    instance = dg.DagsterInstance.ephemeral()
    for day in WEEK:
        run(defs, instance, [DAILY], partition_key=day)
    run(defs, instance, [DAILY], partition_key="2026-06-03")  # appended again to the audit log
    out = run(defs, instance, [WEEKLY], partition_key="2026-06-01").output_for_node(
        "shop_orders_revenue_weekly"
    )
    expected = weekly_paid_revenue(demo["db"])
    assert float(out["value"].sum()) == pytest.approx(sum(expected.values()), abs=0.5)


def test_incomplete_week_fails_naming_the_missing_days(demo: dict[str, Path]) -> None:
    defs = demo_defs()
    instance = dg.DagsterInstance.ephemeral()
    for day in WEEK[:5]:
        run(defs, instance, [DAILY], partition_key=day)
    result = run(defs, instance, [WEEKLY], partition_key="2026-06-01", raise_on_error=False)
    assert not result.success
    error = result.get_step_failure_events()[0].step_failure_data.error
    assert error is not None
    assert "not materialised yet: 2026-06-06, 2026-06-07" in error.message
    assert instance.get_latest_materialization_event(WEEKLY) is None


def test_weekly_partitions_follow_the_daily_collector() -> None:
    defs = demo_defs()
    weekly = defs.resolve_assets_def(WEEKLY)
    pdef = weekly.partitions_def
    assert isinstance(pdef, dg.TimeWindowPartitionsDefinition)
    assert pdef.get_first_partition_key() == "2026-06-01"
    assert weekly.asset_deps[WEEKLY] == {DAILY}


def test_definitions_module_with_and_without_the_demo_collector(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import signals_dagster.definitions as module

    monkeypatch.setenv("SIGNALS_COLLECTORS_DIR", str(ROOT / "collectors"))
    keys = {a.key for a in importlib.reload(module).defs.assets or []}  # type: ignore[union-attr]
    assert {DAILY, WEEKLY} <= keys
    folder = tmp_path / "others"
    folder.mkdir()
    (folder / "users.yaml").write_text((ROOT / "collectors" / "users_total.yaml").read_text())
    monkeypatch.setenv("SIGNALS_COLLECTORS_DIR", str(folder))
    keys = {a.key for a in importlib.reload(module).defs.assets or []}  # type: ignore[union-attr]
    assert keys == {dg.AssetKey("shop_users_total")}
    monkeypatch.setenv("SIGNALS_COLLECTORS_DIR", str(ROOT / "collectors"))
    importlib.reload(module)


def test_readme_example_of_user_derived_assets(
    demo: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import signals_dagster.definitions as module

    readme = (ROOT / "README.md").read_text()
    code = readme.split("```python\n# my_metrics.py\n", 1)[1].split("```", 1)[0]
    (tmp_path / "my_metrics_readme.py").write_text(code)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("SIGNALS_COLLECTORS_DIR", str(ROOT / "collectors"))
    importlib.reload(module)
    user = importlib.import_module("my_metrics_readme")
    defs: dg.Definitions = user.defs
    instance = dg.DagsterInstance.ephemeral()
    count = dg.AssetKey("shop_orders_count_daily")
    for day in WEEK:
        assert run(defs, instance, [DAILY, count], partition_key=day).success
    weekly = run(defs, instance, [dg.AssetKey("revenue_weekly")], partition_key=WEEK[0])
    out = weekly.output_for_node("revenue_weekly")
    got = dict(zip(out["country"], out["value"], strict=True))
    for country, value in weekly_paid_revenue(demo["db"]).items():
        assert got[country] == pytest.approx(value, abs=0.05)
    ratio = run(defs, instance, [dg.AssetKey("revenue_per_order")], partition_key="2026-06-03")
    conn = sqlite3.connect(demo["db"])
    revenue, paid = conn.execute(
        "SELECT SUM(amount), COUNT(*) FROM orders WHERE status = 'paid' "
        "AND created_at >= '2026-06-03 00:00:00' AND created_at < '2026-06-04 00:00:00'"
    ).fetchone()
    conn.close()
    assert ratio.output_for_node("revenue_per_order") == pytest.approx(revenue / paid, abs=0.01)
