"""`signals forget`: one subject's records erased from real file, S3 (SeaweedFS) and Kafka
(tansu) sinks; the other subjects' records left byte for byte."""

import io
import json
import textwrap
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner, Result
from confluent_kafka.admin import AdminClient, NewTopic

from signals_dagster.forget import (
    REDACTED,
    ForgetError,
    Subject,
    describe,
    parse_tag,
    plan_forget,
    run_forget,
)
from signals_dagster.forget_command import forget
from signals_dagster.pseudonyms import Pseudonymizer
from signals_dagster.records import from_dicts, iso_z, record_uuid
from signals_dagster.sinks import SinkClients
from signals_dagster.sinks.file import FileWriter
from signals_dagster.sinks.kafka import KafkaWriter
from signals_dagster.sinks.s3 import S3Writer
from signals_dagster.spec.loader import load_collectors
from signals_dagster.spec.models import CollectorSpec
from signals_dagster.spec.sinks import FileSink, KafkaSink, S3Sink
from signals_dagster_tests.servers.common import free_port
from signals_dagster_tests.servers.kafka import TansuBroker, consume_all
from signals_dagster_tests.servers.s3 import S3Server

pytestmark = pytest.mark.usefixtures("aws_env")

PII_KEY = "forget-tests-0123456789-abcdefghijklmnop"  # 40 characters
SUBJECT = "ana@example.com"
OTHERS = ("bob@example.com", "cy@example.com")
DAYS = ("2026-02-02", "2026-02-03", "2026-02-04")
ONLY_SUBJECT_DAY = "2026-02-05"  # a window with the subject's record alone
COLLECTED = datetime(2026, 2, 6, 0, 15, 3, 120000, tzinfo=UTC)
METRIC = "shop.logins"
CONTRACT = """
metrics:
  - name: shop.logins
    version: 1
    type: COUNT
    owners: [team:growth]
    tags:
      email: {required: true, pii: hash}
      env: {required: true}
      device:
        pii: drop
"""


@pytest.fixture(autouse=True)
def _pii_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SIGNALS_PII_KEY", PII_KEY)
    monkeypatch.delenv("SIGNALS_PII_KEY_ID", raising=False)


def pseudonym(email: str) -> str:
    return Pseudonymizer.from_env().one(email)


def collector(name: str, metric: str, db: Path, sinks: str) -> str:
    return textwrap.dedent(
        f"""
        name: {name}
        metric:
          name: {metric}
          type: COUNT
          tags: {{env: test}}
        source:
          type: sqlite
          config:
            uri: 'sqlite:///{db}'
            sql: "SELECT email, COUNT(*) AS value FROM logins
              WHERE ts >= :window_start AND ts < :window_end GROUP BY email"
        sinks:
        """
    ) + textwrap.indent(textwrap.dedent(sinks).strip("\n"), "  ")


def file_sink(name: str, path: Path) -> str:
    return f"{name}:\n  type: file\n  config: {{path: '{path}'}}\n"


def s3_sink(name: str, endpoint: str, bucket: str, fmt: str, prefix: str) -> str:
    return (
        f"{name}:\n  type: s3\n  config: {{bucket: {bucket}, prefix: {prefix}, format: {fmt}, "
        f"endpoint_url: '{endpoint}', region: us-east-1, retries: 0}}\n"
    )


def kafka_sink(name: str, brokers: str, topic: str) -> str:
    return (
        f"{name}:\n  type: kafka\n  config: {{brokers: ['{brokers}'], topic: {topic}, "
        "timeout: 3s}\n"
    )


def record(metric: str, email: str, day: str, value: float) -> dict[str, Any]:
    grain = datetime.fromisoformat(day).replace(tzinfo=UTC)
    tags = {"email": pseudonym(email), "env": "test"}
    return {
        "uuid": record_uuid(metric, tags, grain),
        "name": metric,
        "value": value,
        "type": "COUNT",
        "tags": tags,
        "timestamp": iso_z(COLLECTED, millis=True),
        "grain_datetime": iso_z(grain),
    }


