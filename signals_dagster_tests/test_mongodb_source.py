"""The MongoDB source against a real Mongo-wire-protocol server (secantusdb).

Expectations are computed in Python from the inserted documents, never by asking the server.
"""

import json
import subprocess
import sys
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pymongo
import pytest

from signals_dagster.collect import collect
from signals_dagster.errors import CollectorError, SnapshotWindowError, SourceError, SpecError
from signals_dagster.orchestration.partitions import window_for_key
from signals_dagster.records import to_pandas
from signals_dagster.sources import open_source
from signals_dagster.sources.base import QueryShape, query_shape
from signals_dagster.sources.mongodb import MongoSource
from signals_dagster.spec.loader import load_file
from signals_dagster.spec.models import CollectorSpec
from signals_dagster.spec.sources import MongoConfig
from signals_dagster.window import Window
from signals_dagster_tests.servers.common import free_port
from signals_dagster_tests.source_helpers import (
    CONSOLE,
    collector_yaml,
    file_sink,
    materialise_partition,
)

ROOT = Path(__file__).resolve().parents[1]
START = datetime(2025, 10, 24, tzinfo=UTC)
DAYS = 6
ACCOUNTS = ("acme", "globex", "initech")
BERLIN = ZoneInfo("Europe/Berlin")
LATER = datetime(2026, 1, 1, tzinfo=UTC)  # "now" for runs: every test window has closed
BY_CUSTOMER = [
    {"$group": {"_id": "$account", "value": {"$sum": "$amount"}}},
    {"$project": {"_id": 0, "customer": "$_id", "value": 1}},
]
Write = Callable[..., Path]


