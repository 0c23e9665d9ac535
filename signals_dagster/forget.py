"""`signals forget`: erase one subject's records from every sink of a metric (erasure on request).

The subject: the records of metric NAME whose tag KEY holds the subject's value — its keyed
pseudonym (`Pseudonymizer.one`, key $SIGNALS_PII_KEY) when the metric's contract marks the tag
`pii: hash`, since that is what the sinks hold — optionally only those whose grain_datetime falls
on a day of [first, last] (both included).

Days are the UTC date of grain_datetime as stored (records carry it in UTC). A window of a
collector partitioned in another timezone belongs to the UTC day its start falls on: the
Europe/Paris window of 2026-02-03 starts at 2026-02-02T23:00Z, so it is a record of 2026-02-02
here, whatever its partition key says.

What each kind of sink can do, in this order:

1. find: every readable sink (file, S3) is read and the subject's records counted (their uuids
   kept in memory, nothing else).
2. Kafka: one tombstone per distinct uuid found (key = the uuid, value = null, the same
   partitioner as the sink: the same partition), so that a compacted topic forgets the records.
   The uuids come from the readable sinks of the same collector, or from those of the metric's
   other collectors when it has none (a record's uuid depends on metric, tags and window only).
   A topic whose `cleanup.policy` does not include `compact` is warned about: tombstones do not
   remove anything there. When tombstones fail, the readable sinks they came from are kept as
   they are, so that a re-run finds the uuids again.
3. rewrite: a file sink is rewritten under the sink's own lock (temp file in the same folder,
   fsync, os.replace, fsync of the folder), every other line byte-identical and in order; each
   S3 object holding such records is PUT again in one request (same key, format, Parquet schema
   and key-value metadata, object metadata and content type), on condition that it is still the
   object that was read (If-Match: its ETag; a collector run that replaced it meanwhile makes
   the object be read again). An object left with no record is rewritten empty — kept, as the
   writer writes an empty window: a reader sees a window without records, not one never
   collected.

Console and HTTP sinks keep nothing signals can reach: they are reported as not erasable.
Neither the plan nor the report holds the raw value of a `pii: hash` tag.
"""

import contextlib
import fcntl
import io
import json
import os
import stat
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any, Literal

from signals_dagster.errors import CollectorError, SinkError
from signals_dagster.redact import redact
from signals_dagster.sinks.base import SinkClients
from signals_dagster.spec.models import CollectorSpec
from signals_dagster.spec.sinks import (
    FileSink,
    HttpSink,
    KafkaConfig,
    KafkaSink,
    S3Config,
    S3Sink,
    Sink,
)

Kind = Literal["file", "s3", "kafka", "none"]
Status = Literal[
    "nothing",  # no record of the subject (or no file, no topic): nothing to change
    "erased",  # the records are gone (file, S3) or tombstoned (Kafka)
    "would-erase",  # --dry-run: what would have been done
    "failed",  # could not be read, rewritten or tombstoned: see `error`
    "kept",  # found, left as is: the tombstones of a Kafka sink they are the uuids of failed
    "shared",  # the same file as another collector's sink: handled (and counted) there
    "not-erasable",  # console, HTTP
]
REDACTED = "<redacted>"
DAY_FMT = "%Y-%m-%d"
PUT_ATTEMPTS = 3  # conditional PUTs of one object (each after reading it again)
_PRECONDITION = ("PreconditionFailed", "412", "ConditionalRequestConflict", "409")
_NO_CONDITION = ("NotImplemented", "501")


class ForgetError(CollectorError):
    """A request `signals forget` cannot carry out (unknown metric, bad tag, bad days...)."""


# ---- the request ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Subject:
    """Whose records: metric, tag and the value the sinks hold (the pseudonym when hashed)."""

    metric: str
    tag: str
    value: str = field(repr=False)  # compared with the records (never the raw pii value)
    shown: str  # what output may print: the pseudonym, the plain value, or <redacted>
    hashed: bool = False
    first: date | None = None
    last: date | None = None

    def in_days(self, day: date) -> bool:
        """Whether a grain_datetime's UTC day is in [first, last]."""
        return (self.first is None or day >= self.first) and (self.last is None or day <= self.last)

    def matches(self, record: Mapping[str, Any]) -> bool:
        """Whether one record (a JSON object) is the subject's."""
        if record.get("name") != self.metric:
            return False
        tags = record.get("tags")
        if not isinstance(tags, Mapping) or tags.get(self.tag) is None:
            return False
        if str(tags[self.tag]) != self.value:
            return False
        if self.first is None and self.last is None:
            return True
        day = _utc_day(record.get("grain_datetime"))
        return day is not None and self.in_days(day)

    @property
    def days(self) -> str:
        """The day range as output names it."""
        if self.first is None and self.last is None:
            return "every day"
        first = self.first.isoformat() if self.first else "the first"
        last = self.last.isoformat() if self.last else "the last"
        return f"days {first} to {last} (UTC date of grain_datetime)"


