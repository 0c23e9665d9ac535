"""The lake source (`type: s3`, latte's `metric.s3`) on a real S3 API store (SeaweedFS `weed
mini`): hive-partitioned Parquet, JSON-lines and CSV data sets, pruning proven by counting the
requests that reach the store (a counting proxy in front of it), the sandbox, credentials from
the AWS chain only, `signals invoke` and a Dagster in-process materialisation."""

import csv
import gzip
import http.client
import io
import json
import os
import random
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit
from zoneinfo import ZoneInfo

import dagster as dg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from signals_dagster.catalog import load_catalog
from signals_dagster.collect import Collected, collect
from signals_dagster.errors import SourceError, SpecError
from signals_dagster.orchestration.factory import build_definitions
from signals_dagster.orchestration.partitions import window_for_key
from signals_dagster.records import to_dicts
from signals_dagster.sources.base import query_shape
from signals_dagster.sources.lake import (
    LakeSource,
    lake_kind,
    listing,
    partitions,
    render,
    rewrite_sql,
)
from signals_dagster.spec.loader import load_file
from signals_dagster.spec.models import CollectorSpec
from signals_dagster.spec.sources import LakeConfig
from signals_dagster_tests.servers.s3 import ACCESS_KEY, SECRET_KEY, S3Server

pytestmark = pytest.mark.usefixtures("aws_env")
ROOT = Path(__file__).resolve().parents[1]
NOW = datetime(2026, 3, 1, 12, tzinfo=UTC)
DAYS = [datetime(2026, 1, 1, tzinfo=UTC) + timedelta(days=d) for d in range(31)]
ACCOUNTS = ("acme", "apex", "bolt")
PER_DAY, ROWS = 3, 40  # objects per day, rows per object
BERLIN = ZoneInfo("Europe/Berlin")

WINDOWED = """
SELECT account, SUM(amount) AS value FROM lake
WHERE ts >= :window_start AND ts < :window_end
GROUP BY account
"""
RANGED = """
SELECT date_trunc('day', ts) AS grain_datetime, account, SUM(amount) AS value FROM lake
WHERE ts >= :window_start AND ts < :window_end
GROUP BY ALL
"""


# ---- the store, counted -------------------------------------------------------------------------


