"""Celery scale-out for tests: the code location the workers run, and the workers themselves.

The code location is what the README's Celery setup describes: the collectors of
$SIGNALS_COLLECTORS_DIR (`build_definitions`) with `dagster_celery.celery_executor`, configured
here (broker $SIGNALS_CELERY_BROKER, queue $SIGNALS_CELERY_QUEUE), as the default executor of
every job, plus `signals_collectors_job`, one asset job over every collector. `defs` is built
when first asked for (`-m signals_dagster_tests.servers.celery_workers -a defs`), so importing
the helpers below builds nothing.

The workers are `dagster-celery worker start` processes against the machine's RabbitMQ, each in a
process group of its own (the command starts `celery worker`, which forks its pool), listening on
a queue of the test's own so workers left elsewhere never take its tasks.
"""

import contextlib
import functools
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import dagster as dg
from celery.signals import worker_init
from dagster_celery import celery_executor

from signals_dagster.catalog import collectors_dir, load_catalog
from signals_dagster.orchestration.factory import build_definitions
from signals_dagster_tests.servers.common import log_tail

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
AMQP_HOST = os.environ.get("SIGNALS_TEST_AMQP_HOST", "127.0.0.1")
AMQP_PORT = int(os.environ.get("SIGNALS_TEST_AMQP_PORT", "5672"))
BROKER = f"pyamqp://guest:guest@{AMQP_HOST}:{AMQP_PORT}//"
COLLECTORS_JOB = "signals_collectors_job"


def configured_celery_executor() -> dg.ExecutorDefinition:
    """`celery_executor` configured in the code location, as every run needs it (schedules,
    sensors, backfills and the UI pass no executor config): the broker from
    $SIGNALS_CELERY_BROKER, the queue $SIGNALS_CELERY_QUEUE (the workers' `-q`)."""
    return celery_executor.configured(executor_config(os.environ.get("SIGNALS_CELERY_QUEUE")))


def build_celery_definitions(directory: str) -> dg.Definitions:
    """The collectors of a folder, every job on Celery, and one job over all of them."""
    base = build_definitions(load_catalog(directory), directory)
    every = dg.define_asset_job(COLLECTORS_JOB, selection=dg.AssetSelection.all())
    celery = configured_celery_executor()
    return dg.Definitions.merge(base, dg.Definitions(jobs=[every], executor=celery))


@functools.cache
def _defs() -> dg.Definitions:
    return build_celery_definitions(os.path.abspath(collectors_dir()))


@worker_init.connect
def _warm_worker(**_: object) -> None:
    """In a worker's main process (this module is its `-i` include), before the pool forks: the
    instance's storage imported and the code location built once, not in each first task."""
    import dagster_postgres  # noqa: F401

    _defs()


def __getattr__(name: str) -> Any:
    """`defs`, built on first use (in the run's process and in each worker's pool process)."""
    if name == "defs":
        return _defs()
    raise AttributeError(name)


def executor_config(queue: str | None = None, broker: str | None = None) -> dict[str, Any]:
    """The Celery executor's config: the broker ($SIGNALS_CELERY_BROKER when not given) and
    the queue (Dagster's `dagster` when not given)."""
    return {
        "broker": broker or {"env": "SIGNALS_CELERY_BROKER"},
        "backend": "rpc://",
        # Result queues (one per run process, rpc://) expire a minute after it is gone, not
        # after Celery's default day.
        "config_source": {"task_default_queue": queue or "dagster", "result_expires": 60},
    }


def worker_config(queue: str) -> dict[str, Any]:
    """A worker's `-y` file: the executor's config (broker, result backend) under execution."""
    return {"execution": {"config": executor_config(queue, BROKER)}}