def _utc_day(text: object) -> date | None:
    if not isinstance(text, str):
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).date()


def parse_tag(text: str) -> tuple[str, str]:
    """`KEY=VALUE` → (KEY, VALUE), split at the first `=`; ForgetError otherwise (the message
    never repeats the text: it may hold the value)."""
    key, sep, value = text.partition("=")
    key = key.strip()
    if not sep or not key or not value:
        raise ForgetError(
            "--tag must be KEY=VALUE: a tag key, '=', then the subject's value (not empty)"
        )
    return key, value


def parse_day(text: str | None, option: str) -> date | None:
    """A `YYYY-MM-DD` option (None stays None)."""
    if text is None:
        return None
    try:
        return datetime.strptime(text, DAY_FMT).date()
    except ValueError:
        raise ForgetError(f"{option} must be a day YYYY-MM-DD, got {text!r}") from None


# ---- the plan ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class SinkTarget:
    """One sink of one collector of the metric."""

    collector: str
    sink_name: str
    kind: Kind
    sink_type: str
    where: str  # what output names it by (secrets redacted)
    spec: CollectorSpec = field(repr=False, compare=False)
    sink: Sink = field(repr=False, compare=False)

    @property
    def readable(self) -> bool:
        """Whether records can be read back from it (and so their uuids learnt)."""
        return self.kind in ("file", "s3")

    @property
    def label(self) -> str:
        """`collector: sink NAME (where)`."""
        return f"{self.collector}: sink {self.sink_name} ({self.where})"


@dataclass(frozen=True)
class ForgetPlan:
    """What `run_forget` will look at: the subject and every sink of the metric's collectors."""

    subject: Subject
    collectors: tuple[str, ...]
    targets: tuple[SinkTarget, ...]
    notes: tuple[str, ...] = ()  # warnings about the request itself

    def sources(self, target: SinkTarget) -> list[SinkTarget]:
        """Where a Kafka sink's uuids come from: the readable sinks of its collector, else
        those of the metric's other collectors."""
        own = [t for t in self.targets if t.readable and t.collector == target.collector]
        return own or [t for t in self.targets if t.readable]


def _where(sink: Sink, spec: CollectorSpec) -> tuple[Kind, str]:
    if isinstance(sink, FileSink):
        return "file", f"file {os.path.abspath(sink.config.path)}"
    if isinstance(sink, S3Sink):
        config = sink.config
        where = f"{config.prefix}/" if config.prefix else ""
        where += f"metric={spec.metric.name}/" if config.partition is None else config.partition
        return "s3", f"s3 s3://{config.bucket}/{where} {config.extension}"
    if isinstance(sink, KafkaSink):
        brokers = ",".join(sink.config.brokers)
        return "kafka", f"kafka topic {sink.config.topic} on {brokers}"
    if isinstance(sink, HttpSink):
        return "none", f"http {sink.config.uri}"
    return "none", sink.type


def plan_forget(
    specs: Iterable[CollectorSpec],
    metric: str,
    tag: str,
    value: str,
    first: date | None = None,
    last: date | None = None,
    env: Mapping[str, str] | None = None,
) -> ForgetPlan:
    """The sinks to erase the subject from; ForgetError when the request cannot be carried out.

    `value` is the raw value: hashed with $SIGNALS_PII_KEY (of `env`, default os.environ) when
    the metric's contract marks `tag` as `pii: hash`."""
    from signals_dagster.pseudonyms import Pseudonymizer

    every = list(specs)
    collectors = sorted((s for s in every if s.metric.name == metric), key=lambda s: s.name)
    if not collectors:
        known = sorted({s.metric.name for s in every})
        listed = ", ".join(known) if known else "none: no collector loaded"
        raise ForgetError(f"no collector emits metric {metric!r} (metrics: {listed})")
    if not tag or not value:
        raise ForgetError("the tag key and the value must not be empty")
    if first is not None and last is not None and first > last:
        raise ForgetError(f"--from {first.isoformat()} is after --to {last.isoformat()}")
    contract = next((s.contract for s in collectors if s.contract is not None), None)
    notes: list[str] = []
    hashed = False
    if contract is None:
        shown = REDACTED  # nothing says whether the value is personal: never print it
        notes.append(
            f"metric {metric!r} has no contract: the value is compared as given (never hashed)"
        )
    else:
        rule = contract.tags.get(tag)
        if rule is None:
            its = ", ".join(sorted(contract.tags)) or "none"
            raise ForgetError(
                f"tag {tag!r} is not a tag of the contract {contract.label} (its tags: {its})"
            )
        if rule.pii == "drop":
            raise ForgetError(
                f"tag {tag!r} is `pii: drop` in the contract {contract.label}: it is never "
                "published, so no record holds it"
            )
        hashed = rule.pii == "hash"
        shown = value
        if hashed:
            value = Pseudonymizer.from_env(env).one(value)
            shown = value
    targets = []
    for spec in collectors:
        for name, sink in spec.sinks.items():
            kind, where = _where(sink, spec)
            targets.append(SinkTarget(spec.name, name, kind, sink.type, redact(where), spec, sink))
    subject = Subject(metric, tag, value, shown, hashed, first, last)
    return ForgetPlan(subject, tuple(s.name for s in collectors), tuple(targets), tuple(notes))


