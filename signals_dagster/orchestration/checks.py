"""Asset checks of a collector asset — the contract, the quality checks, the policies — with one
evaluation per partition.

Dagster's `AssetCheckResult` takes its partition from the step, which a single-run backfill does
not have (a range of partitions), so each partition's evaluation is emitted as an
`AssetCheckEvaluation` naming its partition: one result per partition, in a range run too.
"""

import warnings
from collections.abc import Mapping, Sequence

import dagster as dg

from signals_dagster.contracts.enforce import Verdict
from signals_dagster.quality.checks import CheckResult, Figures, History, collector_checks
from signals_dagster.quality.gate import Outcome
from signals_dagster.quality.policies import Policy
from signals_dagster.spec.models import CollectorSpec
from signals_dagster.spec.quality import CONTRACT_CHECK
from signals_dagster.window import Window

SHOWN_VIOLATIONS = 10


def _spec(
    name: str, key: dg.AssetKey, pdef: dg.PartitionsDefinition | None, blocking: bool, about: str
) -> dg.AssetCheckSpec:
    with warnings.catch_warnings():  # a partitioned check spec is a preview feature
        warnings.simplefilter("ignore", dg.PreviewWarning)
        return dg.AssetCheckSpec(
            name, asset=key, description=about, blocking=blocking, partitions_def=pdef
        )


def check_specs(
    spec: CollectorSpec,
    key: dg.AssetKey,
    pdef: dg.PartitionsDefinition | None,
    policies: Sequence[Policy] = (),
) -> list[dg.AssetCheckSpec]:
    """The asset checks of a collector's asset: its contract's, each quality check, each policy
    that applies to its metric."""
    found: list[dg.AssetCheckSpec] = []
    contract = spec.contract
    if contract is not None:
        about = (
            f"Records conform to the contract {contract.label} (tags, values, records per "
            "window); checked before any sink is written"
        )
        found.append(_spec(CONTRACT_CHECK, key, pdef, True, about))
    for check in collector_checks(spec):
        about = f"{check.type} check ({check.severity}); checked before any sink is written"
        found.append(_spec(check.check_name, key, pdef, check.severity == "error", about))
    for policy in policies:
        if policy.applies(spec.metric.name):
            about = f"Rego policy {policy.name} ({policy.file}): deny blocks, warn warns"
            found.append(_spec(policy.check_name, key, pdef, True, about))
    return found


def _contract_metadata(verdict: Verdict) -> dict[str, object]:
    metadata: dict[str, object] = {
        "contract": verdict.contract.ref,
        "records": verdict.records,
        "violations": len(verdict.violations),
    }
    if verdict.violations:
        shown = verdict.violations[:SHOWN_VIOLATIONS]
        metadata["details"] = dg.MetadataValue.md("\n".join(f"- {v}" for v in shown))
    return metadata


def _result_metadata(result: CheckResult) -> dict[str, object]:
    metadata: dict[str, object] = {
        k: v for k, v in result.figures.items() if isinstance(v, int | float | str)
    }
    metadata["result"] = result.message
    if result.skipped:
        metadata["skipped"] = True
    return metadata


def evaluations(
    key: dg.AssetKey, outcome: Outcome, partitioned: bool
) -> list[dg.AssetCheckEvaluation]:
    """Every judgement of a run as a check evaluation of its partition."""
    found = [
        dg.AssetCheckEvaluation(
            asset_key=key,
            check_name=CONTRACT_CHECK,
            passed=verdict.passed,
            metadata=_contract_metadata(verdict),  # type: ignore[arg-type]
            severity=dg.AssetCheckSeverity.ERROR,
            description=None if verdict.passed else "; ".join(verdict.violations[:3]),
            blocking=True,
            partition=verdict.window if partitioned else None,
        )
        for verdict in outcome.verdicts
    ]
    found += [
        dg.AssetCheckEvaluation(
            asset_key=key,
            check_name=result.name,
            passed=result.passed,
            metadata=_result_metadata(result),  # type: ignore[arg-type]
            severity=(
                dg.AssetCheckSeverity.ERROR
                if result.severity == "error"
                else dg.AssetCheckSeverity.WARN
            ),
            description=result.message,
            blocking=result.severity == "error",
            partition=result.window if partitioned else None,
        )
        for result in outcome.results
    ]
    return found


def instance_history(instance: dg.DagsterInstance, key: dg.AssetKey) -> History:
    """Earlier windows' figures from the instance: the latest materialisation's metadata of
    each partition (`record_count`, `value_sum`)."""

    def figures(windows: Sequence[Window]) -> Mapping[str, Figures]:
        keys = [w.key for w in windows]
        if not keys:
            return {}
        records = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=key, asset_partitions=keys), limit=len(keys) * 4
        ).records
        found: dict[str, Figures] = {}
        for record in records:  # newest first: the first one of a partition is its latest
            event = record.asset_materialization
            if event is None or event.partition is None or event.partition in found:
                continue
            metadata = event.metadata
            count, total = metadata.get("record_count"), metadata.get("value_sum")
            if count is None or total is None:
                continue
            found[event.partition] = Figures(int(count.value), float(total.value))  # type: ignore[arg-type]
        return found

    return figures
