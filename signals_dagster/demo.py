"""The embedded demo: a small shop database in SQLite, the same bytes every time."""

import argparse
import random
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

DEFAULT_PATH = ".demo/shop.sqlite"
START = datetime(2026, 6, 1, tzinfo=UTC)
DAYS = 183  # 2026-06-01 .. 2026-11-30
COUNTRIES = ["de", "fr", "us", "jp", "br"]
PLANS = ["free", "pro", "team"]
STATUSES = ["paid", "paid", "paid", "refunded", "pending"]
PAGES = ["/", "/pricing", "/docs", "/blog", "/signup"]
SPIKE_DAY = datetime(2026, 6, 24, tzinfo=UTC)  # within the Berlin day 2026-06-24
SPIKE_EVENTS = 900


def _ts(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S")


def build(path: str = DEFAULT_PATH, seed: int = 7) -> Path:
    """(Re)create the demo database; deterministic for a given seed."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(".tmp")
    tmp.unlink(missing_ok=True)
    rng = random.Random(seed)
    db = sqlite3.connect(tmp)
    db.executescript(
        """
        CREATE TABLE users (id INTEGER PRIMARY KEY, plan TEXT NOT NULL, country TEXT NOT NULL,
                            created_at TEXT NOT NULL);
        CREATE TABLE orders (id INTEGER PRIMARY KEY, user_id INTEGER NOT NULL,
                             country TEXT NOT NULL, status TEXT NOT NULL, amount REAL NOT NULL,
                             created_at TEXT NOT NULL);
        CREATE TABLE events (id INTEGER PRIMARY KEY, user_id INTEGER NOT NULL, page TEXT NOT NULL,
                             created_at TEXT NOT NULL);
        CREATE TABLE sessions (id INTEGER PRIMARY KEY, user_id INTEGER NOT NULL,
                               started_at TEXT NOT NULL, ended_at TEXT);
        """
    )
    users: list[tuple[int, str, str, str]] = []
    orders: list[tuple[object, ...]] = []
    events: list[tuple[object, ...]] = []
    for day in range(DAYS):
        base = START + timedelta(days=day)
        for _ in range(rng.randint(5, 15)):
            created = base + timedelta(seconds=rng.randrange(86400))
            users.append((len(users) + 1, rng.choice(PLANS), rng.choice(COUNTRIES), _ts(created)))
        for _ in range(rng.randint(40, 80)):
            user = rng.choice(users)
            created = base + timedelta(seconds=rng.randrange(86400))
            amount = round(rng.uniform(5, 250), 2)
            orders.append(
                (len(orders) + 1, user[0], user[2], rng.choice(STATUSES), amount, _ts(created))
            )
        for _ in range(rng.randint(150, 300)):
            created = base + timedelta(seconds=rng.randrange(86400))
            events.append((len(events) + 1, rng.choice(users)[0], rng.choice(PAGES), _ts(created)))
    # One anomalous day: a launch on the Berlin day of SPIKE_DAY brings five times the usual
    # page views (the pageviews collector's `anomaly` check warns about it after a backfill).
    spike = random.Random(seed + 1)
    for _ in range(SPIKE_EVENTS):
        created = SPIKE_DAY + timedelta(seconds=spike.randrange(6 * 3600, 20 * 3600))
        events.append((len(events) + 1, spike.choice(users)[0], "/launch", _ts(created)))
    sessions = [
        (
            i + 1,
            rng.choice(users)[0],
            _ts(START + timedelta(minutes=i * 7)),
            None if rng.random() < 0.1 else _ts(START + timedelta(minutes=i * 7 + 30)),
        )
        for i in range(2000)
    ]
    db.executemany("INSERT INTO users VALUES (?, ?, ?, ?)", users)
    db.executemany("INSERT INTO orders VALUES (?, ?, ?, ?, ?, ?)", orders)
    db.executemany("INSERT INTO events VALUES (?, ?, ?, ?)", events)
    db.executemany("INSERT INTO sessions VALUES (?, ?, ?, ?)", sessions)
    db.executescript(
        "CREATE INDEX orders_created ON orders(created_at);"
        "CREATE INDEX events_created ON events(created_at);"
        "CREATE INDEX users_created ON users(created_at);"
    )
    db.commit()
    db.close()
    tmp.replace(target)
    return target


def main() -> None:
    """`python -m signals_dagster.demo [PATH]`."""
    parser = argparse.ArgumentParser(description="Create the demo shop database.")
    parser.add_argument("path", nargs="?", default=DEFAULT_PATH)
    args = parser.parse_args()
    print(f"demo database: {build(args.path)}")


if __name__ == "__main__":
    main()