class CountingProxy:
    """Forwards every HTTP request to the store unchanged (signatures stay valid: the Host header
    is passed on) and records it: what the source asked the store for, not what it meant to."""

    def __init__(self, upstream: str) -> None:
        host, port = urlsplit(upstream).hostname, urlsplit(upstream).port
        self.requests: list[tuple[str, str, str]] = []  # method, unquoted path, query
        lock, requests = threading.Lock(), self.requests

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                path, _, query = self.path.partition("?")
                with lock:
                    requests.append((self.command, unquote(path), query))
                conn = http.client.HTTPConnection(str(host), port, timeout=60)
                try:
                    conn.request(self.command, self.path, body, dict(self.headers.items()))
                    answer = conn.getresponse()
                    data = answer.read()
                finally:
                    conn.close()
                self.send_response_only(answer.status, answer.reason)
                for key, value in answer.getheaders():
                    if key.lower() not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(key, value)
                size = answer.getheader("Content-Length") if self.command == "HEAD" else None
                self.send_header("Content-Length", size or str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            do_GET = do_HEAD = do_PUT = do_POST = do_DELETE = forward

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def seen(self, bucket: str) -> "Seen":
        """What reached the store since the last call, for one bucket (and the log cleared)."""
        found = Seen()
        for method, path, query in self.requests:
            name, _, key = path.lstrip("/").partition("/")
            if name != bucket:
                found.elsewhere.append(path)
            elif method == "GET" and not key and "list-type=2" in query:
                found.lists.append(parse_qs(query).get("prefix", [""])[0])
            elif method == "GET":
                found.gets[key] += 1
            elif method == "HEAD":
                found.heads[key] += 1
            else:
                found.elsewhere.append(f"{method} {path}")
        self.requests.clear()
        return found


@dataclass
class Seen:
    gets: Counter[str] = field(default_factory=Counter)
    heads: Counter[str] = field(default_factory=Counter)
    lists: list[str] = field(default_factory=list)
    elsewhere: list[str] = field(default_factory=list)


@pytest.fixture(scope="module")
def proxy(s3_server: S3Server) -> Iterator[CountingProxy]:
    counting = CountingProxy(s3_server.endpoint)
    yield counting
    counting.server.shutdown()


# ---- the data sets ------------------------------------------------------------------------------

Row = tuple[datetime, str, int, int]  # ts, account, amount, user_id


@dataclass
class Lake:
    """One bucket with the three data sets, and what each day of each holds."""

    bucket: str
    rows: dict[tuple[str, int], list[Row]]  # (data set, day index) -> rows
    keys: dict[tuple[str, int], list[str]]  # (data set, day index) -> data object keys


def _rows(day: datetime, part: int) -> list[Row]:
    rng = random.Random(day.toordinal() * 10 + part)
    return [
        (
            day + timedelta(seconds=rng.randrange(86_400), microseconds=rng.randrange(10**6)),
            rng.choice(ACCOUNTS),
            rng.randint(1, 100),
            rng.randint(1, 25),
        )
        for _ in range(ROWS)
    ]


def _parquet(rows: list[Row]) -> bytes:
    table = pa.table(
        {
            "ts": pa.array([r[0] for r in rows], pa.timestamp("us", "UTC")),
            "account": [r[1] for r in rows],
            "amount": pa.array([r[2] for r in rows], pa.int64()),
            "user_id": pa.array([r[3] for r in rows], pa.int64()),
        }
    )
    out = io.BytesIO()
    pq.write_table(table, out)
    return out.getvalue()


def _jsonl(rows: list[Row]) -> bytes:
    lines = [
        json.dumps(
            {
                "ts": r[0].isoformat(timespec="microseconds").replace("+00:00", "Z"),
                "account": r[1],
                "amount": r[2],
                "user_id": r[3],
            }
        )
        for r in rows
    ]
    return ("\n".join(lines) + "\n").encode()


def _csv(rows: list[Row]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["ts", "account", "amount", "user_id"])
    writer.writerows((r[0].isoformat(), r[1], r[2], r[3]) for r in rows)
    return out.getvalue().encode()


@pytest.fixture(scope="module")
def lake(s3_server: S3Server) -> Lake:
    """31 days x 3 objects in each data set, hive-partitioned by day:
    - pq:  date=2026-1-5/part-N.parquet (latte's unpadded layout) and a `_SUCCESS` marker;
    - js:  year=2026/month=1/day=5/part-N.json (JSON lines);
    - csv: date=2026-01-05/part-N.csv (the padded layout of Hive and Spark), part-1 gzipped;
    - pqx: a sibling prefix with the same layout, never to be read."""
    bucket = s3_server.new_bucket()
    client = s3_server.client()
    rows: dict[tuple[str, int], list[Row]] = {}
    keys: dict[tuple[str, int], list[str]] = {}
    for index, day in enumerate(DAYS):
        plain, padded = f"{day.year}-{day.month}-{day.day}", day.strftime("%Y-%m-%d")
        for part in range(PER_DAY):
            data = _rows(day, part)
            objects = {
                "pq": (f"pq/date={plain}/part-{part}.parquet", _parquet(data)),
                "js": (
                    f"js/year={day.year}/month={day.month}/day={day.day}/part-{part}.json",
                    _jsonl(data),
                ),
                "csv": (
                    f"csv/date={padded}/part-{part}.csv" + (".gz" if part == 1 else ""),
                    gzip.compress(_csv(data)) if part == 1 else _csv(data),
                ),
                "pqx": (f"pqx/date={plain}/part-{part}.parquet", _parquet(data)),
            }
            for name, (key, body) in objects.items():
                client.put_object(Bucket=bucket, Key=key, Body=body)
                rows.setdefault((name, index), []).extend(data)
                keys.setdefault((name, index), []).append(key)
        client.put_object(Bucket=bucket, Key=f"pq/date={plain}/_SUCCESS", Body=b"")
    return Lake(bucket, rows, keys)


def sums(rows: list[Row]) -> dict[str, float]:
    out: Counter[str] = Counter()
    for _, account, amount, _ in rows:
        out[account] += amount
    return {k: float(v) for k, v in out.items()}


def distinct_users(rows: list[Row]) -> dict[str, float]:
    users: dict[str, set[int]] = {}
    for _, account, _, user in rows:
        users.setdefault(account, set()).add(user)
    return {k: float(len(v)) for k, v in users.items()}


def by_account(collected: Collected) -> dict[str, float]:
    return {r["tags"]["account"]: r["value"] for r in to_dicts(collected.records)}


# ---- collectors ---------------------------------------------------------------------------------


def lake_yaml(
    endpoint: str,
    bucket: str,
    *,
    prefix: str = "pq",
    partition: str | None = "date={{.Year}}-{{.Month}}-{{.Day}}",
    sql: str = WINDOWED,
    name: str = "lake.revenue",
    timezone: str = "UTC",
    config: str = "",
    sinks: str = "  console: {type: console}\n",
) -> str:
    """A daily collector over the lake (`config`: more lines of source.config)."""
    lines = [
        f"name: {name}",
        "metric:",
        f"  name: {name}",
        "  type: GAUGE",
        "  grain: 24h",
        "partitions:",
        "  start: '2026-01-01'",
        f"  timezone: {timezone}",
        "source:",
        "  type: s3",
        "  config:",
        f"    bucket: {bucket}",
        f"    prefix: {prefix}",
        *([f"    partition: '{partition}'"] if partition else []),
        f"    endpoint: '{endpoint}'",
        "    region: us-east-1",
        "    retries: 1",
        "    timeout: 30s",
        config.rstrip("\n"),
        "    sql: |",
        *(f"      {line}" for line in sql.strip().splitlines()),
        "sinks:",
        sinks.rstrip("\n"),
    ]
    return "\n".join(line for line in lines if line) + "\n"


@pytest.fixture
def lake_spec(
    write_collector: Callable[..., Path], proxy: CountingProxy, lake: Lake
) -> Callable[..., CollectorSpec]:
    """Load a lake collector reading through the counting proxy."""
    counter = iter(range(1000))

    def make(**kwargs: object) -> CollectorSpec:
        text = lake_yaml(proxy.endpoint, lake.bucket, **kwargs)  # type: ignore[arg-type]
        return load_file(write_collector(text, name=f"lake{next(counter)}.yaml"))

    return make


def run(spec: CollectorSpec, *keys: str) -> list[Collected]:
    return collect(spec, [window_for_key(spec, key) for key in keys], now=NOW)


def day_key(index: int) -> str:
    return DAYS[index].strftime("%Y-%m-%d")


# ---- pruning: only the window's objects are listed and read -------------------------------------


def test_windowed_parquet_day_reads_only_that_days_objects(lake_spec, lake, proxy):
    spec = lake_spec()
    proxy.seen(lake.bucket)
    (collected,) = run(spec, "2026-01-05")
    seen = proxy.seen(lake.bucket)
    assert by_account(collected) == pytest.approx(sums(lake.rows[("pq", 4)]))
    # one listing, of that day's folder only (the trailing '/' keeps day 50 out of day 5)...
    assert seen.lists == ["pq/date=2026-1-5/"]
    # ...and one GET of each of its data objects: no other day, no _SUCCESS marker, no pqx
    assert seen.gets == Counter(lake.keys[("pq", 4)])
    assert set(seen.heads) == set(lake.keys[("pq", 4)])  # pyarrow asks each object's size
    assert seen.elsewhere == []
    assert collected.source_rows == len(ACCOUNTS)


def test_range_query_backfills_30_days_reading_each_days_objects_once(lake_spec, lake, proxy):
    spec = lake_spec(sql=RANGED)
    assert query_shape(spec).range_capable
    keys = [day_key(i) for i in range(30)]
    proxy.seen(lake.bucket)
    results = run(spec, *keys)  # one run: one query over [Jan 1, Jan 31)
    seen = proxy.seen(lake.bucket)
    assert [c.window.key for c in results] == keys
    for index, collected in enumerate(results):
        assert by_account(collected) == pytest.approx(sums(lake.rows[("pq", index)])), keys[index]
        grains = {r["grain_datetime"] for r in to_dicts(collected.records)}
        assert grains == {DAYS[index].strftime("%Y-%m-%dT%H:%M:%SZ")}
    expected = [k for i in range(30) for k in lake.keys[("pq", i)]]
    assert seen.gets == Counter(expected)  # 90 objects, each read exactly once
    assert sorted(seen.lists) == sorted(f"pq/date={d.year}-{d.month}-{d.day}/" for d in DAYS[:30])
    assert "pq/date=2026-1-31/part-0.parquet" not in seen.gets


def test_latte_json_query_reads_the_partition_with_read_json_auto(lake_spec, lake, proxy):
    sql = f"""
        SELECT account, COUNT(DISTINCT user_id) AS value
        FROM read_json_auto('s3://{lake.bucket}/js/{{{{.Partition}}}}')
        GROUP BY account
    """
    spec = lake_spec(
        prefix="js", partition="year={{.Year}}/month={{.Month}}/day={{.Day}}/*.json", sql=sql
    )
    assert query_shape(spec).kind == "windowed"  # the window's partitions alone bound its rows
    proxy.seen(lake.bucket)
    (collected,) = run(spec, "2026-01-12")
    seen = proxy.seen(lake.bucket)
    assert by_account(collected) == pytest.approx(distinct_users(lake.rows[("js", 11)]))
    assert seen.lists == ["js/year=2026/month=1/day=12/"]
    assert seen.gets == Counter(lake.keys[("js", 11)])


def test_json_timestamps_bind_and_hive_folders_are_typed_columns(lake_spec, lake):
    sql = """
        SELECT printf('%d-%d-%d', year, month, day) AS folder, typeof(ts) AS ts_type,
               SUM(amount) AS value
        FROM lake WHERE ts >= :window_start AND ts < :window_end
        GROUP BY ALL
    """
    spec = lake_spec(
        prefix="js",
        partition="year={{.Year}}/month={{.Month}}/day={{.Day}}",
        sql=sql,
        config="    format: jsonl\n",
    )
    (collected,) = run(spec, "2026-01-20")
    (record,) = to_dicts(collected.records)
    assert record["tags"] == {"folder": "2026-1-20", "ts_type": "TIMESTAMP WITH TIME ZONE"}
    assert record["value"] == sum(r[2] for r in lake.rows[("js", 19)])


def test_csv_padded_layout_found_by_the_layout_with_latte_pattern(lake_spec, lake, proxy):
    spec = lake_spec(prefix="csv", config="    format: csv\n")
    proxy.seen(lake.bucket)
    first, second = run(spec, "2026-01-05", "2026-01-06")  # one session, one query per window
    seen = proxy.seen(lake.bucket)
    assert by_account(first) == pytest.approx(sums(lake.rows[("csv", 4)]))
    assert by_account(second) == pytest.approx(sums(lake.rows[("csv", 5)]))
    # latte's unpadded form first; once the layout showed padded folders, only those
    assert seen.lists == ["csv/date=2026-1-5/", "csv/date=2026-01-05/", "csv/date=2026-01-06/"]
    assert seen.gets == Counter(lake.keys[("csv", 4)] + lake.keys[("csv", 5)])  # .csv.gz too
    explicit = lake_spec(prefix="csv", config="    format: csv\n    padding: padded\n")
    run(explicit, "2026-01-07")
    assert proxy.seen(lake.bucket).lists == ["csv/date=2026-01-07/"]


def test_berlin_day_lists_both_utc_days_and_filters_rows(lake_spec, lake, proxy):
    spec = lake_spec(timezone="Europe/Berlin", config="    partition_timezone: UTC\n")
    proxy.seen(lake.bucket)
    (collected,) = run(spec, "2026-01-10")
    seen = proxy.seen(lake.bucket)
    window = window_for_key(spec, "2026-01-10")
    rows = [r for i in (8, 9) for r in lake.rows[("pq", i)] if window.start <= r[0] < window.end]
    assert by_account(collected) == pytest.approx(sums(rows))
    assert sorted(seen.lists) == ["pq/date=2026-1-10/", "pq/date=2026-1-9/"]


def test_window_without_objects_fails_or_reads_declared_columns(lake_spec):
    empty = lake_spec(sql="SELECT COUNT(*) AS value FROM lake")
    with pytest.raises(SourceError, match="no objects for partition 2026-02-10") as info:
        run(empty, "2026-02-10")
    assert info.value.transient  # not landed yet: a retry may find it
    declared = lake_spec(
        sql="SELECT COUNT(*) AS value FROM lake",
        config="    columns: {ts: timestamptz, account: varchar, amount: bigint}\n",
    )
    (collected,) = run(declared, "2026-02-10")
    assert [r["value"] for r in to_dicts(collected.records)] == [0]


def test_max_bytes_refuses_before_reading(lake_spec, lake, proxy):
    spec = lake_spec(config="    max_bytes: 1KiB\n")
    proxy.seen(lake.bucket)
    with pytest.raises(SourceError, match=r"more than source.config.max_bytes \(1024\)"):
        run(spec, "2026-01-05")
    assert proxy.seen(lake.bucket).gets == Counter()


def test_json_arrays_and_compressed_json_lines(lake_spec, lake, s3_server):
    client = s3_server.client()
    rows = [{"ts": "2026-01-05T10:00:00Z", "account": "acme", "amount": 2}]
    lines = b'{"ts": "2026-01-05T11:00:00.5+01:00", "account": "acme", "amount": 3}\n'
    client.put_object(Bucket=lake.bucket, Key="arr/date=2026-1-5/a.json", Body=json.dumps(rows))
    client.put_object(
        Bucket=lake.bucket, Key="arr/date=2026-1-5/b.json.gz", Body=gzip.compress(lines)
    )
    spec = lake_spec(prefix="arr", config="    format: json\n")  # ts typed: it binds
    (collected,) = run(spec, "2026-01-05")
    assert by_account(collected) == {"acme": 5.0}


def test_not_parquet_names_the_object(lake_spec, lake):
    spec = lake_spec(prefix="csv", config="    format: parquet\n    padding: padded\n")
    with pytest.raises(
        SourceError, match=r"csv/date=2026-01-05/part-\d\.csv(\.gz)? is not parquet"
    ):
        run(spec, "2026-01-05")


# ---- the sandbox --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sql", "message"),
    [
        ("SELECT COUNT(*) AS value FROM read_parquet('/etc/passwd')", "reads outside the source"),
        (
            "SELECT COUNT(*) AS value FROM read_parquet('s3://another-bucket/pq/{{.Partition}}')",
            "reads outside the source",
        ),
        ("SELECT COUNT(*) AS value FROM read_parquet('s3://BUCKET/pqx/x.parquet')", "outside"),
        ("SELECT COUNT(*) AS value FROM '/etc/passwd'", "a quoted file name as a table"),
        (
            "SELECT COUNT(*) AS value FROM lake, read_text('/etc/passwd')",
            r"read_text\(\) reads files",
        ),
        ("SELECT COUNT(*) AS value FROM lake WHERE day = :day", "unknown bind parameter :day"),
    ],
)
def test_load_refuses_queries_reading_anything_else(lake_spec, lake, sql, message):
    with pytest.raises(SpecError, match=message) as info:
        lake_spec(sql=sql.replace("BUCKET", lake.bucket))
    assert "source.config.sql" in str(info.value)


