"""Dagster entry point: `defs` built from $SIGNALS_COLLECTORS_DIR (default collectors/)."""

import os

from signals_dagster.catalog import collectors_dir, load_catalog
from signals_dagster.orchestration.factory import build_definitions

_DIR = os.path.abspath(collectors_dir())
defs = build_definitions(load_catalog(_DIR), _DIR)
