"""Load time of a code location with many collectors (self-service: hundreds to thousands), and
the start of the `signals` command.

Generates N realistic collector files into a scratch folder — postgres, sqlite and duckdb sources;
daily, hourly and 6-hourly grains; cron, interval or no schedule; one to three sinks among console,
file, kafka, http and s3; templates, static tags, owners, groups, local timezones, retries,
backfill settings and late-data sensors on some — then measures, each run in a fresh process
(interpreter start and imports included), the median of `--rounds` interleaved rounds of:

  python            `python -c pass`: the bare interpreter start, for scale
  libraries         `python -c "import click, pyarrow.compute, pydantic, yaml"`: the imports
                    any `signals` command pays, for scale
  invoke demo       `signals invoke collectors/orders_revenue_daily.yaml --partition
                    2026-06-10 --dry-run` on a scratch copy of the demo SQLite database
                    (registry, lock and policies of the repository read)    target <= 0.5 s
  import 0          `import signals_dagster.definitions` of an empty folder: the fixed cost
                    (interpreter, Dagster, pandas, pydantic imports) in every import figure below
  validate 500      `signals validate DIR` (500 files)                          target <= 1 s
  import 500        `import signals_dagster.definitions` (500 collectors)
  import 2000       `import signals_dagster.definitions` (2,000 collectors)     target <= 5 s
  dagster 2000      `dagster definitions validate -m signals_dagster.definitions` (2,000
                    collectors): loads the code location in process and snapshots every job
                    in full; DAGSTER_HOME is a scratch folder with an empty dagster.yaml, so
                    the repository's production dagster.yaml is not read. The load target
                    ("`dagster definitions validate` or importing `defs`") is held to by
                    `import 2000`; what this command adds to the import is Dagster's config
                    snapshot of every `<asset>_job` (about 44 config types, snapshotted and
                    hashed per job), printed for scale
  code server 2000  the import, then the repository snapshot a code server (`dagster dev`,
                    the webserver's and the daemon's `dagster api grpc`) builds before it
                    answers: job snapshots deferred, but each job's snapshot id is a hash of
                    its full snapshot

Exit code 1 when a figure misses its target.

    .venv/bin/python bench/many_collectors.py [--rounds N] [--small N] [--large N]
"""

import argparse
import os
import resource
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from common import scratch_dir

from signals_dagster import demo

REPO = Path(__file__).resolve().parents[1]
DAGSTER = Path(sys.executable).with_name("dagster")
SIGNALS = Path(sys.executable).with_name("signals")  # the console command, as users run it

TEAMS = ("growth", "web", "platform", "payments", "search", "ads", "risk", "support")
TIMEZONES = ("UTC", "UTC", "UTC", "Europe/Berlin", "America/New_York", "Asia/Tokyo")
QUERIES = {
    "windowed": (
        "SELECT {tag} AS {alias}, {agg} AS value\n"
        "      FROM {table}\n"
        "      WHERE created_at >= :window_start AND created_at < :window_end\n"
        "      GROUP BY {tag}"
    ),
    "as-of": "SELECT {tag} AS {alias}, {agg} AS value FROM {table} "
    "WHERE created_at < :window_end GROUP BY {tag}",
    "snapshot": "SELECT COUNT(*) AS value FROM {table} WHERE ended_at IS NULL",
}
TABLES = ("orders", "payments", "events", "sessions", "signups", "tickets", "searches")


def _source(i: int, kind: str) -> str:
    table = TABLES[i % len(TABLES)]
    tag = ("country", "status", "plan", "page", "channel")[i % 5]
    agg = "COUNT(*)" if i % 3 else "ROUND(SUM(amount), 2)"
    sql = QUERIES[kind].format(tag=tag, alias=tag, agg=agg, table=table)
    backend = ("postgres", "postgres", "sqlite", "duckdb")[i % 4]
    if backend == "postgres":
        uri = (
            '\'postgresql://reader@{{ getEnvOrDefault "PGHOST" "127.0.0.1" }}:5432/'
            f"shop_{i % 12}'"
        )
    elif backend == "sqlite":
        uri = f'\'sqlite:///{{{{ getEnvOrDefault "DATA_DIR" "/srv/data" }}}}/shop_{i % 7}.db\''
    else:
        uri = f"'duckdb:////srv/lake/warehouse_{i % 5}.duckdb'"
    pool = f"\n  pool: {backend}-shared-{i % 3}" if i % 10 == 0 else ""
    timeout = "\n    timeout: 30s" if i % 4 == 1 else ""
    return (
        f"source:\n  type: {backend}{pool}\n  config:\n    uri: {uri}{timeout}\n"
        f"    sql: |\n      {sql}\n"
    )


