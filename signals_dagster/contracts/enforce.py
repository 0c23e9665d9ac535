"""Run-time enforcement: one window's records against their metric's contract, before any sink.

Vectorised over the records frame (the tags map flattened once); Python runs per distinct tag
value only where a pattern must be matched.
"""

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from signals_dagster.contracts.model import Contract, TagRule
from signals_dagster.errors import CollectorError

SHOWN_VALUES = 5  # offending values named per violation
REDACTED = "<redacted>"


class ContractViolation(CollectorError):
    """Records broke their metric's contract: nothing of the run may be published."""


@dataclass(frozen=True)
class Verdict:
    """One window's records against the contract: every violation, in a stable order."""

    window: str
    contract: Contract
    records: int
    violations: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        """No violation."""
        return not self.violations

    def messages(self) -> list[str]:
        """Each violation prefixed with the contract and the window."""
        return [f"{self.contract.label}, {self.window}: {v}" for v in self.violations]


def _plural(count: int, word: str = "record") -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def _shown(value: object, rule: TagRule | None) -> str:
    if rule is not None and getattr(rule, "pii", None):
        return REDACTED
    return repr(value)


def _value_list(counts: list[tuple[object, int]], rule: TagRule | None) -> str:
    """`'it' (3 records), 'es' (1 record) and 4 more values`."""
    parts = [f"{_shown(v, rule)} ({_plural(c)})" for v, c in counts[:SHOWN_VALUES]]
    more = len(counts) - SHOWN_VALUES
    return ", ".join(parts) + (f" and {_plural(more, 'more value')}" if more > 0 else "")


def _counts(values: pa.Array) -> list[tuple[object, int]]:
    """Distinct values with their counts, most frequent first (ties: first seen first)."""
    counted = pc.value_counts(values)
    items = list(
        zip(counted.field("values").to_pylist(), counted.field("counts").to_pylist(), strict=True)
    )
    return sorted(items, key=lambda item: -item[1])


def _offending(
    key: str, rule: TagRule | None, counts: list[tuple[object, int]], problem: str
) -> str:
    total = sum(c for _, c in counts)
    if len(counts) == 1:
        value, _ = counts[0]
        return f"tag {key!r} value {_shown(value, rule)} {problem} ({_plural(total)}"
    return f"tag {key!r} values {_value_list(counts, rule)} {problem} ({_plural(total)}"


def _flat_tags(tags: pa.MapArray) -> tuple[pa.Array, pa.Array]:
    """Every record's tag keys (decoded) and values, flattened (a slice's own entries only)."""
    offsets = np.asarray(tags.offsets)
    start, end = int(offsets[0]), int(offsets[-1])
    keys = tags.keys.slice(start, end - start)
    if pa.types.is_dictionary(keys.type):
        keys = keys.dictionary_decode()
    return keys, tags.items.slice(start, end - start)


def _tag_violations(contract: Contract, tags: pa.Array, count: int) -> list[str]:
    keys, values = _flat_tags(tags)
    found: list[str] = []
    present = _counts(keys) if len(keys) else []
    listed = ", ".join(sorted(contract.tags)) or "none"
    for key, records in sorted(present, key=lambda item: str(item[0])):
        name = str(key)
        rule = contract.tags.get(name)
        mask = pc.equal(keys, name)
        key_values = values.filter(mask)
        if rule is None:
            # A tag spelled like a pii tag in another case is personal too: no value shown.
            alike = next((r for k, r in contract.tags.items() if k.lower() == name.lower()), None)
            found.append(
                f"unknown tag {name!r} ({_plural(records)}; values "
                f"{_value_list(_counts(key_values), alike)}; the contract's tags: {listed})"
            )
            continue
        if rule.allowed is not None:
            bad = key_values.filter(pc.invert(pc.is_in(key_values, pa.array(rule.allowed))))
            bad = bad.fill_null("") if bad.null_count else bad
            if len(bad):
                allowed = ", ".join(rule.allowed)
                found.append(
                    _offending(name, rule, _counts(bad), "not allowed") + f"; allowed: {allowed})"
                )
                continue
        if rule.pattern is not None:
            pattern = re.compile(rule.pattern)
            uniques = pc.unique(key_values)
            failing = [v for v in uniques.to_pylist() if v is None or not pattern.search(v)]
            if failing:
                bad = key_values.filter(pc.is_in(key_values, pa.array(failing, pa.string())))
                found.append(
                    _offending(name, rule, _counts(bad), f"does not match {rule.pattern!r}") + ")"
                )
    seen = {str(k): c for k, c in present}
    for name, rule in sorted(contract.tags.items()):
        missing = count - seen.get(name, 0)
        if rule.required and missing > 0:
            found.append(f"required tag {name!r} missing ({_plural(missing)})")
    return found


def _value_violations(contract: Contract, values: pa.ChunkedArray | pa.Array) -> list[str]:
    limits = contract.values
    if limits is None or not len(values):
        return []
    numbers = pc.cast(values, pa.float64())
    checks = []
    if limits.min is not None:
        checks.append(pc.less(numbers, limits.min))
    if limits.max is not None:
        checks.append(pc.greater(numbers, limits.max))
    if not checks:
        return []
    mask = checks[0] if len(checks) == 1 else pc.or_(checks[0], checks[1])
    bad = numbers.filter(mask)
    if not len(bad):
        return []
    first = np.asarray(bad.slice(0, SHOWN_VALUES))
    shown = ", ".join(f"{v:g}" for v in first)
    more = len(bad) - len(first)
    word = "value" if len(bad) == 1 else "values"
    tail = f" and {more} more" if more > 0 else ""
    return [f"{word} {shown}{tail} out of range {limits.describe()} ({_plural(len(bad))})"]


def check_records(contract: Contract, window: str, records: pa.Table) -> Verdict:
    """One window's records against the contract."""
    count = len(records)
    found: list[str] = []
    if contract.max_records is not None and count > contract.max_records:
        found.append(f"{count} records, more than max_records {contract.max_records}")
    if count:
        tags = records.column("tags")
        tags = tags.combine_chunks() if isinstance(tags, pa.ChunkedArray) else tags
        found += _tag_violations(contract, tags, count)
        found += _value_violations(contract, records.column("value"))
    return Verdict(window, contract, count, found)


def enforce(contract: Contract | None, windows: Sequence[tuple[str, pa.Table]]) -> list[Verdict]:
    """The verdict of every window (none without a contract)."""
    if contract is None:
        return []
    return [check_records(contract, key, records) for key, records in windows]
