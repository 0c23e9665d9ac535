"""The registry's lock (`metrics.lock.json`): every contract as published, by version; and the
classification of a change as breaking or compatible."""

import json
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from pydantic import ValidationError

from signals_dagster.contracts.model import (
    STABILITY_ORDER,
    Contract,
    MinGroupSize,
    TagRule,
    ValueRange,
)
from signals_dagster.contracts.registry import LOCK_NAME, Registry
from signals_dagster.errors import Problem

LOCK_VERSION = 1
CONTRACT = "<contract>"  # the field of a change to a whole contract (added, removed)
RELOCK = "run `signals registry lock`"

Kind = Literal["breaking", "compatible"]


@dataclass(frozen=True)
class LockFinding:
    """A problem (a breaking change without a version bump) or a reminder (not locked yet)."""

    problem: Problem
    warning: bool = False


@dataclass(frozen=True)
class Change:
    """One difference between two contracts of a metric: its class, dotted field and message.

    `path` is the field as keys of the contract (`("tags", "country", "allowed")`)."""

    kind: Kind
    field: str
    message: str
    path: tuple[str, ...] = ()

    @property
    def breaking(self) -> bool:
        """Whether consumers of the old contract may break."""
        return self.kind == "breaking"


def _change(kind: Kind, path: tuple[str, ...], message: str) -> Change:
    return Change(kind, ".".join(path) or CONTRACT, message, path)


def _values(items: list[str]) -> str:
    return ", ".join(repr(item) for item in items)


def _plural(items: list[str], noun: str) -> str:
    return f"{noun} {_values(items)}" if len(items) == 1 else f"{noun}s {_values(items)}"


def _allowed(key: str, old: TagRule, new: TagRule) -> Iterator[Change]:
    path = ("tags", key, "allowed")
    if old.allowed == new.allowed:
        return
    if old.allowed is None:
        assert new.allowed is not None
        yield _change("breaking", path, f"values restricted to {_values(new.allowed)}")
        return
    if new.allowed is None:
        yield _change("compatible", path, "values no longer restricted (allowed removed)")
        return
    removed = [v for v in old.allowed if v not in new.allowed]
    added = [v for v in new.allowed if v not in old.allowed]
    if removed:
        yield _change("breaking", path, f"{_plural(removed, 'allowed value')} removed")
    if added:
        yield _change("compatible", path, f"{_plural(added, 'allowed value')} added")
    if not removed and not added:
        yield _change("compatible", path, "allowed values reordered")


def _pattern(key: str, old: TagRule, new: TagRule) -> Iterator[Change]:
    path = ("tags", key, "pattern")
    if old.pattern == new.pattern:
        return
    if old.pattern is None:
        yield _change("breaking", path, f"pattern {new.pattern!r} added")
    elif new.pattern is None:
        yield _change("compatible", path, f"pattern {old.pattern!r} removed")
    else:
        yield _change("breaking", path, f"pattern changed from {old.pattern!r} to {new.pattern!r}")


def _tags(old: dict[str, TagRule], new: dict[str, TagRule]) -> Iterator[Change]:
    for key in sorted(old.keys() - new.keys()):
        yield _change("breaking", ("tags", key), f"tag {key!r} removed")
    for key in sorted(new.keys() - old.keys()):
        if new[key].required:
            yield _change("breaking", ("tags", key), f"tag {key!r} added as required")
        else:
            yield _change("compatible", ("tags", key), f"optional tag {key!r} added")
    for key in sorted(old.keys() & new.keys()):
        before, after = old[key], new[key]
        if before.required != after.required:
            path = ("tags", key, "required")
            if after.required:
                yield _change("breaking", path, f"tag {key!r} made required")
            else:
                yield _change("compatible", path, f"tag {key!r} made optional")
        yield from _allowed(key, before, after)
        yield from _pattern(key, before, after)
        if before.pii != after.pii:  # the published values change form (or the tag goes)
            yield _change(
                "breaking",
                ("tags", key, "pii"),
                f"tag {key!r} privacy changed from {before.pii or 'none'} to {after.pii or 'none'}",
            )
        if before.description != after.description:
            yield _change("compatible", ("tags", key, "description"), "description changed")


