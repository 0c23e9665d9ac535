"""Helpers the benchmarks in this folder share (not a benchmark itself).

Scratch directories, a throwaway database on the benchmark Postgres server (127.0.0.1:5432,
user postgres) with an `orders` table over 2025, the YAML of a daily postgres collector with a
file sink, and timing helpers. The scripts import it as `from common import ...`: a script's
own folder is first on sys.path.
"""

import contextlib
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import ParamSpec, TypeVar

import psycopg

HOST, PORT, USER = "127.0.0.1", 5432, "postgres"
ACCOUNTS = 50

COLLECTOR_YAML = """\
name: {name}
description: {description}
metric:
  name: {metric}
  type: GAUGE
  grain: 24h
  unit: USD
  tags:
    - key: env
      value: bench
partitions:
  start: '{start}'
source:
  type: postgres
  config:
    uri: 'postgresql://{user}@{host}:{port}/{database}'
    sql: |
      {sql}
sinks:
  audit:
    type: file
    config:
      path: '{audit}'
"""

P = ParamSpec("P")
T = TypeVar("T")


def dsn(database: str) -> str:
    """libpq connection string for a database of the benchmark server."""
    return f"host={HOST} port={PORT} user={USER} dbname={database}"


def collector_yaml(
    *,
    name: str,
    description: str,
    metric: str,
    start: str,
    database: str,
    sql: str,
    audit: Path,
    extra: str = "",
) -> str:
    """A daily GAUGE collector reading `database` of the benchmark server with `sql`, one file
    sink `audit` (`extra`: more top-level YAML, e.g. checks)."""
    return extra + COLLECTOR_YAML.format(
        name=name,
        description=description,
        metric=metric,
        start=start,
        user=USER,
        host=HOST,
        port=PORT,
        database=database,
        sql=sql,
        audit=audit,
    )


@contextlib.contextmanager
def scratch_dir(prefix: str) -> Iterator[Path]:
    """A temporary directory, removed with everything in it on the way out."""
    tmp = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@contextlib.contextmanager
def throwaway_database(prefix: str) -> Iterator[str]:
    """A new database `<prefix>_<pid>` on the benchmark server, dropped (FORCE) on the way out."""
    database = f"{prefix}_{os.getpid()}"
    admin = psycopg.connect(dsn("postgres"), autocommit=True)
    admin.execute(f'CREATE DATABASE "{database}"')
    try:
        yield database
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        admin.close()


def load_orders(database: str, rows: int, *, index: bool = False) -> None:
    """orders(id, created_at, account, status, amount): evenly over 2025, ACCOUNTS accounts;
    with `index`, an index on created_at (orders_created_at) before the VACUUM ANALYZE."""
    with psycopg.connect(dsn(database), autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE orders (id bigint NOT NULL, created_at timestamptz NOT NULL, "
            "account text NOT NULL, status text NOT NULL, amount numeric(12, 2) NOT NULL)"
        )
        conn.execute(
            "INSERT INTO orders SELECT i, "
            "timestamptz '2025-01-01 00:00:00+00' + (i::float8 / %(n)s * 365) * interval '1 day', "
            "'acct_' || lpad(((i * 7919) %% %(accounts)s)::text, 2, '0'), "
            "(ARRAY['paid', 'paid', 'paid', 'refunded', 'pending'])[1 + i %% 5], "
            "((i * 104729) %% 100000)::numeric / 100 "
            "FROM generate_series(0::bigint, %(last)s::bigint) AS i",
            {"n": rows, "accounts": ACCOUNTS, "last": rows - 1},
        )
        if index:
            conn.execute("CREATE INDEX orders_created_at ON orders (created_at)")
        conn.execute("VACUUM ANALYZE orders")


@contextlib.contextmanager
def discard_stderr() -> Iterator[None]:
    """Dagster's default console logger still formats every event; its output is dropped."""
    saved = sys.stderr
    with open(os.devnull, "w") as devnull:
        sys.stderr = devnull
        try:
            yield
        finally:
            sys.stderr = saved


def timed(fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> tuple[float, T]:
    """Seconds one call fn(*args, **kwargs) takes, and what it returned."""
    started = time.perf_counter()
    result = fn(*args, **kwargs)
    return time.perf_counter() - started, result


def rotated(names: Sequence[T], shift: int) -> list[T]:
    """names rotated left by `shift` (modulo their number): round i of an interleaved
    measurement runs the methods in the order rotated(names, i)."""
    shift %= len(names)
    return [*names[shift:], *names[:shift]]


def medians(times: Mapping[str, Sequence[float]]) -> dict[str, float]:
    """Median seconds per method."""
    return {name: statistics.median(values) for name, values in times.items()}