def day_records(metric: str, day: str) -> list[dict[str, Any]]:
    """Every subject's record of one day (the subject's alone on ONLY_SUBJECT_DAY)."""
    emails = (SUBJECT,) if day == ONLY_SUBJECT_DAY else (SUBJECT, *OTHERS)
    return [record(metric, email, day, 10 * (i + 1)) for i, email in enumerate(emails)]


def is_subject(
    line: bytes | str, metric: str = METRIC, days: tuple[str, ...] | None = None
) -> bool:
    row = json.loads(line)
    return (
        row["name"] == metric
        and row["tags"].get("email") == pseudonym(SUBJECT)
        and (days is None or row["grain_datetime"][:10] in days)
    )


def subject_uuids(days: tuple[str, ...] = (*DAYS, ONLY_SUBJECT_DAY)) -> set[str]:
    return {r["uuid"] for d in days for r in day_records(METRIC, d) if is_subject(json.dumps(r))}


def create_topics(bootstrap: str, compacted: list[str], default: list[str]) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    topics = [
        NewTopic(t, num_partitions=3, config={"cleanup.policy": "compact"}) for t in compacted
    ]
    topics += [NewTopic(t, num_partitions=3) for t in default]
    for future in admin.create_topics(topics).values():
        future.result(timeout=10)


def invoke(*args: str) -> Result:
    return CliRunner().invoke(forget, list(args), catch_exceptions=False)


@dataclass
class World:
    """Collectors of shop.logins (and of another metric) whose sinks hold records of three
    subjects over four days, written by the real sink writers."""

    dir: Path
    audit: Path
    bucket: str
    topics: dict[str, str]  # role -> topic name
    server: S3Server | None
    bootstrap: str | None
    specs: dict[str, CollectorSpec] = field(default_factory=dict)

    def run(self, *args: str) -> Result:
        return invoke(str(self.dir), "--metric", METRIC, "--tag", f"email={SUBJECT}", *args)

    def s3_objects(self) -> dict[str, tuple[bytes, dict[str, str], str, str]]:
        """key -> (body, user metadata, content type, ETag)."""
        assert self.server is not None
        client = self.server.client()
        found = {}
        for key in self.server.keys(self.bucket):
            got = client.get_object(Bucket=self.bucket, Key=key)
            found[key] = (got["Body"].read(), got["Metadata"], got["ContentType"], got["ETag"])
        return found

    def messages(self, role: str, expected: int | None = None) -> list[Any]:
        assert self.bootstrap is not None
        return consume_all(self.bootstrap, self.topics[role], expected=expected, idle=0.6)


def open_writers(spec: CollectorSpec) -> list[Any]:
    """The real writers of the collector's file, S3 and Kafka sinks."""
    writers: list[Any] = []
    for sink in spec.sinks.values():
        if isinstance(sink, FileSink):
            writers.append(FileWriter(sink.config.path))
        elif isinstance(sink, S3Sink):
            writers.append(S3Writer(sink.config))
        elif isinstance(sink, KafkaSink):
            writers.append(KafkaWriter(sink.config))
    return writers


def write_days(specs: list[tuple[CollectorSpec, str]], days: tuple[str, ...]) -> None:
    """Write every day's records (of each collector's metric) to each collector's sinks, day
    by day, so that collectors sharing a file interleave their lines."""
    opened = [(spec, metric, open_writers(spec)) for spec, metric in specs]
    try:
        for day in days:
            for spec, metric, writers in opened:
                for writer in writers:
                    writer.write(spec, day, from_dicts(day_records(metric, day)))
    finally:
        for _, _, writers in opened:
            for writer in writers:
                writer.close()


