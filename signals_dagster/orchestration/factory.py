"""Factories: collector specs → Dagster assets and their IO managers."""

import json
import warnings
from pathlib import Path

import dagster as dg
import pandas as pd

from signals_dagster.catalog import Catalog
from signals_dagster.collect import Collected, collect
from signals_dagster.errors import CollectorError, SourceError
from signals_dagster.orchestration.io_manager import SinksIOManager
from signals_dagster.orchestration.partitions import current_window, partitions_def, window_for_key
from signals_dagster.orchestration.translator import AssetFacts, translate
from signals_dagster.records import empty_records, to_dicts
from signals_dagster.spec.models import CollectorSpec

SAMPLE_ROWS = 20


def io_manager_key(spec: CollectorSpec) -> str:
    """Resource key of a collector's sinks IO manager."""
    return f"sinks__{spec.asset_name}"


def sample_table(records: pd.DataFrame) -> dg.MetadataValue:
    """A few records as a table for the UI."""
    rows = [
        dg.TableRecord(
            {
                "uuid": r["uuid"],
                "value": float(r["value"]),
                "tags": json.dumps(r["tags"], sort_keys=True),
                "grain_datetime": r["grain_datetime"],
            }
        )
        for r in to_dicts(records.head(SAMPLE_ROWS))
    ]
    schema = dg.TableSchema(
        columns=[
            dg.TableColumn("uuid", "string"),
            dg.TableColumn("value", "float"),
            dg.TableColumn("tags", "string"),
            dg.TableColumn("grain_datetime", "string"),
        ]
    )
    return dg.MetadataValue.table(records=rows, schema=schema)


def partition_metadata(item: Collected, facts: AssetFacts) -> dict[str, object]:
    """Per-partition materialisation metadata (figures, the redacted query, a sample)."""
    return {
        **item.metadata(),
        "query": facts.metadata["query"],
        "sample": sample_table(item.records),
    }


def _run(spec: CollectorSpec, context: dg.AssetExecutionContext) -> list[Collected]:
    if context.has_partition_key_range or context.has_partition_key:
        windows = [window_for_key(spec, key) for key in context.partition_keys]
    else:
        windows = [current_window(spec)]
    context.log.info(
        f"{spec.name}: collecting {len(windows)} window(s) "
        f"{windows[0].key}{' .. ' + windows[-1].key if len(windows) > 1 else ''}"
    )
    try:
        return collect(spec, windows)
    except SourceError as exc:
        if exc.transient:
            raise  # a RetryPolicy may help
        raise dg.Failure(description=str(exc), allow_retries=False) from None
    except CollectorError as exc:
        raise dg.Failure(description=str(exc), allow_retries=False) from None


def build_asset(spec: CollectorSpec, file: Path | None = None) -> dg.AssetsDefinition:
    """One collector → one (partitioned) asset whose output goes to the collector's sinks."""
    facts = translate(spec, file)
    pdef = partitions_def(spec)
    single_run = pdef is not None and facts.kind != "snapshot"

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.BetaWarning)  # backfill_policy is beta in 1.13
        return _asset(spec, facts, pdef, single_run)


def _asset(
    spec: CollectorSpec,
    facts: AssetFacts,
    pdef: dg.TimeWindowPartitionsDefinition | None,
    single_run: bool,
) -> dg.AssetsDefinition:
    @dg.asset(
        name=facts.key,
        description=facts.description,
        partitions_def=pdef,
        backfill_policy=dg.BackfillPolicy.single_run() if single_run else None,
        io_manager_key=io_manager_key(spec),
        kinds=facts.kinds,
        owners=facts.owners or None,
        group_name=facts.group,
        code_version=facts.code_version,
        metadata=facts.metadata,
        tags=facts.tags,
    )
    def _collector(context: dg.AssetExecutionContext) -> dg.Output[pd.DataFrame]:
        collected = _run(spec, context)
        if pdef is not None:
            for item in collected:
                context.add_asset_metadata(
                    partition_metadata(item, facts), partition_key=item.window.key
                )
            metadata: dict[str, object] = {}
        else:
            metadata = partition_metadata(collected[0], facts)
        frames = [c.records for c in collected if len(c.records)]
        records = pd.concat(frames, ignore_index=True) if frames else empty_records()
        return dg.Output(records, metadata=metadata)  # type: ignore[arg-type]

    return _collector


def build_definitions(catalog: Catalog, directory: str) -> dg.Definitions:
    """Assets and IO managers for every collector of a catalog."""
    assets = []
    resources: dict[str, SinksIOManager] = {}
    for name, spec in sorted(catalog.specs.items()):
        assets.append(build_asset(spec, catalog.files.get(name)))
        resources[io_manager_key(spec)] = SinksIOManager(collectors_dir=directory, collector=name)
    return dg.Definitions(assets=assets, resources=resources)
