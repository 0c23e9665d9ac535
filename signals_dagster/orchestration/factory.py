"""Factories: collector specs → Dagster assets, their jobs, schedules and sensors, and the one
IO manager that writes every collector's records to its sinks."""

import json
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import dagster as dg
import pyarrow as pa
from dagster._core.definitions.asset_selection import KeysAssetSelection
from dagster._core.definitions.assets.graph.asset_graph import AssetGraph
from dagster._core.definitions.unresolved_asset_job_definition import (
    UnresolvedAssetJobDefinition,
)

from signals_dagster.catalog import Catalog
from signals_dagster.collect import Collected, collect
from signals_dagster.errors import CollectorError
from signals_dagster.orchestration.checks import check_specs, evaluations, instance_history
from signals_dagster.orchestration.clients import sink_clients
from signals_dagster.orchestration.failures import as_failure
from signals_dagster.orchestration.freshness import build_freshness_check, build_freshness_sensor
from signals_dagster.orchestration.io_manager import DETAILED_PARTITIONS, SinksIOManager
from signals_dagster.orchestration.partitions import partitions_def, window_for_key
from signals_dagster.orchestration.resources import KafkaProducerResource
from signals_dagster.orchestration.schedules import (
    build_schedule,
    build_subhour_trigger,
    subhour_window,
    tagged_window,
)
from signals_dagster.orchestration.sensors import build_late_data_sensor, run_failure_alerts
from signals_dagster.orchestration.translator import AssetFacts, translate
from signals_dagster.quality.checks import no_history
from signals_dagster.quality.gate import judge, quarantine
from signals_dagster.quality.policies import Policy, project_policies, publish_violations
from signals_dagster.records import concat_records, to_dicts
from signals_dagster.settings import load_settings
from signals_dagster.sinks import check_sinks
from signals_dagster.sources.base import query_shape
from signals_dagster.spec.models import CollectorSpec
from signals_dagster.window import Window

SAMPLE_ROWS = 20


# Resource key of the one sinks IO manager every collector's asset writes through.
SINKS_IO_MANAGER_KEY = "signals_sinks"
# Resource key of the KafkaProducerResource that makes every Kafka sink's clients (its `settings`
# reach the sink check before the query and the producers of the IO manager).
KAFKA_RESOURCE_KEY = "signals_kafka"
# A collector op's only output: the run's records, to the sinks (one Out shared by every op).
_RECORDS_OUT = dg.Out(pa.Table, io_manager_key=SINKS_IO_MANAGER_KEY)


def sample_table(records: pa.Table) -> dg.MetadataValue:
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
        for r in to_dicts(records.slice(0, SAMPLE_ROWS))
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


def partition_metadata(
    item: Collected, facts: AssetFacts, detailed: bool, spec: CollectorSpec
) -> dict[str, object]:
    """Per-partition materialisation metadata (figures, the contract the records were checked
    against; the redacted query and a sample)."""
    figures: dict[str, object] = dict(item.metadata())
    if spec.contract is not None:
        figures["contract"] = spec.contract.ref
    if not detailed:
        return figures
    return {
        **figures,
        "query": facts.metadata["query"],
        "sample": sample_table(item.records),
    }


def _windows(spec: CollectorSpec, context: dg.AssetExecutionContext) -> list[Window]:
    if context.has_partition_key_range or context.has_partition_key:
        return [window_for_key(spec, key) for key in context.partition_keys]
    # The window of the tick that requested the run; the wall clock's when launched by hand.
    tagged = tagged_window(spec, context.run.tags)
    return [tagged or subhour_window(spec, query_shape(spec).kind)]


def _run(spec: CollectorSpec, context: dg.AssetExecutionContext) -> list[Collected]:
    try:
        windows = _windows(spec, context)  # a bad window is a failure, not retried
        context.log.info(
            f"{spec.name}: collecting {len(windows)} window(s) "
            f"{windows[0].key}{' .. ' + windows[-1].key if len(windows) > 1 else ''}"
        )
        kafka = getattr(context.resources, KAFKA_RESOURCE_KEY)
        check_sinks(spec, sink_clients(kafka))  # before the query: a dead sink costs nothing
        return collect(spec, windows)
    except CollectorError as exc:
        raise as_failure(exc) from None