# ---- the report -------------------------------------------------------------------------------


@dataclass
class ObjectChange:
    """One S3 object holding records of the subject."""

    uri: str
    removed: int
    kept: int
    done: bool = False
    error: str | None = None


@dataclass
class SinkOutcome:
    """What was found in one sink and what was done about it."""

    target: SinkTarget
    status: Status = "nothing"
    found: int = 0  # records of the subject (Kafka: distinct uuids to tombstone)
    kept: int = 0  # other lines / records left (file, S3)
    sent: int = 0  # tombstones confirmed (Kafka)
    detail: str = ""  # a note after the action (file missing, topic missing, sources...)
    error: str | None = None
    warnings: list[str] = field(default_factory=list)
    objects: list[ObjectChange] = field(default_factory=list)
    objects_read: int = 0
    uuids: set[str] = field(default_factory=set, repr=False)

    @property
    def failed(self) -> bool:
        """Whether an erasable sink was left holding (or possibly holding) the records."""
        return self.status in ("failed", "kept")


@dataclass
class ForgetReport:
    """Every sink's outcome, in the plan's order."""

    plan: ForgetPlan
    dry_run: bool
    outcomes: list[SinkOutcome]

    @property
    def failed(self) -> bool:
        """Whether some erasable sink could not be cleaned (the command exits 1)."""
        return any(o.failed for o in self.outcomes)

    @property
    def removed(self) -> int:
        """Records removed (or that would be) from files and S3 objects."""
        done = ("erased", "would-erase")
        return sum(
            o.found for o in self.outcomes if o.target.readable and o.status in done and not o.error
        )

    @property
    def tombstones(self) -> int:
        """Tombstones sent (dry run: that would be)."""
        return sum(
            o.found if self.dry_run else o.sent
            for o in self.outcomes
            if o.target.kind == "kafka" and o.status in ("erased", "would-erase")
        )


# ---- file sinks -------------------------------------------------------------------------------


def _needle(value: str) -> bytes:
    """The value as it appears inside a JSON string (a cheap test before parsing a line)."""
    return json.dumps(value)[1:-1].encode()


def _split_lines(data: bytes) -> list[bytes]:
    """Lines with their b'\\n' (the last one may have none); no other separator counts."""
    return list(io.BytesIO(data))


def _matching_line(line: bytes, subject: Subject, needle: bytes) -> str | None:
    """The uuid of the record on this line when it is the subject's (else None)."""
    if needle not in line:
        return None
    try:
        record = json.loads(line)
    except ValueError:
        return None
    if not isinstance(record, dict) or not subject.matches(record):
        return None
    return str(record.get("uuid", ""))


def _filter_lines(data: bytes, subject: Subject) -> tuple[list[bytes], set[str], int]:
    """The lines to keep, the uuids of the subject's records, and how many lines were dropped."""
    needle = _needle(subject.value)
    kept: list[bytes] = []
    uuids: set[str] = set()
    dropped = 0
    for line in _split_lines(data):
        found = _matching_line(line, subject, needle)
        if found is None:
            kept.append(line)
        else:
            uuids.add(found)
            dropped += 1
    return kept, uuids, dropped


