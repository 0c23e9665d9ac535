"""Session fixture for a real MongoDB-wire-protocol server: secantusdb (see TEST-SERVERS.md)."""

import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from signals_dagster_tests.servers.common import free_port, stop, wait_ready


def _binary() -> str:
    local = Path(sys.executable).parent / "secantusd-py"
    found = str(local) if local.exists() else shutil.which("secantusd-py")
    if not found:
        pytest.fail("secantusd-py not found: install the dev extras (pip install -e '.[dev]')")
    return found


@pytest.fixture(scope="session")
def mongo_uri(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URI of an in-memory secantusdb server on a free loopback port (one per test session)."""
    import pymongo

    folder = tmp_path_factory.mktemp("mongo")
    log = folder / "secantusd.log"
    port = free_port()
    uri = f"mongodb://127.0.0.1:{port}/?directConnection=true"
    command = [_binary(), "--host", "127.0.0.1", "--port", str(port)]
    command += ["--storage-path", ":memory:", "--log-level", "WARNING"]
    with log.open("wb") as out:
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)

    def ready() -> bool:
        with pymongo.MongoClient(uri, serverSelectionTimeoutMS=500) as client:
            client.admin.command("ping")
        return True

    try:
        wait_ready(proc, ready, log)
        yield uri
    finally:
        stop(proc)
