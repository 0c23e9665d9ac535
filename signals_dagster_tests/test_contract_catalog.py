"""`signals catalog`: every metric with its contract and collectors (JSON, Markdown), URIs
redacted; and the contract in each collector asset's definition metadata."""

import json
import textwrap
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
from click.testing import CliRunner, Result

from signals_dagster.catalog import DEFAULT_DIR
from signals_dagster.contracts.catalog import load_registry_of, name_line
from signals_dagster.contracts.catalog_command import catalog
from signals_dagster.orchestration.factory import build_asset
from signals_dagster.spec.loader import load_collectors
from signals_dagster.spec.models import CollectorSpec

PASSWORD = "Sup3rSecretPw"

REGISTRY = """
# Contracts of the test folder.
metrics:
  - name: shop.orders.count
    version: 2
    type: COUNT
    unit: orders
    description: Orders per status and day
    owners: [team:growth, ana@example.com]
    stability: stable
    tags:
      status: {required: true, allowed: [paid, open]}
      env: {required: true, pattern: '^(prod|test)$'}
      channel:
    values: {min: 0, max: 1000}
    max_records: 50

  - name: shop.unused
    version: 1
    type: GAUGE
    description: Nobody collects this yet
"""

ORDERS = """
# Orders per status and day.
name: shop.orders.count.daily
description: Orders per status and day
owners: [team:ops]
metric:
  name: shop.orders.count
  type: COUNT
  tags: {{env: test}}
schedule:
  interval: 24h
partitions:
  start: '2026-06-01'
source:
  type: sqlite
  config:
    uri: 'sqlite:///{db}'
    sql: |
      SELECT status, COUNT(*) AS value
      FROM orders
      WHERE created_at >= :window_start AND created_at < :window_end
      GROUP BY status
sinks:
  audit:
    type: file
    config:
      path: '{audit}'
"""

ORDERS_PG = f"""
name: shop.orders.count.pg
metric: {{name: shop.orders.count, type: COUNT, tags: {{env: prod}}}}
schedule: {{cron: '15 0 * * *'}}
source:
  type: postgres
  config:
    uri: 'postgresql://app:{PASSWORD}@127.0.0.1:1/shop'
    sql: >-
      SELECT status, COUNT(*) AS value FROM orders
      WHERE created_at >= :window_start AND created_at < :window_end GROUP BY status
sinks:
  console: {{type: console}}
  audit: {{type: file, config: {{path: '{{audit}}'}}}}
"""

REVENUE = """
name: shop.revenue.daily
metric: {{name: shop.revenue, type: GAUGE}}
source:
  type: sqlite
  config:
    uri: 'sqlite:///{db}'
    sql: >-
      SELECT SUM(amount) AS value FROM orders
      WHERE created_at >= :window_start AND created_at < :window_end
sinks:
  console: {{type: console}}
"""


def _write(path: Path, text: str) -> Path:
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """A collectors folder: a registry, two collectors of a contracted metric (one with a
    password in its URI), one of a metric without contract; one contract without collector."""
    root = tmp_path / "collectors"
    root.mkdir()
    db, audit = tmp_path / "shop.sqlite", tmp_path / "audit.jsonl"
    _write(root / "metrics.yaml", REGISTRY)
    _write(root / "orders.yaml", ORDERS.format(db=db, audit=audit))
    _write(root / "orders_pg.yaml", ORDERS_PG.replace("{audit}", str(audit)))
    _write(root / "revenue.yaml", REVENUE.format(db=db))
    return root


def _run(*args: str) -> Result:
    result = CliRunner().invoke(catalog, list(args))
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result


def _json(folder: Path) -> dict[str, Any]:
    result = _run(str(folder), "--format", "json")
    assert result.exit_code == 0, result.output
    data: dict[str, Any] = json.loads(result.stdout)
    return data


def _line_of(path: Path, text: str) -> int:
    lines = path.read_text(encoding="utf-8").splitlines()
    return next(i for i, line in enumerate(lines, 1) if text in line)


