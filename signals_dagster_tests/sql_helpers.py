"""Helpers for the SQL source tests: collector specs, deterministic data, expected aggregates."""

import random
import textwrap
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from itertools import count
from pathlib import Path
from zoneinfo import ZoneInfo

from signals_dagster.collect import Collected, collect
from signals_dagster.orchestration.partitions import current_window, window_for_key
from signals_dagster.records import to_pandas
from signals_dagster.spec.loader import load_file
from signals_dagster.spec.models import CollectorSpec

# A fixed "now" after all test data (and with sub-second digits for the timestamp format).
NOW = datetime(2026, 11, 2, 12, 0, 3, 120456, tzinfo=UTC)
BERLIN = ZoneInfo("Europe/Berlin")
ACCOUNTS = ("acme", "apex", "bolt", "crest", "dyna")
ORDERS_START = datetime(2026, 2, 1, tzinfo=UTC)
ORDER_DAYS = 20
EDGE_MOMENT = datetime(2026, 2, 5, tzinfo=UTC)  # the only 'edge' order: exactly at a midnight
DST_DAYS = ("2026-03-28", "2026-03-29", "2026-03-30", "2026-10-24", "2026-10-25", "2026-10-26")
PAGES = ("home", "cart", "pay")
_files = count()

Order = tuple[datetime, str, Decimal]
Event = tuple[datetime, str]


def make_spec(
    write_collector: Callable[..., Path],
    *,
    type_: str,
    uri: str,
    sql: str,
    timeout: str = "10s",
    timezone: str = "UTC",
    tags: dict[str, str] | None = None,
    name: str = "sqlt.metric",
) -> CollectorSpec:
    """Write a collector file (partitions start before every test datum) and load it."""
    lines = [
        f"name: {name}",
        "metric:",
        f"  name: {name}",
        "  type: GAUGE",
        "  grain: 24h",
    ]
    if tags:
        lines.append("  tags:")
        for key, value in tags.items():
            lines += [f"    - key: {key}", f"      value: {value}"]
    lines += [
        "partitions:",
        "  start: '2026-01-01'",
        f"  timezone: {timezone}",
        "source:",
        f"  type: {type_}",
        "  config:",
        f"    uri: '{uri}'",
        f"    timeout: {timeout}",
        "    sql: |",
        textwrap.indent(textwrap.dedent(sql).strip(), "      "),
        "sinks:",
        "  console: {type: console}",
    ]
    return load_file(write_collector("\n".join(lines) + "\n", name=f"c{next(_files)}.yaml"))


def run(spec: CollectorSpec, *keys: str, now: datetime = NOW) -> list[Collected]:
    """Collect the given partitions (the current window when none) in one session."""
    windows = [window_for_key(spec, k) for k in keys] or [current_window(spec, now)]
    return collect(spec, windows, now=now)


def by_tag(collected: Collected, tag: str) -> dict[str, float]:
    """{tag value: value} of one window's records."""
    return {
        tags[tag]: value
        for tags, value in zip(
            to_pandas(collected.records)["tags"], to_pandas(collected.records)["value"], strict=True
        )
    }


def make_orders(seed: int = 20260201) -> list[Order]:
    """~3000 orders at random whole seconds over 20 days, plus rows exactly at every midnight,
    one second before every midnight, and one 'edge' order exactly at 2026-02-05T00:00Z."""
    rng = random.Random(seed)
    rows: list[Order] = []
    for _ in range(3000):
        moment = ORDERS_START + timedelta(seconds=rng.randrange(ORDER_DAYS * 86400))
        rows.append((moment, rng.choice(ACCOUNTS), Decimal(rng.randrange(100, 100_000)) / 100))
    for day in range(ORDER_DAYS + 1):
        midnight = ORDERS_START + timedelta(days=day)
        rows.append((midnight, ACCOUNTS[day % len(ACCOUNTS)], Decimal("10.01")))
        rows.append((midnight - timedelta(seconds=1), ACCOUNTS[-1 - day % 3], Decimal("3.30")))
    rows.append((EDGE_MOMENT, "edge", Decimal("7.00")))
    return rows


def make_events(seed: int = 20260329) -> list[Event]:
    """Page views around both 2026 Berlin DST changes, including exact local midnights and the
    hours that are skipped (March) or repeated (October) in local time."""
    rng = random.Random(seed)
    rows: list[Event] = []
    for first in (datetime(2026, 3, 27, tzinfo=UTC), datetime(2026, 10, 23, tzinfo=UTC)):
        for _ in range(600):
            rows.append((first + timedelta(seconds=rng.randrange(5 * 86400)), rng.choice(PAGES)))
        for day in range(6):
            local_midnight = datetime.combine(
                (first + timedelta(days=day)).date(), datetime.min.time(), BERLIN
            )
            rows.append((local_midnight.astimezone(UTC), PAGES[day % 3]))
    for moment in (
        "2026-03-29T01:00:00Z",
        "2026-03-29T01:30:00Z",
        "2026-10-25T00:30:00Z",
        "2026-10-25T01:30:00Z",
    ):  # 02:00/02:30 CET→CEST, 02:30 CEST and 02:30 CET
        rows.append((datetime.fromisoformat(moment), "home"))
    return rows


def local_day(day: str, tz: ZoneInfo = BERLIN) -> tuple[datetime, datetime]:
    """[local midnight, next local midnight) of a calendar day, computed without Dagster."""
    start = datetime.combine(datetime.fromisoformat(day).date(), datetime.min.time(), tz)
    end = datetime.combine(start.date() + timedelta(days=1), datetime.min.time(), tz)
    return start, end


def utc_day(day: str) -> tuple[datetime, datetime]:
    """[midnight, next midnight) of a UTC day."""
    start = datetime.fromisoformat(day).replace(tzinfo=UTC)
    return start, start + timedelta(days=1)


def sums(rows: Iterable[Order], start: datetime, end: datetime) -> dict[str, float]:
    """Per-account sum of amounts with start <= created_at < end, in Python."""
    totals: dict[str, Decimal] = defaultdict(Decimal)
    for moment, account, amount in rows:
        if start <= moment < end:
            totals[account] += amount
    return {account: float(total) for account, total in totals.items()}


def counts(rows: Iterable[tuple[datetime, str]], start: datetime, end: datetime) -> dict[str, int]:
    """Rows per key (account or page) with start <= moment < end, in Python."""
    return dict(Counter(key for moment, key, *_ in rows if start <= moment < end))