def unchecked(spec: CollectorSpec, sql: str) -> CollectorSpec:
    """The spec with `sql` in place, past the load-time checks (the sandbox alone must hold)."""
    config = spec.source.config.model_copy(update={"sql": sql})
    return spec.model_copy(update={"source": spec.source.model_copy(update={"config": config})})


@pytest.mark.parametrize(
    ("sql", "message"),
    [
        ("SELECT COUNT(*) AS value FROM read_parquet('/etc/passwd')", "lake sandbox"),
        ("SELECT COUNT(*) AS value FROM read_csv('/etc/passwd')", "lake sandbox"),
        ("SELECT COUNT(*) AS value FROM '/etc/passwd'", "Table with name /etc/passwd does not"),
        ("SELECT COUNT(*) AS value FROM glob('/*')", "lake sandbox"),
        ("SELECT COUNT(*) AS value FROM read_parquet('s3://OTHER/x.parquet')", "lake sandbox"),
        ("SELECT COUNT(*) AS value FROM read_json_auto('https://example.com/x')", "lake sandbox"),
        ("COPY (SELECT * FROM lake) TO 'TMP/out.csv'", "refused a COPY statement"),
        ("ATTACH 'TMP/other.duckdb' AS other", "refused a ATTACH statement"),
        ("INSTALL httpfs", "refused a"),
        ("SET enable_external_access = true", "refused a"),
        ("SELECT 1 AS value; SELECT 2 AS value", "refused 2 statements"),
    ],
)
def test_sandbox_refuses_files_other_buckets_and_writes(
    lake_spec, lake, proxy, s3_server, tmp_path, sql, message
):
    other = s3_server.new_bucket()
    s3_server.client().put_object(Bucket=other, Key="x.parquet", Body=_parquet(_rows(DAYS[0], 0)))
    text = sql.replace("OTHER", other).replace("TMP", str(tmp_path))
    spec = unchecked(lake_spec(), text)
    proxy.seen(lake.bucket)
    with pytest.raises(SourceError, match=message) as info:
        run(spec, "2026-01-05")
    assert not info.value.transient
    seen = proxy.seen(lake.bucket)
    assert seen.elsewhere == []  # nothing asked of another bucket
    if message.startswith("refused"):  # refused before the store is asked anything
        assert seen == Seen()
    assert list(tmp_path.iterdir()) == [p for p in tmp_path.iterdir() if p.suffix == ".yaml"]


