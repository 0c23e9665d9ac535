"""`make dev`'s first backfill: June 2026 of every partitioned demo collector, one run each, into
the dev instance — so the UI opens on materialised partitions and their check results (the
demo's launch day, 2026-06-24, shows the pageviews anomaly warning). Runs once per instance."""

import argparse
import os
from pathlib import Path

import dagster as dg

from signals_dagster.catalog import load_catalog
from signals_dagster.orchestration.factory import build_definitions

FIRST, LAST = "2026-06-01", "2026-06-30"
MARKER = "demo_backfill.done"


def backfill(directory: str, first: str = FIRST, last: str = LAST) -> list[tuple[str, bool]]:
    """Materialise [first, last] of each partitioned collector of `directory` in one run each
    on the instance of $DAGSTER_HOME; (job, success) per collector."""
    defs = build_definitions(load_catalog(directory), directory)
    instance = dg.DagsterInstance.get()
    tags = {
        "dagster/asset_partition_range_start": first,
        "dagster/asset_partition_range_end": last,
        "dagster/backfill": "demo",
    }
    outcomes = []
    for asset in defs.assets or []:
        assert isinstance(asset, dg.AssetsDefinition)
        if asset.partitions_def is None or asset.backfill_policy is None:
            continue  # sub-hour or snapshot collectors: no history to backfill
        job = defs.resolve_job_def(f"{asset.key.to_python_identifier()}_job")
        result = job.execute_in_process(instance=instance, tags=tags, raise_on_error=False)
        outcomes.append((job.name, result.success))
    return outcomes


def main() -> None:
    """`python -m signals_dagster.orchestration.demo_backfill [DIR]` (once per DAGSTER_HOME)."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("directory", nargs="?", default="collectors")
    args = parser.parse_args()
    marker = Path(os.environ["DAGSTER_HOME"]) / MARKER
    if marker.exists():
        print(f"demo backfill: already done ({marker})")
        return
    for job, success in backfill(args.directory):
        print(f"demo backfill {FIRST}..{LAST}: {job}: {'ok' if success else 'FAILED'}")
    marker.touch()


if __name__ == "__main__":
    main()