def _gate(
    spec: CollectorSpec,
    key: dg.AssetKey,
    context: dg.AssetExecutionContext,
    collected: list[Collected],
    partitioned: bool,
    policies: Sequence[Policy],
) -> Iterator[dg.AssetCheckEvaluation]:
    windows = [(c.window, c.records) for c in collected]
    history = instance_history(context.instance, key) if partitioned else no_history
    outcome = judge(spec, windows, history, policies)
    yield from evaluations(key, outcome, partitioned)
    for line in outcome.warnings():
        context.log.warning(line)
    clients = sink_clients(getattr(context.resources, KAFKA_RESOURCE_KEY))
    try:
        # Policy outcomes are signals too (policies.sinks of signals.yaml), blocked or not.
        if any(r.kind == "policy" for r in outcome.results):
            results = [(w, outcome.results) for w, _ in windows]
            publish_violations(load_settings(), spec, results, clients=clients)
        if outcome.blocked:
            outcome.raise_if_blocked(quarantine(spec, windows, clients))
    except CollectorError as exc:
        raise as_failure(exc) from None


def backfill_policy(spec: CollectorSpec, kind: str) -> dg.BackfillPolicy | None:
    """One run for a whole backfill (or chunks of max_partitions_per_run); none for snapshots."""
    if kind == "snapshot":
        return None  # each old partition would be refused anyway
    if spec.backfill.policy == "multi_run":
        return dg.BackfillPolicy.multi_run(spec.backfill.max_partitions_per_run)
    return dg.BackfillPolicy.single_run()


def build_asset(
    spec: CollectorSpec, file: Path | None = None, policies: Sequence[Policy] = ()
) -> dg.AssetsDefinition:
    """One collector → one (partitioned) asset whose output goes to the collector's sinks;
    `policies`: the code location's Rego policies (those that apply are its checks too)."""
    return _asset(spec, translate(spec, file), partitions_def(spec), policies)


def _asset(
    spec: CollectorSpec,
    facts: AssetFacts,
    pdef: dg.TimeWindowPartitionsDefinition | None,
    policies: Sequence[Policy] = (),
) -> dg.AssetsDefinition:
    # What @dg.asset(name=..., pool=..., retry_policy=..., io_manager_key=..., kinds=...) builds,
    # made directly: the decorator inspects the function's signature some fifteen times, most of
    # an asset's cost (test_many_collectors checks that the snapshots are the same).
    key = dg.AssetKey(facts.key)

    applying = [p for p in policies if p.applies(spec.metric.name)]
    checks = check_specs(spec, key, pdef, applying)

    def _collector(
        context: dg.AssetExecutionContext, _inputs: object
    ) -> Iterator[dg.Output | dg.AssetCheckEvaluation]:
        collected = _run(spec, context)
        # Compute → check → publish: every partition's evaluation is recorded, and a blocking
        # failure fails the step before the records reach the IO manager (no sink is written;
        # only the quarantine sink of on_fail gets the blocked batch).
        if checks:
            yield from _gate(spec, key, context, collected, pdef is not None, applying)
        for check in checks:  # the checks' (Nothing) outputs: evaluated above
            yield dg.Output(None, output_name=check.get_python_identifier())
        if pdef is not None:
            detailed = len(collected) <= DETAILED_PARTITIONS
            for item in collected:
                context.add_asset_metadata(
                    partition_metadata(item, facts, detailed, spec), partition_key=item.window.key
                )
            metadata: dict[str, object] = {}
        else:
            metadata = partition_metadata(collected[0], facts, True, spec)
        frames = [c.records for c in collected if len(c.records)]
        records = concat_records(frames)  # one Arrow table for the run
        yield dg.Output(records, metadata=metadata)  # type: ignore[arg-type]

    op = dg.OpDefinition(
        compute_fn=_collector,
        name=facts.key,
        description=facts.description,
        outs={
            "result": _RECORDS_OUT,
            **{c.get_python_identifier(): dg.Out(dg.Nothing, is_required=False) for c in checks},
        },
        retry_policy=dg.RetryPolicy(
            max_retries=spec.retries,
            delay=spec.retry_delay.total_seconds(),
            backoff=dg.Backoff.EXPONENTIAL,
            jitter=dg.Jitter.PLUS_MINUS,
        ),
        pool=facts.pool,
        required_resource_keys={KAFKA_RESOURCE_KEY},
    )
    asset_spec = dg.AssetSpec(
        key,
        description=facts.description,
        metadata=facts.metadata,
        tags=facts.tags,
        kinds=facts.kinds,
        owners=facts.owners or None,
        group_name=facts.group,
        code_version=facts.code_version,
        partitions_def=pdef,
    )
    return dg.AssetsDefinition(
        node_def=op,
        keys_by_output_name={"result": key},
        specs=[asset_spec],
        backfill_policy=backfill_policy(spec, facts.kind) if pdef is not None else None,
        check_specs_by_output_name={c.get_python_identifier(): c for c in checks} or None,
    )


