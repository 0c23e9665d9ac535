"""The `signals` command: validate collector files, invoke one collector for one window,
redrive records from an audit log."""

import contextlib
import gc
import logging
import os
import sys
from collections.abc import Iterator, Sequence

import click

from signals_dagster.errors import CollectorError, Problem, SpecError
from signals_dagster.redact import redact


def _print_problems(error: SpecError) -> None:
    for problem in error.problems:
        click.echo(str(problem))
    files = len({p.file for p in error.problems})
    click.echo(f"{len(error.problems)} problem(s) in {files} file(s)", err=True)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Source-side metric collection as Dagster assets."""


@main.command()
@click.argument("paths", nargs=-1, type=click.Path())
def validate(paths: Sequence[str]) -> None:
    """Validate collector files or folders (default: $SIGNALS_COLLECTORS_DIR or collectors/)."""
    from pathlib import Path

    from signals_dagster.catalog import collectors_dir
    from signals_dagster.heap import long_lived
    from signals_dagster.spec.loader import collector_files, load_collectors

    targets = list(paths) or [collectors_dir()]
    warnings: list[Problem] = []
    problems, policies = _policy_problems(targets)
    files = collector_files(targets)
    registries: list[Path] = []
    try:
        with long_lived():
            specs = load_collectors(targets, warnings=warnings, files=files, registries=registries)
    except SpecError as exc:
        _print_problems(SpecError(exc.problems + problems))
        sys.exit(1)
    if problems:
        _print_problems(SpecError(problems))
        sys.exit(1)
    for warning in sorted(warnings):
        click.echo(f"warning: {warning}", err=True)
    if not files:
        click.echo(f"no collector files (*.yaml, *.yml) in {', '.join(targets)}", err=True)
        sys.exit(1)
    contracts = sum(1 for spec in specs.values() if spec.contract is not None)
    summary = f"ok: {len(specs)} collector(s) valid in {len(files) - len(registries)} file(s)"
    if registries:
        summary += f"; {contracts} under contract ({len(registries)} registry file(s))"
    if policies:
        summary += f"; {policies} policy(ies) compiled"
    click.echo(summary)


def _policy_problems(targets: Sequence[str]) -> tuple[list[Problem], int]:
    """Every Rego policy covering the targets compiled (problems as `file:line: rego: …`), and
    the policy sinks of signals.yaml checked; (problems, policies compiled)."""
    from pathlib import Path

    from signals_dagster.quality.policies import (
        check_policies,
        policies_dir,
        policy_sink_problems,
    )
    from signals_dagster.settings import load_settings, settings_path

    problems: list[Problem] = []
    seen: set[Path] = set()
    count = 0
    for target in targets:
        try:
            folder = policies_dir(target)
        except SpecError as exc:
            problems += exc.problems
            continue
        if folder is None or folder in seen:
            continue
        seen.add(folder)
        found, trouble = check_policies(target)
        count += len(found)
        problems += trouble
    try:
        problems += policy_sink_problems(load_settings(), settings_path())
    except SpecError as exc:
        problems += exc.problems
    return problems, count


@main.command()
@click.argument("file", type=click.Path())
@click.option("--partition", "partition", help="Partition key, e.g. 2026-02-10 (default: now).")
@click.option("--dry-run", is_flag=True, help="Print the records; write to no sink but console.")
def invoke(file: str, partition: str | None, dry_run: bool) -> None:
    """Run one collector for one window without a Dagster instance; records go to stdout."""
    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(message)s"
    )
    from signals_dagster.invoke import invoke_collector

    with _reported_errors():
        invoke_collector(file, partition, dry_run, sys.stdout)


@main.command()
@click.argument("audit_file", type=click.Path())
@click.option("--collector", "collector_file", required=True, help="The collector's YAML file.")
@click.option("--sink", "sink_name", required=True, help="Name of one of the collector's sinks.")
@click.option("--partition", "partition", help="Only this partition, e.g. 2026-02-10.")
def redrive(audit_file: str, collector_file: str, sink_name: str, partition: str | None) -> None:
    """Re-send a collector's records from a file-sink audit log to one of its sinks, unchanged
    (same uuids; the latest copy of each)."""
    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(message)s"
    )
    from signals_dagster.redrive import describe
    from signals_dagster.redrive import redrive as run_redrive

    with _reported_errors():
        report = run_redrive(audit_file, collector_file, sink_name, partition)
        for line in describe(report, audit_file, partition):
            click.echo(line)


@main.command()
@click.argument(
    "kind", type=click.Choice(["collector", "registry", "settings"]), default="collector"
)
def schema(kind: str) -> None:
    """Print the JSON schema of a collector file, a registry file or signals.yaml."""
    import json

    from signals_dagster.schemas import json_schema

    click.echo(json.dumps(json_schema(kind), indent=2, sort_keys=False))


def _add_contract_commands() -> None:
    from signals_dagster.contracts.catalog_command import catalog
    from signals_dagster.contracts.commands import registry
    from signals_dagster.forget_command import forget

    main.add_command(registry)
    main.add_command(catalog)
    main.add_command(forget)


_add_contract_commands()


@contextlib.contextmanager
def _reported_errors() -> Iterator[None]:
    """Spec problems and collector errors as plain lines (exit 1); anything else in one line
    (exit 2), with the traceback under SIGNALS_DEBUG=1."""
    try:
        yield
    except SpecError as exc:
        _print_problems(exc)
        sys.exit(1)
    except CollectorError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    except Exception as exc:  # an unexpected failure: one clear line, the traceback on demand
        if os.environ.get("SIGNALS_DEBUG"):
            raise
        click.echo(
            f"error: {type(exc).__name__}: {redact(str(exc))} (SIGNALS_DEBUG=1 shows more)",
            err=True,
        )
        sys.exit(2)


# Short commands that never handle a pandas object nor do linear algebra: pyarrow imports pandas
# (0.5 s) on its first array only to ask whether an input is one, so the `signals` command tells
# it there is none; and numpy's OpenBLAS, loaded with pyarrow, starts a thread per core that
# spins for a while (a fifth of such a command's CPU time, measured), so it is kept to one.
_SHORT = {"validate", "invoke", "registry", "catalog", "forget", "schema"}


class _WithoutPandas:
    """An import hook under which `import pandas` fails (pyarrow then knows there is none)."""

    def find_spec(self, name: str, *_: object) -> None:
        if name == "pandas" or name.startswith("pandas."):
            raise ModuleNotFoundError(f"{name} is not used by this command", name=name)


def run() -> None:
    """The `signals` console command."""
    if _SHORT & set(sys.argv[1:2]):
        if "pandas" not in sys.modules:
            sys.meta_path.insert(0, _WithoutPandas())
        if "numpy" not in sys.modules:
            os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    # pydantic scans every installed distribution for plug-ins on first use (~30 ms); we use none.
    os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
    try:
        main()
    finally:
        # The process ends here (the command's files are closed and renamed into place): the
        # interpreter's last cyclic collection would walk every object the imports made, a
        # sixth of a short command's time, to free memory the exit frees anyway.
        gc.freeze()


if __name__ == "__main__":
    run()
