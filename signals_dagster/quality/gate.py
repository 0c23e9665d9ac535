"""Compute → check → publish: the contract, the checks and the policies of a collector judged on
each window's records; a blocking failure means nothing of the run reaches any sink (only the
quarantine sink of `on_fail`, marked as such)."""

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import PurePosixPath

import pyarrow as pa

from signals_dagster.contracts.enforce import ContractViolation, Verdict, enforce
from signals_dagster.errors import CollectorError
from signals_dagster.quality.checks import CheckResult, History, evaluate, no_history
from signals_dagster.quality.policies import Policy, policy_results
from signals_dagster.records import concat_records
from signals_dagster.sinks import SinkClients, open_writer
from signals_dagster.spec.models import CollectorSpec
from signals_dagster.spec.sinks import FileSink, S3Sink
from signals_dagster.window import Window

log = logging.getLogger("signals_dagster")
QUARANTINE = "quarantine"


class QualityGateError(ContractViolation):
    """An error check, a policy's deny or the contract blocked publishing."""


@dataclass
class Outcome:
    """Every judgement of a run's windows."""

    verdicts: list[Verdict] = field(default_factory=list)  # the contract's
    results: list[CheckResult] = field(default_factory=list)  # checks and policies

    @property
    def blocked(self) -> bool:
        """Whether anything forbids publishing."""
        return any(not v.passed for v in self.verdicts) or any(r.blocking for r in self.results)

    def failures(self) -> list[str]:
        """One line per blocking failure (contract violations, failed error checks)."""
        lines = [
            line for verdict in self.verdicts if not verdict.passed for line in verdict.messages()
        ]
        return lines + [result.line() for result in self.results if result.blocking]

    def warnings(self) -> list[str]:
        """One line per failed `warn` check or policy warning."""
        return [r.line() for r in self.results if not r.passed and not r.blocking]

    def raise_if_blocked(self, quarantined: str | None = None) -> None:
        """A QualityGateError naming every blocked window and failure."""
        if not self.blocked:
            return
        windows = sorted(
            {v.window for v in self.verdicts if not v.passed}
            | {r.window for r in self.results if r.blocking}
        )
        what = (
            "quality gate failed" if any(r.blocking for r in self.results) else "contract violated"
        )
        count = f"{len(windows)} window{'' if len(windows) == 1 else 's'}"
        where = f"; the batch was quarantined in {quarantined}" if quarantined else ""
        raise QualityGateError(
            f"{what} in {count} ({', '.join(windows)}); nothing was published{where}:\n  "
            + "\n  ".join(self.failures())
        )


def judge(
    spec: CollectorSpec,
    windows: Sequence[tuple[Window, pa.Table]],
    history: History = no_history,
    policies: Sequence[Policy] = (),
) -> Outcome:
    """The contract, the checks and the policies that apply to the metric, on every window."""
    keyed = [(window.key, records) for window, records in windows]
    results = evaluate(spec, windows, history)
    applying = [p for p in policies if p.applies(spec.metric.name)]
    if applying:
        results += policy_results(applying, spec, windows, history)
    return Outcome(enforce(spec.contract, keyed), results)


def quarantine_sink(sink: FileSink | S3Sink) -> FileSink | S3Sink:
    """The quarantine sink with its path marked: a file's name gets `.quarantine` before its
    suffix, an S3 prefix a `quarantine/` segment (unless already there)."""
    if isinstance(sink, FileSink):
        path = PurePosixPath(sink.config.path)
        if QUARANTINE in path.name:
            return sink
        marked = path.with_name(f"{path.stem}.{QUARANTINE}{path.suffix or '.jsonl'}")
        return sink.model_copy(
            update={"config": sink.config.model_copy(update={"path": str(marked)})}
        )
    prefix = sink.config.prefix  # stored without leading or trailing '/'
    if QUARANTINE in prefix.split("/"):
        return sink
    marked_prefix = f"{prefix}/{QUARANTINE}" if prefix else QUARANTINE
    return sink.model_copy(
        update={"config": sink.config.model_copy(update={"prefix": marked_prefix})}
    )


def quarantine(
    spec: CollectorSpec,
    windows: Sequence[tuple[Window, pa.Table]],
    clients: SinkClients | None = None,
) -> str | None:
    """Write a blocked run's records to the `on_fail` quarantine sink; where they went."""
    if spec.on_fail is None:
        return None
    sink = quarantine_sink(spec.on_fail.quarantine)
    target = (
        sink.config.path
        if isinstance(sink, FileSink)
        else f"s3://{sink.config.bucket}/{sink.config.prefix}/"
    )
    writer = open_writer(sink, clients=clients)
    try:
        for window, records in windows:
            writer.write(spec, window.key, records)
    except CollectorError as exc:
        raise CollectorError(f"{spec.name}: the quarantine sink failed too: {exc}") from None
    finally:
        writer.close()
    count = len(concat_records([r for _, r in windows]))
    log.warning("%s: %d blocked record(s) quarantined in %s", spec.name, count, target)
    return target
