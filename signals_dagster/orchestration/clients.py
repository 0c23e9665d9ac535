"""Connections for sinks, made the Dagster way (resources), handed to the plain writers."""

from typing import Any

from signals_dagster.orchestration.resources import KafkaProducerResource
from signals_dagster.sinks import SinkClients
from signals_dagster.spec.sinks import S3Config


def s3_resource(config: S3Config) -> Any:
    """The dagster-aws S3Resource for an S3 sink (credentials: the AWS chain unless templated)."""
    from dagster_aws.s3 import S3Resource

    secret, token = config.aws_secret_access_key, config.aws_session_token
    return S3Resource(
        endpoint_url=config.endpoint_url,
        region_name=config.region,
        max_attempts=config.retries,  # botocore: retries after the first attempt ("standard")
        aws_access_key_id=config.aws_access_key_id,
        aws_secret_access_key=secret.get_secret_value() if secret else None,
        aws_session_token=token.get_secret_value() if token else None,
    )


def s3_client(config: S3Config) -> Any:
    """A boto3 S3 client made by dagster-aws S3Resource."""
    return s3_resource(config).get_client()


def sink_clients(kafka: KafkaProducerResource | None = None) -> SinkClients:
    """The client factories the sinks IO manager passes to writers."""
    kafka = kafka or KafkaProducerResource()
    return SinkClients(s3=s3_client, kafka=kafka.producer, kafka_admin=kafka.admin)
