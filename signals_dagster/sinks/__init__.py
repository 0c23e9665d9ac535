"""Sinks: write a window's records somewhere and confirm. Nothing here imports Dagster."""

from signals_dagster.sinks.base import SinkClients, Writer, open_writer

__all__ = ["SinkClients", "Writer", "open_writer"]
