"""Dagster entry point: `defs` built from $SIGNALS_COLLECTORS_DIR (default collectors/)."""

import os

import dagster as dg

from signals_dagster.catalog import collectors_dir, load_catalog
from signals_dagster.derived import derived_definitions
from signals_dagster.orchestration.factory import build_definitions

_DIR = os.path.abspath(collectors_dir())
_CATALOG = load_catalog(_DIR)
# Derived assets (demo: a weekly rollup) are added only when their upstream collector exists.
defs = dg.Definitions.merge(build_definitions(_CATALOG, _DIR), derived_definitions(_CATALOG))