def _sinks(i: int) -> str:
    blocks = {
        "console": "  console: {type: console}\n",
        "audit": (
            "  audit:\n    type: file\n    config:\n"
            '      path: \'{{ getEnvOrDefault "AUDIT_DIR" "/var/log/signals" }}/audit.jsonl\'\n'
        ),
        "kafka": (
            "  kafka:\n    type: kafka\n    config:\n"
            '      brokers: [\'{{ getEnvOrDefault "KAFKA" "127.0.0.1:9092" }}\']\n'
            f"      topic: signals.{TEAMS[i % len(TEAMS)]}\n"
            "      compression: zstd\n"
        ),
        "api": (
            "  api:\n    type: http\n    config:\n"
            "      uri: https://ingest.example.com/metrics\n"
            "      batch_size: 1000\n      timeout: 10s\n"
        ),
        "lake": (
            "  lake:\n    type: s3\n    config:\n"
            f"      bucket: signals-lake-{i % 3}\n      prefix: metrics/prod\n"
            "      endpoint_url: http://minio.internal:9000\n"
        ),
    }
    names = list(blocks)
    chosen = [names[i % 5], names[(i * 7 + 2) % 5], names[(i * 3 + 4) % 5]][: 1 + i % 3]
    return "sinks:\n" + "".join(blocks[n] for n in dict.fromkeys(chosen))


def collector_text(i: int) -> str:
    """The YAML of collector number i (every i gives a different, valid collector)."""
    team = TEAMS[i % len(TEAMS)]
    grain = ("24h", "24h", "1h", "24h", "6h", "1h")[i % 6]
    kind = ("windowed", "windowed", "as-of", "windowed", "snapshot")[i % 5]
    lines = [
        f"# Collector {i}: generated by bench/many_collectors.py",
        f"name: {team}.metric_{i:05d}.{kind.replace('-', '_')}",
        f"description: Generated {kind} metric {i} of team {team}",
        f"owners: [team:{team}]",
    ]
    if i % 3:
        lines.append(f"group: {team}")
    lines += [
        "metric:",
        f"  name: {team}.metric_{i:05d}",
        f"  type: {'COUNT' if i % 2 else 'GAUGE'}",
    ]
    schedule = i % 4
    if schedule != 1:  # the seed's interval form carries the grain itself
        lines.append(f"  grain: {grain}")
    if i % 2 == 0:
        lines.append("  unit: USD")
    if i % 3 == 0:
        lines += [
            "  tags:",
            "    - key: env",
            "      value: prod",
            "    - key: team",
            f"      value: {team}",
        ]
    elif i % 3 == 1:
        lines.append(f"  tags: {{env: prod, shard: '{i % 16}'}}")
    if schedule == 1:
        lines += ["schedule:", f"  interval: {grain}"]
    elif schedule == 2:
        minute = 5 + i % 50
        cron = f"{minute} 1 * * *" if grain == "24h" else f"{minute} * * * *"
        if grain == "6h":
            cron = f"{minute} */6 * * *"
        lines += ["schedule:", f"  cron: '{cron}'"]
    timezone = TIMEZONES[i % len(TIMEZONES)] if grain == "24h" else "UTC"
    lines += ["partitions:", f"  start: '2025-{1 + i % 12:02d}-01'", f"  timezone: {timezone}"]
    if i % 2:
        lines.append("  lag: 15m")
    text = "\n".join(lines) + "\n" + _source(i, kind) + _sinks(i)
    if i % 7 == 0:
        text += "retries: 5\nretry_delay: 30s\n"
    if i % 11 == 0 and kind != "snapshot":
        text += "backfill:\n  max_partitions_per_run: 200\n"
    if i % 9 == 0 and kind == "windowed":
        table = TABLES[i % len(TABLES)]
        text += (
            "late_data:\n  lookback: 7d\n  interval: 10m\n"
            f"  fingerprint_sql: SELECT count(*), max(updated_at) FROM {table} "
            "WHERE created_at >= :window_start AND created_at < :window_end\n"
        )
    return text


def write_collectors(folder: Path, count: int) -> Path:
    """count collector files in sub-folders of 100 (teams keep theirs apart); the folder."""
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        sub = folder / f"team_{i // 100:03d}"
        sub.mkdir(exist_ok=True)
        (sub / f"collector_{i:05d}.yaml").write_text(collector_text(i), encoding="utf-8")
    return folder


