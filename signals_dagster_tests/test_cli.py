"""The `signals` CLI and the `dagster asset materialize` command line, run as real processes."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from signals_dagster.records import RECORD_COLUMNS
from signals_dagster_tests.sqlite_shop import collector_yaml, expected_sums, make_shop

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def signals(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "signals_dagster.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
        cwd=ROOT,
    )


@pytest.fixture
def collector(tmp_path: Path) -> tuple[Path, Path, Path]:
    db = make_shop(tmp_path / "shop.sqlite")
    audit = tmp_path / "audit.jsonl"
    path = tmp_path / "revenue.yaml"
    path.write_text(collector_yaml(db, audit, extra="  shout:\n    type: console\n"))
    return path, db, audit


def test_validate_ok_on_the_demo() -> None:
    result = signals("validate", "collectors")
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("ok: ")


def test_validate_does_not_import_heavy_clients() -> None:
    code = (
        "import sys; from signals_dagster.cli import main\n"
        "try:\n    code = main(['validate', 'collectors'])\n"
        "except SystemExit as exc:\n    code = exc.code\n"
        "heavy = ('dagster', 'pymongo', 'confluent_kafka', 'boto3')\n"
        "print('exit', code or 0, [m for m in heavy if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.strip().endswith("exit 0 []"), out.stdout + out.stderr  # validated, and light


def test_invoke_dry_run_prints_records_only(collector: tuple[Path, Path, Path]) -> None:
    path, db, audit = collector
    result = signals("invoke", str(path), "--partition", "2026-02-03", "--dry-run")
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert all(list(r) == RECORD_COLUMNS for r in records)
    assert {r["tags"]["customer"]: r["value"] for r in records} == pytest.approx(
        expected_sums(db, "2026-02-03")
    )
    assert "dry run" in result.stderr
    assert not audit.exists()


def test_invoke_writes_sinks_and_prints_once(collector: tuple[Path, Path, Path]) -> None:
    path, _, audit = collector
    result = signals("invoke", str(path), "--partition", "2026-02-04")
    assert result.returncode == 0, result.stderr
    printed = [json.loads(line) for line in result.stdout.splitlines()]
    written = [json.loads(line) for line in audit.read_text().splitlines()]
    assert printed == written
    assert len(printed) == 3


@pytest.mark.parametrize(
    "key",
    ["2026-02-03'; DROP TABLE orders; --", "2026-13-01", "yesterday", "2026-02-03T00:00"],
)
def test_invoke_rejects_bad_partition_keys(collector: tuple[Path, Path, Path], key: str) -> None:
    path, db, _ = collector
    result = signals("invoke", str(path), "--partition", key, "--dry-run")
    assert result.returncode == 1
    assert "invalid partition key" in result.stderr
    assert "Traceback" not in result.stderr
    assert expected_sums(db, "2026-02-03")  # the table is still there


def test_invoke_refuses_old_snapshot(tmp_path: Path) -> None:
    db = make_shop(tmp_path / "s.sqlite")
    path = tmp_path / "snap.yaml"
    path.write_text(
        collector_yaml(db, tmp_path / "a.jsonl", sql="SELECT COUNT(*) AS value FROM orders")
    )
    old = signals("invoke", str(path), "--partition", "2026-02-03")
    assert old.returncode == 1
    assert "snapshot" in old.stderr
    assert old.stdout == ""
    now = signals("invoke", str(path))  # the current window is always allowed
    assert now.returncode == 0, now.stderr
    (record,) = [json.loads(line) for line in now.stdout.splitlines()]
    assert record["value"] == 160


def test_invoke_reports_spec_errors(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("name: x\nmetric: {name: m, type: COUNT}\nsource: {type: nope}\nsinks: {}\n")
    result = signals("invoke", str(path))
    assert result.returncode == 1
    assert f"{path}:3: source.type: unknown type 'nope'" in result.stdout
    assert f"{path}:4: sinks:" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr


def test_dagster_cli_materialises_a_partition(
    collector: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    path, db, audit = collector
    home = tmp_path.parent / f"{tmp_path.name}_home"
    home.mkdir()
    env = {**os.environ, "SIGNALS_COLLECTORS_DIR": str(path.parent), "DAGSTER_HOME": str(home)}
    result = subprocess.run(
        [
            str(BIN / "dagster"),
            "asset",
            "materialize",
            "-m",
            "signals_dagster.definitions",
            "--select",
            "shop_revenue_daily",
            "--partition",
            "2026-02-10",
        ],
        capture_output=True,
        text=True,
        timeout=180,
        env=env,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    written = [json.loads(line) for line in audit.read_text().splitlines()]
    assert {r["tags"]["customer"]: r["value"] for r in written} == pytest.approx(
        expected_sums(db, "2026-02-10")
    )
