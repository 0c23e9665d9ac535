"""Helpers shared by the server-backed source tests: one partition materialised by Dagster."""

import json
from pathlib import Path
from typing import Any

import dagster as dg

from signals_dagster.catalog import load_catalog
from signals_dagster.orchestration.factory import build_definitions

CONSOLE = "console:\n    type: console"


def collector_yaml(
    name: str,
    source_type: str,
    config: list[str],
    *,
    metric_type: str = "COUNT",
    grain: str = "24h",
    timezone: str = "UTC",
    sink: str = CONSOLE,
) -> str:
    """A collector YAML: partitions from 2025-10-01, static tag env=test, `config` lines."""
    return "\n".join(
        [
            f"name: {name}",
            "metric:",
            f"  name: {name}",
            f"  type: {metric_type}",
            f"  grain: {grain}",
            "  tags: [{key: env, value: test}]",
            "partitions:",
            "  start: '2025-10-01'",
            f"  timezone: {timezone}",
            "source:",
            f"  type: {source_type}",
            "  config:",
            *(f"    {line}" for line in config),
            "sinks:",
            f"  {sink}",
            "",
        ]
    )


def file_sink(audit: Path) -> str:
    """The `sinks:` entry of a file sink writing to `audit` (for the collector YAML helpers)."""
    return f"audit:\n    type: file\n    config: {{path: '{audit}'}}"


def materialise_partition(
    text: str, tmp_path: Path, partition_key: str, asset: str
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Materialise one partition of the collector `text` in process; its audit records and metadata.

    The collector must write to `file_sink(tmp_path / "audit.jsonl")`.
    """
    folder = tmp_path / "collectors"
    folder.mkdir()
    (folder / "collector.yaml").write_text(text)
    defs = build_definitions(load_catalog(str(folder)), str(folder))
    instance = dg.DagsterInstance.ephemeral()
    result = dg.materialize(
        list(defs.assets or []),
        resources=defs.resources,
        instance=instance,
        partition_key=partition_key,
    )
    assert result.success
    audit = tmp_path / "audit.jsonl"
    records = [json.loads(line) for line in audit.read_text().splitlines()]
    event = instance.get_latest_materialization_event(dg.AssetKey(asset))
    assert event is not None
    assert event.asset_materialization is not None
    metadata = {k: v.value for k, v in event.asset_materialization.metadata.items()}
    return records, metadata
