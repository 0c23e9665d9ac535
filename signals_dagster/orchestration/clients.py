"""Connections for sinks, made the Dagster way (resources), handed to the plain writers."""

from signals_dagster.orchestration.resources import KafkaProducerResource
from signals_dagster.sinks import SinkClients


def sink_clients(kafka: KafkaProducerResource | None = None) -> SinkClients:
    """The client factories the sinks IO manager passes to writers."""
    kafka = kafka or KafkaProducerResource()
    return SinkClients(kafka=kafka.producer, kafka_admin=kafka.admin)
