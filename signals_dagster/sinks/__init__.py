"""Sinks: write a window's records somewhere and confirm. Nothing here imports Dagster."""

from signals_dagster.sinks.base import Writer, open_writer

__all__ = ["Writer", "open_writer"]