@contextlib.contextmanager
def _locked(path: Path, exclusive: bool) -> Iterator[int | None]:
    """The file open read-only under the sink's lock (flock, as FileWriter takes it); None when
    there is no file."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        yield None
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        yield fd
    finally:
        os.close(fd)


def _read_fd(fd: int) -> bytes:
    chunks = []
    while chunk := os.read(fd, 1 << 20):
        chunks.append(chunk)
    return b"".join(chunks)


def _replace_atomically(path: Path, lines: list[bytes], like: os.stat_result) -> None:
    """Write `lines` to a temp file beside `path`, fsync it, rename it over `path`, fsync the
    folder: a reader or a crash sees the old file or the new one, never a part."""
    folder = path.parent
    fd, temp = tempfile.mkstemp(dir=folder, prefix=f".{path.name}.", suffix=".forget")
    try:
        try:
            os.fchmod(fd, stat.S_IMODE(like.st_mode))
            with contextlib.suppress(PermissionError):
                os.fchown(fd, like.st_uid, like.st_gid)
            view = memoryview(b"".join(lines))
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise
    dir_fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


class _FileJob:
    """One file (possibly the sink of several collectors of the metric)."""

    def __init__(self, outcome: SinkOutcome, config_path: str) -> None:
        self.outcome = outcome
        self.config_path = config_path
        self.path: Path | None = None

    def find(self, subject: Subject) -> None:
        from signals_dagster.confine import confined_path

        out = self.outcome
        try:
            self.path = confined_path(self.config_path)
            with _locked(self.path, exclusive=False) as fd:
                if fd is None:
                    out.detail = "no such file: nothing to erase"
                    return
                kept, out.uuids, out.found = _filter_lines(_read_fd(fd), subject)
                out.kept = len(kept)
        except (SinkError, OSError) as exc:
            out.status, out.error = "failed", _why(exc, f"reading {self.config_path}")

    def rewrite(self, subject: Subject) -> None:
        """Read again under the exclusive lock (lines appended since are judged too), then
        replace the file when it holds records of the subject."""
        out = self.outcome
        assert self.path is not None
        try:
            with _locked(self.path, exclusive=True) as fd:
                if fd is None:
                    out.found, out.detail = 0, "the file disappeared: nothing to erase"
                    out.status = "nothing"
                    return
                kept, uuids, dropped = _filter_lines(_read_fd(fd), subject)
                if dropped:
                    _replace_atomically(self.path, kept, os.fstat(fd))
                out.found, out.kept = dropped, len(kept)
                out.uuids |= uuids
                out.status = "erased" if dropped else "nothing"
        except OSError as exc:
            out.status, out.error = "failed", _why(exc, f"rewriting {self.path}")


# ---- S3 sinks ---------------------------------------------------------------------------------


@dataclass
class _Pending:
    """An object to PUT again: what was read and what to write."""

    key: str
    etag: str | None
    body: bytes
    extra: dict[str, Any]
    change: ObjectChange


# What a PUT sets that a GET returns: the rewrite keeps them (Metadata: `signals.contract`).
_PUT_ATTRIBUTES = (
    "ContentType",
    "CacheControl",
    "ContentDisposition",
    "ContentEncoding",
    "ContentLanguage",
    "Metadata",
)


def _parquet_mask(table: Any, subject: Subject) -> Any:
    import pyarrow as pa
    import pyarrow.compute as pc

    names = table.column("name")
    if pa.types.is_dictionary(names.type):
        names = pc.cast(names, pa.string())
    tags = table.column("tags")
    if not pa.types.is_map(tags.type):  # not this project's layout: judge row by row
        rows = table.select(["name", "tags", "grain_datetime"]).to_pylist()
        return pa.array([subject.matches(_row_record(row)) for row in rows], pa.bool_())
    mask = pc.and_(
        pc.equal(names, subject.metric),
        pc.equal(pc.map_lookup(tags, pa.scalar(subject.tag), "first"), subject.value),
    )
    grains = table.column("grain_datetime")
    for day, keep in ((subject.first, pc.greater_equal), (subject.last, pc.less)):
        if day is None:
            continue
        if keep is pc.less:
            day += timedelta(days=1)
        bound = datetime(day.year, day.month, day.day, tzinfo=UTC)
        if getattr(grains.type, "tz", None) is None:
            bound = bound.replace(tzinfo=None)
        mask = pc.and_(mask, keep(grains, pa.scalar(bound, grains.type)))
    return pc.fill_null(mask, False)


def _row_record(row: dict[str, Any]) -> dict[str, Any]:
    tags = row.get("tags")
    if isinstance(tags, list):
        tags = dict(tags)
    grain = row.get("grain_datetime")
    if isinstance(grain, datetime):
        grain = (grain if grain.tzinfo else grain.replace(tzinfo=UTC)).isoformat()
    return {"name": row.get("name"), "tags": tags, "grain_datetime": grain}


def _filter_object(
    body: bytes, fmt: str, subject: Subject, where: str
) -> tuple[bytes | None, set[str], int, int]:
    """(the object without the subject's records or None when it holds none, their uuids,
    records removed, records kept)."""
    if fmt == "jsonl":
        kept, uuids, dropped = _filter_lines(body, subject)
        left = sum(1 for line in kept if line.strip())
        return (b"".join(kept) if dropped else None), uuids, dropped, left
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(pa.BufferReader(body))
    except pa.ArrowException as exc:
        raise SinkError(f"{where} is not a Parquet file: {exc}") from None
    missing = [c for c in ("uuid", "name", "tags", "grain_datetime") if c not in table.column_names]
    if missing:
        raise SinkError(f"{where} lacks the record column(s) {', '.join(missing)}")
    mask = _parquet_mask(table, subject)
    dropped = int(pc.sum(mask).as_py() or 0)
    if not dropped:
        return None, set(), 0, table.num_rows
    uuids = {str(u) for u in table.filter(mask).column("uuid").to_pylist()}
    kept = table.filter(pc.invert(mask))  # same schema, key-value metadata included
    out = io.BytesIO()
    pq.write_table(kept, out)
    return out.getvalue(), uuids, dropped, kept.num_rows


def _day_of(window: str) -> date | None:
    """The day a window key names (None: not a date)."""
    try:
        return date.fromisoformat(window[:10])
    except ValueError:
        return None


def _maybe_in_days(day: date | None, subject: Subject) -> bool:
    """An object whose key names this local day may hold windows of UTC days one apart."""
    if day is None:
        return True
    if subject.first is not None and day < subject.first - timedelta(days=1):
        return False
    return subject.last is None or day <= subject.last + timedelta(days=1)


class _S3Job:
    """The objects of one collector under one S3 sink."""

    def __init__(self, outcome: SinkOutcome, config: S3Config, clients: SinkClients) -> None:
        self.outcome = outcome
        self.config = config
        self.clients = clients
        self.s3: Any = None
        self.pending: list[_Pending] = []

    def close(self) -> None:
        if self.s3 is not None:
            self.s3.close()
            self.s3 = None

    def find(self, subject: Subject) -> None:
        from signals_dagster.sinks.s3 import S3Access

        out = self.outcome
        spec = out.target.spec
        try:
            self.s3 = S3Access(self.config, self.clients.s3)
            # Every object of the collector, in either layout (metric=…/date=… or latte's
            # partition folders), with the window key its name gives.
            keys = [
                key
                for key, window in self.s3.collector_objects(spec)
                if _maybe_in_days(_day_of(window), subject)
            ]
            for key in sorted(keys):
                pending = self._read(key, subject)
                out.objects_read += 1
                if pending is None:
                    continue
                out.found += pending.change.removed
                self.pending.append(pending)
                out.objects.append(pending.change)
        except (CollectorError, OSError) as exc:
            out.status, out.error = "failed", _why(exc, f"reading {out.target.where}")

    def _read(self, key: str, subject: Subject) -> _Pending | None:
        """Read one object and prepare its rewrite (None: it holds no record of the subject)."""
        from botocore.exceptions import BotoCoreError, ClientError

        uri = self.s3.uri(key)
        try:
            response = self.s3.client.get_object(Bucket=self.config.bucket, Key=key)
            body = bytes(response["Body"].read())
        except ClientError as exc:
            if str(exc.response.get("Error", {}).get("Code")) in ("NoSuchKey", "404"):
                return None  # replaced by nothing since the listing: nothing to erase
            raise self.s3.error(exc, f"reading {uri}") from None
        except BotoCoreError as exc:
            raise self.s3.error(exc, f"reading {uri}") from None
        new, uuids, removed, kept = _filter_object(body, self.config.format, subject, uri)
        if new is None:
            return None
        self.outcome.uuids |= uuids
        extra = {name: response[name] for name in _PUT_ATTRIBUTES if response.get(name)}
        etag = response.get("ETag")
        return _Pending(key, etag, new, extra, ObjectChange(uri, removed, kept))

    def rewrite(self, subject: Subject) -> None:
        out = self.outcome
        for pending in list(self.pending):
            try:
                self._put(pending, subject)
            except CollectorError as exc:
                pending.change.error = _why(exc, f"writing {pending.change.uri}")
        failed = [o for o in out.objects if o.error]
        out.found = sum(o.removed for o in out.objects)
        if failed:
            first = failed[0].error
            out.status = "failed"
            out.error = f"{len(failed)} of {len(out.objects)} object(s) not rewritten: {first}"
        else:
            out.status = "erased" if out.found else "nothing"

    def _put(self, pending: _Pending, subject: Subject) -> None:
        """PUT the prepared object if it is still the one read; else read it again and retry."""
        from botocore.exceptions import BotoCoreError, ClientError

        conditional = pending.etag is not None
        for _ in range(PUT_ATTEMPTS):
            condition = {"IfMatch": pending.etag} if conditional else {}
            try:
                self.s3.client.put_object(
                    Bucket=self.config.bucket,
                    Key=pending.key,
                    Body=pending.body,
                    **pending.extra,
                    **condition,
                )
                pending.change.done = True
                return
            except ClientError as exc:
                code = str(exc.response.get("Error", {}).get("Code"))
                if code in _NO_CONDITION and conditional:
                    conditional = False  # an S3 API without conditional writes: plain PUT
                    continue
                if code not in _PRECONDITION:
                    raise self.s3.error(exc, f"writing {pending.change.uri}") from None
            except BotoCoreError as exc:
                raise self.s3.error(exc, f"writing {pending.change.uri}") from None
            again = self._read(pending.key, subject)  # replaced meanwhile: judge the new one
            if again is None:
                pending.change.removed = 0
                pending.change.done = True
                return
            pending.etag, pending.body, pending.extra = again.etag, again.body, again.extra
            pending.change.removed, pending.change.kept = again.change.removed, again.change.kept
        raise SinkError(
            f"{pending.change.uri} kept changing while being rewritten ({PUT_ATTEMPTS} attempts)"
        )


# ---- Kafka sinks ------------------------------------------------------------------------------


def _cleanup_policy(admin: Any, config: KafkaConfig) -> tuple[str, bool]:
    """The topic's cleanup.policy and whether the topic sets it (else: Kafka's default)."""
    from confluent_kafka.admin import ConfigResource, ResourceType

    from signals_dagster.sinks.kafka import GRACE

    timeout = config.timeout.total_seconds()
    futures = admin.describe_configs(
        [ConfigResource(ResourceType.TOPIC, config.topic)], request_timeout=timeout
    )
    entries = next(iter(futures.values())).result(timeout=timeout + GRACE)
    entry = entries.get("cleanup.policy")
    value = getattr(entry, "value", None)
    return (str(value), True) if value else ("delete", False)


def _tombstones(
    out: SinkOutcome, config: KafkaConfig, uuids: list[str], clients: SinkClients
) -> None:
    """Send one tombstone per uuid and wait for every delivery (bounded by the sink timeout)."""
    from confluent_kafka import KafkaError

    from signals_dagster.sinks.kafka import GRACE, HEADER_COLLECTOR, make_producer

    timeout = config.timeout.total_seconds()
    producer = (clients.kafka or make_producer)(config)
    errors: list[KafkaError] = []

    def report(error: KafkaError | None, _message: object) -> None:
        if error is not None:
            errors.append(error)

    headers: list[tuple[str, str | bytes | None]] = [
        (HEADER_COLLECTOR, out.target.collector.encode())
    ]
    try:
        deadline = time.monotonic() + timeout + GRACE
        produced = 0
        for key in uuids:
            while True:
                try:
                    producer.produce(config.topic, None, key, on_delivery=report, headers=headers)
                    produced += 1
                    break
                except BufferError:  # the local queue is full: wait for room, bounded
                    if time.monotonic() > deadline:
                        break
                    producer.poll(0.05)
            producer.poll(0)
        unanswered = producer.flush(timeout + GRACE) if produced else 0
        out.sent = produced - len(errors) - unanswered
        if errors or unanswered or produced != len(uuids):
            first = (
                f"{errors[0].name()}: {errors[0].str()}" if errors else f"no answer in {timeout:g}s"
            )
            producer.purge(in_queue=True, in_flight=False)
            raise SinkError(
                f"{len(uuids) - out.sent} of {len(uuids)} tombstone(s) not confirmed by topic "
                f"{config.topic!r} ({len(errors)} failed, {unanswered} unanswered, "
                f"{len(uuids) - produced} not sent); first error: {first}"
            )
    finally:
        close = getattr(producer, "close", None)
        if close is not None:
            close()


def _kafka(
    out: SinkOutcome, sources: list[SinkOutcome], dry_run: bool, clients: SinkClients
) -> None:
    """Tombstone the uuids the sources found (out.error and status say how it went)."""
    from confluent_kafka import KafkaError

    from signals_dagster.sinks.kafka import BrokerErrors, lookup_topic, make_admin

    target = out.target
    assert isinstance(target.sink, KafkaSink)
    config = target.sink.config
    if not sources:
        out.status = "failed"
        out.error = (
            "Kafka cannot be erased without a readable sink: no collector of metric "
            f"{target.spec.metric.name!r} has a file or S3 sink to learn the records' uuids from"
        )
        return
    names = [
        s.target.sink_name
        if s.target.collector == target.collector
        else f"{s.target.sink_name} of {s.target.collector}"
        for s in sources
    ]
    out.detail = f"uuids from sink(s) {', '.join(names)}"
    for source in sources:
        out.uuids |= source.uuids
    out.found = len(out.uuids)
    unread = [s for s in sources if s.error is not None]
    if unread:
        unknown = ", ".join(f"{s.target.sink_name} of {s.target.collector}" for s in unread)
        out.warnings.append(
            f"warning: {target.label}: the uuids in sink(s) {unknown} are unknown (not "
            "readable): their records get no tombstone"
        )
    if not out.uuids:
        out.status = "failed" if unread else "nothing"
        if unread:
            out.error = "no uuid could be learnt: every source sink failed"
        return
    try:
        errors = BrokerErrors()
        admin = (clients.kafka_admin or make_admin)(config, errors)
        found = lookup_topic(config, admin, errors)
        error = None if found is None else found.error
        if found is None or (
            error is not None and error.code() == KafkaError.UNKNOWN_TOPIC_OR_PART
        ):
            out.status, out.detail = "nothing", f"topic {config.topic} does not exist"
            out.found = 0
            return
        if error is not None:
            raise SinkError(f"cannot use topic {config.topic!r}: {error.str()}")
        try:
            policy, explicit = _cleanup_policy(admin, config)
        except Exception as exc:  # a broker without DescribeConfigs: say so, send anyway
            out.warnings.append(
                f"warning: cannot read the cleanup.policy of topic {config.topic}: "
                f"{_why(exc, 'describe_configs')}; tombstones remove records only when it is "
                "compact"
            )
        else:
            if "compact" not in [p.strip() for p in policy.split(",")]:
                default = "" if explicit else " (not set on the topic: the default)"
                out.warnings.append(
                    f"warning: topic {config.topic} has cleanup.policy={policy}: tombstones do "
                    f"not remove the records{default}; they leave the topic only with its "
                    "retention"
                )
        if dry_run:
            out.status = "would-erase"
            return
        _tombstones(out, config, sorted(out.uuids), clients)
        out.status = "erased"
    except Exception as exc:
        out.status, out.error = "failed", _why(exc, f"tombstones to topic {config.topic}")
    if unread and out.status == "erased":
        out.status, out.error = "failed", "incomplete: a source sink could not be read"


# ---- the run ----------------------------------------------------------------------------------


def _why(exc: BaseException, action: str) -> str:
    if isinstance(exc, CollectorError):
        return redact(str(exc))
    if isinstance(exc, OSError):
        return redact(f"{action}: {exc.strerror or exc}")
    return redact(f"{action}: {type(exc).__name__}: {exc}")


def _guarded(out: SinkOutcome, action: str, step: Callable[[], None]) -> None:
    """Run one sink's step; an unexpected error fails that sink only."""
    try:
        step()
    except Exception as exc:
        out.status, out.error = "failed", _why(exc, action)


