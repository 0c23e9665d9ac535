"""Kafka sink: keyed, idempotent, confirmed delivery of a window's records (confluent-kafka).

Each record is one message: key = the record's uuid, value = the record's JSON (exactly what the
file sink writes), headers = collector name and partition key, and `contract` (the metric
contract's `name/version`) when the collector's metric has one. The producer is idempotent with
acks=all. A write succeeds only when every message is confirmed: librdkafka is asked for the
delivery reports of failed messages only (`delivery.report.only.error`: a Python callback per
confirmed message costs about a third of what producing it does), so a message is confirmed
when flush() has drained it from the producer without a failed report. Any failed report, or a
flush that runs out of time, fails the write with the count and the first error. Each message's
delivery is bounded by `timeout` (`message.timeout.ms`): a dead broker fails the run, never
hangs it.
"""

import logging
import re
import time
import zlib
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from signals_dagster.errors import SinkError
from signals_dagster.records import as_table, to_json_values
from signals_dagster.redact import redact
from signals_dagster.spec.models import CollectorSpec
from signals_dagster.spec.sinks import KafkaConfig

log = logging.getLogger("signals_dagster.kafka")

HEADER_COLLECTOR = "collector"
HEADER_PARTITION = "partition_key"
HEADER_CONTRACT = "contract"  # `name/version` of the metric's contract (only when it has one)
CHUNK = 10_000  # records serialised at a time, so the producer sends while the next are built
AHEAD = 8  # chunks that may be serialised ahead while the producer's queue is full
GRACE = 5.0  # seconds a flush may take beyond the message timeout before the write gives up

ClientFactory = Callable[[KafkaConfig], Any]
ErrorCallback = Callable[[KafkaError], None]
# (config, error_cb) -> an AdminClient whose connection errors go to error_cb
AdminFactory = Callable[[KafkaConfig, ErrorCallback | None], Any]
# A metadata lookup waits in slices (between them, connection errors are read), 0.25 s first,
# then twice as long each time up to 2 s, so that a slow link still gets its answer.
LOOKUP_SLICES = (0.25, 2.0)


def _base_settings(config: KafkaConfig, extra: dict[str, Any] | None) -> dict[str, Any]:
    from signals_dagster.confine import broker_host, check_egress
    from signals_dagster.spec.sinks import PRODUCER_ALLOWED

    # Checked again here, before any client exists (a config may be built without validation).
    refused = sorted(set(config.producer) - PRODUCER_ALLOWED)
    if refused:
        raise SinkError(f"kafka sink: producer setting(s) {refused} not allowed", transient=False)
    for broker in config.brokers:
        check_egress(f"kafka sink: broker {broker}", *broker_host(broker))
    return {
        "bootstrap.servers": ",".join(config.brokers),
        "client.id": "signals-dagster",
        **(extra or {}),  # deployment-wide settings (the Dagster resource's)
        **config.producer,  # the collector's own (SASL, TLS, tuning)
        "logger": log,  # librdkafka's log lines go to Python logging, not raw to stderr
    }


