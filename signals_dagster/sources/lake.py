"""The lake source (`type: s3`, latte's `metric.s3`): DuckDB SQL over the Parquet, JSON or CSV
objects of one bucket and prefix in any S3 API store.

Pruning: the `partition` pattern (`date={{.Year}}-{{.Month}}-{{.Day}}`, `year={{.Year}}/...`) is
rendered for every day (hour, minute, month: its finest field) the window touches, on the clock of
`partition_timezone` (the collector's by default); only those prefixes are listed (boto3, one
ListObjectsV2 per prefix) and only the listed objects are read, each with one GET of its whole
body (pyarrow's S3FileSystem). Credentials: the AWS chain only, resolved once by boto3.

Sandbox: the objects are parsed in this process by pyarrow (ISO-8601 text typed as DuckDB's
read_json_auto / read_csv_auto would) and handed to the query's DuckDB connection as the Arrow
table `lake`. That connection has no external access (no file, no network, no extension), a
locked configuration and runs exactly one SELECT (sources/duckdb.py); latte's
`read_parquet('s3://bucket/prefix/{{.Partition}}')` is the table `lake` too. No heavy module is
imported here at load time: `signals validate` uses the text helpers.
"""

import contextlib
import json
import re
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, tzinfo
from typing import TYPE_CHECKING, Any

from signals_dagster.errors import CollectorError, SourceError
from signals_dagster.sources.base import Fetched, timeout_error
from signals_dagster.spec.fields import MONTH, grain_timedelta
from signals_dagster.spec.sqltext import bind_params, collector_kind, mentions_grain, strip_literals
from signals_dagster.window import Window

if TYPE_CHECKING:
    import pyarrow as pa

    from signals_dagster.spec.models import CollectorSpec
    from signals_dagster.spec.sources import LakeConfig

LAKE_TABLE = "lake"
# DuckDB's table functions latte's SQL reads `{{.Partition}}` with, and the format each reads.
READERS = {
    "read_parquet": "parquet",
    "parquet_scan": "parquet",
    "read_json": "json",
    "read_json_auto": "json",
    "read_ndjson": "json",
    "read_ndjson_auto": "json",
    "read_csv": "csv",
    "read_csv_auto": "csv",
}
# Table functions that reach files or the network: none is left in a lake query (the sandbox
# refuses them anyway; this names the problem when the collector is loaded).
_FILE_FUNCTION = re.compile(
    r"\b(read_\w+|\w+_scan|parquet_\w+|glob|sniff_csv|iceberg_\w+|delta_\w+)\s*\(", re.I
)
_CALL = re.compile(r"\b(\w+)\s*\(")
_FILE_TABLE = re.compile(r"\b(?:FROM|JOIN)\b", re.I)  # then a quoted file name: FROM 'x.parquet'
_ACTION = re.compile(r"\{\{-?\s*\.([A-Za-z]+)\s*-?\}\}")
UNITS = ("Minute", "Hour", "Day", "Month", "Year")  # finest first
MAX_PARTITIONS = 10_000  # prefixes listed for one query
THREADS = 16  # objects read at once
_COMPRESSION = {".gz": "gzip", ".zst": "zstd", ".bz2": "bz2", ".lz4": "lz4"}


# ---- the query text ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ReaderCall:
    """`read_parquet('s3://…', …)` in a query: where it is, the function, its URL literal."""

    start: int
    end: int
    function: str
    url: str | None


def reader_calls(sql: str) -> list[ReaderCall]:
    """Every call of a DuckDB reader (READERS) outside literals and comments."""
    blanked = strip_literals(sql)
    calls = []
    for match in _CALL.finditer(blanked):
        function = match[1].lower()
        if function not in READERS:
            continue
        depth, end = 0, len(sql)
        for index in range(match.end() - 1, len(blanked)):
            depth += {"(": 1, ")": -1}.get(blanked[index], 0)
            if depth == 0:
                end = index + 1
                break
        head = sql[match.end() : end].lstrip()
        literal = re.match(r"'((?:[^']|'')*)'", head)
        url = literal[1].replace("''", "'") if literal else None
        calls.append(ReaderCall(match.start(), end, function, url))
    return calls


def lake_url(bucket: str, prefix: str) -> str:
    """The URL latte's SQL reads the window's objects from: s3://bucket/prefix/{{.Partition}}."""
    return f"s3://{bucket}/{prefix + '/' if prefix else ''}{{{{.Partition}}}}"


