"""Shared fixtures: throwaway databases on the machine's real Postgres and MariaDB."""

import os
import textwrap
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pymysql
import pytest

# Each real server has its own fixture module (started lazily, once per session, when a test asks).
pytest_plugins = [
    "signals_dagster_tests.servers.kafka",
    "signals_dagster_tests.servers.s3",
    "signals_dagster_tests.servers.mongo",
    "signals_dagster_tests.servers.prometheus",
    "signals_dagster_tests.servers.http",
    "signals_dagster_tests.servers.browser",
]

PG_ADMIN = os.environ.get("SIGNALS_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
MYSQL_HOST = os.environ.get("SIGNALS_TEST_MYSQL_HOST", "127.0.0.1")


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A fresh Postgres database for this test session (dropped at the end)."""
    name = f"signals_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield PG_ADMIN.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def mysql_url() -> Iterator[str]:
    """A fresh MariaDB/MySQL database for this test session (dropped at the end)."""
    name = f"signals_test_{uuid.uuid4().hex[:10]}"
    conn = pymysql.connect(host=MYSQL_HOST, user="root", password="", autocommit=True)
    try:
        with conn.cursor() as cur:
            cur.execute(f"CREATE DATABASE `{name}`")
        yield f"mysql://root@{MYSQL_HOST}:3306/{name}"
    finally:
        with conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
        conn.close()


@pytest.fixture
def write_collector(tmp_path: Path) -> Callable[..., Path]:
    """Write a collector YAML (dedented) into tmp_path and return its path."""

    def write(text: str, name: str = "collector.yaml") -> Path:
        path = tmp_path / name
        path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
        return path

    return write


@pytest.fixture(autouse=True)
def _isolated_secrets() -> Iterator[None]:
    """Values a test registered as secrets (by loading a collector) do not mask another
    test's output."""
    from signals_dagster import redact

    before = set(redact._registered)
    yield
    redact._registered.clear()
    redact._registered.update(before)


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests never see a developer's collector folder or debug settings."""
    for var in ("SIGNALS_COLLECTORS_DIR", "SIGNALS_DEBUG", "DAGSTER_HOME", "SIGNALS_POLICIES_DIR"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture(autouse=True, scope="session")
def _file_sink_roots(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """File sinks of tests write under pytest's temporary folders (and /tmp: the seed corpus's
    /tmp/log, fixed paths of load-only tests): the file sink roots besides the working directory
    (signals_dagster/confine.py). Tests of the roots themselves set their own."""
    roots = [str(tmp_path_factory.getbasetemp()), "/tmp"]
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SIGNALS_DATA_DIR", os.pathsep.join(roots))
        yield
