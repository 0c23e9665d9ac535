"""Dagster's own commands, where a Dagster user types them.

- In the repository root of a clean checkout, with no DAGSTER_HOME and no DAGSTER_PG_*: `dagster
  definitions validate`, `dagster asset materialize`, `dagster dev` and `dg dev -w workspace.yaml`
  run on the embedded demo (the root's dagster.yaml has no storage: the production instance,
  deploy/dagster.yaml, is selected with DAGSTER_HOME — test_production_instance.py).
- In a scratch `dg` project (the layout `create-dagster project` makes): `dg list components`
  shows the SignalsCollectors component, `dg scaffold defs` makes a working defs.yaml and
  collector, `dg check defs` passes, then reports our located error for a broken collector, and
  `dg list defs --json` lists the asset, its checks, schedule and sensors, and `dg utils
  generate-component-schema` writes the defs.yaml schema editors use.

Every command runs in this test's Python environment (`dg` runs the project's code in its own
interpreter: no uv, no network)."""

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
DAY = "2026-06-03"


def clean_env(**extra: str) -> dict[str, str]:
    """The environment of a fresh shell: none of Dagster's or signals' variables."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DAGSTER_", "SIGNALS_", "PYTEST_")) and k != "PYTHONPATH"
    }
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env["COLUMNS"] = "200"  # dg's tables and errors are not cut at 80 characters
    return {**env, **extra}


def run(
    args: list[str], cwd: Path, env: dict[str, str], timeout: float = 240
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


def ok(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 0, f"{done.args}\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
    return done.stdout + done.stderr


def checkout_files() -> list[str]:
    """The files a clone of this work tree has: tracked or new, not ignored, not deleted."""
    done = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    )
    return [f for f in done.stdout.decode().split("\0") if f and (ROOT / f).is_file()]


@pytest.fixture(scope="module")
def checkout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A clean checkout of the repository (no .venv, .demo, .dagster_home), with the demo
    database built as `make dev` builds it."""
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("needs the repository's git metadata")
    where = tmp_path_factory.mktemp("checkout") / "signals"
    for name in checkout_files():
        target = where / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, target)
    assert not (where / ".dagster_home").exists()
    ok(run([sys.executable, "-m", "signals_dagster.demo"], where, clean_env()))
    assert (where / ".demo" / "shop.sqlite").is_file()
    return where


def no_temporary_home_left(folder: Path) -> None:
    assert not list(folder.glob(".tmp_dagster_home_*")), "a command left its temporary instance"


def test_root_dagster_yaml_needs_no_environment(checkout: Path) -> None:
    root = (checkout / "dagster.yaml").read_text()
    assert "DAGSTER_PG" not in root
    assert "storage:" not in root
    assert "DAGSTER_PG_HOST" in (checkout / "deploy" / "dagster.yaml").read_text()


def test_definitions_validate_in_the_root(checkout: Path) -> None:
    validate = [str(BIN / "dagster"), "definitions", "validate", "-w", "workspace.yaml"]
    out = ok(run(validate, checkout, clean_env()))
    assert "Validation successful for code location signals_dagster.definitions" in out
    assert "DAGSTER_PG" not in out
    no_temporary_home_left(checkout)


def test_dg_check_and_list_defs_in_the_root(checkout: Path) -> None:
    out = ok(run([str(BIN / "dg"), "check", "defs"], checkout, clean_env()))
    assert "All definitions loaded successfully." in out
    listed = ok(run([str(BIN / "dg"), "list", "defs", "--json"], checkout, clean_env()))
    assert "shop_orders_revenue_daily" in listed
    assert "DAGSTER_PG" not in out + listed
    no_temporary_home_left(checkout)


def test_asset_materialize_in_the_root(checkout: Path) -> None:
    audit = checkout / ".demo" / "audit.jsonl"
    before = len(audit.read_text().splitlines()) if audit.exists() else 0
    args = [str(BIN / "dagster"), "asset", "materialize", "-m", "signals_dagster.definitions"]
    args += ["--select", "shop_orders_revenue_daily", "--partition", DAY]
    out = ok(run(args, checkout, clean_env()))
    assert "RUN_SUCCESS" in out
    records = [json.loads(line) for line in audit.read_text().splitlines()[before:]]
    assert records
    assert {r["name"] for r in records} == {"shop.orders.revenue"}
    assert {r["grain_datetime"] for r in records} == {f"{DAY}T00:00:00Z"}
    no_temporary_home_left(checkout)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def graphql(port: int, query: str) -> Any:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/graphql",
        data=json.dumps({"query": query}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as answer:
        return json.loads(answer.read())


ASSETS_QUERY = """{ repositoriesOrError { ... on RepositoryConnection {
  nodes { name assetNodes { assetKey { path } } } } } }"""


@pytest.fixture
def serve(checkout: Path) -> Iterator[Callable[[list[str], Path], int]]:
    """Start a `dagster dev`-like command on a free port; wait for /server_info; stop it
    (Ctrl-C, as a user does) at the end."""
    started: list[subprocess.Popen[bytes]] = []

    def start(args: list[str], log: Path) -> int:
        port = free_port()
        with log.open("wb") as out:
            process = subprocess.Popen(
                [*args, "-h", "127.0.0.1", "-p", str(port)],
                cwd=checkout,
                env=clean_env(),
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: stopped whole at the end
            )
        started.append(process)
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            assert process.poll() is None, log.read_text()[-4000:]
            try:
                with urllib.request.urlopen(
                    f"http://127.0.0.1:{port}/server_info", timeout=5
                ) as answer:
                    info = json.loads(answer.read())
                    assert "dagster_webserver_version" in info
                    return port
            except OSError:
                time.sleep(0.5)
        pytest.fail(f"{args} did not answer in 180 s:\n{log.read_text()[-4000:]}")

    yield start
    for process in started:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(60)
        with contextlib.suppress(ProcessLookupError):  # its code servers, left to their heartbeat
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)