def make_orders() -> list[dict[str, Any]]:
    """An order every 37 minutes over six days; amounts vary with the minute of the day."""
    docs = []
    for step in range(DAYS * 24 * 60 // 37):
        moment = START + timedelta(minutes=37 * step)
        docs.append(
            {
                "account": ACCOUNTS[step % 3],
                "amount": 1 + (moment.hour * 60 + moment.minute) / 100,
                "created_at": moment,
                "meta": {"channel": "web" if step % 2 else "app"},
            }
        )
    return docs


ORDERS = make_orders()


@pytest.fixture(scope="module")
def shop(mongo_uri: str) -> Iterator[str]:
    """A database with the orders inserted; its name."""
    name = f"shop_{uuid.uuid4().hex[:8]}"
    with pymongo.MongoClient(mongo_uri) as client:
        client[name].orders.insert_many([dict(doc) for doc in ORDERS])
        yield name
        client.drop_database(name)


def sums(start: datetime, end: datetime) -> dict[str, float]:
    """Per-account sums of the orders in [start, end), computed in Python."""
    out: dict[str, float] = defaultdict(float)
    for doc in ORDERS:
        if start <= doc["created_at"] < end:
            out[doc["account"]] += doc["amount"]
    return dict(out)


def collector(
    uri: str,
    database: str,
    agg: list[dict[str, Any]] | str,
    *,
    time_field: str | None = None,
    timezone: str = "UTC",
    grain: str = "24h",
    extra: str = "",
    sink: str = CONSOLE,
) -> str:
    """A MongoDB collector YAML (agg as signals-collector's JSON string)."""
    text = agg if isinstance(agg, str) else json.dumps(agg)
    config = [f"uri: '{uri}'", f"database: {database}", "collection: orders", f"agg: '{text}'"]
    config += [f"time_field: {time_field}"] if time_field else []
    config += [extra] if extra else []
    return collector_yaml(
        "shop.mongo.revenue",
        "mongodb",
        config,
        metric_type="GAUGE",
        grain=grain,
        timezone=timezone,
        sink=sink,
    )


def load(write_collector: Write, text: str) -> CollectorSpec:
    """Write a collector file and load it."""
    return load_file(write_collector(text))


def values(spec: CollectorSpec, key: str, now: datetime = LATER) -> dict[str, float]:
    """Collect one partition; {customer tag: value}."""
    (result,) = collect(spec, [window_for_key(spec, key)], now=now)
    assert all(tags["env"] == "test" for tags in to_pandas(result.records)["tags"])
    return {
        tags.get("customer", ""): v
        for tags, v in zip(
            to_pandas(result.records)["tags"], to_pandas(result.records)["value"], strict=True
        )
    }


@pytest.mark.parametrize(
    ("key", "timezone"),
    [("2025-10-24", "UTC"), ("2025-10-27", "UTC"), ("2025-10-26", "Europe/Berlin")],
)
def test_time_field_windows_match_python(
    mongo_uri: str, shop: str, write_collector: Write, key: str, timezone: str
) -> None:
    spec = load(
        write_collector,
        collector(mongo_uri, shop, BY_CUSTOMER, time_field="created_at", timezone=timezone),
    )
    assert query_shape(spec).kind == "windowed"
    window = window_for_key(spec, key)
    if timezone != "UTC":
        assert window.end.astimezone(UTC) - window.start.astimezone(UTC) == timedelta(hours=25)
    expected = sums(window.start, window.end)
    assert len(expected) == 3
    assert values(spec, key) == pytest.approx(expected)


def test_let_variables_bind_the_window(mongo_uri: str, shop: str, write_collector: Write) -> None:
    agg = [
        {
            "$match": {
                "$expr": {
                    "$and": [
                        {"$gte": ["$created_at", "$$window_start"]},
                        {"$lt": ["$created_at", "$$window_end"]},
                    ]
                }
            }
        },
        *BY_CUSTOMER,
    ]
    spec = load(write_collector, collector(mongo_uri, shop, agg, timezone="Europe/Berlin"))
    assert query_shape(spec).kind == "windowed"
    window = window_for_key(spec, "2025-10-25")
    assert values(spec, "2025-10-25") == pytest.approx(sums(window.start, window.end))


def test_window_end_only_is_as_of(mongo_uri: str, shop: str, write_collector: Write) -> None:
    agg = [
        {"$match": {"$expr": {"$lt": ["$created_at", "$$window_end"]}}},
        {"$group": {"_id": None, "value": {"$sum": 1}}},
    ]
    spec = load(write_collector, collector(mongo_uri, shop, agg))
    assert query_shape(spec).kind == "as-of"
    end = datetime(2025, 10, 26, tzinfo=UTC)
    assert values(spec, "2025-10-25") == {"": sum(1 for d in ORDERS if d["created_at"] < end)}


def test_yaml_list_pipeline_and_empty_window(
    mongo_uri: str, shop: str, write_collector: Write
) -> None:
    agg = "\n".join(
        [
            "",
            "      - $group: {_id: $account, value: {$sum: 1}}",
            "      - $project: {_id: 0, customer: $_id, value: 1}",
        ]
    )
    text = collector(mongo_uri, shop, "x", time_field="created_at").replace("'x'", agg)
    spec = load(write_collector, text)
    window = window_for_key(spec, "2025-10-24")
    counts = Counter(d["account"] for d in ORDERS if window.start <= d["created_at"] < window.end)
    assert values(spec, "2025-10-24") == counts
    (empty,) = collect(spec, [window_for_key(spec, "2025-10-05")], now=LATER)
    assert (len(empty.records), empty.source_rows) == (0, 0)


def test_one_aggregate_answers_a_five_day_range(
    mongo_uri: str, shop: str, write_collector: Write
) -> None:
    agg = [
        {
            "$group": {
                "_id": {
                    "account": "$account",
                    "day": {
                        "$dateTrunc": {
                            "date": "$created_at",
                            "unit": "day",
                            "timezone": "Europe/Berlin",
                        }
                    },
                },
                "value": {"$sum": "$amount"},
            }
        },
        {
            "$project": {
                "_id": 0,
                "customer": "$_id.account",
                "grain_datetime": "$_id.day",
                "value": 1,
            }
        },
    ]
    spec = load(
        write_collector,
        collector(mongo_uri, shop, agg, time_field="created_at", timezone="Europe/Berlin"),
    )
    source = open_source(spec)
    assert source.range_capable
    assert query_shape(spec).range_capable
    days = [f"2025-10-{d}" for d in range(24, 29)]
    windows = [window_for_key(spec, day) for day in days]
    span = Window("range", windows[0].start, windows[-1].end)
    with source.session() as session:
        fetched = session.fetch(span)
        columns = list(fetched.columns)
        rows = [dict(zip(columns, row, strict=True)) for row in fetched.rows]
    expected = {
        (w.start.astimezone(UTC), account): value
        for w in windows
        for account, value in sums(w.start, w.end).items()
    }
    got = {(r["grain_datetime"].astimezone(UTC), r["customer"]): r["value"] for r in rows}
    assert got == pytest.approx(expected)
    assert {moment.astimezone(BERLIN).hour for moment, _ in got} == {0}
    assert len({moment for moment, _ in got}) == 5
    # The ranged run (collect() splits the rows by grain_datetime) equals five single runs.
    ranged = collect(spec, windows, now=LATER)
    single = [collect(spec, [w], now=LATER)[0] for w in windows]
    assert [sorted(to_pandas(r.records)["uuid"]) for r in ranged] == [
        sorted(to_pandas(s.records)["uuid"]) for s in single
    ]
    assert [to_pandas(r.records)["value"].sum() for r in ranged] == pytest.approx(
        [to_pandas(s.records)["value"].sum() for s in single]
    )


def test_snapshot_refuses_old_partitions(mongo_uri: str, shop: str, write_collector: Write) -> None:
    # The seed's pipeline: neither time_field nor window variables.
    agg = (
        '[{"$group": {"_id": "$account", "value": {"$count": {}}}},'
        ' {"$addFields": {"customer": {"$toString": "$_id"}}}, {"$project": {"_id": 0}}]'
    )
    spec = load(write_collector, collector(mongo_uri, shop, agg))
    assert query_shape(spec).kind == "snapshot"
    with pytest.raises(SnapshotWindowError, match="snapshot"):
        values(spec, "2025-10-24")
    now = datetime(2025, 10, 25, 0, 20, tzinfo=UTC)  # the 24th has just closed
    assert values(spec, "2025-10-24", now=now) == Counter(d["account"] for d in ORDERS)


@pytest.mark.parametrize("stage", ["$out", "$merge"])
def test_writing_stages_are_refused_at_validation(
    mongo_uri: str, write_collector: Write, stage: str
) -> None:
    agg = [{"$match": {}}, {"$facet": {"a": [{stage: "copy"}]}}]
    with pytest.raises(SpecError, match=rf"\{stage} writes to the database"):
        load(write_collector, collector(mongo_uri, "shop", agg))


def test_nested_document_is_an_error_naming_the_field(
    mongo_uri: str, shop: str, write_collector: Write
) -> None:
    agg = [
        {"$group": {"_id": "$meta", "value": {"$sum": 1}}},
        {"$project": {"_id": 0, "meta": "$_id", "value": 1}},
    ]
    spec = load(write_collector, collector(mongo_uri, shop, agg, time_field="created_at"))
    with pytest.raises(CollectorError, match=r"field 'meta' .* is a nested document"):
        values(spec, "2025-10-24")


def test_missing_value_names_the_fields(mongo_uri: str, shop: str, write_collector: Write) -> None:
    agg = [
        {"$group": {"_id": "$account", "total": {"$sum": 1}}},
        {"$project": {"_id": 0, "customer": "$_id", "total": 1}},
    ]
    spec = load(write_collector, collector(mongo_uri, shop, agg, time_field="created_at"))
    with pytest.raises(
        CollectorError, match=r"no 'value' column \(columns: (customer, total|total, customer)\)"
    ):
        values(spec, "2025-10-24")


def test_id_is_dropped_unless_named(mongo_uri: str, shop: str, write_collector: Write) -> None:
    grouped = [{"$group": {"_id": "$account", "value": {"$sum": 1}}}]
    spec = load(write_collector, collector(mongo_uri, shop, grouped, time_field="created_at"))
    with pytest.raises(CollectorError, match=r"differ only in _id .* which is dropped"):
        values(spec, "2025-10-24")
    named = [*grouped, {"$addFields": {"_id": "$_id"}}]
    spec = load(write_collector, collector(mongo_uri, shop, named, time_field="created_at"))
    (result,) = collect(spec, [window_for_key(spec, "2025-10-24")], now=LATER)
    assert sorted(t["_id"] for t in to_pandas(result.records)["tags"]) == sorted(ACCOUNTS)
    # A single group (_id: null) needs no naming: the null _id is simply dropped.
    total = [{"$group": {"_id": None, "value": {"$sum": 1}}}]
    spec = load(write_collector, collector(mongo_uri, shop, total, time_field="created_at"))
    window = window_for_key(spec, "2025-10-24")
    count = sum(1 for d in ORDERS if window.start <= d["created_at"] < window.end)
    assert values(spec, "2025-10-24") == {"": count}


def test_server_down_fails_fast_and_redacted(write_collector: Write) -> None:
    port = free_port()  # nothing listens there
    uri = f"mongodb://ana:hunter2@127.0.0.1:{port}/?serverSelectionTimeoutMS=300"
    spec = load(write_collector, collector(uri, "shop", BY_CUSTOMER, time_field="created_at"))
    started = time.monotonic()
    with pytest.raises(SourceError) as caught:
        values(spec, "2025-10-24")
    assert time.monotonic() - started < 5
    message = str(caught.value)
    assert "hunter2" not in message
    assert f"mongodb://ana:***@127.0.0.1:{port}" in message
    assert "no reachable server" in message
    assert "Connection refused" in message
    assert caught.value.transient


def test_client_defaults_and_uri_overrides(mongo_uri: str) -> None:
    config = MongoConfig(uri=mongo_uri, database="d", collection="c", agg=[], max_time_ms=5000)
    options = MongoSource(config).client_options()
    assert options["readPreference"] == "secondaryPreferred"
    assert options["tz_aware"] is True
    assert options["serverSelectionTimeoutMS"] == 10_000
    uri = f"{mongo_uri}&readPreference=primary&serverSelectionTimeoutMS=50"
    config = MongoConfig(uri=uri, database="d", collection="c", agg=[])
    options = MongoSource(config).client_options()
    assert "readPreference" not in options
    assert "serverSelectionTimeoutMS" not in options
    with MongoSource(
        MongoConfig(uri=mongo_uri, database="d", collection="c", agg=[])
    ).session() as s:
        assert s.client.read_preference.mongos_mode == "secondaryPreferred"
        assert s.client.options.codec_options.tz_aware


def test_describe_redacts_and_shows_the_window_match() -> None:
    config = MongoConfig(
        uri="mongodb://ana:hunter2@db.example:27017/shop",
        database="shop",
        collection="orders",
        agg=BY_CUSTOMER,
        time_field="created_at",
    )
    facts = MongoSource(config).describe()
    assert facts["uri"] == "mongodb://ana:***@db.example:27017/shop"
    stages = json.loads(facts["query"])
    assert stages[0] == {
        "$match": {"created_at": {"$gte": "<window_start>", "$lt": "<window_end>"}}
    }
    assert stages[1:] == BY_CUSTOMER


def test_kind_is_known_without_the_driver() -> None:
    code = (
        "import sys\n"
        "from signals_dagster.cli import main\n"
        "try:\n    main(['validate', 'examples'])\nexcept SystemExit as exc:\n"
        "    assert exc.code in (0, None), exc.code\n"
        "from signals_dagster.spec.loader import load_collectors\n"
        "from signals_dagster.sources.base import query_shape\n"
        "print(sorted(query_shape(s).kind for s in load_collectors(['examples']).values()))\n"
        "print([m for m in ('pymongo', 'bson', 'requests', 'duckdb') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stdout + out.stderr
    kinds, imported = out.stdout.strip().splitlines()[-2:]
    assert "windowed" in kinds
    assert imported == "[]"


def test_dagster_materialises_a_mongodb_partition(
    mongo_uri: str, shop: str, tmp_path: Path
) -> None:
    text = collector(
        mongo_uri,
        shop,
        BY_CUSTOMER,
        time_field="created_at",
        timezone="Europe/Berlin",
        sink=file_sink(tmp_path / "audit.jsonl"),
    )
    records, meta = materialise_partition(text, tmp_path, "2025-10-26", "shop_mongo_revenue")
    start = datetime(2025, 10, 26, tzinfo=BERLIN)
    expected = sums(start, datetime(2025, 10, 27, tzinfo=BERLIN))
    assert {r["tags"]["customer"]: r["value"] for r in records} == pytest.approx(expected)
    assert {r["grain_datetime"] for r in records} == {"2025-10-25T22:00:00Z"}
    assert meta["record_count"] == 3
    assert meta["value_sum"] == pytest.approx(sum(expected.values()))


def test_the_example_collector_runs(mongo_uri: str, shop: str) -> None:
    env = {"SIGNALS_MONGO_URI": mongo_uri, "SIGNALS_MONGO_DATABASE": shop}
    spec = load_file(ROOT / "examples" / "mongodb_orders_revenue_daily.yaml", env=env)
    assert query_shape(spec) == QueryShape("windowed", True)
    windows = [window_for_key(spec, day) for day in ("2025-10-25", "2025-10-26", "2025-10-27")]
    for result in collect(spec, windows, now=LATER):
        got = {
            t["customer"]: v
            for t, v in zip(
                to_pandas(result.records)["tags"], to_pandas(result.records)["value"], strict=True
            )
        }
        assert got == pytest.approx(sums(result.window.start, result.window.end))


def test_max_time_ms_is_enforced(mongo_uri: str, shop: str, write_collector: Write) -> None:
    agg = [
        {"$lookup": {"from": "orders", "pipeline": [], "as": "all"}},
        {"$group": {"_id": None, "value": {"$sum": {"$size": "$all"}}}},
    ]
    text = collector(mongo_uri, shop, agg, time_field="created_at", extra="max_time_ms: 1")
    spec = load(write_collector, text)
    with pytest.raises(
        SourceError, match=r"exceeded max_time_ms=1 \(.*exceeded time limit"
    ) as caught:
        values(spec, "2025-10-24")
    assert not caught.value.transient


def test_a_server_refusing_let_gets_a_clear_message() -> None:
    # What MongoDB 4.4 answers to an aggregate with `let` (secantusdb supports it, so no server
    # here refuses it: the mapping of the server's error is checked directly).
    refusal = pymongo.errors.OperationFailure(
        "BSON field 'aggregate.let' is an unknown field.",
        code=40415,
        details={"errmsg": "BSON field 'aggregate.let' is an unknown field.", "code": 40415},
    )
    agg = [{"$match": {"$expr": {"$lt": ["$created_at", "$$window_end"]}}}]
    config = MongoConfig(uri="mongodb://ana:pw1@h/", database="d", collection="c", agg=agg)
    error = MongoSource(config).error(refusal)
    assert "does not support the aggregate `let` option (MongoDB >= 5.0)" in str(error)
    assert "use `time_field`" in str(error)
    assert "pw1" not in str(error)
