"""The quality checks of a collector, evaluated on each window's records before publishing.

`change` and `anomaly` compare a window's figure (record_count or value_sum) with the same
figure of previous windows: those collected earlier in the same run, else the stored history
(the Dagster instance's materialisation metadata, or for `signals invoke` the file sink).
"""

import math
import statistics
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from signals_dagster.spec.models import CollectorSpec
from signals_dagster.spec.quality import (
    AnomalyCheck,
    ChangeCheck,
    Check,
    NotEmptyCheck,
    RangeCheck,
)
from signals_dagster.window import Window

if TYPE_CHECKING:  # pyarrow is imported when records are judged, not by `signals validate`
    import pyarrow as pa


@dataclass(frozen=True)
class Figures:
    """A window's figures that checks compare across windows."""

    record_count: int
    value_sum: float

    def get(self, name: str) -> float:
        """`record_count` or `value_sum`."""
        return float(self.record_count if name == "record_count" else self.value_sum)


def figures_of(records: "pa.Table") -> Figures:
    """The figures of one window's records."""
    from signals_dagster.records import value_sum

    return Figures(len(records), value_sum(records.column("value")) if len(records) else 0.0)


# The figures of earlier windows by key (of the windows asked for; a window without a stored
# materialisation is absent).
History = Callable[[Sequence[Window]], Mapping[str, Figures]]


def no_history(_windows: Sequence[Window]) -> Mapping[str, Figures]:
    """No stored history (a collector without one)."""
    return {}


@dataclass(frozen=True)
class CheckResult:
    """One check's outcome for one window, with its figures."""

    window: str
    name: str
    kind: str
    severity: str
    passed: bool
    message: str
    figures: dict[str, object] = field(default_factory=dict)
    skipped: bool = False

    @property
    def blocking(self) -> bool:
        """A failed `error` check: nothing of the run may be published."""
        return not self.passed and self.severity == "error"

    def line(self) -> str:
        """`check NAME, WINDOW: passed|failed|skipped (severity): message`."""
        head = f"check {self.name} ({self.severity}), {self.window}"
        if self.skipped:  # the message says "skipped: why"
            return f"{head}: {self.message}"
        return f"{head}: {'passed' if self.passed else 'FAILED'}: {self.message}"


def _number(value: float) -> float | int:
    return int(value) if float(value).is_integer() else round(value, 6)


def _range(check: RangeCheck, records: "pa.Table") -> tuple[bool, str, dict[str, object]]:
    import pyarrow as pa
    import pyarrow.compute as pc

    values = records.column("value")
    low = "-inf" if check.min is None else f"{check.min:g}"
    high = "inf" if check.max is None else f"{check.max:g}"
    figures: dict[str, object] = {"min": check.min, "max": check.max}
    if not len(values):
        return True, f"no records (bounds [{low}, {high}])", figures
    stats = pc.min_max(values)
    smallest, largest = stats["min"].as_py(), stats["max"].as_py()
    figures |= {"value_min": smallest, "value_max": largest}
    outside = 0
    if check.min is not None:
        outside += pc.sum(pc.less(values, check.min).cast(pa.int64())).as_py() or 0
    if check.max is not None:
        outside += pc.sum(pc.greater(values, check.max).cast(pa.int64())).as_py() or 0
    figures["out_of_range"] = outside
    seen = f"values {smallest:g} .. {largest:g}, bounds [{low}, {high}]"
    if outside:
        return False, f"{outside} of {len(values)} value(s) out of range ({seen})", figures
    return True, seen, figures


def _change(
    check: ChangeCheck, current: Figures, previous: Figures | None, key: str | None
) -> tuple[bool, str, dict[str, object], bool]:
    value = current.get(check.on)
    figures: dict[str, object] = {"on": check.on, "value": _number(value), "max_pct": check.max_pct}
    if previous is None:
        return True, f"skipped: no previous window to compare {check.on} with", figures, True
    before = previous.get(check.on)
    figures |= {"previous": _number(before), "previous_window": key}
    if before == 0:
        changed = 0.0 if value == 0 else math.inf
    else:
        changed = abs(value - before) / abs(before) * 100
    figures["change_pct"] = None if math.isinf(changed) else round(changed, 3)
    text = "from 0" if math.isinf(changed) else f"{changed:.1f}%"
    summary = f"{check.on} {value:g} vs {before:g} in {key} ({text}; at most {check.max_pct:g}%)"
    return changed <= check.max_pct, summary, figures, False