def test_sandboxed_query_cannot_switch_the_sandbox_off(lake_spec):
    sql = "SELECT current_setting('enable_external_access') AS ext, COUNT(*) AS value FROM lake"
    (collected,) = run(lake_spec(sql=sql), "2026-01-05")
    assert [r["tags"]["ext"] for r in to_dicts(collected.records)] == ["false"]


# ---- credentials: the AWS chain only ------------------------------------------------------------


def test_credentials_cannot_be_written_in_the_file(lake_spec):
    with pytest.raises(SpecError, match="aws_access_key_id"):
        lake_spec(config="    aws_access_key_id: ak\n")


def test_no_credentials_in_the_chain_is_a_clear_permanent_error(lake_spec, monkeypatch):
    spec = lake_spec()
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    with pytest.raises(SourceError, match="no AWS credentials found") as info:
        run(spec, "2026-01-05")
    assert not info.value.transient


def test_wrong_secret_in_the_chain_is_refused_by_the_store(lake_spec, monkeypatch):
    spec = lake_spec()
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret")
    with pytest.raises(SourceError, match="SignatureDoesNotMatch") as info:
        run(spec, "2026-01-05")
    assert not info.value.transient
    assert "not-the-secret" not in str(info.value)


def test_a_shared_credentials_profile_is_part_of_the_chain(lake_spec, lake, monkeypatch, tmp_path):
    spec = lake_spec()
    profile = tmp_path / "aws-credentials"
    profile.write_text(
        f"[lake]\naws_access_key_id = {ACCESS_KEY}\naws_secret_access_key = {SECRET_KEY}\n"
    )
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(profile))
    monkeypatch.setenv("AWS_PROFILE", "lake")
    (collected,) = run(spec, "2026-01-05")
    assert by_account(collected) == pytest.approx(sums(lake.rows[("pq", 4)]))


