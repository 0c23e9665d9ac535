"""Connections for sinks, made the Dagster way (resources), handed to the plain writers."""

from signals_dagster.sinks import SinkClients


def sink_clients() -> SinkClients:
    """The client factories the sinks IO manager passes to writers."""
    return SinkClients()