# What a code server computes before it answers the webserver or the daemon (internal API:
# RepositorySnap is how Dagster's gRPC server serialises a repository).
CODE_SERVER = """
import signals_dagster.definitions as module
from dagster._core.remote_representation.external_data import RepositorySnap
RepositorySnap.from_def(module.defs.get_repository_def(), defer_snapshots=True)
"""


@dataclass(frozen=True)
class Measure:
    """One figure: a command run in a fresh process, with its target (None: no target)."""

    label: str
    command: list[str]
    collectors: Path
    target: float | None


def run_once(measure: Measure, scratch: Path) -> tuple[float, float]:
    """Wall and CPU (user + system) seconds of one fresh process of the measure (its children
    included); raise when it fails."""
    env = {
        **os.environ,
        "SIGNALS_COLLECTORS_DIR": str(measure.collectors),
        "DAGSTER_HOME": str(scratch / "dagster_home"),
        # The file sinks write under the scratch folder, a file sink root.
        "AUDIT_DIR": str(scratch / "audit"),
        "SIGNALS_DATA_DIR": str(scratch),
        "SIGNALS_DEMO_DB": str(scratch / "shop.sqlite"),
        "SIGNALS_DEMO_AUDIT": str(scratch / "audit" / "demo.jsonl"),
    }
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    result = subprocess.run(
        measure.command, cwd=REPO, env=env, capture_output=True, text=True, check=False
    )
    seconds = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if result.returncode != 0:
        raise RuntimeError(
            f"{measure.label}: exit {result.returncode}\n{result.stdout[-2000:]}"
            f"\n{result.stderr[-4000:]}"
        )
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    return seconds, cpu


def main() -> int:
    """Generate the collectors, time every measure in fresh processes, print against targets."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="runs per measure (median)")
    parser.add_argument("--small", type=int, default=500, help="collectors of the small folder")
    parser.add_argument("--large", type=int, default=2000, help="collectors of the large folder")
    args = parser.parse_args()

    with scratch_dir("signals-many-") as tmp:
        empty = tmp / "empty"
        empty.mkdir()
        small = write_collectors(tmp / f"c{args.small}", args.small)
        large = write_collectors(tmp / f"c{args.large}", args.large)
        home = tmp / "dagster_home"
        home.mkdir()
        (home / "dagster.yaml").write_text("", encoding="utf-8")
        importer = [sys.executable, "-c", "import signals_dagster.definitions"]
        validate = [str(SIGNALS), "validate"]
        dagster = [str(DAGSTER), "definitions", "validate", "-m", "signals_dagster.definitions"]
        code_server = [sys.executable, "-c", CODE_SERVER]
        demo.build(str(tmp / "shop.sqlite"))
        invoke = [
            str(SIGNALS), "invoke",
            str(REPO / "collectors" / "orders_revenue_daily.yaml"),
            "--partition", "2026-06-10", "--dry-run",
        ]  # fmt: skip
        libraries = "import click, pyarrow.compute, pydantic, yaml"
        measures = [
            Measure("python", [sys.executable, "-c", "pass"], empty, None),
            Measure("libraries", [sys.executable, "-c", libraries], empty, None),
            Measure("invoke demo", invoke, empty, 0.5),
            Measure("import 0 (fixed cost)", importer, empty, None),
            Measure(f"validate {args.small}", [*validate, str(small)], small, 1.0),
            Measure(f"import {args.small}", importer, small, None),
            Measure(f"import {args.large}", importer, large, 5.0),
            Measure(f"dagster validate {args.large}", dagster, large, None),
            Measure(f"code server {args.large}", code_server, large, None),
        ]
        print(
            f"{args.rounds} round(s) per measure, a fresh process each; median wall seconds "
            f"(and CPU seconds, which a busy machine disturbs less); load average "
            f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPU(s)"
        )
        times: dict[str, list[tuple[float, float]]] = {m.label: [] for m in measures}
        for _ in range(args.rounds):  # interleaved: a busy spell of the machine hits all alike
            for measure in measures:
                times[measure.label].append(run_once(measure, tmp))
        missed = 0
        for measure in measures:
            runs = times[measure.label]
            wall = statistics.median(r[0] for r in runs)
            cpu = statistics.median(r[1] for r in runs)
            each = ", ".join(f"{w:.2f}" for w, _ in runs)
            line = f"  {measure.label:<22} {wall:6.2f} s (cpu {cpu:5.2f} s; runs {each})"
            if measure.target is not None:
                ratio = wall / measure.target
                verdict = "ok" if ratio <= 1 else "MISSED"
                missed += ratio > 1
                line += f"  target <= {measure.target:g} s: {ratio:.2f} x target, {verdict}"
            print(line, flush=True)
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