def test_missing_bucket_is_named(lake_spec, write_collector, proxy):
    text = lake_yaml(proxy.endpoint, "absent-lake")
    spec = load_file(write_collector(text, name="absent.yaml"))
    with pytest.raises(SourceError, match="bucket 'absent-lake' does not exist") as info:
        run(spec, "2026-01-05")
    assert not info.value.transient


def test_egress_allow_refuses_the_endpoint(lake_spec, tmp_path, monkeypatch, proxy, lake):
    spec = lake_spec()
    proxy.seen(lake.bucket)
    settings = tmp_path / "signals.yaml"
    settings.write_text("egress:\n  allow: ['s3.example.com']\n")
    monkeypatch.setenv("SIGNALS_SETTINGS", str(settings))
    with pytest.raises(SpecError, match=r"source\.config\.endpoint: host 127\.0\.0\.1:"):
        lake_spec()
    with pytest.raises(SourceError, match=r"endpoint .* is not allowed by egress\.allow"):
        run(spec, "2026-01-05")
    assert proxy.seen(lake.bucket) == Seen()


# ---- signals invoke and Dagster -----------------------------------------------------------------


def test_signals_invoke_prints_the_days_records(write_collector, proxy, lake):
    path = write_collector(lake_yaml(proxy.endpoint, lake.bucket), name="invoke.yaml")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "signals_dagster.cli",
            "invoke",
            str(path),
            "--partition",
            "2026-01-07",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env=dict(os.environ),
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]
    got = {r["tags"]["account"]: r["value"] for r in records}
    assert got == pytest.approx(sums(lake.rows[("pq", 6)]))
    assert {r["grain_datetime"] for r in records} == {"2026-01-07T00:00:00Z"}


