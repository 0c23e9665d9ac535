"""Sinks: write a window's records somewhere and confirm. Nothing here imports Dagster."""

from signals_dagster.sinks.base import SinkClients, Writer, open_writer
from signals_dagster.sinks.preflight import check_sink, check_sinks, close_writers, open_writers

__all__ = [
    "SinkClients",
    "Writer",
    "check_sink",
    "check_sinks",
    "close_writers",
    "open_writer",
    "open_writers",
]