def producer_settings(config: KafkaConfig, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """librdkafka settings: idempotent, acks=all, compressed, each message bounded by timeout."""
    timeout_ms = max(1000, int(config.timeout.total_seconds() * 1000))
    return {
        "linger.ms": 20,
        "batch.size": 1_000_000,
        "request.timeout.ms": min(30_000, timeout_ms),
        **_base_settings(config, extra),
        # The guarantees (spec validation refuses these keys in `producer`):
        "enable.idempotence": True,
        "acks": "all",
        "compression.type": config.compression,
        "message.timeout.ms": timeout_ms,
        "delivery.report.only.error": True,
        "allow.auto.create.topics": False,  # topics are looked up and created explicitly
    }


def admin_settings(
    config: KafkaConfig,
    extra: dict[str, Any] | None = None,
    error_cb: ErrorCallback | None = None,
) -> dict[str, Any]:
    """Settings for the admin client that looks up (and creates) the topic."""
    settings = _base_settings(config, extra)
    for key in list(settings):
        if key.startswith(("linger.", "batch.", "queue.", "partitioner", "sticky.")):
            del settings[key]  # producer tuning means nothing to the admin client
    if error_cb is not None:  # how the lookup learns that connections are refused
        settings["error_cb"] = error_cb
    return {**settings, "allow.auto.create.topics": False}


def make_producer(config: KafkaConfig) -> Producer:
    """A producer made from the sink config alone (no Dagster: `signals invoke`, redrive)."""
    return Producer(producer_settings(config))


def make_admin(config: KafkaConfig, error_cb: ErrorCallback | None = None) -> AdminClient:
    """An admin client made from the sink config alone."""
    return AdminClient(admin_settings(config, error_cb=error_cb))


# Errors that the same write would meet again: no point in Dagster retrying the step. Anything
# else (timeouts, lost connections, a producer fenced by a broker restart) may pass on a retry.
_PERMANENT = frozenset(
    {
        KafkaError.MSG_SIZE_TOO_LARGE,
        KafkaError.INVALID_RECORD,
        KafkaError.TOPIC_AUTHORIZATION_FAILED,
        KafkaError.CLUSTER_AUTHORIZATION_FAILED,
        KafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
        KafkaError.SASL_AUTHENTICATION_FAILED,
        KafkaError.POLICY_VIOLATION,
        KafkaError.INVALID_PARTITIONS,
        KafkaError.INVALID_REPLICATION_FACTOR,
        KafkaError.INVALID_CONFIG,
        KafkaError.TOPIC_EXCEPTION,
        KafkaError.UNSUPPORTED_VERSION,
        KafkaError._INVALID_ARG,
        KafkaError._AUTHENTICATION,
        KafkaError._SSL,
    }
)


def _transient(error: object) -> bool:
    return not (isinstance(error, KafkaError) and error.code() in _PERMANENT)


def _describe(error: object) -> str:
    if isinstance(error, KafkaError):
        return f"{error.name()}: {error.str()}"
    return str(error)


def _where(config: KafkaConfig) -> str:
    return f"topic {config.topic!r} on {','.join(config.brokers)}"


# librdkafka names the broker first: "host:port/bootstrap: Connect to ... failed: ...".
_BROKER = re.compile(r"^(?P<broker>[^\s/]+)/\S*: ")


class BrokerErrors:
    """The admin client's error_cb: which brokers refused their connection (or do not resolve).

    A refusal is an answer: nobody listens there, and waiting will not change that. A broker
    that accepts the connection but does not answer reports no refusal, so the lookup gives it
    the whole timeout."""

    def __init__(self) -> None:
        self.all_down = False
        self.refused: dict[str, str] = {}  # broker -> its last error, while that is a refusal
        self.last: str | None = None  # the last connection error of any broker

    def __call__(self, error: KafkaError) -> None:
        """Record one error librdkafka reports (served by admin.poll)."""
        text = str(error.str())
        if error.code() == KafkaError._ALL_BROKERS_DOWN:
            self.all_down = True
            return
        self.last = text
        match = _BROKER.match(text)
        if match is None:
            return
        refused = error.code() == KafkaError._RESOLVE or (
            error.code() == KafkaError._TRANSPORT and "Connection refused" in text
        )
        if refused:
            self.refused[match["broker"]] = text
        else:  # timed out, reset, TLS...: not known to be dead
            self.refused.pop(match["broker"], None)

    def nobody_listens(self, brokers: list[str]) -> str | None:
        """The first broker's refusal when every broker refused (None: keep waiting)."""
        if self.all_down and brokers and all(b in self.refused for b in brokers):
            return self.refused[brokers[0]]
        return None


def lookup_topic(config: KafkaConfig, admin: Any, errors: BrokerErrors) -> Any:
    """The topic's metadata (None: no such topic). Waits up to `timeout` for an answer, but
    fails at once when every broker refuses connections."""
    timeout = config.timeout.total_seconds()
    started = time.monotonic()
    deadline = started + timeout
    wait, longest = LOOKUP_SLICES
    while True:
        left = max(0.001, min(wait, deadline - time.monotonic()))
        wait = min(wait * 2, longest)
        try:
            return admin.list_topics(topic=config.topic, timeout=left).topics.get(config.topic)
        except KafkaException as exc:
            error = exc.args[0]
        admin.poll(0)  # serve error_cb: why the brokers cannot be reached
        refused = errors.nobody_listens(config.brokers)
        if refused is not None:
            raise SinkError(
                f"kafka sink: cannot look up {_where(config)}: no broker reachable after "
                f"{time.monotonic() - started:.1f}s (is the broker up?): {redact(refused)}",
                transient=True,  # a broker being restarted refuses too: a retry may pass
            )
        waiting = error.code() in (KafkaError._TRANSPORT, KafkaError._TIMED_OUT)
        if not waiting or time.monotonic() >= deadline:
            last = f"; last connection error: {redact(errors.last)}" if errors.last else ""
            raise SinkError(
                f"kafka sink: cannot look up {_where(config)} within {timeout:g}s "
                f"(is the broker up?): {_describe(error)}{last}",
                transient=_transient(error),
            )


def _exists(config: KafkaConfig, found: Any) -> bool:
    """True: the topic exists; False: it is missing and may be created; else SinkError."""
    error = None if found is None else found.error
    if found is not None and error is None:
        return True
    if error is not None and error.code() != KafkaError.UNKNOWN_TOPIC_OR_PART:
        raise SinkError(
            f"kafka sink: cannot use {_where(config)}: {_describe(error)}",
            transient=_transient(error),
        )
    if not config.allow_auto_topic_creation:
        raise SinkError(
            f"kafka sink: {_where(config)} does not exist; create it, or set "
            "allow_auto_topic_creation: true in the sink config"
        )
    return False


def check_topic(config: KafkaConfig, admin_factory: AdminFactory | None = None) -> None:
    """Preflight: the brokers answer and the topic exists, or may be created (by the writer;
    nothing is created here)."""
    errors = BrokerErrors()
    admin = (admin_factory or make_admin)(config, errors)
    _exists(config, lookup_topic(config, admin, errors))


def murmur2(data: bytes) -> int:
    """Kafka's murmur2 (the Java client's partitioner hash)."""
    m, length = 0x5BD1E995, len(data)
    h = (0x9747B28C ^ length) & 0xFFFFFFFF
    whole = length - length % 4
    for i in range(0, whole, 4):
        k = (int.from_bytes(data[i : i + 4], "little") * m) & 0xFFFFFFFF
        k = ((k ^ (k >> 24)) * m) & 0xFFFFFFFF
        h = ((h * m) & 0xFFFFFFFF) ^ k
    tail = data[whole:]
    if tail:
        for shift, byte in reversed(list(enumerate(tail))):
            h ^= byte << (8 * shift)
        h = (h * m) & 0xFFFFFFFF
    h = ((h ^ (h >> 13)) * m) & 0xFFFFFFFF
    return h ^ (h >> 15)


# librdkafka partitioners whose choice for a key is a pure function of (key, partition count).
_PARTITIONERS: dict[str, Callable[[bytes, int], int]] = {
    "consistent_random": lambda key, n: zlib.crc32(key) % n,  # librdkafka's default
    "consistent": lambda key, n: zlib.crc32(key) % n,
    "murmur2_random": lambda key, n: (murmur2(key) & 0x7FFFFFFF) % n,  # the Java client's
    "murmur2": lambda key, n: (murmur2(key) & 0x7FFFFFFF) % n,
}


def key_partitions(keys: Iterable[str], count: int, partitioner: str) -> list[int] | None:
    """The Kafka partitions these keys go to (None: the partitioner is not key-determined)."""
    pick = _PARTITIONERS.get(partitioner)
    if pick is None or count < 1:
        return None
    seen: set[int] = set()
    for key in keys:
        seen.add(pick(key.encode(), count))
        if len(seen) == count:
            break  # every partition is touched: no need to hash the rest
    return sorted(seen)


class _Serialised:
    """Keys and JSON values of a partition's records, serialised a chunk at a time; chunks may
    be built ahead while the producer's queue is full."""

    def __init__(self, records: Any) -> None:
        self.records = as_table(records)
        self.uuids: list[str] = self.records.column("uuid").to_pylist()
        self.bytes = 0
        self._starts = iter(range(0, len(self.records), CHUNK))
        self._ready: deque[tuple[list[str], list[str]]] = deque()

    def build_one(self) -> bool:
        """Serialise the next chunk; False when all are built or enough are waiting."""
        if len(self._ready) >= AHEAD:
            return False
        start = next(self._starts, None)
        if start is None:
            return False
        values = to_json_values(self.records.slice(start, CHUNK))
        self.bytes += sum(map(len, values))
        self._ready.append((self.uuids[start : start + CHUNK], values))
        return True

    def next_chunk(self) -> tuple[list[str], list[str]] | None:
        """The next (keys, values) to produce; None at the end."""
        if not self._ready:
            self.build_one()
        return self._ready.popleft() if self._ready else None


class KafkaWriter:
    """Writes each partition's records as keyed messages; one producer for every partition."""

    def __init__(
        self,
        config: KafkaConfig,
        producer_factory: ClientFactory | None = None,
        admin_factory: AdminFactory | None = None,
    ) -> None:
        self.config = config
        self.topic = config.topic
        self.timeout = config.timeout.total_seconds()
        self.topic_created = False
        errors = BrokerErrors()
        admin = (admin_factory or make_admin)(config, errors)
        self.partition_count = self._check_topic(admin, errors)
        # Made now: the idempotent producer's handshake (~0.5 s) overlaps the other sinks' work.
        self._producer: Any = (producer_factory or make_producer)(config)
        self._partitioner = str(config.producer.get("partitioner", "consistent_random"))

    @property
    def _where(self) -> str:
        return _where(self.config)

    def _check_topic(self, admin: Any, errors: BrokerErrors) -> int:
        """The topic must exist: create it when allowed, else fail naming it. Its partitions."""
        found = lookup_topic(self.config, admin, errors)
        if _exists(self.config, found):
            return len(found.partitions)
        # Partitions and replication: the broker's defaults (-1).
        futures = admin.create_topics(
            [NewTopic(self.topic, num_partitions=-1, replication_factor=-1)],
            operation_timeout=self.timeout,
            request_timeout=self.timeout,
        )
        try:
            futures[self.topic].result(timeout=self.timeout + GRACE)
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:  # lost a race: fine
                raise SinkError(
                    f"kafka sink: cannot create {self._where}: {_describe(exc.args[0])}",
                    transient=_transient(exc.args[0]),
                ) from None
        self.topic_created = True
        log.info("kafka sink: created %s", self._where)
        found = lookup_topic(self.config, admin, errors)
        return len(found.partitions) if found is not None and found.error is None else 0

    def write(
        self, spec: CollectorSpec, partition_key: str | None, records: Any
    ) -> dict[str, object]:
        """Produce every record; return once each delivery is confirmed."""
        count = len(records)
        started = time.monotonic()
        producer = self._producer
        if producer is None:
            raise SinkError("kafka sink: the writer is closed")
        headers = [
            (HEADER_COLLECTOR, spec.name.encode()),
            (HEADER_PARTITION, (partition_key or "").encode()),
        ]
        if spec.contract is not None:
            headers.append((HEADER_CONTRACT, spec.contract.ref.encode()))
        errors: list[KafkaError] = []  # only failed deliveries are reported

        def report(error: KafkaError | None, _message: object) -> None:
            if error is not None:
                errors.append(error)

        produce, topic = producer.produce, self.topic
        serialised = _Serialised(records)
        sent = 0
        stalled = False
        while not (errors or stalled) and (chunk := serialised.next_chunk()) is not None:
            keys, values = chunk
            for key, value in zip(keys, values, strict=True):
                try:
                    produce(topic, value, key, on_delivery=report, headers=headers)
                except BufferError:  # the local queue is full: wait for room, bounded
                    pending = (value, key, report, headers)
                    if not self._produce_when_room(pending, serialised.build_one):
                        stalled = True
                        break
            sent += keys.index(key) if stalled else len(keys)  # uuids are unique in a window
            producer.poll(0)  # serve failure reports (and logs) as they come
        unanswered = producer.flush(self.timeout + GRACE) if sent else 0
        elapsed = time.monotonic() - started
        if errors or unanswered or sent != count:
            failed = len(errors)
            message = (
                f"kafka sink: {failed + unanswered + count - sent} of {count} message(s) of "
                f"partition {partition_key or '(none)'} not confirmed by {self._where} "
                f"({failed} failed, {unanswered} unanswered after {elapsed:.1f}s, "
                f"{count - sent} not sent); first error: "
                + (_describe(errors[0]) if errors else f"no answer within {self.timeout:g}s")
            )
            self._abandon()
            raise SinkError(message, transient=not errors or _transient(errors[0]))
        result: dict[str, object] = {
            "topic": self.topic,
            "messages": count,
            "bytes": serialised.bytes,
            "delivery_seconds": round(elapsed, 3),
        }
        partitions = key_partitions(serialised.uuids, self.partition_count, self._partitioner)
        if partitions is not None:
            result.update(partitions_touched=len(partitions), partitions=partitions)
        return result

    def _produce_when_room(self, message: tuple[Any, ...], meanwhile: Callable[[], bool]) -> bool:
        """Retry until the queue has room, doing `meanwhile` work (serialising the next chunk)
        or else waiting; False when the queue stays full for longer than the timeout."""
        value, key, report, headers = message
        deadline = time.monotonic() + self.timeout + GRACE
        while time.monotonic() < deadline:
            self._producer.poll(0 if meanwhile() else 0.05)
            try:
                self._producer.produce(self.topic, value, key, on_delivery=report, headers=headers)
                return True
            except BufferError:
                continue
        return False

    def _abandon(self) -> None:
        """After a failure: drop what is still queued, so nothing is sent behind our back."""
        self._producer.purge(in_queue=True, in_flight=False)
        self._producer.poll(0)

    def close(self) -> None:
        """Close the producer (nothing is pending after a successful write)."""
        producer, self._producer = self._producer, None
        if producer is None:
            return
        if len(producer):
            producer.purge()
            producer.poll(0)
        producer.close()
