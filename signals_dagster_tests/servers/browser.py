"""The demo's Dagster UI in a real browser: `dagster dev` on a free port, Playwright driving
Debian's chromium (installed by `make test` when missing, like Prometheus; Playwright's own
browser downloads are not used).

`demo_webserver` starts `dagster dev -w workspace.yaml` from the repo root on a throwaway
instance (a copy of dev/dagster.yaml), demo database and audit file, and stops its whole process
group afterwards. `browser_page` is a fresh headless page; `shot(name)` keeps a screenshot in the
test's artifacts folder, signals_dagster_tests/artifacts/<test>/ (a failing test also leaves
failure.png and a Playwright trace.zip there: `playwright show-trace trace.zip`).
"""

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import requests

from signals_dagster.demo import build as build_demo
from signals_dagster_tests.servers.common import free_port, log_tail, wait_ready

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "signals_dagster_tests" / "artifacts"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_HINT = (
    "`make test` installs it when missing (make servers: "
    "apt-get install -y --no-install-recommends chromium)"
)
VIEWPORT = {"width": 1400, "height": 900}
UI_TIMEOUT_MS = 20_000  # one UI step on a busy machine (the run itself is waited for longer)


@dataclass(frozen=True)
class DemoWebserver:
    """A running `dagster dev` on the demo collectors: URL, instance folder, demo files, log."""

    url: str
    home: Path
    db: Path
    audit: Path
    log: Path

    def graphql(self, query: str, **variables: Any) -> dict[str, Any]:
        """The `data` of a GraphQL answer (fails the test on GraphQL errors)."""
        answer = requests.post(
            f"{self.url}/graphql", json={"query": query, "variables": variables}, timeout=30
        )
        answer.raise_for_status()
        body = answer.json()
        if body.get("errors"):
            pytest.fail(f"GraphQL errors: {body['errors']}")
        return dict(body["data"])

    def tail(self) -> str:
        """The end of the server's log (for failure messages)."""
        return log_tail(self.log, 60)


_LOCATIONS = """
{ workspaceOrError { __typename ... on Workspace { locationEntries {
    name loadStatus locationOrLoadError { __typename ... on PythonError { message } } } } } }
"""


def _location_loaded(url: str) -> bool:
    """True once the code location is loaded; fails at once when it failed to load."""
    answer = requests.post(f"{url}/graphql", json={"query": _LOCATIONS}, timeout=5)
    entries = answer.json()["data"]["workspaceOrError"].get("locationEntries") or []
    if not entries or any(e["loadStatus"] != "LOADED" for e in entries):
        return False
    broken = [e for e in entries if e["locationOrLoadError"]["__typename"] == "PythonError"]
    if broken:
        messages = "\n".join(e["locationOrLoadError"]["message"] for e in broken)
        pytest.fail(f"the code location did not load:\n{messages}")
    return True


def stop_group(proc: subprocess.Popen[bytes], grace: float = 10) -> None:
    """Ctrl-C for the whole process group (how `dagster dev` stops its webserver, daemon, code
    servers and run workers), then SIGKILL for whatever of the group is left."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGINT)
            proc.wait(grace)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            pass
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(10)


@pytest.fixture
def demo_webserver(tmp_path: Path) -> Iterator[DemoWebserver]:
    """`dagster dev -w workspace.yaml` (what `make dev` runs) on a fresh instance and demo DB."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(REPO / "dev" / "dagster.yaml", home / "dagster.yaml")
    db, audit, log = tmp_path / "shop.sqlite", tmp_path / "audit.jsonl", tmp_path / "dagster.log"
    build_demo(str(db))
    port = free_port()
    roots = [p for p in os.environ.get("SIGNALS_DATA_DIR", "").split(os.pathsep) if p]
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "SIGNALS_COLLECTORS_DIR": str(REPO / "collectors"),
        "SIGNALS_DEMO_DB": str(db),
        "SIGNALS_DEMO_AUDIT": str(audit),
        "SIGNALS_DATA_DIR": os.pathsep.join([*roots, str(tmp_path)]),  # the audit file's folder
    }
    command = [sys.executable, "-m", "dagster", "dev", "-w", "workspace.yaml"]
    command += ["-h", "127.0.0.1", "-p", str(port)]
    with log.open("wb") as out:
        proc = subprocess.Popen(
            command,
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # its own process group: stopped as a whole
        )
    server = DemoWebserver(f"http://127.0.0.1:{port}", home, db, audit, log)
    try:
        wait_ready(proc, lambda: _location_loaded(server.url), log, timeout=90)
        yield server
    finally:
        stop_group(proc)


def _artifacts_folder(nodeid: str) -> Path:
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", nodeid.split("::", 1)[-1]).strip("_")
    folder = ARTIFACTS / name
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    return folder


@pytest.fixture
def artifacts(request: pytest.FixtureRequest) -> Path:
    """This test's artifacts folder (emptied first; kept afterwards, gitignored)."""
    return _artifacts_folder(request.node.nodeid)


@pytest.fixture(scope="session")
def chromium() -> Iterator["Browser"]:
    """Debian's chromium, headless, driven by Playwright (one per test session)."""
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"chromium is not installed ({CHROMIUM} is missing): {CHROMIUM_HINT}")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("playwright is not installed: `make install` (pip install -e '.[dev]')")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            yield browser
        finally:
            browser.close()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """Keep each phase's report on the item (so `browser_page` knows whether the test failed)."""
    report = yield
    setattr(item, f"_report_{report.when}", report)
    return report


@pytest.fixture
def browser_page(
    chromium: "Browser", artifacts: Path, request: pytest.FixtureRequest
) -> Iterator["Page"]:
    """A fresh page (own context: no cookies, no local storage) with a traced session."""
    from playwright.sync_api import expect

    context = chromium.new_context(viewport=VIEWPORT)  # type: ignore[arg-type]
    # The community newsletter dialog a first visit opens would cover the page.
    context.add_init_script("window.localStorage.setItem('communityNux', JSON.stringify('1'))")
    context.set_default_timeout(UI_TIMEOUT_MS)
    expect.set_options(timeout=UI_TIMEOUT_MS)
    context.tracing.start(screenshots=True, snapshots=True)
    page = context.new_page()
    try:
        yield page
    finally:
        call = getattr(request.node, "_report_call", None)
        failed = call is None or call.failed
        if failed:
            with contextlib.suppress(Exception):  # the page may be gone; the trace still tells
                page.screenshot(path=artifacts / "failure.png", full_page=True)
        context.tracing.stop(path=artifacts / "trace.zip" if failed else None)
        context.close()


@pytest.fixture
def shot(browser_page: "Page", artifacts: Path) -> Callable[[str], Path]:
    """`shot(name)`: a full-page screenshot NN-name.png in the test's artifacts folder."""
    taken: list[Path] = []

    def take(name: str) -> Path:
        path = artifacts / f"{len(taken) + 1:02d}-{name}.png"
        browser_page.screenshot(path=path, full_page=True)
        taken.append(path)
        return path

    return take