@pytest.mark.parametrize(
    "command",
    [["dagster", "dev"], ["dg", "dev", "-w", "workspace.yaml"]],
    ids=["dagster-dev", "dg-dev"],
)
def test_dev_server_in_the_root(
    checkout: Path, serve: Callable[[list[str], Path], int], tmp_path: Path, command: list[str]
) -> None:
    log = tmp_path / "dev.log"
    port = serve([str(BIN / command[0]), *command[1:]], log)
    answer = graphql(port, ASSETS_QUERY)
    [repo] = answer["data"]["repositoriesOrError"]["nodes"]
    keys = {"/".join(node["assetKey"]["path"]) for node in repo["assetNodes"]}
    assert {"shop_orders_revenue_daily", "shop_orders_revenue_weekly"} <= keys
    text = log.read_text()
    assert "DAGSTER_PG" not in text
    assert "Using temporary directory" in text  # embedded storage, no DAGSTER_HOME


# ---- a scratch dg project ---------------------------------------------------------------------

PYPROJECT = """\
[project]
name = "scratch"
version = "0.1.0"
requires-python = ">=3.11"
dependencies = ["dagster", "signals-dagster"]

[build-system]
requires = ["hatchling"]
build-backend = "hatchling.build"

[tool.dg]
directory_type = "project"

[tool.dg.project]
root_module = "scratch"
registry_modules = ["scratch.components.*"]
"""

DEFINITIONS = """\
from pathlib import Path

from dagster import definitions, load_from_defs_folder


@definitions
def defs():
    return load_from_defs_folder(path_within_project=Path(__file__).parent)
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A dg project as `create-dagster project scratch` lays it out (src/scratch/defs/)."""
    root = tmp_path / "scratch"
    package = root / "src" / "scratch"
    (package / "defs").mkdir(parents=True)
    (root / "pyproject.toml").write_text(PYPROJECT)
    (package / "__init__.py").write_text("")
    (package / "defs" / "__init__.py").write_text("")
    (package / "definitions.py").write_text(DEFINITIONS)
    return root


def test_dg_scaffolds_checks_and_lists_the_component(project: Path) -> None:
    dg = str(BIN / "dg")
    # The project's package importable, as installing the project makes it.
    env = clean_env(PYTHONPATH=str(project / "src"))

    listed = json.loads(run([dg, "list", "components", "--json"], project, env).stdout)
    [entry] = [c for c in listed["items"] if c["key"] == "signals_dagster.SignalsCollectors"]
    assert "collector" in entry["summary"]

    out = ok(
        run([dg, "scaffold", "defs", "signals_dagster.SignalsCollectors", "metrics"], project, env)
    )
    folder = project / "src" / "scratch" / "defs" / "metrics"
    assert f"Creating defs at {folder}" in out
    assert (
        (folder / "defs.yaml").read_text().startswith("type: signals_dagster.SignalsCollectors\n")
    )
    example = folder / "collectors" / "example.yaml"
    assert example.is_file()

    out = ok(run([dg, "check", "defs"], project, env))
    assert "All definitions loaded successfully." in out

    listed = json.loads(run([dg, "list", "defs", "--json"], project, env).stdout)
    assert [a["asset_key"] for a in listed["assets"]] == ["metrics_example_daily"]
    assert sorted(c["name"] for c in listed["asset_checks"]) == ["freshness", "range"]
    assert [s["name"] for s in listed["schedules"]] == ["metrics_example_daily_schedule"]
    assert sorted(s["name"] for s in listed["sensors"]) == [
        "metrics_example_daily_freshness",
        "signals_run_failures",
    ]
    assert [j["name"] for j in listed["jobs"]] == ["metrics_example_daily_job"]

    # Editors: the JSON schema of every component's defs.yaml (the README's command).
    ok(run([dg, "utils", "generate-component-schema"], project, env))
    schema = json.loads((project / ".dg" / "schema.json").read_text())
    assert {"$ref": "#/$defs/SignalsCollectors"} in schema["anyOf"]
    attributes = schema["$defs"]["SignalsCollectorsModel"]
    assert set(attributes["properties"]) == {"collectors_dir", "settings", "policies_dir"}
    assert attributes["additionalProperties"] is False

    example.write_text(example.read_text().replace("  grain: 24h\n", "  grain: 25h\n"))
    broken = run([dg, "check", "defs"], project, env)
    assert broken.returncode == 1, broken.stdout + broken.stderr
    assert f"{example}:10: metric.grain: unsupported grain '25h'" in broken.stdout + broken.stderr
