"""The instance files: every one limits every pool (source protection); the repository root's
is embedded (no service, no variable), the production one (deploy/) is on Postgres."""

import shutil
from pathlib import Path

import dagster as dg
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("path", ["dev/dagster.yaml", "dagster.yaml"])
def test_local_instances_limit_pools_on_embedded_storage(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, path: str
) -> None:
    for var in ("DAGSTER_PG_HOST", "DAGSTER_PG_PORT", "DAGSTER_PG_DB", "DAGSTER_PG_USER"):
        monkeypatch.delenv(var, raising=False)
    shutil.copy(ROOT / path, tmp_path / "dagster.yaml")
    instance = dg.DagsterInstance.from_config(str(tmp_path))
    try:
        assert instance.get_concurrency_config().pool_config.default_pool_limit == 2
        assert type(instance.run_storage).__name__ == "SqliteRunStorage"
    finally:
        instance.dispose()


def test_root_and_dev_instances_agree() -> None:
    """`make dev` (dev/dagster.yaml in .dagster_home/) and Dagster's commands in the root
    (dagster.yaml) run with the same settings."""
    root = yaml.safe_load((ROOT / "dagster.yaml").read_text())
    assert root == yaml.safe_load((ROOT / "dev" / "dagster.yaml").read_text())


def test_production_instance_is_postgres_with_the_same_settings() -> None:
    production = yaml.safe_load((ROOT / "deploy" / "dagster.yaml").read_text())
    db = production.pop("storage")["postgres"]["postgres_db"]
    assert {key: value["env"] for key, value in db.items()} == {
        "hostname": "DAGSTER_PG_HOST",
        "port": "DAGSTER_PG_PORT",
        "db_name": "DAGSTER_PG_DB",
        "username": "DAGSTER_PG_USER",
        "password": "DAGSTER_PG_PASSWORD",
    }
    assert production == yaml.safe_load((ROOT / "dagster.yaml").read_text())