def run_forget(
    plan: ForgetPlan, dry_run: bool = False, clients: SinkClients | None = None
) -> ForgetReport:
    """Find the subject's records in every sink of the plan and (unless `dry_run`) erase them:
    read the file and S3 sinks, tombstone in Kafka, then rewrite the files and S3 objects.
    Failures are reported per sink (the report's `failed`), never raised."""
    clients = clients or SinkClients()
    subject = plan.subject
    outcomes = [SinkOutcome(t) for t in plan.targets]
    by_target = {id(o.target): o for o in outcomes}
    files: dict[str, _FileJob] = {}
    jobs: list[_FileJob | _S3Job] = []
    s3_jobs: list[_S3Job] = []
    try:
        for out in outcomes:  # 1. find
            target = out.target
            if target.kind == "none":
                out.status = "not-erasable"
            elif isinstance(target.sink, FileSink):
                real = os.path.realpath(target.sink.config.path)
                owner = files.get(real)
                if owner is not None:
                    out.status = "shared"
                    out.detail = f"the same file as {owner.outcome.target.label}"
                    continue
                files[real] = file_job = _FileJob(out, target.sink.config.path)
                _guarded(out, f"reading {target.where}", partial(file_job.find, subject))
                jobs.append(file_job)
            elif isinstance(target.sink, S3Sink):
                s3_job = _S3Job(out, target.sink.config, clients)
                s3_jobs.append(s3_job)
                _guarded(out, f"reading {target.where}", partial(s3_job.find, subject))
                jobs.append(s3_job)
        for out in outcomes:  # a shared file's records are those its owner found
            if out.status == "shared" and isinstance(out.target.sink, FileSink):
                real = os.path.realpath(out.target.sink.config.path)
                out.uuids = files[real].outcome.uuids
        held: dict[int, list[str]] = {}  # source outcome -> the Kafka sinks that failed
        for out in outcomes:  # 2. tombstones
            if out.target.kind != "kafka":
                continue
            sources = [by_target[id(t)] for t in plan.sources(out.target)]
            _guarded(out, "tombstones", partial(_kafka, out, sources, dry_run, clients))
            if out.status == "failed" and out.uuids and out.sent < len(out.uuids):
                name = f"{out.target.sink_name} of {out.target.collector}"
                for source in sources:
                    held.setdefault(id(source), []).append(name)
        for job in jobs:  # 3. rewrite
            out = job.outcome
            if out.error is not None or not out.found:
                continue
            if dry_run:
                out.status = "would-erase"
            elif id(out) in held:
                out.status = "kept"
                out.detail = ", ".join(held[id(out)])
            else:
                _guarded(out, f"rewriting {out.target.where}", partial(job.rewrite, subject))
    finally:
        for each in s3_jobs:
            each.close()
    return ForgetReport(plan, dry_run, outcomes)


