"""Dagster resources for sink connections (thin shells; the work is in signals_dagster.sinks)."""

from typing import Any

import dagster as dg
from pydantic import Field

from signals_dagster.spec.sinks import KafkaConfig, check_producer_settings


class KafkaProducerResource(dg.ConfigurableResource):
    """Makes the confluent-kafka producer (and the admin client for the topic check) of a Kafka
    sink: idempotent, acks=all, bounded by the sink's timeout. One producer serves every
    partition of a run."""

    settings: dict[str, str] = Field(
        default_factory=dict,
        description=(
            "librdkafka settings added to every Kafka sink's producer (e.g. SASL credentials "
            "from EnvVar); a collector's own `producer` settings take precedence"
        ),
    )

    def _extra(self) -> dict[str, Any]:
        return check_producer_settings(dict(self.settings))

    def producer(self, config: KafkaConfig) -> Any:
        """A new producer for one sink (the writer flushes and closes it)."""
        from confluent_kafka import Producer

        from signals_dagster.sinks.kafka import producer_settings

        return Producer(producer_settings(config, self._extra()))

    def admin(self, config: KafkaConfig, error_cb: Any = None) -> Any:
        """An admin client with the same connection settings (topic lookup and creation);
        `error_cb` receives its connection errors."""
        from confluent_kafka.admin import AdminClient

        from signals_dagster.sinks.kafka import admin_settings

        return AdminClient(admin_settings(config, self._extra(), error_cb))
