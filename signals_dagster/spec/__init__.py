"""Collector specification: YAML → templating → validated pydantic models."""

from signals_dagster.spec.loader import load_collectors, load_file
from signals_dagster.spec.models import CollectorSpec

__all__ = ["CollectorSpec", "load_collectors", "load_file"]
