"""The Dagster Component `signals_dagster.SignalsCollectors`: a collectors folder in a `dg`
project's defs folder, built into the same definitions as `signals_dagster.definitions`.

    # src/my_project/defs/metrics/defs.yaml, made by
    # `dg scaffold defs signals_dagster.SignalsCollectors metrics` with metrics/collectors/
    type: signals_dagster.SignalsCollectors
    attributes:
      collectors_dir: collectors        # relative to this folder
      # settings: ../../signals.yaml    # default: $SIGNALS_SETTINGS, else signals.yaml (cwd)
      # policies_dir: policies          # default: $SIGNALS_POLICIES_DIR, else policies/ beside
      #                                   the collectors folder

The collectors folder is passed to the loader explicitly. The policies folder is read through
$SIGNALS_POLICIES_DIR when the definitions are built (the policies are compiled and bound then):
a component that names one sets the variable around its build and restores it. The settings file
is read through $SIGNALS_SETTINGS at build time and again at run time (the sinks' egress and
file-root checks, policy violation records, failure and freshness alerts), in the processes that
load the code location: a component that names one sets the variable for its process, so that
its runs and sensors obey the file it was validated against. So a code location has one settings
file: a component whose file differs from the variable already set in the environment, or from
the file another component of the process was built with, is an error, never a silent switch.
"""

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import dagster as dg

from signals_dagster.settings import DEFAULT_PATH as DEFAULT_SETTINGS

SETTINGS_ENV = "SIGNALS_SETTINGS"  # read by signals_dagster.settings.settings_path
POLICIES_ENV = "SIGNALS_POLICIES_DIR"  # read by signals_dagster.quality.policies.policies_dir


@dataclass(frozen=True)
class _Settings:
    """The settings file a component of this process was built with."""

    original: str | None  # $SIGNALS_SETTINGS before any component set it
    path: str  # the file (absolute; it need not exist)
    where: str  # the component's folder


_BUILT_WITH: _Settings | None = None  # the first component's


class SignalsComponentError(Exception):
    """A SignalsCollectors component's attributes cannot be honoured."""


def _absolute(base: Path, value: str) -> Path:
    path = Path(os.path.expanduser(value))
    return path if path.is_absolute() else (base / path).resolve()


def _settings_for(wanted: Path | None, where: str) -> _Settings:
    """The settings file of a component: `wanted` (its attribute), else $SIGNALS_SETTINGS as
    the process had it, else signals.yaml in the working directory. SignalsComponentError when
    the attribute differs from the variable set in the environment, or the file from the one
    another component of the process was built with."""
    original = _BUILT_WITH.original if _BUILT_WITH is not None else os.environ.get(SETTINGS_ENV)
    implied = Path(os.path.expanduser(original or DEFAULT_SETTINGS)).resolve()
    path = wanted or implied
    if wanted is not None and original and implied != wanted:
        raise SignalsComponentError(
            f"{where}: settings is {wanted}, but ${SETTINGS_ENV} is set to {original} in the "
            "environment: name the settings file in one place only"
        )
    if _BUILT_WITH is not None and _BUILT_WITH.path != str(path):
        raise SignalsComponentError(
            f"{where}: the settings file would be {path}, but the component in "
            f"{_BUILT_WITH.where} was built with {_BUILT_WITH.path}: the settings are read per "
            "process (at run time too), so the SignalsCollectors components of a code location "
            "use one settings file"
        )
    return _Settings(original, str(path), where)


def _pin_settings(settings: _Settings, explicit: bool) -> None:
    """Record the file the process's components use; set $SIGNALS_SETTINGS to it when a
    component named it (for the process: its runs and sensors read it)."""
    global _BUILT_WITH
    if _BUILT_WITH is None:
        _BUILT_WITH = settings
    if explicit:
        os.environ[SETTINGS_ENV] = settings.path


@contextlib.contextmanager
def _policies_env(folder: Path | None) -> Iterator[None]:
    """$SIGNALS_POLICIES_DIR set to `folder` while the block runs (None: left as it is)."""
    if folder is None:
        yield
        return
    before = os.environ.get(POLICIES_ENV)
    os.environ[POLICIES_ENV] = str(folder)
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(POLICIES_ENV, None)
        else:
            os.environ[POLICIES_ENV] = before


def collectors_definitions(directory: str | os.PathLike[str]) -> dg.Definitions:
    """What `signals_dagster.definitions` builds for a collectors folder: the collectors'
    assets, checks, jobs, schedules, sensors and IO manager, and the demo's derived assets.
    Raises SpecError (every located problem) when a collector file is invalid."""
    from signals_dagster.catalog import load_catalog
    from signals_dagster.derived import derived_definitions
    from signals_dagster.heap import long_lived
    from signals_dagster.orchestration.factory import build_definitions

    folder = os.path.abspath(directory)
    with long_lived():
        catalog = load_catalog(folder)
        return dg.Definitions.merge(
            build_definitions(catalog, folder), derived_definitions(catalog)
        )