def test_dagster_materialises_a_day_and_a_30_day_range(tmp_path, proxy, lake):
    folder = tmp_path / "collectors"
    folder.mkdir()
    audit = tmp_path / "audit.jsonl"
    sinks = f"  audit:\n    type: file\n    config:\n      path: '{audit}'\n"
    text = lake_yaml(proxy.endpoint, lake.bucket, sql=RANGED, name="lake.daily", sinks=sinks)
    (folder / "lake.yaml").write_text(text)
    defs = build_definitions(load_catalog(str(folder)), str(folder))
    assets = [a for a in defs.assets or [] if isinstance(a, dg.AssetsDefinition)]
    instance = dg.DagsterInstance.ephemeral()
    proxy.seen(lake.bucket)
    one = dg.materialize(
        assets, resources=defs.resources, instance=instance, partition_key="2026-01-03"
    )
    assert one.success
    assert proxy.seen(lake.bucket).gets == Counter(lake.keys[("pq", 2)])
    tags = {
        "dagster/asset_partition_range_start": day_key(0),
        "dagster/asset_partition_range_end": day_key(29),
    }
    ranged = dg.materialize(assets, resources=defs.resources, instance=instance, tags=tags)
    assert ranged.success
    assert proxy.seen(lake.bucket).gets == Counter(
        k for i in range(30) for k in lake.keys[("pq", i)]
    )
    lines = [json.loads(line) for line in audit.read_text().splitlines()]
    per_day: dict[str, dict[str, float]] = {}
    for record in lines:
        per_day.setdefault(record["grain_datetime"][:10], {})[record["tags"]["account"]] = record[
            "value"
        ]
    assert per_day == {day_key(i): pytest.approx(sums(lake.rows[("pq", i)])) for i in range(30)}
    (asset,) = assets
    event = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=asset.key, asset_partitions=["2026-01-15"]), limit=1
    ).records[0]
    metadata = event.asset_materialization.metadata  # type: ignore[union-attr]
    assert metadata["record_count"].value == len(ACCOUNTS)