def _anomaly(
    check: AnomalyCheck, current: Figures, baseline: list[float]
) -> tuple[bool, str, dict[str, object], bool]:
    value = current.get(check.on)
    figures: dict[str, object] = {
        "on": check.on,
        "value": _number(value),
        "history": len(baseline),
        "sigma": check.sigma,
        "direction": check.direction,
    }
    if len(baseline) < check.min_history:
        message = f"skipped: {len(baseline)} of {check.min_history} windows of history"
        return True, message, figures, True
    mean = statistics.fmean(baseline)
    deviation = statistics.pstdev(baseline)
    figures |= {"mean": round(mean, 6), "stddev": round(deviation, 6)}
    if deviation == 0:
        z = 0.0 if value == mean else math.copysign(math.inf, value - mean)
    else:
        z = (value - mean) / deviation
    figures["z"] = None if math.isinf(z) else round(z, 3)
    if check.direction == "up":
        bad = z > check.sigma
    elif check.direction == "down":
        bad = z < -check.sigma
    else:
        bad = abs(z) > check.sigma
    z_text = "inf" if math.isinf(z) else f"{z:+.2f}"
    summary = (
        f"{check.on} {value:g}: z {z_text} against mean {mean:g}, stddev {deviation:g} of "
        f"{len(baseline)} window(s) (at most {check.sigma:g} sigma, {check.direction})"
    )
    return not bad, summary, figures, False


def collector_checks(spec: CollectorSpec) -> list[Check]:
    """The checks of a collector: its own, then its contract's."""
    contract = spec.contract
    return [*spec.checks, *(contract.checks if contract is not None else ())]


def earlier_windows(spec: CollectorSpec, first: Window, count: int) -> list[Window]:
    """The `count` windows before `first` (newest first; fewer before partitions.start)."""
    from signals_dagster.partitioning import previous_window

    found: list[Window] = []
    window = previous_window(spec, first)
    while window is not None and len(found) < count:
        found.append(window)
        window = previous_window(spec, window)
    return found


def _depth(checks: Sequence[Check]) -> int:
    """How many earlier windows the checks look at."""
    depth = 0
    for check in checks:
        if isinstance(check, ChangeCheck):
            depth = max(depth, 1)
        elif isinstance(check, AnomalyCheck):
            depth = max(depth, check.lookback)
    return depth


def evaluate(
    spec: CollectorSpec,
    windows: Sequence[tuple[Window, "pa.Table"]],
    history: History = no_history,
) -> list[CheckResult]:
    """Every check of the collector on every window (in the order given: oldest first)."""
    checks = collector_checks(spec)
    if not checks or not windows:
        return []
    depth = _depth(checks)
    earlier: dict[str, Figures] = {}
    chain: list[Window] = []  # the windows before the run's first one, newest first
    if depth:
        chain = earlier_windows(spec, windows[0][0], depth)
        earlier = dict(history(chain))
    ordered = [w.key for w in reversed(chain)]  # oldest first
    results: list[CheckResult] = []
    for window, records in windows:
        key = window.key
        current = figures_of(records)
        for check in checks:
            results.append(_one(check, key, records, current, ordered, earlier))
        earlier[key] = current
        ordered.append(key)
    return results


def _one(
    check: Check,
    key: str,
    records: "pa.Table",
    current: Figures,
    ordered: list[str],
    earlier: Mapping[str, Figures],
) -> CheckResult:
    skipped = False
    if isinstance(check, NotEmptyCheck):
        passed = len(records) > 0
        message = f"{len(records)} record(s)"
        figures: dict[str, object] = {"record_count": len(records)}
    elif isinstance(check, RangeCheck):
        passed, message, figures = _range(check, records)
    elif isinstance(check, ChangeCheck):
        previous_key = ordered[-1] if ordered else None
        previous = earlier.get(previous_key) if previous_key is not None else None
        passed, message, figures, skipped = _change(check, current, previous, previous_key)
        if previous is None and previous_key is not None:
            message = f"skipped: no {check.on} for the previous window {previous_key}"
    else:
        assert isinstance(check, AnomalyCheck)
        window_keys = ordered[-check.lookback :]
        baseline = [earlier[k].get(check.on) for k in window_keys if k in earlier]
        passed, message, figures, skipped = _anomaly(check, current, baseline)
    return CheckResult(
        key,
        check.check_name,
        check.type,
        check.severity,
        passed,
        message,
        figures,
        skipped,
    )
