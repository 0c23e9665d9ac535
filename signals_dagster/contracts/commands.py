"""`signals registry lock [DIR]` and `signals registry diff [DIR] [--against LOCKFILE]`."""

import sys
from pathlib import Path
from typing import NoReturn

import click

from signals_dagster.contracts.registry import Registry
from signals_dagster.errors import Problem
from signals_dagster.redact import redact


def _fail(problems: list[Problem]) -> NoReturn:
    for problem in sorted(problems):
        click.echo(redact(str(problem)))
    files = len({p.file for p in problems})
    click.echo(f"{len(problems)} problem(s) in {files} file(s)", err=True)
    sys.exit(1)


def _registry_of(directory: str | None) -> tuple[Path, Registry]:
    """The collectors folder and the registry of its registry files (exit 1 on problems)."""
    from signals_dagster.catalog import collectors_dir
    from signals_dagster.contracts.registry import is_registry_text, load_registry
    from signals_dagster.spec.loader import collector_files

    root = Path(directory or collectors_dir())
    if not root.is_dir():
        click.echo(f"no such folder: {root}", err=True)
        sys.exit(1)
    texts: list[tuple[Path, str]] = []
    problems: list[Problem] = []
    for path in collector_files([root]):
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            problems.append(Problem(str(path), 0, "<file>", f"cannot read: {exc}"))
            continue
        if is_registry_text(text):
            texts.append((path, text))
    registry, found = load_registry(texts)
    if problems or found:
        _fail(problems + found)
    return root, registry


@click.group()
def registry() -> None:
    """The metric registry: lock its contracts, diff them against the lock."""


@registry.command()
@click.argument("directory", required=False, type=click.Path(file_okay=False))
def lock(directory: str | None) -> None:
    """Write DIR/metrics.lock.json (default DIR: $SIGNALS_COLLECTORS_DIR or collectors/): every
    contract as published, by version. Refused while a breaking change lacks a version bump."""
    from signals_dagster.contracts.lock import (
        LockError,
        lock_findings,
        lock_path,
        read_lock,
        relocked,
        write_lock,
    )

    root, contracts = _registry_of(directory)
    errors = [f.problem for f in lock_findings(contracts, root) if not f.warning]
    if errors:
        _fail(errors)
    path = lock_path(root)
    try:
        current = read_lock(path)
    except LockError as exc:  # lock_findings reported it; a race
        _fail([Problem(str(path), 1, "<root>", f"invalid lock: {exc}")])
    write_lock(path, relocked(current, contracts))
    click.echo(f"locked {len(contracts.contracts)} contract(s) in {path}")


@registry.command()
@click.argument("directory", required=False, type=click.Path(file_okay=False))
@click.option(
    "--against",
    "lockfile",
    type=click.Path(dir_okay=False),
    help="The lock to compare with (default: DIR/metrics.lock.json).",
)
def diff(directory: str | None, lockfile: str | None) -> None:
    """Print every change of the registry of DIR since the lock, breaking or compatible (each
    contract against its highest locked version)."""
    from signals_dagster.contracts.lock import LockError, diff_contracts, lock_path, read_lock

    root, contracts = _registry_of(directory)
    path = Path(lockfile) if lockfile else lock_path(root)
    try:
        current = read_lock(path)
    except LockError as exc:
        _fail([Problem(str(path), 1, "<root>", f"invalid lock: {exc}")])
    if current is None:
        click.echo(f"no lock at {path}: run `signals registry lock` to write one")
        return
    counts = {"breaking": 0, "compatible": 0}
    changed: set[str] = set()
    names = sorted(contracts.contracts.keys() | current.metrics.keys())
    for name in names:
        new = contracts.get(name)
        if new is None and name in current.removed:
            continue  # its removal is locked
        for change in diff_contracts(current.latest(name), new):
            click.echo(f"{name}: {change.kind}: {change.field}: {change.message}")
            counts[change.kind] += 1
            changed.add(name)
    total = sum(counts.values())
    if not total:
        click.echo(f"no changes against {path}")
        return
    click.echo(
        f"{total} change(s) in {len(changed)} contract(s) against {path}: "
        f"{counts['breaking']} breaking, {counts['compatible']} compatible"
    )
