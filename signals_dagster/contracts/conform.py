"""Load-time checks of a collector against its metric's contract (what is known before a run)."""

from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from signals_dagster.contracts.registry import Registry
from signals_dagster.pseudonyms import key_problem
from signals_dagster.spec.models import CollectorSpec


@dataclass(frozen=True)
class Finding:
    """One problem (or warning) of a collector: its data path and message."""

    path: tuple[str | int, ...]
    message: str
    warning: bool = False


def _listed(values: list[str]) -> str:
    return ", ".join(values)


def conform(
    spec: CollectorSpec,
    registry: Registry,
    strict: bool,
    env: Mapping[str, str] | None = None,
) -> Iterator[Finding]:
    """Every disagreement between a collector and its contract (both locations named), and a
    missing pseudonym key when the contract hashes tags."""
    name = spec.metric.name
    contract = registry.get(name)
    if contract is None:
        if strict:
            yield Finding(
                ("metric", "name"),
                f"metric {name!r} has no contract in the registry (registry.strict in "
                "signals.yaml: every metric needs one)",
            )
        return
    where = registry.where[name]
    label = f"contract {contract.label} at {where.at()}"
    if contract.stability == "deprecated":
        yield Finding(
            ("metric", "name"),
            f"metric {name!r} is deprecated ({label}): move its consumers off it",
            warning=True,
        )
    if contract.hashed_tags:
        problem = key_problem(env)
        if problem is not None:
            tags = ", ".join(repr(t) for t in contract.hashed_tags)
            yield Finding(
                ("metric", "name"),
                f"{problem} (the {label} hashes the tag(s) {tags}: `pii: hash`)",
            )
    contract_checks = {check.check_name for check in contract.checks}
    for index, check in enumerate(spec.checks):
        if check.check_name in contract_checks:
            yield Finding(
                ("checks", index, "name"),
                f"check {check.check_name!r} is also a check of the {label}: give it another "
                "`name`",
            )
    if spec.metric.type != contract.type:
        yield Finding(
            ("metric", "type"),
            f"type {spec.metric.type} disagrees with the {label}: type {contract.type} "
            f"({where.at('type')})",
        )
    if spec.metric.unit is not None and spec.metric.unit != contract.unit:
        theirs = "no unit" if contract.unit is None else f"unit {contract.unit!r}"
        yield Finding(
            ("metric", "unit"),
            f"unit {spec.metric.unit!r} disagrees with the {label}: {theirs} "
            f"({where.at('unit' if contract.unit is not None else 'name')})",
        )
    for index, tag in enumerate(spec.metric.tags):
        path = ("metric", "tags", index)
        rule = contract.tags.get(tag.key)
        if rule is None:
            known = _listed(sorted(contract.tags)) or "none"
            yield Finding(
                path,
                f"tag {tag.key!r} is not in the {label} (its tags: {known})",
            )
            continue
        if rule.allowed is not None and tag.value not in rule.allowed:
            yield Finding(
                (*path, "value"),
                f"tag {tag.key!r} value {tag.value!r} is not allowed by the {label} "
                f"(allowed: {_listed(rule.allowed)}; {where.at('tags', tag.key)})",
            )
        elif not rule.accepts(tag.value):
            yield Finding(
                (*path, "value"),
                f"tag {tag.key!r} value {tag.value!r} does not match {rule.pattern!r} of the "
                f"{label} ({where.at('tags', tag.key)})",
            )