# ---- the lines `signals forget` prints --------------------------------------------------------


def _file_line(out: SinkOutcome, dry: bool) -> str:
    found = f"{out.found} record(s) found"
    if out.status == "erased":
        return f"{found}, file rewritten without them ({out.kept} other line(s) kept)"
    if out.status == "would-erase":
        return f"{found}, file would be rewritten without them ({out.kept} other line(s) kept)"
    return f"{found}, nothing to change" + (f" ({out.detail})" if out.detail else "")


def _s3_line(out: SinkOutcome, dry: bool) -> str:
    where = f"in {len(out.objects)} of {out.objects_read} object(s) read"
    found = f"{out.found} record(s) found {where}"
    if out.status == "erased":
        return f"{found}, {len(out.objects)} object(s) rewritten without them"
    if out.status == "would-erase":
        return f"{found}, {len(out.objects)} object(s) would be rewritten without them"
    return f"{found}, nothing to change"


def _object_line(change: ObjectChange, dry: bool) -> str:
    if change.error:
        return f"  {change.uri}: {change.removed} record(s) to remove: not rewritten"
    verb = "would be rewritten" if dry else "rewritten"
    if not change.kept:
        left = f"no record left: {verb} as an empty object (kept, not deleted)"
    else:
        left = f"{change.kept} other record(s) kept, {verb}"
    return f"  {change.uri}: {change.removed} record(s) removed, {left}"


