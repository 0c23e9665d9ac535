"""The example collectors under examples/ (they need servers, so they are not in `make dev`)."""

import subprocess
import sys
from pathlib import Path

from signals_dagster.spec.loader import load_collectors

ROOT = Path(__file__).resolve().parents[1]


def test_examples_validate() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "signals_dagster.cli", "validate", "examples"],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("ok: 2 collector(s)")


def test_examples_cover_both_server_sources() -> None:
    specs = load_collectors([ROOT / "examples"]).values()
    assert sorted(spec.source.type for spec in specs) == ["mongodb", "prometheus"]
    assert all(spec.group == "examples" for spec in specs)
