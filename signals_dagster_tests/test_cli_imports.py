"""`signals validate`, `invoke` and `redrive` run without importing Dagster (issue 10), and
validate / invoke of a SQLite collector without pandas or SQLAlchemy either: each command runs in
a fresh interpreter, which then reports what it imported."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from signals_dagster import demo
from signals_dagster_tests.sqlite_shop import collector_yaml, make_shop

ROOT = Path(__file__).resolve().parents[1]

# Runs the `signals` script's entry point, then prints what it imported as the last line.
PROBE = """
import json, sys
from signals_dagster.cli import run
args = json.loads(sys.argv[1])
if args:
    sys.argv = ["signals", *args]
    try:
        run()
    except SystemExit as exit:
        assert not exit.code, exit.code
else:
    import signals_dagster.partitioning, signals_dagster.invoke, signals_dagster.redrive
tops = {m.split(".")[0] for m in sys.modules if sys.modules[m] is not None}
print(json.dumps({"dagster": sorted(m for m in sys.modules if m.split(".")[0] == "dagster"),
                  "pandas": "pandas" in tops, "sqlalchemy": "sqlalchemy" in tops,
                  "croniter": "croniter" in tops,
                  "threads": int(next(line.split()[1] for line in open("/proc/self/status")
                                      if line.startswith("Threads:")))}))
"""


def run_without_dagster(
    args: list[str], env: dict[str, str | None] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the CLI in a fresh interpreter (env: variables to set, or with None to unset); fail
    when the command or the probe fails."""
    out = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(args)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        env={k: v for k, v in {**os.environ, **(env or {})}.items() if v is not None},
    )
    assert out.returncode == 0, out.stdout + out.stderr
    imported = json.loads(out.stdout.splitlines()[-1])
    assert imported["dagster"] == [], f"{args} imported Dagster"
    if args[:1] in (["validate"], ["invoke"]):  # a SQLite collector: neither is needed
        assert not imported["pandas"], f"{args} imported pandas"
        assert not imported["sqlalchemy"], f"{args} imported SQLAlchemy"
    return out


@pytest.fixture
def shop_collector(tmp_path: Path) -> dict[str, Path]:
    db = make_shop(tmp_path / "shop.sqlite")
    audit = tmp_path / "audit.jsonl"
    folder = tmp_path / "collectors"
    folder.mkdir()
    path = folder / "revenue.yaml"
    path.write_text(collector_yaml(db, audit, extra="  shout:\n    type: console\n"))
    return {"folder": folder, "collector": path, "audit": audit}


def test_the_core_modules_import_no_dagster() -> None:
    run_without_dagster([])


def test_validate_imports_no_dagster(shop_collector: dict[str, Path]) -> None:
    out = run_without_dagster(["validate", str(shop_collector["folder"])])
    assert out.stdout.startswith("ok: 1 collector(s) valid")


def test_invoke_dry_run_imports_no_dagster(shop_collector: dict[str, Path]) -> None:
    args = ["invoke", str(shop_collector["collector"]), "--partition", "2026-02-03", "--dry-run"]
    out = run_without_dagster(args)
    records = [json.loads(line) for line in out.stdout.splitlines()[:-1]]
    assert len(records) == 3
    assert {r["grain_datetime"] for r in records} == {"2026-02-03T00:00:00Z"}
    assert not shop_collector["audit"].exists()


def test_invoke_and_redrive_import_no_dagster(shop_collector: dict[str, Path]) -> None:
    collector, audit = str(shop_collector["collector"]), str(shop_collector["audit"])
    run_without_dagster(["invoke", collector, "--partition", "2026-02-04"])
    assert len(Path(audit).read_text().splitlines()) == 3
    out = run_without_dagster(["redrive", audit, "--collector", collector, "--sink", "shout"])
    assert "redriven: 3 record(s) in 1 partition(s) to sink shout (console)" in out.stdout


def test_invoke_of_the_demo_collector_imports_no_croniter(tmp_path: Path) -> None:
    # Its everyday cron ('15 0 * * *') is judged without importing croniter and dateutil; the
    # repository's registry, lock and policies are read as in `make dev`.
    env = {
        "SIGNALS_DEMO_DB": str(demo.build(str(tmp_path / "shop.sqlite"))),
        "SIGNALS_DEMO_AUDIT": str(tmp_path / "audit.jsonl"),
    }
    args = ["invoke", "collectors/orders_revenue_daily.yaml", "--partition", "2026-06-10"]
    out = run_without_dagster([*args, "--dry-run"], env)
    assert json.loads(out.stdout.splitlines()[-1])["croniter"] is False
    assert len(out.stdout.splitlines()) > 1  # records printed


def test_short_commands_keep_openblas_to_one_thread(shop_collector: dict[str, Path]) -> None:
    # numpy (loaded with pyarrow) starts OpenBLAS workers, a thread per core, that spin for a
    # while; invoke and validate do no linear algebra, so the command asks for none.
    args = ["invoke", str(shop_collector["collector"]), "--partition", "2026-02-03", "--dry-run"]
    ours = run_without_dagster(args, {"OPENBLAS_NUM_THREADS": None})
    asked = run_without_dagster(args, {"OPENBLAS_NUM_THREADS": "2"})
    threads = [json.loads(out.stdout.splitlines()[-1])["threads"] for out in (ours, asked)]
    assert threads[0] < threads[1], threads