def _bound(side: Literal["min", "max"], old: ValueRange, new: ValueRange) -> Iterator[Change]:
    before, after = getattr(old, side), getattr(new, side)
    if before == after:
        return
    ranges = f"{old.describe()} → {new.describe()}"
    path = ("values", side)
    if before is None:
        yield _change("breaking", path, f"range narrowed: {side} {after:g} added ({ranges})")
    elif after is None:
        yield _change("compatible", path, f"range widened: {side} {before:g} removed ({ranges})")
    else:
        narrower = after > before if side == "min" else after < before
        verb = ("raised" if after > before else "lowered") + f" from {before:g} to {after:g}"
        if narrower:
            yield _change("breaking", path, f"range narrowed: {side} {verb} ({ranges})")
        else:
            yield _change("compatible", path, f"range widened: {side} {verb} ({ranges})")


def _max_records(old: int | None, new: int | None) -> Iterator[Change]:
    path = ("max_records",)
    if old == new:
        return
    if old is None:
        yield _change("breaking", path, f"max_records {new} added (a budget where there was none)")
    elif new is None:
        yield _change("compatible", path, f"max_records {old} removed")
    elif new < old:
        yield _change("breaking", path, f"max_records lowered from {old} to {new}")
    else:
        yield _change("compatible", path, f"max_records raised from {old} to {new}")


def _min_group_size(old: MinGroupSize | None, new: MinGroupSize | None) -> Iterator[Change]:
    path = ("min_group_size",)
    if old == new:
        return
    if old is None:
        assert new is not None
        yield _change("breaking", path, f"min_group_size k={new.k} added (records suppressed)")
    elif new is None:
        yield _change("compatible", path, f"min_group_size k={old.k} removed")
    elif new.k > old.k:
        yield _change("breaking", (*path, "k"), f"min_group_size raised from {old.k} to {new.k}")
    elif new.k < old.k:
        yield _change("compatible", (*path, "k"), f"min_group_size lowered from {old.k} to {new.k}")
    if old is not None and new is not None and old.column != new.column:
        message = f"min_group_size column renamed from {old.column!r} to {new.column!r}"
        yield _change("compatible", (*path, "column"), message)


def _unit(unit: str | None) -> str:
    return "no unit" if unit is None else repr(unit)


def diff_contracts(old: Contract | None, new: Contract | None) -> list[Change]:
    """Every change from `old` (as locked) to `new` (as written), each breaking or compatible;
    the version is not a change (whether a breaking change needs a bump is the lock's rule)."""
    if old is None and new is None:
        return []
    if old is None:
        return [_change("compatible", (), "new contract (not in the lock)")]
    if new is None:
        if old.stability == "deprecated":
            return [_change("compatible", (), f"removed after deprecation (locked {old.label})")]
        return [
            _change(
                "breaking",
                (),
                f"removed without being deprecated first (locked {old.label} is {old.stability})",
            )
        ]
    changes: list[Change] = []
    if old.type != new.type:
        changes.append(
            _change("breaking", ("type",), f"type changed from {old.type} to {new.type}")
        )
    if old.unit != new.unit:
        message = f"unit changed from {_unit(old.unit)} to {_unit(new.unit)}"
        changes.append(_change("breaking", ("unit",), message))
    if old.description != new.description:
        changes.append(_change("compatible", ("description",), "description changed"))
    if old.owners != new.owners:
        message = f"owners changed from [{', '.join(old.owners)}] to [{', '.join(new.owners)}]"
        changes.append(_change("compatible", ("owners",), message))
    if old.stability != new.stability:
        forward = STABILITY_ORDER.index(new.stability) > STABILITY_ORDER.index(old.stability)
        message = (
            f"stability moved {'forward' if forward else 'back'} from {old.stability} to "
            f"{new.stability}"
        )
        changes.append(_change("compatible" if forward else "breaking", ("stability",), message))
    changes += _tags(old.tags, new.tags)
    before, after = old.values or ValueRange(), new.values or ValueRange()
    changes += _bound("min", before, after)
    changes += _bound("max", before, after)
    changes += _max_records(old.max_records, new.max_records)
    changes += _min_group_size(old.min_group_size, new.min_group_size)
    if old.checks != new.checks:  # the gate's checks guard producers; consumers see no change
        names = ", ".join(c.check_name for c in new.checks) or "none"
        changes.append(_change("compatible", ("checks",), f"quality checks changed (now: {names})"))
    if not changes and old.model_copy(update={"version": new.version}) != new:
        changes.append(_change("compatible", (), "changed"))  # a difference no rule names
    return changes