# ---- the pattern and the query text, without a store --------------------------------------------


def test_partitions_of_windows_on_their_clock():
    day = datetime(2026, 1, 5, tzinfo=UTC)
    assert partitions("date={{.Year}}-{{.Month}}-{{.Day}}", day, day + timedelta(1), UTC) == [
        ("date=2026-1-5", "date=2026-01-05")
    ]
    # a Berlin day on a UTC-partitioned lake: both UTC days it touches
    start = datetime(2026, 1, 5, tzinfo=BERLIN)
    names = partitions("d={{.Day}}", start, start + timedelta(1), UTC)
    assert names == [("d=4", "d=04"), ("d=5", "d=05")]
    # hourly folders over Berlin's 23-hour spring-forward day: 23 hours, on Berlin's clock
    start, end = datetime(2026, 3, 29, tzinfo=BERLIN), datetime(2026, 3, 30, tzinfo=BERLIN)
    hours = partitions("h={{.Hour}}", start, end, BERLIN)
    assert len(hours) == 23
    assert ("h=2", "h=02") not in hours
    # ...and the 25-hour fall-back day: 02:00 twice is one folder
    start, end = datetime(2026, 10, 25, tzinfo=BERLIN), datetime(2026, 10, 26, tzinfo=BERLIN)
    assert len(partitions("h={{.Hour}}", start, end, BERLIN)) == 24
    # months, and a pattern without date fields (one partition)
    start, end = datetime(2025, 12, 20, tzinfo=UTC), datetime(2026, 2, 2, tzinfo=UTC)
    assert [p for p, _ in partitions("m={{.Month}}", start, end, UTC)] == ["m=12", "m=1", "m=2"]
    assert partitions("all", start, end, UTC) == [("all", "all")]


