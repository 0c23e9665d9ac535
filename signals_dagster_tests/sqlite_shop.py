"""A tiny SQLite shop for tests of the Dagster layer and the CLI (no server needed)."""

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

START = datetime(2026, 2, 1, tzinfo=UTC)


def make_shop(path: Path, days: int = 10) -> Path:
    """Orders every 90 minutes from 2026-02-01 on; amount = 1 + minute-of-day / 60."""
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE orders (account TEXT, amount REAL, created_at TEXT)")
    rows = []
    for step in range(days * 16):
        moment = START + timedelta(minutes=90 * step)
        account = ["acme", "globex", "initech"][step % 3]
        rows.append(
            (
                account,
                1 + (moment.hour * 60 + moment.minute) / 60,
                moment.strftime("%Y-%m-%d %H:%M:%S"),
            )
        )
    db.executemany("INSERT INTO orders VALUES (?, ?, ?)", rows)
    db.commit()
    db.close()
    return path


def expected_sums(path: Path, day: str) -> dict[str, float]:
    """Per-account sums for one UTC day, computed by a direct query with literal bounds."""
    start = datetime.fromisoformat(day).replace(tzinfo=UTC)
    end = start + timedelta(days=1)
    db = sqlite3.connect(path)
    rows = db.execute(
        "SELECT account, SUM(amount) FROM orders WHERE created_at >= ? AND created_at < ? "
        "GROUP BY account",
        (start.strftime("%Y-%m-%d %H:%M:%S"), end.strftime("%Y-%m-%d %H:%M:%S")),
    ).fetchall()
    db.close()
    return {account: total for account, total in rows}


def collector_yaml(
    db: Path, audit: Path, name: str = "shop.revenue.daily", sql: str | None = None, extra: str = ""
) -> str:
    """A daily windowed collector over the shop with a file sink."""
    sql = sql or (
        "SELECT account AS customer, SUM(amount) AS value FROM orders "
        "WHERE created_at >= :window_start AND created_at < :window_end GROUP BY account"
    )
    return f"""
name: {name}
description: Revenue per customer
owners: [team:growth, ana@example.com]
group: shop
metric:
  name: shop.revenue
  type: GAUGE
  tags:
    - key: env
      value: test
partitions:
  start: '2026-02-01'
source:
  type: sqlite
  config:
    uri: 'sqlite:///{db}'
    sql: "{sql}"
sinks:
  audit:
    type: file
    config:
      path: '{audit}'
{extra}"""
