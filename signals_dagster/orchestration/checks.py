"""Asset checks of a collector asset: the contract, one evaluation per partition.

Dagster's `AssetCheckResult` takes its partition from the step, which a single-run backfill does
not have (a range of partitions), so each partition's evaluation is emitted as an
`AssetCheckEvaluation` naming its partition: one result per partition, in a range run too.
"""

import warnings
from collections.abc import Sequence

import dagster as dg

from signals_dagster.collect import Collected
from signals_dagster.contracts.enforce import Verdict, enforce
from signals_dagster.spec.models import CollectorSpec

CONTRACT_CHECK = "contract"
SHOWN_VIOLATIONS = 10


def check_specs(
    spec: CollectorSpec, key: dg.AssetKey, pdef: dg.PartitionsDefinition | None
) -> list[dg.AssetCheckSpec]:
    """The asset checks of a collector's asset (the contract when its metric has one)."""
    contract = spec.contract
    if contract is None:
        return []
    with warnings.catch_warnings():  # a partitioned check spec is a preview feature
        warnings.simplefilter("ignore", dg.PreviewWarning)
        return [
            dg.AssetCheckSpec(
                CONTRACT_CHECK,
                asset=key,
                description=f"Records conform to the contract {contract.label} (tags, values, "
                "records per window); checked before any sink is written",
                blocking=True,
                partitions_def=pdef,
                metadata={"contract": contract.ref},
            )
        ]


def _metadata(verdict: Verdict) -> dict[str, object]:
    metadata: dict[str, object] = {
        "contract": verdict.contract.ref,
        "records": verdict.records,
        "violations": len(verdict.violations),
    }
    if verdict.violations:
        shown = verdict.violations[:SHOWN_VIOLATIONS]
        metadata["details"] = dg.MetadataValue.md("\n".join(f"- {v}" for v in shown))
    return metadata


def contract_evaluations(
    spec: CollectorSpec,
    key: dg.AssetKey,
    collected: Sequence[Collected],
    partitioned: bool,
) -> tuple[list[dg.AssetCheckEvaluation], list[Verdict]]:
    """The contract's evaluation of every collected window, and the verdicts."""
    verdicts = enforce(spec.contract, [(c.window.key, c.records) for c in collected])
    evaluations = [
        dg.AssetCheckEvaluation(
            asset_key=key,
            check_name=CONTRACT_CHECK,
            passed=verdict.passed,
            metadata=_metadata(verdict),  # type: ignore[arg-type]
            severity=dg.AssetCheckSeverity.ERROR,
            description=None if verdict.passed else "; ".join(verdict.violations[:3]),
            blocking=True,
            partition=verdict.window if partitioned else None,
        )
        for verdict in verdicts
    ]
    return evaluations, verdicts
