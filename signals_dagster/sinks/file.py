"""File sink: appends records as JSON lines to an audit log (the seed's durability log)."""

import contextlib
import fcntl
import json
import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from signals_dagster.errors import SinkError
from signals_dagster.records import json_line_chunks
from signals_dagster.spec.models import CollectorSpec

if TYPE_CHECKING:
    import pandas as pd


def check_writable(path: str) -> None:
    """Preflight: the log can be appended to: it is a file we may write, or the nearest existing
    folder above it is one we may write in (the write makes the missing ones), under the file
    sink roots (signals_dagster/confine.py). Creates nothing."""
    from signals_dagster.confine import confined_path

    confined_path(path)
    target = Path(path).absolute()
    if target.exists():
        if target.is_dir():
            raise SinkError(f"file sink: cannot append to {target}: it is a directory")
        if not os.access(target, os.W_OK):
            raise SinkError(f"file sink: cannot append to {target}: not writable")
        return
    folder = target.parent
    while not folder.exists():  # ends at the root, which exists
        folder = folder.parent
    if not folder.is_dir():
        raise SinkError(f"file sink: cannot create {target}: {folder} is not a directory")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise SinkError(f"file sink: cannot create {target}: directory {folder} is not writable")


class FileWriter:
    """Appends records as JSON lines: one locked write and one fsync per call."""

    def __init__(self, path: str) -> None:
        self.path = Path(path)
        check_writable(path)

    def write(
        self, spec: CollectorSpec, partition_key: str | None, records: Any
    ) -> dict[str, object]:
        """Append one partition's lines with a single write() and fsync before confirming."""
        return self.write_many(spec, [(partition_key, records)])[0]

    def write_many(
        self, spec: CollectorSpec, parts: Sequence[tuple[str | None, Any]]
    ) -> list[dict[str, object]]:
        """Append every partition of a run under one lock (all or nothing), then fsync once.

        The text is built a chunk of records at a time, so memory holds one chunk of it."""
        sizes: list[int] = []
        with self.appending() as append:
            for _, records in parts:
                sizes.append(sum(append(block) for block in json_line_chunks(records)))
        path = str(self.path.resolve())
        return [{"path": path, "bytes": written} for written in sizes]

    @contextlib.contextmanager
    def appending(self) -> Iterator[Callable[[bytes], int]]:
        """Append JSON-lines text (already serialised) under the lock: every block or none.

        Leaving the block normally fsyncs; an error truncates the log to its size before."""
        from signals_dagster.confine import confined_path

        confined_path(str(self.path))  # again: a symlink may have appeared since the preflight
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = self._locked()
            try:
                size = os.fstat(fd).st_size
                try:
                    yield lambda block: _write_all(fd, block)
                    os.fsync(fd)
                except BaseException:
                    os.ftruncate(fd, size)  # never leave half a run behind
                    raise
            finally:
                os.close(fd)
        except OSError as exc:
            raise SinkError(f"cannot append to {self.path}: {exc.strerror or exc}") from None

    def _locked(self) -> int:
        """The log opened for appending under an exclusive lock (concurrent runs append whole
        batches). A file replaced while we waited for the lock (`signals forget` rewrites it
        and renames the new one over it) is opened again: appending to the old inode would
        lose the records."""
        while True:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            fcntl.flock(fd, fcntl.LOCK_EX)
            opened, current = os.fstat(fd), _stat(self.path)
            if current is not None and (opened.st_ino, opened.st_dev) == (
                current.st_ino,
                current.st_dev,
            ):
                return fd
            os.close(fd)

    def close(self) -> None:
        """Nothing to release."""


def _stat(path: Path) -> os.stat_result | None:
    try:
        return os.stat(path)
    except FileNotFoundError:
        return None


def _write_all(fd: int, data: bytes) -> int:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        if written <= 0:
            raise OSError(f"short write: {written} of {len(view)} bytes")
        view = view[written:]
    return len(data)


def read_records(path: str) -> "pd.DataFrame":
    """Read an audit log back into a records DataFrame (missing file: no records); a line that
    is not a record is an error naming the file and line."""
    from signals_dagster.records import RECORD_COLUMNS, empty_records, from_dicts

    file = Path(path)
    if not file.exists():
        return empty_records()
    rows = []
    with file.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise SinkError(f"{file}:{number}: not a JSON record ({exc.msg})") from None
            if not isinstance(row, dict) or not set(RECORD_COLUMNS) <= set(row):
                missing = sorted(set(RECORD_COLUMNS) - set(row if isinstance(row, dict) else {}))
                raise SinkError(f"{file}:{number}: not a metric record (missing {missing})")
            rows.append(row)
    return from_dicts(rows)
