"""Dagster entry point: `defs` built from $SIGNALS_COLLECTORS_DIR (default collectors/)."""

from signals_dagster.catalog import collectors_dir
from signals_dagster.component import collectors_definitions

defs = collectors_definitions(collectors_dir())