def test_json_lists_every_metric_sorted_with_its_contract(folder: Path) -> None:
    metrics = {m["name"]: m for m in _json(folder)["metrics"]}
    assert list(metrics) == ["shop.orders.count", "shop.revenue", "shop.unused"]
    orders = metrics["shop.orders.count"]
    registry = folder / "metrics.yaml"
    assert {k: v for k, v in orders.items() if k != "collectors"} == {
        "name": "shop.orders.count",
        "version": 2,
        "type": "COUNT",
        "unit": "orders",
        "stability": "stable",
        "description": "Orders per status and day",
        "owners": ["team:growth", "ana@example.com"],
        "tags": {
            "status": {"required": True, "allowed": ["paid", "open"], "pattern": None, "pii": None},
            "env": {"required": True, "allowed": None, "pattern": "^(prod|test)$", "pii": None},
            "channel": {"required": False, "allowed": None, "pattern": None, "pii": None},
        },
        "values": {"min": 0, "max": 1000},
        "max_records": 50,
        "contract": f"{registry}:{_line_of(registry, '- name: shop.orders.count')}",
    }
    assert [c["name"] for c in orders["collectors"]] == [
        "shop.orders.count.daily",
        "shop.orders.count.pg",
    ]


def test_json_metric_without_contract_and_contract_without_collector(folder: Path) -> None:
    metrics = {m["name"]: m for m in _json(folder)["metrics"]}
    revenue = metrics["shop.revenue"]
    assert revenue["version"] is None
    assert revenue["contract"] is None
    assert revenue["type"] is None
    assert revenue["tags"] == {}
    assert [c["name"] for c in revenue["collectors"]] == ["shop.revenue.daily"]
    unused = metrics["shop.unused"]
    registry = folder / "metrics.yaml"
    assert unused["version"] == 1
    assert unused["type"] == "GAUGE"
    assert unused["stability"] == "development"
    assert unused["values"] is None
    assert unused["max_records"] is None
    assert unused["contract"] == f"{registry}:{_line_of(registry, '- name: shop.unused')}"
    assert unused["collectors"] == []


def test_json_collector_fields(folder: Path, tmp_path: Path) -> None:
    metrics = {m["name"]: m for m in _json(folder)["metrics"]}
    daily, pg = metrics["shop.orders.count"]["collectors"]
    assert daily == {
        "name": "shop.orders.count.daily",
        "file": str(folder / "orders.yaml"),
        "line": 2,  # after the comment
        "source": {"type": "sqlite", "uri": f"sqlite:///{tmp_path / 'shop.sqlite'}"},
        "grain": "24h",
        "schedule": {"interval": "24h"},
        "sinks": {"audit": "file"},
    }
    assert pg["line"] == 1
    assert pg["source"] == {"type": "postgres", "uri": "postgresql://app:***@127.0.0.1:1/shop"}
    assert pg["schedule"] == {"cron": "15 0 * * *"}
    assert pg["sinks"] == {"console": "console", "audit": "file"}
    (revenue,) = metrics["shop.revenue"]["collectors"]
    assert revenue["schedule"] is None
    assert revenue["grain"] == "24h"


def test_markdown_sections_and_tables(folder: Path) -> None:
    result = _run(str(folder))  # md is the default
    assert result.exit_code == 0, result.output
    text = result.stdout
    assert text.startswith("# ")
    sections = [line for line in text.splitlines() if line.startswith("## ")]
    assert sections == ["## shop.orders.count", "## shop.revenue", "## shop.unused"]
    orders, revenue, unused = text.split("\n## ")[1:]
    registry = folder / "metrics.yaml"
    assert f"`{registry}:{_line_of(registry, '- name: shop.orders.count')}`" in orders
    assert "| Tag | Required | Allowed | Pattern |" in orders
    assert "| status | yes | paid, open |  |" in orders
    assert "| env | yes |  | `^(prod\\|test)$` |" in orders  # the pipe does not split the cell
    assert "| channel | no |  |  |" in orders
    assert "| Collector | File | Source | URI | Grain | Schedule | Sinks |" in orders
    assert (
        f"| shop.orders.count.daily | `{folder / 'orders.yaml'}:2` | sqlite | "
        f"`sqlite:///{folder.parent / 'shop.sqlite'}` | 24h | interval 24h | audit: file |"
    ) in orders
    assert "| cron 15 0 * * * | console: console, audit: file |" in orders
    assert "No contract." in revenue
    assert "| Tag |" not in revenue
    assert "| shop.revenue.daily |" in revenue
    assert "Collectors: none." in unused
    assert "| Collector |" not in unused


