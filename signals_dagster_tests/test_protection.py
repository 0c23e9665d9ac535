"""Protecting sources: one Dagster pool per database, retries only for transient faults."""

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest

from signals_dagster.catalog import load_catalog
from signals_dagster.orchestration.factory import build_definitions
from signals_dagster_tests.servers.common import free_port


def defs_with(tmp_path: Path, uri: str, sql: str, extra: str = "") -> dg.Definitions:
    folder = tmp_path / "c"
    folder.mkdir(exist_ok=True)
    (folder / "c.yaml").write_text(f"""
name: guarded
metric: {{name: guarded, type: COUNT}}
partitions: {{start: '2026-01-01'}}
retry_delay: 1s
source:
  type: postgres
  config: {{uri: '{uri}', sql: "{sql}"}}
{extra}
sinks:
  console: {{type: console}}
""")
    return build_definitions(load_catalog(str(folder)), str(folder))


SQL = "SELECT COUNT(*) AS value FROM pg_class WHERE :window_start < :window_end"


def test_pool_defaults_to_the_database_and_can_be_named(tmp_path: Path) -> None:
    defs = defs_with(tmp_path, "postgresql://u:pw@db.internal:5433/shop", SQL)
    (asset,) = list(defs.assets or [])
    assert asset.op.pool == "postgres:db.internal:5433/shop"
    (tmp_path / "c" / "c.yaml").write_text(
        (tmp_path / "c" / "c.yaml")
        .read_text()
        .replace("  type: postgres", "  type: postgres\n  pool: shop-db")
    )
    defs = build_definitions(load_catalog(str(tmp_path / "c")), str(tmp_path / "c"))
    (asset,) = list(defs.assets or [])
    assert asset.op.pool == "shop-db"


@pytest.fixture
def late_proxy() -> Iterator[int]:
    """A TCP port that refuses connections for 1.5 s, then forwards to the real Postgres."""
    port = free_port()
    stop = threading.Event()

    def pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            dst.close()

    def serve() -> None:
        time.sleep(1.5)
        with socket.create_server(("127.0.0.1", port)) as server:
            server.settimeout(0.2)
            while not stop.is_set():
                try:
                    client, _ = server.accept()
                except TimeoutError:
                    continue
                upstream = socket.create_connection(("127.0.0.1", 5432))
                threading.Thread(target=pipe, args=(client, upstream), daemon=True).start()
                threading.Thread(target=pipe, args=(upstream, client), daemon=True).start()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield port
    stop.set()
    thread.join(5)


def _retries(result: dg.ExecuteInProcessResult) -> int:
    return sum(
        1 for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_UP_FOR_RETRY
    )


def test_transient_connection_failure_is_retried(tmp_path: Path, late_proxy: int) -> None:
    defs = defs_with(
        tmp_path, f"postgresql://postgres@127.0.0.1:{late_proxy}/postgres", SQL, "retries: 4"
    )
    result = defs.resolve_job_def("guarded_job").execute_in_process(
        instance=dg.DagsterInstance.ephemeral(), partition_key="2026-02-10"
    )
    assert result.success
    assert _retries(result) >= 1


def test_permanent_errors_are_not_retried(tmp_path: Path) -> None:
    sql = "SELECT COUNT(*) AS value FROM no_such_table WHERE :window_start < :window_end"
    defs = defs_with(tmp_path, "postgresql://postgres@127.0.0.1:5432/postgres", sql, "retries: 3")
    result = defs.resolve_job_def("guarded_job").execute_in_process(
        instance=dg.DagsterInstance.ephemeral(), partition_key="2026-02-10", raise_on_error=False
    )
    assert not result.success
    assert _retries(result) == 0
    error = result.get_step_failure_events()[0].step_failure_data.error
    assert error is not None
    assert "no_such_table" in error.message
