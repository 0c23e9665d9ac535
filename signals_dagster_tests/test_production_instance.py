"""The production instance: deploy/dagster.yaml on the local Postgres runs a materialisation."""

import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import psycopg
import pytest

from signals_dagster_tests.conftest import PG_ADMIN
from signals_dagster_tests.sqlite_shop import collector_yaml, expected_sums, make_shop

ROOT = Path(__file__).resolve().parents[1]
ASSET = dg.AssetKey("shop_revenue_daily")
DAY = "2026-02-03"


@pytest.fixture
def prod_db() -> Iterator[str]:
    """A throwaway database for the instance's storage (dropped at the end)."""
    name = f"signals_instance_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield name
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def prod_home(
    tmp_path: Path, prod_db: str, monkeypatch: pytest.MonkeyPatch
) -> dict[str, str | Path]:
    """DAGSTER_HOME holding deploy/dagster.yaml, its DAGSTER_PG_* variables set."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(ROOT / "deploy" / "dagster.yaml", home / "dagster.yaml")
    admin = psycopg.conninfo.conninfo_to_dict(PG_ADMIN)
    env = {
        "DAGSTER_HOME": str(home),
        "DAGSTER_PG_HOST": str(admin.get("host", "127.0.0.1")),
        "DAGSTER_PG_PORT": str(admin.get("port", "5432")),
        "DAGSTER_PG_DB": prod_db,
        "DAGSTER_PG_USER": str(admin.get("user", "postgres")),
        "DAGSTER_PG_PASSWORD": "ignored-by-trust-auth",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    folder = tmp_path / "collectors"
    folder.mkdir()
    db = make_shop(tmp_path / "shop.sqlite")
    (folder / "revenue.yaml").write_text(collector_yaml(db, tmp_path / "audit.jsonl"))
    return {"home": home, "collectors": folder, "db": db, "pg_db": prod_db}


def pg_rows(db: str, sql: str, *params: object) -> list[tuple]:
    url = PG_ADMIN.rsplit("/", 1)[0] + f"/{db}"
    with psycopg.connect(url) as conn:
        return conn.execute(sql, params).fetchall()  # type: ignore[arg-type]


def test_materialisation_is_stored_in_postgres(prod_home: dict[str, str | Path]) -> None:
    env = {**os.environ, "SIGNALS_COLLECTORS_DIR": str(prod_home["collectors"])}
    dagster = str(Path(sys.executable).with_name("dagster"))
    cmd = [dagster, "asset", "materialize", "-m", "signals_dagster.definitions"]
    cmd += ["--select", ASSET.to_user_string(), "--partition", DAY]
    done = subprocess.run(
        cmd, env=env, cwd=ROOT, capture_output=True, text=True, timeout=180, check=False
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    db = str(prod_home["pg_db"])
    runs = pg_rows(db, "SELECT run_id, status FROM runs")
    assert len(runs) == 1
    run_id, status = runs[0]
    assert status == "SUCCESS"
    events = pg_rows(
        db,
        "SELECT asset_key, partition FROM event_logs "
        "WHERE run_id = %s AND dagster_event_type = 'ASSET_MATERIALIZATION'",
        run_id,
    )
    assert events == [(ASSET.to_string(), DAY)]
    tables = {
        name
        for (name,) in pg_rows(
            db, "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
        )
    }
    assert {"runs", "event_logs", "asset_keys", "jobs", "job_ticks"} <= tables  # schedule storage

    # The same instance, opened in-process from DAGSTER_HOME, reads the run back.
    with dg.DagsterInstance.get() as instance:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        assert type(instance.event_log_storage).__name__ == "PostgresEventLogStorage"
        assert type(instance.schedule_storage).__name__ == "PostgresScheduleStorage"
        record = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=ASSET, asset_partitions=[DAY]), limit=1
        ).records[0]
        assert record.run_id == run_id
        meta = record.asset_materialization.metadata  # type: ignore[union-attr]
        expected = expected_sums(Path(prod_home["db"]), DAY)
        assert meta["record_count"].value == len(expected)
        assert meta["value_sum"].value == pytest.approx(sum(expected.values()))
