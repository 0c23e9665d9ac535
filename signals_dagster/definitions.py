"""Dagster entry point: `defs` built from $SIGNALS_COLLECTORS_DIR (default collectors/)."""

import gc
import os

import dagster as dg

from signals_dagster.catalog import collectors_dir, load_catalog
from signals_dagster.derived import derived_definitions
from signals_dagster.orchestration.factory import build_definitions

_DIR = os.path.abspath(collectors_dir())
# Thousands of collectors make millions of long-lived objects, none of them garbage: the cyclic
# collector would walk the growing heap again and again while they are built (a tenth of the load).
_GC_WAS_ON = gc.isenabled()
gc.disable()
try:
    _CATALOG = load_catalog(_DIR)
    # Derived assets (demo: a weekly rollup) are added only when their upstream collector exists.
    defs = dg.Definitions.merge(build_definitions(_CATALOG, _DIR), derived_definitions(_CATALOG))
finally:
    if _GC_WAS_ON:
        gc.enable()