@pytest.fixture
def world(tmp_path: Path, s3_server: S3Server, kafka_broker: TansuBroker) -> World:
    folder = tmp_path / "collectors"
    folder.mkdir()
    stamp = time.monotonic_ns()
    topics = {"stream": f"logins-{stamp}", "logs": f"logs-{stamp}", "mirror": f"mirror-{stamp}"}
    create_topics(kafka_broker.bootstrap, [topics["stream"], topics["mirror"]], [topics["logs"]])
    bucket = s3_server.new_bucket()
    audit = tmp_path / "audit.jsonl"
    db = tmp_path / "shop.db"
    ep, bootstrap = s3_server.endpoint, kafka_broker.bootstrap
    (folder / "registry.yaml").write_text(CONTRACT)
    sinks = (
        file_sink("audit", audit)
        + s3_sink("lake", ep, bucket, "jsonl", "lines")
        + s3_sink("lakepq", ep, bucket, "parquet", "pq")
        + kafka_sink("stream", bootstrap, topics["stream"])
        + kafka_sink("logs", bootstrap, topics["logs"])
        + "out: {type: console}\n"
        + "ingest:\n  type: http\n  config: {uri: 'http://127.0.0.1:9/ingest'}\n"
    )
    (folder / "logins.yaml").write_text(collector("shop.logins.daily", METRIC, db, sinks))
    mirror = kafka_sink("mirror", bootstrap, topics["mirror"])
    (folder / "mirror.yaml").write_text(collector("shop.logins.mirror", METRIC, db, mirror))
    visits = file_sink("audit", audit) + s3_sink("lake", ep, bucket, "jsonl", "lines")
    (folder / "visits.yaml").write_text(collector("shop.visits.daily", "shop.visits", db, visits))
    specs = {spec.name: spec for spec in load_collectors([folder]).values()}
    collectors = [
        (specs["shop.logins.daily"], METRIC),
        (specs["shop.visits.daily"], "shop.visits"),  # the same audit log, another metric
        (specs["shop.logins.mirror"], METRIC),
    ]
    write_days(collectors, (*DAYS, ONLY_SUBJECT_DAY))
    return World(folder, audit, bucket, topics, s3_server, bootstrap, specs)


def assert_no_raw_value(result: Result) -> None:
    assert SUBJECT not in result.output
    assert "ana@" not in result.output


# ---- the end-to-end cases -------------------------------------------------------------------


def test_dry_run_changes_nothing(world: World) -> None:
    audit = world.audit.read_bytes()
    objects = world.s3_objects()
    counts = {role: len(world.messages(role, expected=10)) for role in world.topics}
    assert counts == {"stream": 10, "logs": 10, "mirror": 10}

    result = world.run("--dry-run")

    assert result.exit_code == 0, result.output
    assert_no_raw_value(result)
    out = result.output
    audit_label = f"shop.logins.daily: sink audit (file {world.audit})"
    assert f"{audit_label}: 4 record(s) found, file would be rewritten without them" in out
    assert "lake (s3 s3://" in out
    assert "4 record(s) found in 4 of 4 object(s) read" in out
    assert "4 object(s) would be rewritten without them" in out
    assert "no record left: would be rewritten as an empty object" in out
    assert f"4 tombstone(s) would be sent to topic {world.topics['stream']}" in out
    logs = world.topics["logs"]
    assert f"warning: topic {logs} has cleanup.policy=delete: tombstones do not remove" in out
    assert f"warning: topic {world.topics['stream']}" not in out
    assert "dry run, nothing changed: 12 record(s) would be removed from 3 sink(s)" in out
    assert world.audit.read_bytes() == audit
    assert world.s3_objects() == objects  # bodies, metadata and ETags: no PUT
    assert {role: len(world.messages(role)) for role in world.topics} == counts