@pytest.mark.parametrize("fmt", ["md", "json"])
def test_no_password_in_the_output(folder: Path, fmt: str) -> None:
    result = _run(str(folder), "--format", fmt)
    assert result.exit_code == 0, result.output
    assert PASSWORD not in result.output
    assert PASSWORD not in result.stderr
    assert "app:***@127.0.0.1" in result.stdout


def test_spec_error_prints_each_problem_and_exits_1(folder: Path) -> None:
    (folder / "broken.yaml").write_text("name: broken\nmetric: {name: x, type: NOPE}\n")
    result = _run(str(folder), "--format", "json")
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert lines
    assert all(line.startswith(f"{folder / 'broken.yaml'}:") for line in lines), lines


def test_default_dir_is_the_collectors_dir(folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert DEFAULT_DIR == "collectors"
    monkeypatch.setenv("SIGNALS_COLLECTORS_DIR", str(folder))
    result = _run("--format", "json")
    assert result.exit_code == 0, result.output
    names = [m["name"] for m in json.loads(result.stdout)["metrics"]]
    assert names == ["shop.orders.count", "shop.revenue", "shop.unused"]


def test_registry_of_a_single_file_is_its_folders(folder: Path) -> None:
    registry = load_registry_of([folder / "orders.yaml"])
    assert sorted(registry.contracts) == ["shop.orders.count", "shop.unused"]
    assert registry.where["shop.unused"].at() == (
        f"{folder / 'metrics.yaml'}:{_line_of(folder / 'metrics.yaml', '- name: shop.unused')}"
    )
    assert name_line(folder / "orders.yaml") == 2
    assert name_line(folder / "missing.yaml") == 1


def _specs(folder: Path) -> dict[str, CollectorSpec]:
    return {spec.name: spec for spec in load_collectors([folder]).values()}


def test_asset_metadata_shows_the_contract(folder: Path) -> None:
    spec = _specs(folder)["shop.orders.count.daily"]
    asset = build_asset(spec)
    asset_spec = asset.specs_by_key[dg.AssetKey("shop_orders_count_daily")]
    meta = asset_spec.metadata
    version = meta["contract_version"]
    assert (version.value if isinstance(version, dg.IntMetadataValue) else version) == 2
    assert isinstance(version, int | dg.IntMetadataValue)
    contract = meta["contract"]
    assert (contract.value if isinstance(contract, dg.TextMetadataValue) else contract) == (
        "shop.orders.count/2"
    )
    table = meta["contract_tags"]
    assert isinstance(table, dg.TableMetadataValue)
    assert table.schema is not None
    assert [(c.name, c.type) for c in table.schema.columns] == [
        ("tag", "string"),
        ("required", "bool"),
        ("allowed", "string"),
        ("pattern", "string"),
        ("pii", "string"),
    ]
    assert [r.data for r in table.records] == [
        {"tag": "status", "required": True, "allowed": "paid, open", "pattern": "", "pii": ""},
        {"tag": "env", "required": True, "allowed": "", "pattern": "^(prod|test)$", "pii": ""},
        {"tag": "channel", "required": False, "allowed": "", "pattern": "", "pii": ""},
    ]
    # The contract's owners and description stay out of the asset's.
    assert asset_spec.owners == ["team:ops"]
    assert asset_spec.description == "Orders per status and day"
    assert "ana@example.com" not in repr(asset_spec.owners)


def test_asset_metadata_without_contract_and_without_password(folder: Path) -> None:
    specs = _specs(folder)
    revenue = build_asset(specs["shop.revenue.daily"])
    meta = revenue.specs_by_key[dg.AssetKey("shop_revenue_daily")].metadata
    assert not {"contract", "contract_version", "contract_tags"} & set(meta)
    pg = build_asset(specs["shop.orders.count.pg"])
    pg_spec = pg.specs_by_key[dg.AssetKey("shop_orders_count_pg")]
    assert pg_spec.owners == []
    assert PASSWORD not in repr(pg_spec.metadata)
    assert "contract_tags" in pg_spec.metadata