class LockError(Exception):
    """The lock file cannot be read or is not a lock."""


@dataclass
class Lock:
    """The published contracts: by metric name, by version; and the metrics removed from the
    registry (after their deprecation) since."""

    metrics: dict[str, dict[int, Contract]] = field(default_factory=dict)
    removed: set[str] = field(default_factory=set)

    def latest(self, name: str) -> Contract | None:
        """The highest locked version of a metric's contract, if any."""
        history = self.metrics.get(name)
        return history[max(history)] if history else None


def lock_path(root: Path) -> Path:
    """The lock of a collectors folder."""
    return root / LOCK_NAME


def _where(loc: tuple[str | int, ...]) -> str:
    return ".".join(str(part) for part in loc)


def parse_lock(text: str) -> Lock:
    """A lock from its JSON text; LockError naming the first problem."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise LockError(f"not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise LockError("must be a JSON object")
    if data.get("lock_version") != LOCK_VERSION:
        raise LockError(f"lock_version must be {LOCK_VERSION}, got {data.get('lock_version')!r}")
    unknown = sorted(set(data) - {"lock_version", "metrics", "removed"})
    if unknown:
        raise LockError(f"unknown key {unknown[0]!r}")
    metrics, removed = data.get("metrics"), data.get("removed", [])
    if not isinstance(metrics, dict):
        raise LockError("metrics must be an object (metric name: version: contract)")
    if not isinstance(removed, list) or not all(isinstance(n, str) for n in removed):
        raise LockError("removed must be a list of metric names")
    lock = Lock(removed=set(removed))
    for name, history in metrics.items():
        if not isinstance(history, dict) or not history:
            raise LockError(f"metrics.{name} must be an object (version: contract)")
        versions: dict[int, Contract] = {}
        for key, raw in history.items():
            if not key.isdigit() or int(key) < 1:
                raise LockError(f"metrics.{name}.{key}: a version must be a positive integer")
            try:
                contract = Contract.model_validate(raw)
            except ValidationError as exc:
                error = exc.errors()[0]
                where = _where((name, key, *error["loc"]))
                raise LockError(f"metrics.{where}: {error['msg']}") from None
            if contract.name != name or contract.version != int(key):
                raise LockError(
                    f"metrics.{name}.{key}: holds {contract.label}, not {name} v{int(key)}"
                )
            versions[int(key)] = contract
        lock.metrics[name] = versions
    return lock


def read_lock(path: Path) -> Lock | None:
    """The lock at `path` (None when there is none); LockError when it is not a valid lock."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise LockError(f"cannot read: {exc}") from None
    return parse_lock(text)


def lock_text(lock: Lock) -> str:
    """The lock as JSON: sorted keys, 2-space indent, a trailing newline (stable in diffs)."""
    data = {
        "lock_version": LOCK_VERSION,
        "metrics": {
            name: {str(v): c.model_dump(mode="json") for v, c in sorted(history.items())}
            for name, history in lock.metrics.items()
        },
        "removed": sorted(lock.removed),
    }
    return json.dumps(data, indent=2, sort_keys=True) + "\n"


