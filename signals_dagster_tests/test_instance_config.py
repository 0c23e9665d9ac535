"""The instance files: the dev instance limits every pool (source protection)."""

import shutil
from pathlib import Path

import dagster as dg

ROOT = Path(__file__).resolve().parents[1]


def test_dev_instance_limits_pools(tmp_path: Path) -> None:
    shutil.copy(ROOT / "dev" / "dagster.yaml", tmp_path / "dagster.yaml")
    instance = dg.DagsterInstance.from_config(str(tmp_path))
    try:
        assert instance.get_concurrency_config().pool_config.default_pool_limit == 2
    finally:
        instance.dispose()
