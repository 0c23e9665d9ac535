"""The embedded demo: deterministic data, collectors that validate and run on it."""

import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest

from signals_dagster.catalog import load_catalog
from signals_dagster.collect import collect
from signals_dagster.demo import build
from signals_dagster.orchestration.partitions import window_for_key
from signals_dagster.records import to_pandas

ROOT = Path(__file__).resolve().parents[1]


def test_demo_database_is_deterministic(tmp_path: Path) -> None:
    first = build(str(tmp_path / "a.sqlite"))
    second = build(str(tmp_path / "b.sqlite"))
    assert first.read_bytes() == second.read_bytes()
    db = sqlite3.connect(first)
    counts = {
        t: db.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]
        for t in ("users", "orders", "events", "sessions")
    }
    assert all(n > 1000 for n in counts.values()), counts


def test_demo_collectors_run_on_the_demo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    db = build(str(tmp_path / "shop.sqlite"))
    monkeypatch.setenv("SIGNALS_DEMO_DB", str(db))
    catalog = load_catalog(str(ROOT / "collectors"))
    now = datetime(2026, 11, 1, 12, tzinfo=UTC)
    for name, spec in catalog.specs.items():
        key = "2026-10-31" if "open" in name else "2026-08-15"
        (result,) = collect(spec, [window_for_key(spec, key)], now=now)
        assert len(result.records) > 0, name
        assert (to_pandas(result.records)["value"] > 0).all(), name