EXAMPLE_COLLECTOR = """\
# An example collector: a daily metric from an in-memory DuckDB query (no server, no file).
# Replace the source with your database. `signals validate {folder}` checks
# the files, `dg check defs` loads them into Dagster; the fields: the README's collector reference.
name: {name}.example.daily
description: Example metric, one value per region and day
group: {name}
metric:
  name: {name}.example
  type: GAUGE
  grain: 24h
  tags:
    - key: env
      value: dev
schedule:
  cron: '15 0 * * *'
partitions:
  start: '2026-01-01'
  lag: 15m
source:
  type: duckdb
  config:
    uri: 'duckdb:///:memory:'
    sql: |
      SELECT region, value
      FROM (VALUES ('eu', 1.0), ('us', 2.0)) AS t(region, value)
      WHERE CAST(:window_start AS TIMESTAMP) < CAST(:window_end AS TIMESTAMP)
sinks:
  console:
    type: console
checks:
  - type: range
    min: 0
freshness:
  grace: 6h
  lookback: 7d
"""


DEFS_YAML = """\
type: {type_name}

attributes:
  # The collector files (and registry files, `metrics:`), relative to this folder.
  collectors_dir: collectors
  # settings: signals.yaml    # default: $SIGNALS_SETTINGS, else signals.yaml (working directory)
  # policies_dir: policies    # default: $SIGNALS_POLICIES_DIR, else policies/ beside collectors_dir
"""


class SignalsCollectorsScaffolder(dg.Scaffolder):
    """`dg scaffold defs signals_dagster.SignalsCollectors NAME`: NAME/defs.yaml and an example
    collector, NAME/collectors/example.yaml (kept when it exists)."""

    def scaffold(self, request: dg.ScaffoldRequest) -> None:
        target = Path(request.target_path)
        folder = target.parent if request.append else target  # append: target is a defs.yaml
        name = "".join(c if c.isalnum() or c == "_" else "_" for c in folder.name) or "signals"
        collectors = folder / "collectors"
        collectors.mkdir(parents=True, exist_ok=True)
        example = collectors / "example.yaml"
        if not example.exists():
            root = request.project_root
            shown = os.path.relpath(collectors, root) if root is not None else str(collectors)
            text = EXAMPLE_COLLECTOR.format(name=name, folder=shown)
            example.write_text(text, encoding="utf-8")
        if request.scaffold_format == "yaml" and not request.append:
            text = DEFS_YAML.format(type_name=request.type_name)
            (folder / "defs.yaml").write_text(text, encoding="utf-8")
        else:  # a document appended to defs.yaml, or component.py (a component built in Python)
            dg.scaffold_component(request, {"collectors_dir": "collectors"})


@dg.scaffold_with(SignalsCollectorsScaffolder)
class SignalsCollectors(dg.Component, dg.Resolvable, dg.Model):
    """A folder of signals collector files as Dagster assets: one (partitioned) asset per
    collector with its asset checks, job, schedule and sensors, the sinks IO manager, and the
    run-failure alerts sensor — what `signals_dagster.definitions` builds."""

    # Resolver.default(description=...): Dagster's derived attribute schema (defs.yaml, `dg
    # utils generate-component-schema`) takes the descriptions from there, not from Field().
    collectors_dir: Annotated[
        str,
        dg.Resolver.default(
            description="The folder of collector YAML files (and registry files, `metrics:`), "
            "relative to this component's folder",
            examples=["collectors"],
        ),
    ] = "collectors"
    settings: Annotated[
        str | None,
        dg.Resolver.default(
            description="The signals.yaml settings file, relative to this component's folder "
            "(default: $SIGNALS_SETTINGS, else signals.yaml in the working directory). It is the "
            "settings file of the whole code location: its runs and sensors read it too",
            examples=["../../../../signals.yaml"],
        ),
    ] = None
    policies_dir: Annotated[
        str | None,
        dg.Resolver.default(
            description="The folder of Rego policies (`*.rego`), relative to this component's "
            "folder (default: $SIGNALS_POLICIES_DIR, else policies/ beside the collectors folder)",
            examples=["policies"],
        ),
    ] = None

    def build_defs(self, context: dg.ComponentLoadContext) -> dg.Definitions:
        base = Path(context.path)
        base = base if base.is_dir() else base.parent
        where = str(base)
        folder = _absolute(base, self.collectors_dir)
        if not folder.is_dir():
            what = "does not exist" if not folder.exists() else "is not a folder"
            raise SignalsComponentError(f"{where}: collectors_dir {folder} {what}")
        if folder == base.resolve():
            raise SignalsComponentError(
                f"{where}: collectors_dir is this component's folder; put the collector files "
                "in a subfolder (defs.yaml is not a collector)"
            )
        settings = None if self.settings is None else _absolute(base, self.settings)
        if settings is not None and not settings.is_file():
            raise SignalsComponentError(f"{where}: settings file {settings} does not exist")
        policies = None if self.policies_dir is None else _absolute(base, self.policies_dir)
        if policies is not None and not policies.is_dir():
            raise SignalsComponentError(f"{where}: policies_dir {policies} is not a folder")
        settings_file = _settings_for(settings, where)
        _pin_settings(settings_file, explicit=settings is not None)
        with _policies_env(policies):
            return collectors_definitions(folder)
