"""`signals catalog [DIR] [--format md|json]`: every metric, its contract and its collectors."""

import sys

import click

from signals_dagster.errors import Problem, SpecError
from signals_dagster.redact import redact


@click.command()
@click.argument("directory", required=False, type=click.Path())
@click.option(
    "--format",
    "output_format",
    type=click.Choice(["md", "json"]),
    default="md",
    show_default=True,
    help="Markdown (a section per metric) or JSON.",
)
def catalog(directory: str | None, output_format: str) -> None:
    """Print the metric catalog of a collectors folder (default: $SIGNALS_COLLECTORS_DIR or
    collectors/): each metric's contract and the collectors that emit it (URIs redacted)."""
    from signals_dagster.catalog import collectors_dir
    from signals_dagster.contracts.catalog import (
        build_catalog,
        load_registry_of,
        render_json,
        render_markdown,
    )
    from signals_dagster.spec.loader import load_collectors

    target = directory or collectors_dir()
    warnings: list[Problem] = []
    try:
        specs = load_collectors([target], warnings=warnings)
        registry = load_registry_of([target])
    except SpecError as exc:
        for problem in exc.problems:
            click.echo(redact(str(problem)))
        sys.exit(1)
    for warning in sorted(warnings):
        click.echo(f"warning: {redact(str(warning))}", err=True)
    data = build_catalog(specs, registry)
    if output_format == "json":
        click.echo(render_json(data))
    else:
        click.echo(render_markdown(data, f"Metric catalog of {target}"), nl=False)