def _kafka_line(out: SinkOutcome, dry: bool) -> str:
    topic = out.target.sink.config.topic if isinstance(out.target.sink, KafkaSink) else "?"
    found = f"{out.found} record(s) found ({out.detail})"
    if out.status == "erased":
        return f"{found}, {out.sent} tombstone(s) sent to topic {topic}"
    if out.status == "would-erase":
        return f"{found}, {out.found} tombstone(s) would be sent to topic {topic}"
    if out.status == "nothing" and out.detail.startswith("topic "):
        return f"{out.detail}: nothing to erase"
    return f"{found}, no tombstone to send"


_NOT_ERASABLE = {
    "console": "not erasable (printed to stdout: signals keeps nothing)",
    "http": "not erasable (the receiver keeps what it was sent: ask its owner to erase it)",
}


def _outcome_line(out: SinkOutcome, dry: bool) -> str:
    target = out.target
    if out.status == "not-erasable":
        return _NOT_ERASABLE.get(target.sink_type, "not erasable")
    if out.status == "shared":
        return f"{out.detail}: handled there"
    if out.error is not None:
        found = f"{out.found} record(s) found, " if out.found else ""
        return f"{found}failed: {out.error}"
    if out.status == "kept":
        return (
            f"{out.found} record(s) found, NOT rewritten: their tombstones failed (Kafka sink(s) "
            f"{out.detail}) and a re-run learns their uuids here; run forget again once the "
            "broker answers"
        )
    if target.kind == "file":
        return _file_line(out, dry)
    if target.kind == "s3":
        return _s3_line(out, dry)
    return _kafka_line(out, dry)