def test_forget_erases_the_subject_everywhere(world: World) -> None:
    audit_before = world.audit.read_bytes().splitlines(keepends=True)
    objects_before = world.s3_objects()

    result = world.run()

    assert result.exit_code == 0, result.output
    assert_no_raw_value(result)
    out = result.output
    assert f"tag email={pseudonym(SUBJECT)} (its pseudonym: the tag is pii: hash)" in out
    # file: exactly the subject's lines of this metric gone, every other line byte-identical
    expected = [line for line in audit_before if not is_subject(line)]
    assert len(audit_before) - len(expected) == 4
    assert world.audit.read_bytes().splitlines(keepends=True) == expected
    assert sum(is_subject(line, "shop.visits") for line in expected) == 4  # other metric kept
    assert f"(file {world.audit}): 4 record(s) found, file rewritten without them" in out
    assert "shop.visits" not in out
    # S3: each object rewritten without them; the other metric's objects untouched
    after = world.s3_objects()
    assert after.keys() == objects_before.keys()
    for key, (body, metadata, content_type, etag) in objects_before.items():
        new_body, new_metadata, new_type, new_etag = after[key]
        assert (new_metadata, new_type) == (metadata, content_type), key
        if "metric=shop.visits" in key:
            assert (new_body, new_etag) == (body, etag)
        elif key.endswith(".jsonl"):
            kept = [line for line in body.splitlines(keepends=True) if not is_subject(line)]
            assert new_body.splitlines(keepends=True) == kept, key
            assert metadata == {"signals.contract": "shop.logins/1"}
        else:
            old, new = pq.read_table(io.BytesIO(body)), pq.read_table(io.BytesIO(new_body))
            assert new.schema.equals(old.schema, check_metadata=True)
            assert old.schema.metadata[b"signals.contract"] == b"shop.logins/1"
            subject = pseudonym(SUBJECT)
            rest = [r for r in old.to_pylist() if dict(r["tags"])["email"] != subject]
            assert new.to_pylist() == rest
    empty = f"date={ONLY_SUBJECT_DAY}/shop_logins_daily.jsonl"
    assert next(body for key, (body, *_) in after.items() if key.endswith(empty)) == b""
    empty_pq = next(
        b
        for k, (b, *_) in after.items()
        if k.endswith(f"{ONLY_SUBJECT_DAY}/shop_logins_daily.parquet")
    )
    assert pq.read_table(io.BytesIO(empty_pq)).num_rows == 0
    assert "4 object(s) rewritten without them" in out
    # Kafka: one tombstone per record, in the record's partition, after it
    uuids = subject_uuids()
    for role in ("stream", "logs", "mirror"):
        messages = world.messages(role, expected=14)
        assert len(messages) == 14, role
        tombstones = [m for m in messages if m.value() is None]
        assert {m.key().decode() for m in tombstones} == uuids, role
        for stone in tombstones:
            original = next(m for m in messages if m.key() == stone.key() and m.value())
            assert stone.partition() == original.partition()
            assert stone.offset() > original.offset()
        for partition in {m.partition() for m in tombstones}:  # the last messages of each
            values = [
                m.value()
                for m in sorted(messages, key=lambda m: m.offset())
                if m.partition() == partition
            ]
            first_stone = values.index(None)
            assert values[first_stone:] == [None] * (len(values) - first_stone)
    assert f"4 tombstone(s) sent to topic {world.topics['stream']}" in out
    assert f"warning: topic {world.topics['logs']} has cleanup.policy=delete" in out
    mirror = "shop.logins.mirror: sink mirror (kafka topic"
    assert f"{mirror} {world.topics['mirror']} on {world.bootstrap}): 4 record(s) found " in out
    assert "(uuids from sink(s) audit of shop.logins.daily, lake of shop.logins.daily" in out
    assert "sink out (console): not erasable" in out
    assert "sink ingest (http http://127.0.0.1:9/ingest): not erasable" in out
    assert "done: 12 record(s) were removed from 3 sink(s); 12 tombstone(s) sent" in out

    again = world.run()  # nothing left to find: nothing to do
    assert again.exit_code == 0, again.output
    assert "done: 0 record(s) were removed from 0 sink(s); 0 tombstone(s) sent" in again.output