def test_render_padded_and_listing_prefixes():
    moment = datetime(2026, 3, 4, 5, 6, tzinfo=UTC)
    pattern = "y={{.Year}}/m={{.Month}}/d={{.Day}}/h={{.Hour}}/i={{.Minute}}"
    assert render(pattern, moment, False) == "y=2026/m=3/d=4/h=5/i=6"
    assert render(pattern, moment, True) == "y=2026/m=03/d=04/h=05/i=06"
    assert listing("p/", "date=2026-1-5") == ("p/date=2026-1-5/", None)
    prefix, match = listing("p/", "year=2026/month=1/day=5/**/*.json")
    assert prefix == "p/year=2026/month=1/day=5/"
    assert match is not None
    assert match.fullmatch("p/year=2026/month=1/day=5/a.json")
    assert match.fullmatch("p/year=2026/month=1/day=5/h=1/b.json")
    assert not match.fullmatch("p/year=2026/month=1/day=5/a.csv")
    prefix, match = listing("", "events-2026-1-5*.json")
    assert prefix == "events-2026-1-5"
    assert match is not None
    assert match.fullmatch("events-2026-1-5-part0.json")


def test_rewrite_keeps_literals_and_comments():
    sql = (
        "SELECT 'read_parquet(x)' AS t, COUNT(*) AS value -- read_csv('s3://b/p/{{.Partition}}')\n"
        "FROM read_parquet('s3://b/p/{{ .Partition }}', hive_partitioning = true) AS t"
    )
    assert rewrite_sql(sql, "b", "p") == (
        "SELECT 'read_parquet(x)' AS t, COUNT(*) AS value -- read_csv('s3://b/p/{{.Partition}}')\n"
        "FROM lake AS t"
    )


@pytest.mark.parametrize(
    ("sql", "partition", "grain", "kind"),
    [
        ("SELECT 1 AS value FROM lake WHERE ts >= :window_start", "d={{.Day}}", "24h", "windowed"),
        ("SELECT 1 AS value FROM lake WHERE ts < :window_end", "d={{.Day}}", "24h", "as-of"),
        ("SELECT 1 AS value FROM lake", "d={{.Day}}", "24h", "windowed"),
        ("SELECT 1 AS value FROM lake", "d={{.Day}}/h={{.Hour}}", "24h", "windowed"),
        ("SELECT 1 AS value FROM lake", "d={{.Day}}", "7d", "windowed"),
        ("SELECT 1 AS value FROM lake", "m={{.Month}}", "1mo", "windowed"),
        ("SELECT 1 AS value FROM lake", "d={{.Day}}", "1h", "snapshot"),  # latte: today so far
        ("SELECT 1 AS value FROM lake", "d={{.Day}}", "1m", "snapshot"),
        ("SELECT 1 AS value FROM lake", None, "24h", "snapshot"),
    ],
)
def test_kind_of_a_lake_query(sql, partition, grain, kind):
    config = LakeConfig.model_validate({"bucket": "lake", "partition": partition, "sql": sql})
    assert lake_kind(config, grain, "UTC") == kind
    assert lake_kind(config, grain, "Europe/Berlin") == kind  # the pattern on the same clock


def test_a_utc_partitioned_lake_under_a_berlin_collector_needs_the_window_bound():
    config = LakeConfig.model_validate(
        {
            "bucket": "lake",
            "partition": "d={{.Day}}",
            "partition_timezone": "UTC",
            "sql": "SELECT 1 AS value FROM lake",
        }
    )
    assert lake_kind(config, "24h", "Europe/Berlin") == "snapshot"


def test_latte_metric_s3_collector_loads_as_the_lake_source(write_collector):
    text = """
        name: daily_users
        collector:
          type: metric
        metric:
          name: daily_active_users
          type: COUNT
        schedule:
          interval: 1m
        source:
          type: metric.s3
          config:
            region: us-east-1
            bucket: localstack-latte
            endpoint: 's3.localhost.localstack.cloud:4566'
            prefix: 'activity-events'
            partition: 'year={{.Year}}/month={{.Month}}/day={{.Day}}/**/*.json'
            sql: |
              SELECT COUNT(DISTINCT user_id) as value, customer_id as customer
              FROM read_json_auto('s3://localstack-latte/activity-events/{{.Partition}}')
              GROUP BY customer_id
        sinks:
          console: {type: console}
    """
    spec = load_file(write_collector(text))
    config = spec.source.config
    assert isinstance(config, LakeConfig)
    assert config.endpoint == "https://s3.localhost.localstack.cloud:4566"
    source = LakeSource(spec)
    assert source.format == "json"
    assert "FROM lake" in source.text
    assert source.kind == "snapshot"  # a daily partition read every minute: "today so far"