def _is_lake(call: ReaderCall, bucket: str, prefix: str) -> bool:
    url = _ACTION.sub(lambda m: "{{." + m[1] + "}}", call.url or "")
    return re.sub(r"(?<!:)/+", "/", url) == lake_url(bucket, prefix)


def rewrite_sql(sql: str, bucket: str, prefix: str) -> str:
    """The query with latte's reader calls of its own partition replaced by the table `lake`."""
    for call in reversed(reader_calls(sql)):
        if _is_lake(call, bucket, prefix):
            sql = f"{sql[: call.start]}{LAKE_TABLE}{sql[call.end :]}"
    return sql


def sql_problems(sql: str, bucket: str, prefix: str, configured: str | None) -> list[str]:
    """Why a lake query is refused on its text: it reads anything but its own objects, mixes
    formats, or binds parameters that do not exist (empty: accepted)."""
    own = lake_url(bucket, prefix)
    problems = []
    formats = set()
    for call in reader_calls(sql):
        if _is_lake(call, bucket, prefix):
            formats.add(READERS[call.function])
        else:
            what = repr(call.url) if call.url is not None else "a computed path"
            problems.append(
                f"{call.function}({what}) reads outside the source: a lake query reads only its "
                f"own objects, as the table {LAKE_TABLE} or {call.function}('{own}')"
            )
    rewritten = rewrite_sql(sql, bucket, prefix)
    rest = strip_literals(rewritten)
    for match in _FILE_FUNCTION.finditer(rest):
        if match[1].lower() not in READERS:
            problems.append(
                f"{match[1]}() reads files: a lake query reads only the table {LAKE_TABLE}"
            )
    if any(re.match(r"\s*'", rewritten[m.end() :]) for m in _FILE_TABLE.finditer(rest)):
        problems.append(f"a quoted file name as a table: a lake query reads only {LAKE_TABLE}")
    if _ACTION.search(rewritten):
        problems.append(f"{{{{.Partition}}}} belongs only in the reader's URL '{own}'")
    if configured is not None:
        formats.add(configured)
    if len(formats) > 1:
        problems.append(f"the query reads {' and '.join(sorted(formats))}: one format per source")
    unknown = sorted(bind_params(sql) - {"window_start", "window_end"})
    if unknown:
        problems.append(f"unknown bind parameter :{unknown[0]} (only :window_start, :window_end)")
    return problems


def query_format(config: "LakeConfig") -> str:
    """parquet, json or csv: `format`, else the reader latte's SQL calls, else parquet."""
    if config.format is not None:
        return config.format
    calls = reader_calls(config.sql)
    found = [READERS[c.function] for c in calls if _is_lake(c, config.bucket, config.prefix)]
    return found[0] if found else "parquet"


# ---- the partition pattern --------------------------------------------------------------------


def pattern_unit(pattern: str | None) -> str | None:
    """The finest date field of a partition pattern (None: no pattern, or no date field)."""
    used = {m[1] for m in _ACTION.finditer(pattern or "")}
    return next((unit for unit in UNITS if unit in used), None)


def render(pattern: str, moment: datetime, padded: bool) -> str:
    """The pattern for one instant on its own clock: unpadded as latte (`month=3`), or padded
    as Hive and Spark write (`month=03`)."""
    parts = moment.timetuple()[:5]  # year, month, day, hour, minute

    def one(match: re.Match[str]) -> str:
        index = UNITS[::-1].index(match[1])
        text = str(parts[index])
        return text.zfill(4 if index == 0 else 2) if padded else text

    return _ACTION.sub(one, pattern)