def describe(report: ForgetReport) -> list[str]:
    """The lines `signals forget` prints: the request, then per collector and sink what was
    found and done (warnings after their sink), then a summary. No raw pii value in them."""
    plan, dry = report.plan, report.dry_run
    subject = plan.subject
    how = " (its pseudonym: the tag is pii: hash)" if subject.hashed else ""
    lines = [
        f"forget: metric {subject.metric}, tag {subject.tag}={subject.shown}{how}, "
        f"{subject.days}; {len(plan.collectors)} collector(s), {len(plan.targets)} sink(s)"
        + (" [dry run: nothing is changed]" if dry else "")
    ]
    lines.extend(f"warning: {note}" for note in plan.notes)
    for out in report.outcomes:
        lines.append(f"{out.target.label}: {_outcome_line(out, dry)}")
        if out.status in ("erased", "would-erase", "failed"):
            lines.extend(_object_line(change, dry) for change in out.objects)
        lines.extend(out.warnings)
    lines.append(_summary(report))
    return [redact(line) for line in lines]


def _summary(report: ForgetReport) -> str:
    outcomes = report.outcomes
    verb = "would be" if report.dry_run else "were"
    erased = [o for o in outcomes if o.target.readable and o.status in ("erased", "would-erase")]
    parts = [
        f"{report.removed} record(s) {verb} removed from {len(erased)} sink(s)",
        f"{report.tombstones} tombstone(s) {'would be ' if report.dry_run else ''}sent",
    ]
    not_erasable = sum(1 for o in outcomes if o.status == "not-erasable")
    if not_erasable:
        parts.append(f"{not_erasable} sink(s) not erasable")
    failed = sum(1 for o in outcomes if o.failed)
    if failed:
        parts.append(f"{failed} sink(s) not cleaned")
    head = "dry run, nothing changed" if report.dry_run else ("failed" if failed else "done")
    return f"{head}: " + "; ".join(parts)