def test_date_range_limits_the_erasure(world: World) -> None:
    objects_before = world.s3_objects()
    audit_before = world.audit.read_bytes().splitlines(keepends=True)

    result = world.run("--from", "2026-02-03", "--to", "2026-02-04")

    assert result.exit_code == 0, result.output
    assert_no_raw_value(result)
    days = ("2026-02-03", "2026-02-04")
    assert "days 2026-02-03 to 2026-02-04 (UTC date of grain_datetime)" in result.output
    expected = [line for line in audit_before if not is_subject(line, days=days)]
    assert world.audit.read_bytes().splitlines(keepends=True) == expected
    after = world.s3_objects()
    for key, before in objects_before.items():
        changed = "metric=shop.logins/" in key and any(f"date={d}/" in key for d in days)
        assert (after[key][3] != before[3]) == changed, key  # ETag: rewritten or not
    stones = [m for m in world.messages("stream", expected=12) if m.value() is None]
    assert {m.key().decode() for m in stones} == subject_uuids(days)
    assert "2 tombstone(s) sent" in result.output


class RacingClient:
    """A real boto3 client; before its first put_object, a collector run replaces that object
    (a real PUT of the window re-collected, with one more subject), as a concurrent run would."""

    def __init__(self, client: Any, rerun: Callable[[str], bytes]) -> None:
        self._client = client
        self._rerun = rerun
        self.raced: list[str] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def put_object(self, **kwargs: Any) -> Any:
        if not self.raced:
            self.raced.append(kwargs["Key"])
            body = self._rerun(kwargs["Key"])
            self._client.put_object(Bucket=kwargs["Bucket"], Key=kwargs["Key"], Body=body)
        return self._client.put_object(**kwargs)


def test_an_object_replaced_meanwhile_is_read_again(tmp_path: Path, s3_server: S3Server) -> None:
    bucket = s3_server.new_bucket()
    sinks = s3_sink("lake", s3_server.endpoint, bucket, "jsonl", "x")
    folder, _ = small_world(tmp_path, sinks)
    specs = load_collectors([folder]).values()
    spec = next(iter(specs))
    write_days([(spec, METRIC)], DAYS[:1])
    rerun_rows = [*day_records(METRIC, DAYS[0]), record(METRIC, "dee@example.com", DAYS[0], 99)]
    rerun = b"".join(json.dumps(r).encode() + b"\n" for r in rerun_rows)
    racing: list[RacingClient] = []

    def factory(config: Any) -> Any:
        racing.append(RacingClient(s3_server.client(), lambda _key: rerun))
        return racing[-1]

    plan = plan_forget(specs, METRIC, "email", SUBJECT)
    report = run_forget(plan, clients=SinkClients(s3=factory))

    assert not report.failed, describe(report)
    assert racing[0].raced  # the object changed between the GET and the conditional PUT
    (key,) = s3_server.keys(bucket)
    body = s3_server.client().get_object(Bucket=bucket, Key=key)["Body"].read()
    expected = [line for line in rerun.splitlines(keepends=True) if not is_subject(line)]
    assert body.splitlines(keepends=True) == expected  # the re-run's new record survived


# ---- failures -----------------------------------------------------------------------------


def small_world(tmp_path: Path, sinks: str, extra_days: bool = True) -> tuple[Path, Path]:
    """A folder with the registry and one collector of shop.logins; its audit log written."""
    folder = tmp_path / "collectors"
    folder.mkdir()
    audit = tmp_path / "audit.jsonl"
    (folder / "registry.yaml").write_text(CONTRACT)
    text = collector("shop.logins.daily", METRIC, tmp_path / "shop.db", sinks)
    (folder / "logins.yaml").write_text(text)
    lines = [json.dumps(r) + "\n" for d in DAYS for r in day_records(METRIC, d)]
    audit.write_text("".join(lines))
    return folder, audit


