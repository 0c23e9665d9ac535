"""Privacy rules of metric contracts, end to end on the real servers: `pii: hash` (keyed
HMAC-SHA256 pseudonyms, computed before the record uuids), `pii: drop` (and its collision
error), `min_group_size` (small groups suppressed and counted), and `<redacted>` violations.

Sources: Postgres (the machine's server; `inet` addresses through psycopg, text through ADBC) and
SQLite, with e-mail and IP tags. THE CANARY SEARCH puts a canary e-mail and IP address into the
Postgres source, runs the collector through `signals invoke` (a process) and through Dagster runs
in process on a persistent instance (sqlite storage in a tmp DAGSTER_HOME) into file, Kafka
(tansu) and S3 (SeaweedFS, Parquet and JSON lines) sinks, then searches every byte they left
behind (sink outputs, Kafka keys/values/headers, S3 bodies and metadata, logs, every file of the
DAGSTER_HOME) for the canary in any letter case: nothing may contain it, while the e-mail's
pseudonym must be there (so the search is not vacuous)."""

import hashlib
import hmac
import io
import json
import logging
import os
import re
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import dagster as dg
import psycopg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner, Result

from signals_dagster.catalog import load_catalog
from signals_dagster.cli import main
from signals_dagster.collect import collect
from signals_dagster.contracts.enforce import REDACTED, check_records
from signals_dagster.contracts.model import Contract, TagRule
from signals_dagster.errors import SpecError
from signals_dagster.orchestration.factory import build_definitions
from signals_dagster.partitioning import window_for_key
from signals_dagster.pseudonyms import default_key_id
from signals_dagster.records import record_uuid
from signals_dagster.spec.loader import load_collectors, load_file
from signals_dagster_tests.servers.kafka import TansuBroker, consume_all, create_topic
from signals_dagster_tests.servers.s3 import S3Server
from signals_dagster_tests.test_kafka_sink import failure_message

ROOT = Path(__file__).resolve().parents[1]
KEY = "pv-test-key-0123456789abcdefghijklmnop"  # 38 bytes (lower case: see `leaks`)
OTHER_KEY = "pv-other-key-9876543210zyxwvutsrqpon"
CANARY_EMAIL = "canary-7f1c2b@example.com"
CANARY_IP = "203.0.113.77"  # TEST-NET-3
CANARY_IP_2 = "203.0.113.78"  # the canary's second address (the drop collision)
ALICE, ALICE_IP = "alice.liddell@example.org", "198.51.100.4"
BOB, BOB_IP = "bob.builder@example.net", "198.51.100.5"
GOOD_DAY = "2026-06-02"
BAD_DAY = "2026-06-03"  # the canary spends 5000: above the contract's max 1000
GRAIN = datetime.fromisoformat(GOOD_DAY).replace(tzinfo=UTC)

# (email, ip, amount, hour): the events of both days.
EVENTS: dict[str, list[tuple[str, str, float, int]]] = {
    GOOD_DAY: [
        (CANARY_EMAIL, CANARY_IP, 10.0, 1),
        (CANARY_EMAIL, CANARY_IP_2, 5.0, 9),
        (ALICE, ALICE_IP, 20.0, 12),
        (BOB, BOB_IP, 7.0, 15),
    ],
    BAD_DAY: [(CANARY_EMAIL, CANARY_IP, 5000.0, 2), (ALICE, ALICE_IP, 3.0, 4)],
}
# Per (email, ip) on GOOD_DAY.
VISITS = {(e, ip): amount for e, ip, amount, _ in EVENTS[GOOD_DAY]}

REGISTRY = """\
metrics:
  - name: pv.spend
    version: 1
    type: GAUGE
    unit: USD
    description: Spend per customer and day (privacy tests)
    owners: [team:privacy]
    tags:
      email: {required: true, pii: hash}
      ip: {pii: drop}
    values: {min: 0, max: 1000}
  - name: pv.visits
    version: 1
    type: GAUGE
    owners: [team:privacy]
    tags:
      email: {required: true, pii: hash}
      ip: {required: true, pii: hash}
  - name: pv.groups
    version: 1
    type: GAUGE
    owners: [team:privacy]
    tags:
      country: {required: true}
    min_group_size: {k: 5, column: subjects}
"""
# The same metric pv.visits without privacy rules: the uuids raw values give.
RAW_REGISTRY = """\
metrics:
  - name: pv.visits
    version: 1
    type: GAUGE
    tags:
      email: {required: true}
      ip: {required: true}
"""
WHERE = "WHERE created_at >= :window_start AND created_at < :window_end"
SPEND_SQL = (
    f"SELECT email, MIN(ip) AS ip, SUM(amount) AS value FROM pv_events {WHERE} GROUP BY email"
)
VISITS_SQL = f"SELECT email, ip, SUM(amount) AS value FROM pv_events {WHERE} GROUP BY email, ip"
VISITS_TEXT_SQL = (  # Postgres: text columns only, so ADBC (Arrow) answers, not psycopg
    f"SELECT email, host(ip) AS ip, SUM(amount) AS value FROM pv_events {WHERE} GROUP BY 1, 2"
)
GROUPS_SQL = (
    "SELECT country, CASE WHEN country = 'mt' THEN NULL ELSE COUNT(DISTINCT user_id) END "
    f"AS subjects, SUM(amount) AS value FROM pv_members {WHERE} GROUP BY country"
)
METRIC_LINE = 2  # the line of `metric:` in collector_text: where metric.name problems point


