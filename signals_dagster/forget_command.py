"""`signals forget`: the click command (registered in cli.py with `main.add_command(forget)`)."""

import sys
from collections.abc import Sequence

import click

from signals_dagster.errors import CollectorError, SpecError
from signals_dagster.redact import redact

SCRUB_MIN = 6  # shorter values would mask ordinary text (and no line holds the value anyway)


def _scrub(line: str, raw: str | None) -> str:
    """Belt and braces: the raw value of a personal tag never reaches the terminal (no line
    is built from it: the report holds its pseudonym only)."""
    if raw and len(raw) >= SCRUB_MIN:
        line = line.replace(raw, "<redacted>")
    return line


@click.command()
@click.argument("paths", nargs=-1, type=click.Path(), metavar="[DIR]...")
@click.option("--metric", "metric", required=True, help="The metric whose records to erase.")
@click.option(
    "--tag",
    "tag",
    required=True,
    metavar="KEY=VALUE",
    help="The subject: records whose tag KEY is VALUE (the raw value: hashed with "
    "$SIGNALS_PII_KEY when the metric's contract marks KEY `pii: hash`).",
)
@click.option(
    "--from",
    "first",
    metavar="DAY",
    help="Only records whose grain_datetime falls on this day (YYYY-MM-DD, UTC) or later.",
)
@click.option(
    "--to",
    "last",
    metavar="DAY",
    help="Only records whose grain_datetime falls on this day (YYYY-MM-DD, UTC) or earlier.",
)
@click.option("--dry-run", is_flag=True, help="Report what would be erased; change nothing.")
def forget(
    paths: Sequence[str], metric: str, tag: str, first: str | None, last: str | None, dry_run: bool
) -> None:
    """Erase one subject's records from every sink of every collector of a metric.

    Files are rewritten without them (atomically), S3 objects re-PUT without them (an object
    left with no record stays, empty), Kafka gets one tombstone per record (key = its uuid; a
    topic without cleanup.policy=compact is warned about); console and HTTP sinks are not
    erasable. Days are the UTC date of grain_datetime as stored: a window of another timezone
    belongs to the UTC day it starts on. Exit 1 when an erasable sink could not be cleaned.
    """
    from signals_dagster.catalog import collectors_dir
    from signals_dagster.forget import describe, parse_day, parse_tag, plan_forget, run_forget
    from signals_dagster.spec.loader import load_collectors

    targets = list(paths) or [collectors_dir()]
    try:
        key, raw = parse_tag(tag)
        start, end = parse_day(first, "--from"), parse_day(last, "--to")
        try:
            specs = load_collectors(targets)
        except SpecError as exc:
            for problem in exc.problems:  # one line each
                click.echo(f"error: {redact(str(problem))}", err=True)
            sys.exit(1)
        plan = plan_forget(specs.values(), metric, key, raw, start, end)
    except CollectorError as exc:
        click.echo(f"error: {redact(str(exc))}", err=True)
        sys.exit(1)
    shown_raw = raw if plan.subject.shown != raw else None  # printed only when not personal
    report = run_forget(plan, dry_run=dry_run)
    for line in describe(report):
        click.echo(_scrub(line, shown_raw))
    sys.exit(1 if report.failed else 0)