def require_rabbitmq() -> None:
    """Raise (the test fails, it is not skipped) when RabbitMQ does not accept guest/guest."""
    try:
        with socket.create_connection((AMQP_HOST, AMQP_PORT), timeout=3):
            pass
    except OSError as exc:
        raise RuntimeError(
            f"RabbitMQ is not reachable at {AMQP_HOST}:{AMQP_PORT} ({exc}); the Celery scale-out "
            "test needs it (start it with `rabbitmq-server -detached`)"
        ) from None
    from kombu import Connection

    try:
        with Connection(BROKER, connect_timeout=5) as conn:
            conn.ensure_connection(max_retries=1)
    except Exception as exc:
        raise RuntimeError(f"RabbitMQ at {AMQP_HOST}:{AMQP_PORT} refused {BROKER}: {exc}") from None


def delete_queue(queue: str) -> None:
    """Remove the test's queue from the broker (durable queues outlive their workers)."""
    from kombu import Connection

    with Connection(BROKER, connect_timeout=5) as conn:
        conn.default_channel.queue_delete(queue)


class Worker:
    """One `dagster-celery worker start` process (one task at a time) in its own process group."""

    def __init__(self, name: str, queue: str, config_yaml: Path, env: dict[str, str], log: Path):
        self.name = name
        self.queue = queue
        self.log = log
        cmd = [str(BIN / "dagster-celery"), "worker", "start", "-A", "dagster_celery.app"]
        cmd += ["-y", str(config_yaml), "-q", queue, "-n", name, "-l", "INFO"]
        cmd += ["-i", __name__, "--"]  # imported before the pool forks (see _warm_worker)
        # One task at a time per worker, so two workers are two places steps run; no start-up
        # handshake with whatever other workers share the broker.
        cmd += ["--concurrency=1", "--without-mingle", "--without-gossip", "--without-heartbeat"]
        with log.open("ab") as out:
            self.proc = subprocess.Popen(
                cmd,
                env={**env, "PATH": f"{BIN}{os.pathsep}{env.get('PATH', '')}"},
                cwd=ROOT,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )

    def ready(self) -> bool:
        """Whether the worker logged that it consumes (raises if it died)."""
        if self.proc.poll() is not None:
            raise RuntimeError(
                f"celery worker {self.name} exited with {self.proc.returncode}:\n{self.tail()}"
            )
        return " ready." in self.log.read_text(errors="replace")

    def tail(self, lines: int = 60) -> str:
        return log_tail(self.log, lines)

    def stop(self, grace: float = 10) -> None:
        """SIGTERM the whole process group (warm shutdown), SIGKILL what is left after `grace`."""
        if self.proc.poll() is None:
            _signal_group(self.proc.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(grace)
        _signal_group(self.proc.pid, signal.SIGKILL)  # the pool's children, if any outlived it
        if self.proc.poll() is None:
            self.proc.wait(5)


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, sig)


def gated_command(go: Path, *args: str) -> list[str]:
    """`dagster ARGS...`, imported at once but started only when the file `go` exists (see
    `_gated`): the run's process loads while the workers boot, and its steps are submitted only
    once both consume, so each worker has the same chance of taking them."""
    return [sys.executable, "-m", __name__, str(go), *args]


def _gated(go: str, args: list[str], timeout: float = 120) -> int:
    from dagster._cli import main

    import signals_dagster_tests.servers.celery_workers as location  # its name in `-m`

    location.defs  # noqa: B018 (built now, while waiting)
    deadline = time.monotonic() + timeout
    while not os.path.exists(go):
        if time.monotonic() > deadline:
            print(f"{go} did not appear within {timeout}s", file=sys.stderr)
            return 2
        time.sleep(0.05)
    sys.argv = ["dagster", *args]
    return main()


def wait_workers_ready(workers: list[Worker], timeout: float = 45) -> None:
    """Wait until every worker consumes from its queue."""
    deadline = time.monotonic() + timeout
    pending = list(workers)
    while pending:
        pending = [w for w in pending if not w.ready()]
        if not pending:
            return
        if time.monotonic() > deadline:
            tails = "\n\n".join(f"--- {w.name}\n{w.tail()}" for w in pending)
            raise RuntimeError(f"celery workers not ready after {timeout}s:\n{tails}")
        time.sleep(0.1)


if __name__ == "__main__":
    sys.exit(_gated(sys.argv[1], sys.argv[2:]))