def test_unreachable_s3_fails_the_run(tmp_path: Path) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    sinks = file_sink("audit", tmp_path / "audit.jsonl") + s3_sink(
        "lake", dead, "bkt-nowhere", "jsonl", "x"
    )
    folder, audit = small_world(tmp_path, sinks)
    before = audit.read_bytes()

    result = invoke(str(folder), "--metric", METRIC, "--tag", f"email={SUBJECT}")

    assert result.exit_code == 1, result.output
    assert_no_raw_value(result)
    assert (
        f"sink lake (s3 s3://bkt-nowhere/x/metric={METRIC}/ jsonl): failed: listing"
        in result.output
    )
    assert dead in result.output
    assert "failed: 3 record(s) were removed from 1 sink(s)" in result.output
    assert "1 sink(s) not cleaned" in result.output
    kept = [line for line in before.splitlines(keepends=True) if not is_subject(line)]
    assert audit.read_bytes().splitlines(keepends=True) == kept  # the file was still cleaned


def test_failed_tombstones_keep_their_source(tmp_path: Path) -> None:
    dead = f"127.0.0.1:{free_port()}"
    sinks = file_sink("audit", tmp_path / "audit.jsonl") + kafka_sink("stream", dead, "t1")
    folder, audit = small_world(tmp_path, sinks)
    before = audit.read_bytes()

    result = invoke(str(folder), "--metric", METRIC, "--tag", f"email={SUBJECT}")

    assert result.exit_code == 1, result.output
    assert "sink stream (kafka topic t1" in result.output
    assert "failed: " in result.output
    assert (
        "3 record(s) found, NOT rewritten: their tombstones failed (Kafka sink(s) stream of"
        in result.output
    )
    assert audit.read_bytes() == before  # a re-run can still learn the uuids


def test_kafka_without_a_readable_sink(tmp_path: Path) -> None:
    dead = f"127.0.0.1:{free_port()}"
    folder, _ = small_world(tmp_path, kafka_sink("stream", dead, "t1") + "out: {type: console}\n")

    result = invoke(str(folder), "--metric", METRIC, "--tag", f"email={SUBJECT}", "--dry-run")

    assert result.exit_code == 1, result.output
    assert "Kafka cannot be erased without a readable sink" in result.output
    assert "sink out (console): not erasable" in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--metric", "shop.nope", "--tag", f"email={SUBJECT}"], "no collector emits metric"),
        (["--metric", METRIC, "--tag", SUBJECT], "--tag must be KEY=VALUE"),
        (["--metric", METRIC, "--tag", f"={SUBJECT}"], "--tag must be KEY=VALUE"),
        (["--metric", METRIC, "--tag", f"phone={SUBJECT}"], "tag 'phone' is not a tag of"),
        (["--metric", METRIC, "--tag", f"device={SUBJECT}"], "is `pii: drop`"),
        (
            [
                "--metric",
                METRIC,
                "--tag",
                f"email={SUBJECT}",
                "--from",
                "2026-02-04",
                "--to",
                "2026-02-03",
            ],
            "--from 2026-02-04 is after --to 2026-02-03",
        ),
        (
            ["--metric", METRIC, "--tag", f"email={SUBJECT}", "--from", "03/02/2026"],
            "--from must be",
        ),
    ],
)
def test_bad_requests_are_one_error_line(tmp_path: Path, args: list[str], message: str) -> None:
    folder, audit = small_world(tmp_path, file_sink("audit", tmp_path / "audit.jsonl"))
    before = audit.read_bytes()
    result = invoke(str(folder), *args)
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    assert lines[0].startswith("error: ")
    assert message in lines[0]
    assert SUBJECT not in result.output
    assert audit.read_bytes() == before


def test_missing_pii_key_is_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder, _ = small_world(tmp_path, file_sink("audit", tmp_path / "audit.jsonl"))
    monkeypatch.delenv("SIGNALS_PII_KEY")
    result = invoke(str(folder), "--metric", METRIC, "--tag", f"email={SUBJECT}")
    assert result.exit_code == 1
    (line,) = result.output.strip().splitlines()
    assert line.startswith("error: ")
    assert (
        "$SIGNALS_PII_KEY is not set: a contract with `pii: hash` tags needs a secret key" in line
    )


# ---- the pure API -------------------------------------------------------------------------