def _at(day: str, hour: int) -> datetime:
    return datetime.fromisoformat(day).replace(hour=hour, tzinfo=UTC)


def pseudonym(value: str, key: str = KEY, key_id: str | None = None) -> str:
    """The expected `pii: hash` form, computed here from its definition."""
    digest = hmac.new(key.encode(), value.encode(), hashlib.sha256).hexdigest()[:32]
    return f"{key_id or default_key_id(key.encode())}:{digest}"


# --- Sources ------------------------------------------------------------------------------

# (country, distinct users) on GOOD_DAY; 'mt' has 6 users but the query says NULL; k = 5.
MEMBERS = {"de": 7, "fr": 5, "it": 4, "lu": 1, "mt": 6}
KEPT = {"de", "fr"}


@pytest.fixture(scope="module")
def shop(pg_url: str) -> str:
    """`pv_events` (the e-mail and IP events, ip as inet) and `pv_members` (group sizes)."""
    members = [
        (country, f"u{i}", 1.0, _at(GOOD_DAY, 1 + i % 20))
        for country, users in MEMBERS.items()
        for i in range(users)
        for _ in range(2)  # every user twice: the query counts distinct users
    ]
    members.append(("de", "u0", 1.0, _at(BAD_DAY, 3)))  # one user only: suppressed that day
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS pv_events, pv_members")
        conn.execute(
            "CREATE TABLE pv_events (email text, ip inet, amount numeric, created_at timestamptz)"
        )
        with conn.cursor().copy("COPY pv_events FROM STDIN") as copy:
            for day, rows in EVENTS.items():
                for email, ip, amount, hour in rows:
                    copy.write_row((email, ip, amount, _at(day, hour)))
        conn.execute(
            "CREATE TABLE pv_members (country text, user_id text, amount numeric, "
            "created_at timestamptz)"
        )
        with conn.cursor().copy("COPY pv_members FROM STDIN") as copy:
            for row in members:
                copy.write_row(row)
    return pg_url


def sqlite_events(path: Path) -> str:
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE pv_events (email TEXT, ip TEXT, amount REAL, created_at TEXT)")
    db.executemany(
        "INSERT INTO pv_events VALUES (?, ?, ?, ?)",
        [
            (email, ip, amount, (_at(day, hour).replace(tzinfo=None)).isoformat(sep=" "))
            for day, rows in EVENTS.items()
            for email, ip, amount, hour in rows
        ],
    )
    db.commit()
    db.close()
    return f"sqlite:///{path}"


# --- Collectors ---------------------------------------------------------------------------


def collector_text(name: str, metric: str, source: str, uri: str, sql: str, sinks: str) -> str:
    """A daily collector (`metric:` on line METRIC_LINE) with the given sinks."""
    return textwrap.dedent(
        f"""\
        name: {name}
        metric: {{name: {metric}, type: GAUGE, grain: 24h}}
        partitions: {{start: '2026-06-01'}}
        source:
          type: {source}
          config:
            uri: '{uri}'
            sql: "{sql}"
        retries: 0
        sinks:
        """
    ) + textwrap.indent(textwrap.dedent(sinks).strip("\n"), "  ")


def file_sink(path: Path, name: str = "audit") -> str:
    return f"{name}: {{type: file, config: {{path: '{path}'}}}}\n"


def make_folder(tmp_path: Path, name: str = "collectors", registry: str = REGISTRY) -> Path:
    """A collectors folder (under pytest's tmp: a file sink root) with its registry."""
    folder = tmp_path / name
    folder.mkdir()
    (folder / "metrics.yaml").write_text(registry, encoding="utf-8")
    return folder


def write(folder: Path, file: str, text: str) -> Path:
    path = folder / file
    path.write_text(text, encoding="utf-8")
    return path


def key_env(key: str | None = KEY, key_id: str | None = None) -> dict[str, str | None]:
    """The pseudonym key variables for CliRunner (None: unset)."""
    return {"SIGNALS_PII_KEY": key, "SIGNALS_PII_KEY_ID": key_id}


def cli(*args: str, env: Mapping[str, str | None]) -> Result:
    """`signals ...` in process (click's runner: its own stdout and stderr)."""
    return CliRunner().invoke(main, list(args), env=dict(env))