def unit_starts(start: datetime, end: datetime, unit: str, tz: tzinfo) -> list[datetime]:
    """The start of every `unit` on `tz`'s clock that overlaps [start, end), in order."""
    local = start.astimezone(tz)
    if unit in ("Minute", "Hour"):
        step = timedelta(minutes=1 if unit == "Minute" else 60)
        first = local.replace(second=0, microsecond=0)
        first = first.replace(minute=0) if unit == "Hour" else first
        moment, out = first.astimezone(UTC), []
        while moment < end:
            out.append(moment.astimezone(tz))
            moment += step
        return out
    day = date(local.year, 1 if unit == "Year" else local.month, 1 if unit != "Day" else local.day)
    out = []
    while (moment := datetime(day.year, day.month, day.day, tzinfo=tz)) < end:
        out.append(moment)
        if unit == "Day":
            day += timedelta(days=1)
        elif unit == "Month":
            day = date(day.year + day.month // 12, day.month % 12 + 1, 1)
        else:
            day = date(day.year + 1, 1, 1)
    return out


def partitions(pattern: str, start: datetime, end: datetime, tz: tzinfo) -> list[tuple[str, str]]:
    """The (unpadded, padded) renderings of the pattern for every unit of [start, end)."""
    unit = pattern_unit(pattern)
    if unit is None:
        return [(pattern, pattern)]
    names: dict[tuple[str, str], None] = {}
    for moment in unit_starts(start, end, unit, tz):
        names[(render(pattern, moment, False), render(pattern, moment, True))] = None
        if len(names) > MAX_PARTITIONS:
            raise CollectorError(
                f"the window spans more than {MAX_PARTITIONS} partitions of {pattern!r}: shorten "
                "backfill.max_partitions_per_run or use a coarser partition pattern"
            )
    return list(names)


def _glob_regex(text: str) -> re.Pattern[str]:
    parts = re.split(r"(\*\*/|\*\*|\*|\?)", text)
    globs = {"**/": "(?:.*/)?", "**": ".*", "*": "[^/]*", "?": "[^/]"}
    return re.compile("".join(globs.get(p, re.escape(p)) for p in parts))


def listing(head: str, rendered: str) -> tuple[str, re.Pattern[str] | None]:
    """The prefix to list for one rendered partition and the regex its keys must match (None:
    every key under it): a pattern without `*`/`?` names a folder."""
    glob = re.search(r"[*?]", rendered)
    if glob is None:
        return f"{head}{rendered.strip('/')}/", None
    return head + rendered[: glob.start()], _glob_regex(head + rendered)


def _skipped(key: str, size: int) -> bool:
    """Folder markers, empty objects and the `_SUCCESS` / `.crc` files writers leave."""
    name = key.rsplit("/", 1)[-1]
    return key.endswith("/") or size == 0 or name.startswith(("_", "."))


# ---- the kind of a lake query -----------------------------------------------------------------


def lake_kind(config: "LakeConfig", grain: str, timezone: str) -> str:
    """windowed / as-of / snapshot from the bind parameters. A query with neither is windowed
    when its partitions are exactly the window's (the pattern's finest field divides the grain,
    on the collector's clock), and otherwise a snapshot: latte's daily partition read every
    minute measures "today so far", which is no historic value for an old window."""
    kind = collector_kind(bind_params(config.sql))
    if kind != "snapshot":
        return kind
    unit = pattern_unit(config.partition)
    clock = config.partition_timezone or timezone
    if unit is None or clock != timezone:
        return "snapshot"
    if grain == MONTH:
        return "windowed" if unit != "Year" else "snapshot"
    length = {"Minute": 60, "Hour": 3600, "Day": 86400}.get(unit)
    delta = grain_timedelta(grain)
    seconds = int(delta.total_seconds()) if delta is not None else 0
    exact = length is not None and seconds >= length and seconds % length == 0
    return "windowed" if exact else "snapshot"


# ---- the source -------------------------------------------------------------------------------


class LakeSource:
    """DuckDB SQL over the window's objects of one bucket and prefix."""

    def __init__(self, spec: "CollectorSpec") -> None:
        from signals_dagster.partitioning import zone
        from signals_dagster.spec.sources import LakeConfig

        config = spec.source.config
        assert isinstance(config, LakeConfig)
        self.config = config
        self.uri = config.uri
        self.sql = config.sql
        self.text = rewrite_sql(config.sql, config.bucket, config.prefix)
        self.format = query_format(config)
        self.kind = lake_kind(config, spec.metric.grain, spec.partitions.timezone)
        self.range_capable = mentions_grain(config.sql)
        self.timeout = config.timeout.total_seconds()
        self.tz = zone(config.partition_timezone or spec.partitions.timezone)

    def describe(self) -> dict[str, str]:
        """Where the objects are, the partition pattern and the query text."""
        return {"uri": self.uri, "partition": self.config.partition or "", "query": self.sql}

    @contextlib.contextmanager
    def session(self) -> Iterator["LakeSession"]:
        """A store client pair and one sandboxed DuckDB connection for every window of a run."""
        import duckdb

        from signals_dagster.sources import duckdb as duck

        store = _Store(self.config)
        config: dict[str, str | bool | int | float | list[str]] = {
            "autoload_known_extensions": False,
            "autoinstall_known_extensions": False,
        }
        conn = duckdb.connect(":memory:", config={**config, "python_enable_replacements": False})
        try:
            duck.sandbox(conn, [])
            inner = duck.DuckdbSource("duckdb:///:memory:", self.text, self.config.timeout)
            inner.uri = self.uri
            yield LakeSession(self, store, duck.DuckdbSession(inner, conn))
        finally:
            conn.close()


@dataclass(frozen=True)
class _Object:
    key: str
    size: int


class LakeSession:
    """Lists and reads one window's objects, then runs the query over them as `lake`."""

    def __init__(self, source: LakeSource, store: "_Store", query: Any) -> None:
        self.source, self.store, self.query = source, store, query
        # padding: auto — unknown until a partition whose two forms differ is found listed.
        self.padded = {"unpadded": False, "padded": True}.get(source.config.padding)

    def fetch(self, window: Window) -> Fetched:
        """Read the window's objects into the table `lake` and run the query over it."""
        deadline = time.monotonic() + self.source.timeout
        self.query._check()  # one SELECT, or nothing is listed or read at all
        objects = self.objects(window)
        table = self.read(objects, deadline) if objects else self.empty(window)
        conn = self.query.conn
        with contextlib.suppress(Exception):  # the previous window's table
            conn.unregister(LAKE_TABLE)
        conn.register(LAKE_TABLE, table)
        try:
            return self.query.fetch(window)
        except SourceError as exc:
            if "Permission Error" not in str(exc):
                raise
            raise SourceError(
                f"{exc} — refused by the lake sandbox: the query reads only the table "
                f"{LAKE_TABLE} (the window's objects of {self.source.uri}); no file, no other "
                "bucket, no network",
                transient=False,
            ) from None

    def objects(self, window: Window) -> list[_Object]:
        """The objects of the window's partitions (every object under the prefix without one):
        one listing per partition, THREADS at a time once the layout's padding is known."""
        config = self.source.config
        head = f"{config.prefix}/" if config.prefix else ""
        if not config.partition:
            return self.store.list(head, None)
        found: list[_Object] = []
        todo: list[str] = []
        for plain, padded in partitions(config.partition, window.start, window.end, self.source.tz):
            if plain == padded or self.padded is not None:
                todo.append(padded if self.padded else plain)
                continue
            for form in (plain, padded):  # the layout decides: latte's `month=3` or `month=03`
                listed = self.store.list(*listing(head, form))
                if listed:
                    self.padded = form == padded
                    found += listed
                    break
        with ThreadPoolExecutor(max(1, min(THREADS, len(todo)))) as pool:
            for listed in pool.map(lambda form: self.store.list(*listing(head, form)), todo):
                found += listed
        return found

    def empty(self, window: Window) -> "pa.Table":
        """The table of a window without objects: `columns`, else an error naming the pattern."""
        import pyarrow as pa

        columns = self.source.config.columns
        if columns is not None:
            return pa.schema(
                [(name, arrow_type(kind)) for name, kind in columns.items()]
            ).empty_table()
        raise SourceError(
            f"{self.source.uri}: no objects for {window.describe()} "
            f"({self.source.config.partition or 'the whole prefix'}): not landed yet, or the "
            "pattern does not match the layout (source.config.columns reads an empty window "
            "as a table without rows)",
            transient=True,
        )

    def read(self, objects: Sequence[_Object], deadline: float) -> "pa.Table":
        """Every object once (one GET each, THREADS at a time), parsed, as one table."""
        import pyarrow as pa

        total, limit = sum(o.size for o in objects), self.source.config.max_bytes
        if total > limit:
            raise SourceError(
                f"{self.source.uri}: the window's {len(objects)} objects hold {total} bytes, more "
                f"than source.config.max_bytes ({limit}): narrow the partition pattern, shorten "
                "backfill.max_partitions_per_run, or raise max_bytes"
            )
        pool = ThreadPoolExecutor(min(THREADS, len(objects)))
        try:
            futures = [pool.submit(self.parse, item) for item in objects]
            done, pending = wait(futures, max(0.0, deadline - time.monotonic()), FIRST_EXCEPTION)
        finally:  # a failure or the timeout does not wait for the GETs still running
            pool.shutdown(wait=False, cancel_futures=True)
        for future in done:
            future.result()  # the first failure, as raised
        if pending:
            where = f"{self.source.uri}: reading {len(objects)} objects"
            raise timeout_error(where, self.source.timeout)
        tables = with_hive_columns([f.result() for f in futures], [o.key for o in objects])
        try:
            return pa.concat_tables(tables, promote_options="permissive")
        except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
            raise SourceError(f"{self.source.uri}: the objects' columns disagree: {exc}") from None

    def parse(self, item: _Object) -> "pa.Table":
        """One object's rows, parsed by pyarrow (its C++ readers, off the GIL)."""
        import pyarrow as pa
        import pyarrow.csv as pcsv
        import pyarrow.json as pjson
        import pyarrow.parquet as pq

        data = self.store.get(item.key)
        kind = self.source.format
        try:
            if kind == "parquet":
                return pq.read_table(pa.BufferReader(data))  # typed by the file itself
            codec = next((c for end, c in _COMPRESSION.items() if item.key.endswith(end)), None)
            body = pa.BufferReader(data) if codec is None else pa.input_stream(data, codec)
            if kind == "csv":
                return _typed(pcsv.read_csv(body))
            text = body.read()
            try:
                return _typed(pjson.read_json(pa.BufferReader(text)))
            except pa.ArrowInvalid:  # not JSON lines: one JSON array of objects, as DuckDB reads
                rows = json.loads(text)
                if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
                    raise
                return _typed(pa.Table.from_pylist(rows))
        except (pa.ArrowException, ValueError) as exc:  # the object is not of that format
            detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise SourceError(f"{self.store.url(item.key)} is not {kind}: {detail}") from None


def _typed(table: "pa.Table") -> "pa.Table":
    """A table parsed from text with timestamps in microseconds (DuckDB's unit; one unit for
    every object) and string columns whose every value is an ISO-8601 date or timestamp typed
    as such, as DuckDB's read_json_auto / read_csv_auto detect them (with an offset:
    TIMESTAMPTZ)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    for index, column in enumerate(table.columns):
        kind, name = column.type, table.field(index).name
        if pa.types.is_timestamp(kind) and kind.unit != "us":
            typed = column.cast(pa.timestamp("us", kind.tz), safe=False)
            table = table.set_column(index, name, typed)
        elif pa.types.is_string(kind) and column.null_count < len(column):
            sample = pc.drop_null(column.slice(0, 64))  # a failed cast of a whole column is slow
            for target in (pa.date32(), pa.timestamp("us", "UTC"), pa.timestamp("us")):
                try:
                    sample.cast(target)
                    typed = column.cast(target)
                except pa.ArrowInvalid:
                    continue
                table = table.set_column(index, name, typed)
                break
    return table


def arrow_type(name: str) -> "pa.DataType":
    """The Arrow type of a `columns` type name."""
    import pyarrow as pa

    types = {
        "varchar": pa.string(),
        "bigint": pa.int64(),
        "double": pa.float64(),
        "boolean": pa.bool_(),
        "date": pa.date32(),
        "timestamp": pa.timestamp("us"),
        "timestamptz": pa.timestamp("us", "UTC"),
    }
    return types[name.lower()]


def with_hive_columns(tables: Sequence["pa.Table"], keys: Sequence[str]) -> list["pa.Table"]:
    """Each object's table with a column per `name=value` folder of its key, typed across all
    objects as DuckDB's hive partitioning does (all integers: BIGINT, all dates: DATE, else
    VARCHAR); a column the data has already is kept."""
    import pyarrow as pa

    folders = [dict(p.split("=", 1) for p in k.split("/")[:-1] if "=" in p) for k in keys]
    names = list(dict.fromkeys(name for found in folders for name in found))
    convert: dict[str, Callable[[str], object]] = {}
    for name in names:
        values = [found[name] for found in folders if name in found]
        if all(re.fullmatch(r"-?\d{1,18}", v) for v in values):
            convert[name] = int
        elif all(re.fullmatch(r"\d{4}-\d{1,2}-\d{1,2}", v) for v in values):
            convert[name] = lambda v: date(*map(int, v.split("-")))
        else:
            convert[name] = str
    out = []
    for table, found in zip(tables, folders, strict=True):
        for name, value in found.items():
            if name not in table.column_names:
                cell = pa.scalar(convert[name](value))
                table = table.append_column(name, pa.repeat(cell, table.num_rows))
        out.append(table)
    return out


# ---- the store --------------------------------------------------------------------------------

_PERMANENT_CODES = ("NoSuchBucket", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch")
_AWS_ERROR = re.compile(r"AWS Error (\w+)")
_PERMANENT_AWS = ("NO_SUCH_BUCKET", "ACCESS_DENIED", "INVALID_ACCESS_KEY_ID", "SIGNATURE_DOES_NOT")
NO_CREDENTIALS = (
    "no AWS credentials found (tried AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE and "
    "the shared config files, then the container/instance role)"
)


class _Store:
    """One bucket: boto3 lists exact prefixes, pyarrow's S3FileSystem GETs whole objects; both
    with the credentials of the AWS chain, resolved once by boto3."""

    def __init__(self, config: "LakeConfig") -> None:
        import boto3
        import pyarrow.fs as pafs
        from botocore.config import Config
        from botocore.exceptions import BotoCoreError

        from signals_dagster.confine import check_egress, url_host

        self.bucket = config.bucket
        session = boto3.session.Session()
        region = config.region or session.region_name or "us-east-1"
        seconds = config.timeout.total_seconds()
        style = {"s3": {"addressing_style": "path"}} if config.endpoint else {}
        retries = {"max_attempts": config.retries, "mode": "standard"}
        where = config.endpoint_url or "AWS S3"
        try:
            self.client = session.client(
                "s3",
                endpoint_url=config.endpoint_url,
                region_name=region,
                config=Config(retries=retries, read_timeout=seconds, **style),
            )
            credentials = session.get_credentials()
        except BotoCoreError as exc:  # a broken profile, partial credentials
            raise SourceError(f"s3 source: cannot make an S3 client for {where}: {exc}") from None
        self.endpoint = str(self.client.meta.endpoint_url)
        check_egress(
            f"s3 source: endpoint {self.endpoint}", *url_host(self.endpoint), error=SourceError
        )
        if credentials is None:
            raise SourceError(f"s3 source s3://{self.bucket}/ at {self.endpoint}: {NO_CREDENTIALS}")
        frozen = credentials.get_frozen_credentials()
        scheme, _, netloc = self.endpoint.partition("://")
        self.fs = pafs.S3FileSystem(
            access_key=frozen.access_key,
            secret_key=frozen.secret_key,
            session_token=frozen.token,
            region=region,
            endpoint_override=netloc.rstrip("/") if config.endpoint else None,
            scheme=scheme,
            connect_timeout=min(seconds, 10.0),
            request_timeout=seconds,
            retry_strategy=pafs.AwsStandardS3RetryStrategy(max_attempts=config.retries + 1),
        )

    def url(self, key: str = "") -> str:
        """s3://bucket/key."""
        return f"s3://{self.bucket}/{key}"

    def list(self, prefix: str, match: re.Pattern[str] | None) -> list[_Object]:
        """The data objects under one prefix (every page), those matching `match` when given."""
        from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

        found = []
        try:
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=prefix
            )
            for page in pages:
                for item in page.get("Contents", []):
                    key, size = str(item["Key"]), int(item["Size"])
                    if (match is None or match.fullmatch(key)) and not _skipped(key, size):
                        found.append(_Object(key, size))
        except NoCredentialsError:
            raise SourceError(f"listing {self.url(prefix)}: {NO_CREDENTIALS}") from None
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            detail = f"listing {self.url(prefix)} at {self.endpoint}: {code}: {exc}"
            if code == "NoSuchBucket":
                detail = f"bucket {self.bucket!r} does not exist at {self.endpoint}"
            raise SourceError(detail, transient=code not in _PERMANENT_CODES) from None
        except BotoCoreError as exc:
            raise SourceError(f"listing {self.url(prefix)}: {exc}", transient=True) from None
        return found

    def get(self, key: str) -> "pa.Buffer":
        """One object's whole body (pyarrow: a HEAD for its size, then one GET)."""
        try:
            with self.fs.open_input_file(f"{self.bucket}/{key}") as file:
                return file.read_buffer()
        except FileNotFoundError:  # deleted since it was listed: a new listing will tell
            raise SourceError(
                f"{self.url(key)} vanished after it was listed", transient=True
            ) from None
        except OSError as exc:
            code = _AWS_ERROR.search(str(exc))
            permanent = code is not None and code[1].startswith(_PERMANENT_AWS)
            raise SourceError(f"reading {self.url(key)}: {exc}", transient=not permanent) from None