class CollectorJob(UnresolvedAssetJobDefinition):
    """`define_asset_job(name, selection=[key])` for one collector's asset, resolved against
    that asset alone (and its checks) instead of the code location's whole asset graph: Dagster
    scans every asset of the graph to resolve a job's selection, which makes N collector jobs
    cost N² (25 s for 2,000 collectors). A collector asset has no upstream assets, so the job is
    the same."""

    def resolve(
        self,
        asset_graph: AssetGraph,
        default_executor_def: dg.ExecutorDefinition | None = None,
        resource_defs: Mapping[str, dg.ResourceDefinition] | None = None,
    ) -> dg.JobDefinition:
        """The job, from a graph of the selected asset (the one of `asset_graph`, with the
        resources the code location bound to it) and the checks of that asset."""
        assert isinstance(self.selection, KeysAssetSelection)
        (key,) = self.selection.selected_keys
        own = asset_graph.get(key)
        assets = {own.assets_def, *asset_graph.assets_defs_for_keys(own.check_keys)}
        return super().resolve(AssetGraph.from_assets(assets), default_executor_def, resource_defs)


def collector_job(spec: CollectorSpec) -> CollectorJob:
    """The job `<asset>_job` that materialises one collector (its schedule and sensors run it)."""
    return CollectorJob(
        name=f"{spec.asset_name}_job",
        selection=KeysAssetSelection(selected_keys=[dg.AssetKey(spec.asset_name)]),
        tags={},  # as define_asset_job normalises them
        run_tags={},
    )


def build_definitions(
    catalog: Catalog, directory: str, kafka: KafkaProducerResource | None = None
) -> dg.Definitions:
    """Assets, the sinks IO manager, jobs, schedules and sensors for every collector of a
    catalog (`directory`: the folder it was loaded from); `kafka`: the deployment's Kafka
    resource (its `settings` apply to every Kafka sink; run config may set them too)."""
    assets = []
    jobs = []
    schedules: list[dg.ScheduleDefinition] = []
    sensors: list[dg.SensorDefinition] = [run_failure_alerts]
    asset_checks: list[dg.AssetChecksDefinition] = []
    policies = project_policies(directory)
    for name, spec in sorted(catalog.specs.items()):
        asset = build_asset(spec, catalog.files.get(name), policies)
        assets.append(asset)
        job = collector_job(spec)
        jobs.append(job)
        if asset.partitions_def is not None:
            schedules.append(build_schedule(spec, job))
        else:
            trigger = build_subhour_trigger(spec, job)
            (sensors if isinstance(trigger, dg.SensorDefinition) else schedules).append(trigger)  # type: ignore[arg-type]
        if spec.late_data is not None:
            sensors.append(build_late_data_sensor(spec, job))
        if (freshness := build_freshness_check(spec, asset.key)) is not None:
            asset_checks.append(freshness)
        if (watch := build_freshness_sensor(spec, asset.key)) is not None:
            sensors.append(watch)
    # One IO manager for every collector, each collector's spec bound now: a run never re-reads
    # the folder, so a file broken since the code location loaded cannot fail it.
    specs = list(catalog.specs.values())
    sinks = dg.IOManagerDefinition(
        resource_fn=lambda init: SinksIOManager(specs, getattr(init.resources, KAFKA_RESOURCE_KEY)),
        required_resource_keys={KAFKA_RESOURCE_KEY},
        description=f"Writes the records of the {len(catalog.specs)} collector(s) of "
        f"{directory} to their sinks; reads them back (S3, file) for derived assets",
    )
    return dg.Definitions(
        assets=assets,
        resources={
            SINKS_IO_MANAGER_KEY: sinks,
            KAFKA_RESOURCE_KEY: kafka or KafkaProducerResource(),
        },
        jobs=jobs,
        schedules=schedules,
        sensors=sensors,
        asset_checks=asset_checks,
    )