def test_plan_and_report_never_hold_the_raw_value(tmp_path: Path) -> None:
    sinks = file_sink("audit", tmp_path / "audit.jsonl") + "out: {type: console}\n"
    folder, _audit = small_world(tmp_path, sinks)
    specs = load_collectors([folder]).values()
    plan = plan_forget(specs, METRIC, "email", SUBJECT, date(2026, 2, 3))
    assert plan.subject.value == plan.subject.shown == pseudonym(SUBJECT)
    assert plan.subject.hashed
    assert [(t.sink_name, t.kind) for t in plan.targets] == [("audit", "file"), ("out", "none")]
    report = run_forget(plan, dry_run=True)
    assert not report.failed
    assert report.removed == 2
    lines = describe(report)
    assert SUBJECT not in repr(plan) + repr(report) + "\n".join(lines)
    assert "days 2026-02-03 to the last" in lines[0]


def test_a_file_shared_by_two_collectors_is_rewritten_once(tmp_path: Path) -> None:
    folder, audit = small_world(tmp_path, file_sink("audit", tmp_path / "audit.jsonl"))
    text = collector("shop.logins.other", METRIC, tmp_path / "db", file_sink("log", audit))
    (folder / "other.yaml").write_text(text)
    plan = plan_forget(load_collectors([folder]).values(), METRIC, "email", SUBJECT)
    report = run_forget(plan)
    assert [o.status for o in report.outcomes] == ["erased", "shared"]
    assert report.removed == 3
    lines = describe(report)
    assert lines[2] == (
        f"shop.logins.other: sink log (file {audit}): the same file as shop.logins.daily: sink "
        f"audit (file {audit}): handled there"
    )
    assert not any(is_subject(line) for line in audit.read_text().splitlines())


def test_no_contract_compares_the_value_as_given(tmp_path: Path) -> None:
    folder = tmp_path / "collectors"
    folder.mkdir()
    audit = tmp_path / "audit.jsonl"
    text = collector("visits", "shop.visits", tmp_path / "db", file_sink("audit", audit))
    (folder / "visits.yaml").write_text(text)
    raw = {**record("shop.visits", SUBJECT, DAYS[0], 1), "tags": {"email": SUBJECT}}
    audit.write_text(
        json.dumps(raw) + "\n" + json.dumps(record("shop.visits", SUBJECT, DAYS[1], 2)) + "\n"
    )
    plan = plan_forget(load_collectors([folder]).values(), "shop.visits", "email", SUBJECT)
    assert plan.subject.shown == REDACTED
    assert not plan.subject.hashed
    report = run_forget(plan)
    assert report.removed == 1  # the raw value only; the pseudonymised record is another value
    assert "has no contract" in describe(report)[1]


def test_days_are_utc_dates_of_grain_datetime() -> None:
    feb_2 = date(2026, 2, 2)
    subject = Subject(METRIC, "email", "x", "x", first=feb_2, last=feb_2)
    record = {"name": METRIC, "tags": {"email": "x"}}
    # Europe/Paris's window of 2026-02-03 starts at 2026-02-02T23:00Z: a record of 02-02 here
    assert subject.matches({**record, "grain_datetime": "2026-02-02T23:00:00Z"})
    assert subject.matches({**record, "grain_datetime": "2026-02-03T00:00:00+01:00"})
    # America/New_York's 20:00 on 02-02 is 01:00Z on 02-03
    assert not subject.matches({**record, "grain_datetime": "2026-02-02T20:00:00-05:00"})
    assert not subject.matches({**record, "grain_datetime": "2026-02-03T00:00:00Z"})
    assert not subject.matches({**record, "name": "other", "grain_datetime": "2026-02-02"})


def test_parse_tag() -> None:
    assert parse_tag("email=a=b") == ("email", "a=b")
    for bad in ("email", "=x", "email="):
        with pytest.raises(ForgetError) as caught:
            parse_tag(bad)
        assert bad not in str(caught.value) or bad == "email"