def dry_run(path: Path, env: Mapping[str, str | None], day: str = GOOD_DAY) -> list[dict[str, Any]]:
    """The records `signals invoke --dry-run` prints, sorted by value."""
    result = cli("invoke", str(path), "--partition", day, "--dry-run", env=env)
    assert result.exit_code == 0, result.output + result.stderr
    return sorted((json.loads(line) for line in result.stdout.splitlines()), key=_value)


def _value(record: Mapping[str, Any]) -> float:
    return float(record["value"])


def shape(pairs: Iterable[tuple[Mapping[str, str], float]]) -> list[tuple[str, float]]:
    """(tags, value) pairs comparable as a sorted list (the tags as sorted JSON)."""
    return sorted((json.dumps(dict(tags), sort_keys=True), float(value)) for tags, value in pairs)


def records_shape(records: Iterable[Mapping[str, Any]]) -> list[tuple[str, float]]:
    return shape((r["tags"], r["value"]) for r in records)


def signals(*args: str) -> subprocess.CompletedProcess[str]:
    """The real `signals` command line, as a process (the test's environment)."""
    return subprocess.run(
        [sys.executable, "-m", "signals_dagster.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=dict(os.environ),
        cwd=ROOT,
    )


# --- 1. pii: hash --------------------------------------------------------------------------

SOURCES = ["sqlite", "postgres-inet", "postgres-text"]


@pytest.fixture(params=SOURCES)
def visits_source(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, str, str]:
    """(source type, uri, sql) of the pv.visits query on each kind of source."""
    if request.param == "sqlite":
        return "sqlite", sqlite_events(tmp_path / "events.sqlite"), VISITS_SQL
    pg = request.getfixturevalue("shop")
    return "postgres", pg, VISITS_SQL if request.param == "postgres-inet" else VISITS_TEXT_SQL


def test_hash_is_keyed_deterministic_and_the_uuid_is_the_hashed_ones(
    visits_source: tuple[str, str, str], tmp_path: Path
) -> None:
    source, uri, sql = visits_source
    sinks = file_sink(tmp_path / "unused.jsonl")
    path = write(
        make_folder(tmp_path),
        "visits.yaml",
        collector_text("pv.visits", "pv.visits", source, uri, sql, sinks),
    )
    first = dry_run(path, key_env())
    assert records_shape(first) == shape(
        ({"email": pseudonym(email), "ip": pseudonym(ip)}, amount)
        for (email, ip), amount in VISITS.items()
    )
    key_id = default_key_id(KEY.encode())
    assert re.fullmatch(r"k[0-9a-f]{8}", key_id)
    for record in first:
        for value in record["tags"].values():
            assert re.fullmatch(rf"{key_id}:[0-9a-f]{{32}}", value)
    printed = json.dumps(first).lower()
    for plain in (CANARY_EMAIL, CANARY_IP, ALICE, BOB, "@example"):
        assert plain not in printed

    # Deterministic: the same key gives the same records (uuids included) on every run.
    second = dry_run(path, key_env())
    assert [(r["uuid"], r["tags"], r["value"]) for r in second] == [
        (r["uuid"], r["tags"], r["value"]) for r in first
    ]

    # The uuid is computed from the hashed tags, never from the raw values.
    raw_folder = make_folder(tmp_path, "raw", RAW_REGISTRY)
    raw_path = write(raw_folder, "visits.yaml", path.read_text())
    raw = dry_run(raw_path, key_env(None))
    assert sorted((r["tags"]["email"], r["tags"]["ip"]) for r in raw) == sorted(VISITS)
    raw_uuids = {r["uuid"] for r in raw}
    for record in first:
        assert record["uuid"] == record_uuid("pv.visits", record["tags"], GRAIN)
    for record in raw:  # record_uuid is what the builder computes (the check above can fail)
        assert record["uuid"] == record_uuid("pv.visits", record["tags"], GRAIN)
    assert raw_uuids.isdisjoint(r["uuid"] for r in first)

    # Another key: other pseudonyms (so other uuids), the same derived-id shape.
    other = dry_run(path, key_env(OTHER_KEY))
    assert records_shape(other) == shape(
        ({"email": pseudonym(e, OTHER_KEY), "ip": pseudonym(ip, OTHER_KEY)}, amount)
        for (e, ip), amount in VISITS.items()
    )
    other_id = default_key_id(OTHER_KEY.encode())
    assert other_id != key_id
    digests = {v.split(":")[1] for r in first for v in r["tags"].values()}
    assert digests.isdisjoint(v.split(":")[1] for r in other for v in r["tags"].values())
    assert {r["uuid"] for r in other}.isdisjoint(r["uuid"] for r in first)

    # An explicit key id names the key in the prefix; the digest is the key's alone.
    named = dry_run(path, key_env(KEY, "k2026b"))
    assert records_shape(named) == shape(
        ({"email": pseudonym(e, key_id="k2026b"), "ip": pseudonym(ip, key_id="k2026b")}, amount)
        for (e, ip), amount in VISITS.items()
    )
    assert {v.split(":")[1] for r in named for v in r["tags"].values()} == digests


# --- 2. The key is checked when collectors load ----------------------------------------------


def _registry_line(name: str) -> int:
    return REGISTRY.splitlines().index(f"  - name: {name}") + 1


@pytest.mark.parametrize(
    ("key", "problem"),
    [
        (None, "$SIGNALS_PII_KEY is not set: a contract with `pii: hash` tags needs a secret key"),
        ("", "$SIGNALS_PII_KEY is not set: a contract with `pii: hash` tags needs a secret key"),
        (
            "k" * 31,
            "$SIGNALS_PII_KEY is 31 bytes long: a pseudonym key must have at least 32 bytes",
        ),
        (
            "é" * 15 + "k",  # 16 characters, 31 bytes: the length is counted in bytes
            "$SIGNALS_PII_KEY is 31 bytes long: a pseudonym key must have at least 32 bytes",
        ),
    ],
    ids=["unset", "empty", "31-bytes", "31-bytes-utf8"],
)
def test_missing_or_short_key_is_a_located_error_for_every_collector(
    key: str | None, problem: str, tmp_path: Path
) -> None:
    folder = make_folder(tmp_path)
    sinks = file_sink(tmp_path / "unused.jsonl")
    uri = "sqlite:///unused.sqlite"
    files = {
        "visits_a.yaml": collector_text(
            "pv.visits.a", "pv.visits", "sqlite", uri, VISITS_SQL, sinks
        ),
        "visits_b.yaml": collector_text(
            "pv.visits.b", "pv.visits", "sqlite", uri, VISITS_SQL, sinks
        ),
        "spend.yaml": collector_text("pv.spend.daily", "pv.spend", "sqlite", uri, SPEND_SQL, sinks),
        "groups.yaml": collector_text(
            "pv.groups.daily", "pv.groups", "sqlite", uri, GROUPS_SQL, sinks
        ),
    }
    for name, text in files.items():
        write(folder, name, text)
    env = {} if key is None else {"SIGNALS_PII_KEY": key}
    with pytest.raises(SpecError) as caught:
        load_collectors([folder], env)
    registry = folder / "metrics.yaml"
    visits = (
        f"(the contract pv.visits v1 at {registry}:{_registry_line('pv.visits')} hashes the "
        "tag(s) 'email', 'ip': `pii: hash`)"
    )
    spend = (
        f"(the contract pv.spend v1 at {registry}:{_registry_line('pv.spend')} hashes the "
        "tag(s) 'email': `pii: hash`)"
    )
    expected = sorted(
        [
            f"{folder / 'spend.yaml'}:{METRIC_LINE}: metric.name: {problem} {spend}",
            f"{folder / 'visits_a.yaml'}:{METRIC_LINE}: metric.name: {problem} {visits}",
            f"{folder / 'visits_b.yaml'}:{METRIC_LINE}: metric.name: {problem} {visits}",
        ]
    )
    # One problem per collector of a hashing contract (not pv.groups), nothing else.
    assert sorted(str(p) for p in caught.value.problems) == expected

    # The command line says the same; `signals invoke` refuses to run (exit 1, no record).
    result = cli("validate", str(folder), env=key_env(key))
    assert result.exit_code == 1
    assert sorted(result.stdout.splitlines()) == expected
    single = cli("invoke", str(folder / "visits_a.yaml"), "--dry-run", env=key_env(key))
    assert single.exit_code == 1
    assert single.stdout.splitlines() == [expected[1]]

    # With a key of 32 bytes, everything loads (the boundary is included).
    assert len(load_collectors([folder], {"SIGNALS_PII_KEY": "k" * 32})) == 4


def test_a_drop_only_contract_needs_no_key(tmp_path: Path) -> None:
    registry = REGISTRY.replace(
        "email: {required: true, pii: hash}\n      ip: {pii: drop}",
        "email: {required: true}\n      ip: {pii: drop}",
    )
    assert registry != REGISTRY
    folder = make_folder(tmp_path, registry=registry)
    uri = "sqlite:///unused.sqlite"
    path = write(
        folder,
        "spend.yaml",
        collector_text(
            "pv.spend.daily", "pv.spend", "sqlite", uri, SPEND_SQL, file_sink(tmp_path / "x")
        ),
    )
    spec = load_file(path, {})
    assert spec.contract is not None
    assert spec.contract.dropped_tags == ["ip"]
    # And it runs without one: the ip tag is gone, the (not personal here) e-mail kept.
    write(folder, "spend.yaml", path.read_text().replace(uri, sqlite_events(tmp_path / "e.db")))
    assert [(r["tags"], r["value"]) for r in dry_run(path, key_env(None))] == [
        ({"email": BOB}, 7.0),
        ({"email": CANARY_EMAIL}, 15.0),
        ({"email": ALICE}, 20.0),
    ]


def test_a_bad_key_id_is_refused_before_any_query(tmp_path: Path) -> None:
    audit = tmp_path / "audit" / "visits.jsonl"
    uri = sqlite_events(tmp_path / "events.sqlite")
    path = write(
        make_folder(tmp_path),
        "visits.yaml",
        collector_text("pv.visits", "pv.visits", "sqlite", uri, VISITS_SQL, file_sink(audit)),
    )
    result = cli("invoke", str(path), "--partition", GOOD_DAY, env=key_env(KEY, "bad-id"))
    assert result.exit_code == 1  # refused when loading, like a missing key
    assert (
        f"{path}:2: metric.name: $SIGNALS_PII_KEY_ID must be letters and digits, got 'bad-id'"
        in result.stdout
    )
    assert '"uuid"' not in result.stdout
    assert not audit.exists()


# --- 3. pii: drop ----------------------------------------------------------------------------


def test_drop_removes_the_tag_and_a_collision_fails_naming_pii_drop(
    shop: str, tmp_path: Path
) -> None:
    folder = make_folder(tmp_path)
    audit = tmp_path / "audit" / "spend.jsonl"
    spend = write(
        folder,
        "spend.yaml",
        collector_text("pv.spend.daily", "pv.spend", "postgres", shop, SPEND_SQL, file_sink(audit)),
    )
    records = dry_run(spend, key_env())
    assert [(r["tags"], r["value"]) for r in records] == [
        ({"email": pseudonym(BOB)}, 7.0),
        ({"email": pseudonym(CANARY_EMAIL)}, 15.0),
        ({"email": pseudonym(ALICE)}, 20.0),
    ]
    # Grouped by (email, ip): the canary's two addresses collide once ip is dropped.
    collide = write(
        folder,
        "collide.yaml",
        collector_text(
            "pv.spend.collide", "pv.spend", "postgres", shop, VISITS_SQL, file_sink(audit)
        ),
    )
    result = cli("invoke", str(collide), "--partition", GOOD_DAY, env=key_env())
    assert result.exit_code == 1, result.output
    assert result.stdout == ""
    (line,) = [x for x in result.stderr.splitlines() if x.startswith("error: ")]
    assert "`pii: drop`" in line
    assert (
        f"have the same tags {{'email': '{pseudonym(CANARY_EMAIL)}'}} once the `pii: drop` "
        "tag(s) 'ip' are dropped" in line
    )
    assert line.startswith(f"error: pv.spend.collide, partition {GOOD_DAY} ")
    assert "Traceback" not in result.stderr
    assert leaks(result.stderr.encode()) == []
    assert not audit.exists()  # nothing was written


# --- 4. min_group_size ---------------------------------------------------------------------


def test_small_groups_are_suppressed_and_counted(
    shop: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = make_folder(tmp_path)
    audit = tmp_path / "audit" / "groups.jsonl"
    path = write(
        folder,
        "groups.yaml",
        collector_text(
            "pv.groups.daily", "pv.groups", "postgres", shop, GROUPS_SQL, file_sink(audit)
        ),
    )
    spec = load_file(path)
    good, bad = collect(spec, [window_for_key(spec, GOOD_DAY), window_for_key(spec, BAD_DAY)])
    assert good.metadata()["suppressed_records"] == 3  # it (4 < 5), lu (1), mt (NULL)
    assert good.metadata()["source_rows"] == 5
    assert good.metadata()["record_count"] == 2
    assert bad.metadata()["suppressed_records"] == 1
    assert bad.metadata()["record_count"] == 0

    result = signals("invoke", str(path), "--partition", GOOD_DAY)
    assert result.returncode == 0, result.stderr
    printed = [json.loads(line) for line in result.stdout.splitlines()]
    assert records_shape(printed) == shape(
        [
            ({"country": "de"}, 14.0),  # 7 users (>= 5), each twice
            ({"country": "fr"}, 10.0),  # exactly k
        ]
    )
    assert all("subjects" not in r["tags"] for r in printed)
    assert [json.loads(line) for line in audit.read_text().splitlines()] == printed
    assert re.search(
        r"INFO 2 record\(s\) from 5 row\(s\) in [0-9.]+s; 3 below the contract's "
        r"min_group_size suppressed$",
        result.stderr,
        re.MULTILINE,
    ), result.stderr

    # Dagster: the materialisation's metadata counts them, per partition.
    defs = build_definitions(load_catalog(str(folder)), str(folder))
    instance = dg.DagsterInstance.ephemeral()
    job = defs.resolve_job_def("pv_groups_daily_job")
    for day, suppressed, count in ((GOOD_DAY, 3, 2), (BAD_DAY, 1, 0)):
        assert job.execute_in_process(instance=instance, partition_key=day).success
        event = instance.get_latest_materialization_event(dg.AssetKey("pv_groups_daily"))
        assert event is not None
        assert event.asset_materialization is not None
        meta = event.asset_materialization.metadata
        assert meta["suppressed_records"].value == suppressed
        assert meta["record_count"].value == count
    stored = [json.loads(line) for line in audit.read_text().splitlines()]
    assert {json.dumps(r["tags"]) for r in stored} == {'{"country": "de"}', '{"country": "fr"}'}

    # A contract without the rule: no suppressed_records figure at all.
    monkeypatch.setenv("SIGNALS_PII_KEY", KEY)
    spend = write(
        folder,
        "spend.yaml",
        collector_text(
            "pv.spend.daily", "pv.spend", "postgres", shop, SPEND_SQL, file_sink(tmp_path / "s")
        ),
    )
    spend_spec = load_file(spend)
    (plain,) = collect(spend_spec, [window_for_key(spend_spec, GOOD_DAY)])
    assert "suppressed_records" not in plain.metadata()
    assert plain.suppressed is None


# --- 5. <redacted> -----------------------------------------------------------------------------


def _tags_table(rows: list[dict[str, str]]) -> pa.Table:
    tags = pa.array([list(r.items()) for r in rows], pa.map_(pa.string(), pa.string()))
    return pa.table({"value": pa.array([1.0] * len(rows)), "tags": tags})


def test_a_violation_on_a_pii_tag_shows_redacted_never_the_value() -> None:
    # A validated contract cannot put allowed values or a pattern on a pii tag (they would
    # name personal values), so build the rules as an older or hand-made contract might hold
    # them: the enforcement must still never print the value.
    with pytest.raises(ValueError, match="cannot list allowed values or a pattern"):
        TagRule(pii="hash", pattern="^k")
    with pytest.raises(ValueError, match="cannot list allowed values or a pattern"):
        TagRule(pii="drop", allowed=["x"])
    contract = Contract.model_construct(
        name="pv.visits",
        version=1,
        type="GAUGE",
        tags={
            "email": TagRule.model_construct(pii="hash", pattern="^k[0-9a-f]{8}:"),
            "ip": TagRule.model_construct(pii="drop", allowed=["0.0.0.0"]),
            "env": TagRule(allowed=["prod"]),
        },
    )
    records = _tags_table(
        [
            {"email": CANARY_EMAIL, "ip": CANARY_IP, "env": "test"},
            {"email": ALICE, "ip": ALICE_IP, "env": "prod"},
        ]
    )
    verdict = check_records(contract, GOOD_DAY, records)
    assert verdict.violations == [
        f"tag 'email' values {REDACTED} (1 record), {REDACTED} (1 record) does not match "
        "'^k[0-9a-f]{8}:' (2 records)",
        "tag 'env' value 'test' not allowed (1 record; allowed: prod)",  # not pii: shown
        f"tag 'ip' values {REDACTED} (1 record), {REDACTED} (1 record) not allowed "
        "(2 records; allowed: 0.0.0.0)",
    ]
    assert leaks("\n".join(verdict.messages()).encode()) == []


# --- 6. THE CANARY SEARCH ------------------------------------------------------------------------

NEEDLES = (
    CANARY_EMAIL.lower(),
    "canary-7f1c2b",  # the local part alone (also inside a URL-encoded or split address)
    CANARY_IP,
    CANARY_IP_2,
    KEY.lower(),  # the key itself never leaves either
)


def leaks(blob: bytes) -> list[str]:
    """The needles found in a blob, in any letter case (the blob is lower-cased)."""
    haystack = blob.lower()
    return [n for n in NEEDLES if n.encode() in haystack]


def test_the_search_finds_the_canary_in_any_case(shop: str) -> None:
    """The control of the search: it does find the canary where it is (the source)."""
    with psycopg.connect(shop) as conn:
        rows = conn.execute("SELECT email, host(ip) FROM pv_events").fetchall()
    assert leaks(repr(rows).encode()) == [CANARY_EMAIL, "canary-7f1c2b", CANARY_IP, CANARY_IP_2]
    assert leaks(f"<{CANARY_EMAIL.upper()}>".encode()) == [CANARY_EMAIL, "canary-7f1c2b"]
    assert leaks(b"Canary-7F1C2B%40Example.COM") == ["canary-7f1c2b"]
    assert leaks(KEY.upper().encode()) == [KEY]
    assert leaks(pseudonym(CANARY_EMAIL).encode()) == []


@dataclass(frozen=True)
class CanarySinks:
    """A file, a fresh Kafka topic and a fresh S3 bucket (Parquet and JSON lines objects)."""

    audit: Path
    broker: TansuBroker
    topic: str
    s3: S3Server
    bucket: str

    def yaml(self) -> str:
        def s3(prefix: str, fmt: str) -> str:
            return (
                f"{{type: s3, config: {{bucket: {self.bucket}, prefix: {prefix}, format: {fmt}, "
                f"endpoint_url: '{self.s3.endpoint}', region: us-east-1, retries: 1}}}}\n"
            )

        kafka = (
            f"{{type: kafka, config: {{brokers: ['{self.broker.bootstrap}'], "
            f"topic: {self.topic}, timeout: 10s}}}}\n"
        )
        return (
            file_sink(self.audit)
            + f"bus: {kafka}"
            + f"lake_parquet: {s3('pq', 'parquet')}"
            + f"lake_jsonl: {s3('js', 'jsonl')}"
        )

    def blobs(self, messages: int) -> dict[str, bytes]:
        """Every byte the sinks hold, by where it is (decoded where it is compressed)."""
        found: dict[str, bytes] = {"file sink": self.audit.read_bytes()}
        consumed = consume_all(self.broker.bootstrap, self.topic, expected=messages, idle=0.6)
        assert len(consumed) == messages
        for n, message in enumerate(consumed):  # the consumer decompresses
            found[f"kafka message {n} key"] = message.key() or b""
            found[f"kafka message {n} value"] = message.value() or b""
            for name, value in message.headers() or []:
                found[f"kafka message {n} header {name}"] = name.encode() + b"=" + (value or b"")
        client = self.s3.client()
        keys = self.s3.keys(self.bucket)
        assert [k.split("/")[0] for k in keys] == ["js", "pq"]
        for key in keys:
            got = client.get_object(Bucket=self.bucket, Key=key)
            body = got["Body"].read()
            found[f"s3 {key}"] = body
            head = {"key": key, "metadata": got["Metadata"], "headers": got["ResponseMetadata"]}
            found[f"s3 {key} key, metadata, headers"] = json.dumps(head, default=str).encode()
            if key.endswith(".parquet"):  # Parquet pages are compressed: read them
                parquet = pq.ParquetFile(io.BytesIO(body))
                rows = parquet.read().to_pylist()
                found[f"s3 {key} rows"] = json.dumps(rows, default=str).encode()
                meta = (parquet.metadata.to_dict(), parquet.schema_arrow.metadata)
                found[f"s3 {key} footer"] = repr(meta).encode()
        return found


@pytest.fixture
def canary_sinks(
    tmp_path: Path, kafka_broker: TansuBroker, s3_server: S3Server, aws_env: None
) -> CanarySinks:
    topic = f"privacy-canary-{time.monotonic_ns()}"
    create_topic(kafka_broker.bootstrap, topic, partitions=3)
    return CanarySinks(
        tmp_path / "audit" / "spend.jsonl", kafka_broker, topic, s3_server, s3_server.new_bucket()
    )


def dagster_home(home: Path) -> Path:
    """A persistent instance's home: sqlite run/event/schedule storage and local compute logs,
    all on disk under `home`."""
    home.mkdir()
    (home / "dagster.yaml").write_text(
        textwrap.dedent(
            f"""\
            storage:
              sqlite:
                base_dir: {home / "storage"}
            compute_logs:
              module: dagster._core.storage.local_compute_log_manager
              class: LocalComputeLogManager
              config:
                base_dir: {home / "compute_logs"}
            telemetry:
              enabled: false
            """
        )
    )
    return home


def home_files(home: Path) -> Iterator[tuple[str, bytes]]:
    for path in sorted(home.rglob("*")):
        if path.is_file():
            yield f"DAGSTER_HOME {path.relative_to(home)}", path.read_bytes()


def test_canary_never_leaves_the_source(
    shop: str,
    tmp_path: Path,
    canary_sinks: CanarySinks,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setenv("SIGNALS_PII_KEY", KEY)
    monkeypatch.delenv("SIGNALS_PII_KEY_ID", raising=False)
    caplog.set_level(logging.DEBUG, logger="signals_dagster")
    caplog.set_level(logging.INFO)
    folder = make_folder(tmp_path)
    path = write(
        folder,
        "spend.yaml",
        collector_text(
            "pv.spend.daily", "pv.spend", "postgres", shop, SPEND_SQL, canary_sinks.yaml()
        ),
    )
    hashed = pseudonym(CANARY_EMAIL)
    logs: dict[str, bytes] = {}

    # (1) `signals invoke`, a process: the good day reaches every sink; the bad day breaks the
    # contract (the canary's value) and its message names no tag value.
    good = signals("invoke", str(path), "--partition", GOOD_DAY)
    assert good.returncode == 0, good.stderr
    printed = [json.loads(line) for line in good.stdout.splitlines()]
    assert records_shape(printed) == shape(
        [
            ({"email": hashed}, 15.0),
            ({"email": pseudonym(ALICE)}, 20.0),
            ({"email": pseudonym(BOB)}, 7.0),
        ]
    )
    bad = signals("invoke", str(path), "--partition", BAD_DAY)
    assert bad.returncode == 1, bad.stdout + bad.stderr
    violation = f"pv.spend v1, {BAD_DAY}: value 5000 out of range [0, 1000] (1 record)"
    assert violation in bad.stderr
    assert bad.stdout == ""
    for name, run in (("good", good), ("bad", bad)):
        logs[f"invoke {name} stdout"] = run.stdout.encode()
        logs[f"invoke {name} stderr"] = run.stderr.encode()

    # (2) Dagster runs in process on a persistent instance (event log on disk).
    home = dagster_home(tmp_path / "dagster_home")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    defs = build_definitions(load_catalog(str(folder)), str(folder))
    job = defs.resolve_job_def("pv_spend_daily_job")
    with dg.DagsterInstance.get() as instance:
        assert type(instance.event_log_storage).__name__ == "SqliteEventLogStorage"
        ok = job.execute_in_process(instance=instance, partition_key=GOOD_DAY)
        assert ok.success
        failed = job.execute_in_process(
            instance=instance, partition_key=BAD_DAY, raise_on_error=False
        )
        message = failure_message(failed)
        assert violation in message
        logs["dagster failure message"] = message.encode()
        event = instance.get_latest_materialization_event(dg.AssetKey("pv_spend_daily"))
        assert event is not None
        assert event.asset_materialization is not None
        logs["dagster materialization"] = repr(event.asset_materialization).encode()
        for stored in instance.get_runs():
            for n, entry in enumerate(instance.all_logs(stored.run_id)):
                logs[f"dagster run {stored.run_id} event {n}"] = repr(entry).encode()
    captured = capfd.readouterr()
    logs["test process stdout"] = captured.out.encode()
    logs["test process stderr"] = captured.err.encode()
    logs["test process log records"] = caplog.text.encode()
    home_blobs = dict(home_files(home))
    assert any(name.endswith(".db") for name in home_blobs), sorted(home_blobs)

    # The search: two runs of three records in each sink, and every byte left behind.
    sinks = canary_sinks.blobs(messages=6)
    everything = {**sinks, **logs, **home_blobs}
    found = {name: leaks(blob) for name, blob in everything.items()}
    assert {name: hits for name, hits in found.items() if hits} == {}

    # Not vacuous: the canary's pseudonym is in every sink, the printed records and the
    # event log; the dropped ip tag is in none.
    needle = hashed.encode()
    assert sinks["file sink"].count(needle) == 2
    values = [blob for name, blob in sinks.items() if name.startswith("kafka") and "value" in name]
    assert sum(needle in v for v in values) == 2
    jsonl = [n for n in sinks if n.startswith("s3 js/") and n.endswith(".jsonl")]
    parquet_rows = [n for n in sinks if n.startswith("s3 pq/") and n.endswith(" rows")]
    assert len(jsonl) == len(parquet_rows) == 1
    assert needle in sinks[jsonl[0]]
    assert needle in sinks[parquet_rows[0]]
    assert needle in logs["invoke good stdout"]
    assert any(needle in blob for blob in home_blobs.values())
    file_records = [json.loads(line) for line in sinks["file sink"].splitlines()]
    assert all(set(r["tags"]) == {"email"} for r in file_records)
    assert all(b'"ip"' not in v for v in values)
    # Stable across processes: the Dagster run's records are the invoke's, uuids included
    # (the Kafka keys: each uuid twice).
    invoked, dagster_run = file_records[:3], file_records[3:]
    assert sorted(records_shape(invoked)) == sorted(records_shape(dagster_run))
    assert {r["uuid"] for r in invoked} == {r["uuid"] for r in dagster_run}
    keys = [blob for name, blob in sinks.items() if name.endswith(" key")]
    assert sorted(keys) == sorted(r["uuid"].encode() for r in file_records)


# --- 7. A pii column in another letter case --------------------------------------------------


@pytest.mark.parametrize(
    "select", ["email AS Email, MIN(ip) AS ip", "email, MIN(ip) AS IP"], ids=["Email", "IP"]
)
def test_a_pii_column_in_another_letter_case_never_shows_its_values(
    select: str, tmp_path: Path
) -> None:
    uri = sqlite_events(tmp_path / "events.sqlite")
    sql = f"SELECT {select}, SUM(amount) AS value FROM pv_events {WHERE} GROUP BY 1"
    path = write(
        make_folder(tmp_path),
        "spend.yaml",
        collector_text("pv.spend.case", "pv.spend", "sqlite", uri, sql, file_sink(tmp_path / "a")),
    )
    result = cli("invoke", str(path), "--partition", GOOD_DAY, "--dry-run", env=key_env())
    assert leaks((result.stdout + result.stderr).encode()) == []