def write_lock(path: Path, lock: Lock) -> None:
    """Write the lock atomically (a temporary file of the same folder, then renamed)."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(lock_text(lock))
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def relocked(lock: Lock | None, registry: Registry) -> Lock:
    """The lock after locking `registry`: each contract's current version added (or replaced),
    every version locked before kept, the metrics gone from the registry marked removed."""
    metrics = {name: dict(history) for name, history in (lock.metrics if lock else {}).items()}
    for name, contract in registry.contracts.items():
        metrics.setdefault(name, {})[contract.version] = contract
    removed = {name for name in metrics if name not in registry.contracts}
    return Lock(metrics, removed)


def _under(file: str, root: Path) -> bool:
    try:
        return Path(file).resolve().is_relative_to(root.resolve())
    except OSError:
        return False


def _lock_line(text: str, name: str) -> int:
    """The line of a metric's entry in a lock as `lock_text` writes it (else 1)."""
    key = f"    {json.dumps(name)}: {{"
    for number, line in enumerate(text.splitlines(), start=1):
        if line == key:
            return number
    return 1


def lock_findings(registry: Registry, root: Path) -> Iterator[LockFinding]:
    """Compare every contract of `registry` with `root/metrics.lock.json` (none: nothing)."""
    path = lock_path(root)
    try:
        text = path.read_text(encoding="utf-8")
        lock = parse_lock(text)
    except FileNotFoundError:
        return
    except (OSError, UnicodeDecodeError) as exc:
        yield LockFinding(Problem(str(path), 1, "<root>", f"cannot read the lock: {exc}"))
        return
    except LockError as exc:
        yield LockFinding(Problem(str(path), 1, "<root>", f"invalid lock: {exc}"))
        return
    for name, contract in sorted(registry.contracts.items()):
        if _under(registry.where[name].file, root):
            yield from _contract_findings(lock, path, registry, name, contract)
    for name in sorted(lock.metrics.keys() - registry.contracts.keys()):
        latest = lock.latest(name)
        assert latest is not None
        where = (str(path), _lock_line(text, name), f"metrics.{name}")
        if latest.stability != "deprecated":
            message = (
                f"contract {name!r} was removed from the registry without being deprecated "
                f"first (locked {latest.label} is {latest.stability}): restore it, or publish it "
                f"with stability: deprecated (a new version, locked) before removing it"
            )
            yield LockFinding(Problem(*where, message))
        elif name not in lock.removed:
            message = f"deprecated contract {latest.label} was removed from the registry: {RELOCK}"
            yield LockFinding(Problem(*where, message), warning=True)


def _contract_findings(
    lock: Lock, path: Path, registry: Registry, name: str, contract: Contract
) -> Iterator[LockFinding]:
    where = registry.where[name]

    def problem(keys: tuple[str, ...], message: str) -> Problem:
        dotted = f"metrics[{where.index}]" + "".join(f".{key}" for key in keys)
        return Problem(where.file, where.line(*keys), dotted, message)

    history = lock.metrics.get(name)
    if not history:
        yield LockFinding(problem((), f"{contract.label} is not in the lock: {RELOCK}"), True)
        return
    top = max(history)
    if contract.version < top:
        message = (
            f"version {contract.version} is lower than the locked v{top} ({path}): versions "
            f"only go up (bump version to {top + 1})"
        )
        yield LockFinding(problem(("version",), message))
        return
    if contract.version > top:
        changes = diff_contracts(history[top], contract)
        breaking = sum(change.breaking for change in changes)
        summary = f"{len(changes)} change(s), {breaking} breaking, since v{top}"
        message = f"{contract.label} is not locked yet ({summary}): {RELOCK}"
        yield LockFinding(problem(("version",), message), True)
        return
    changes = diff_contracts(history[top], contract)
    for change in changes:
        if change.breaking:
            message = (
                f"breaking change without a version bump: {change.message} (locked "
                f"v{top} in {path}; bump version to {top + 1})"
            )
            yield LockFinding(problem(change.path, message))
    compatible = [change for change in changes if not change.breaking]
    if compatible and len(compatible) == len(changes):
        listed = "; ".join(f"{change.field}: {change.message}" for change in compatible)
        message = f"{contract.label} differs from the lock ({listed}): {RELOCK}"
        yield LockFinding(problem((), message), True)
