"""Session fixture for a real Prometheus loaded with known history (see TEST-SERVERS.md).

The history is written as OpenMetrics, turned into TSDB blocks by `promtool tsdb
create-blocks-from openmetrics`, and served by `prometheus` on a free loopback port. Tests compute
their expectations from `HISTORY` in Python, never by asking Prometheus.
"""

import random
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest
import requests

from signals_dagster_tests.servers.common import free_port, stop, wait_ready

# Five UTC days around the end of EU summer time (Berlin's 2025-10-26 is 25 hours long).
HISTORY_START = datetime(2025, 10, 24, tzinfo=UTC)
HISTORY_END = datetime(2025, 10, 29, tzinfo=UTC)
STEP = 300  # seconds between samples: every window bound falls on a sample
COUNTER = "shop_orders_total"
GAUGE = "shop_queue_depth"
COUNTER_SERIES = (
    {"account": "acme", "region": "eu"},
    {"account": "globex", "region": "eu"},
    {"account": "initech", "region": "us"},
)
GAUGE_SERIES = ({"queue": "billing"}, {"queue": "email"})
INSTALL_HINT = "run `make servers` (apt-get install -y --no-install-recommends prometheus)"


@dataclass(frozen=True)
class History:
    """Every sample written: series key (sorted label items) → [(unix seconds, value)]."""

    counters: dict[tuple[tuple[str, str], ...], list[tuple[int, int]]]
    gauges: dict[tuple[tuple[str, str], ...], list[tuple[int, int]]]

    @staticmethod
    def value_at(samples: list[tuple[int, int]], moment: datetime) -> int:
        """The sample written exactly at `moment` (window bounds are on the sample grid)."""
        at = int(moment.timestamp())
        (value,) = [v for t, v in samples if t == at]
        return value


def _key(labels: dict[str, str]) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(labels.items()))


def make_history() -> History:
    """Deterministic counters (random non-negative increments) and gauges every STEP seconds."""
    rnd = random.Random(20251024)
    moments = range(int(HISTORY_START.timestamp()), int(HISTORY_END.timestamp()) + 1, STEP)
    counters = {}
    for labels in COUNTER_SERIES:
        total, samples = 0, []
        for moment in moments:
            total += rnd.randint(0, 9)
            samples.append((moment, total))
        counters[_key(labels)] = samples
    gauges = {_key(labels): [(m, rnd.randint(0, 500)) for m in moments] for labels in GAUGE_SERIES}
    return History(counters, gauges)


HISTORY = make_history()


def _labels(key: tuple[tuple[str, str], ...]) -> str:
    return ",".join(f'{k}="{v}"' for k, v in key)


def openmetrics(history: History) -> str:
    """The history as an OpenMetrics text file (what promtool backfills from)."""
    lines = [f"# TYPE {COUNTER.removesuffix('_total')} counter"]
    for key, samples in history.counters.items():
        lines += [f"{COUNTER}{{{_labels(key)}}} {v} {t}" for t, v in samples]
    lines.append(f"# TYPE {GAUGE} gauge")
    for key, samples in history.gauges.items():
        lines += [f"{GAUGE}{{{_labels(key)}}} {v} {t}" for t, v in samples]
    return "\n".join([*lines, "# EOF"]) + "\n"


@dataclass(frozen=True)
class PrometheusServer:
    """A running Prometheus: its base URL and the history it holds."""

    url: str
    history: History

    @property
    def query_url(self) -> str:
        """The instant-query endpoint (as signals-collector files give it)."""
        return f"{self.url}/api/v1/query"


def _tool(name: str) -> str:
    found = shutil.which(name)
    if not found:
        pytest.fail(f"{name} is not installed: {INSTALL_HINT}")
    return found


@pytest.fixture(scope="session")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrometheusServer]:
    """A Prometheus 2.x serving HISTORY from backfilled blocks (one per test session)."""
    binary, promtool = _tool("prometheus"), _tool("promtool")
    folder = tmp_path_factory.mktemp("prometheus")
    source = folder / "history.om"
    source.write_text(openmetrics(HISTORY))
    data = folder / "data"
    made = subprocess.run(
        [promtool, "tsdb", "create-blocks-from", "openmetrics", "-q", str(source), str(data)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    if made.returncode != 0:
        pytest.fail(f"promtool failed ({made.returncode}):\n{made.stdout}\n{made.stderr}")
    config = folder / "prometheus.yml"
    config.write_text("global: {scrape_interval: 15s}\nscrape_configs: []\n")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = folder / "prometheus.log"
    command = [binary, f"--config.file={config}", f"--storage.tsdb.path={data}"]
    command += [f"--web.listen-address=127.0.0.1:{port}", "--storage.tsdb.retention.time=100y"]
    with log.open("wb") as out:
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)

    def ready() -> bool:
        return requests.get(f"{url}/-/ready", timeout=1).status_code == 200

    try:
        wait_ready(proc, ready, log)
        yield PrometheusServer(url, HISTORY)
    finally:
        stop(proc)
