"""File sink: appends records as JSON lines to an audit log (the seed's durability log)."""

import fcntl
import json
import os
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from signals_dagster.errors import SinkError
from signals_dagster.records import to_json_lines, to_json_values
from signals_dagster.spec.models import CollectorSpec


class FileWriter:
    """Appends records as JSON lines: one locked write and one fsync per call."""

    def __init__(self, path: str) -> None:
        self.path = Path(path)

    def write(
        self, spec: CollectorSpec, partition_key: str | None, records: pd.DataFrame
    ) -> dict[str, object]:
        """Append one partition's lines with a single write() and fsync before confirming."""
        return self.write_many(spec, [(partition_key, records)])[0]

    def write_many(
        self, spec: CollectorSpec, parts: Sequence[tuple[str | None, pd.DataFrame]]
    ) -> list[dict[str, object]]:
        """Append every partition of a run at once (all or nothing), then fsync once."""
        if len(parts) == 1:
            blocks = [to_json_lines(parts[0][1]).encode()]
        else:  # serialise the run at once: per-call costs would dominate small partitions
            lines = to_json_values(pd.concat([records for _, records in parts]))
            blocks, first = [], 0
            for _, records in parts:
                last = first + len(records)
                blocks.append("".join(f"{line}\n" for line in lines[first:last]).encode())
                first = last
        data = b"".join(blocks)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)  # concurrent runs append whole batches
                size = os.fstat(fd).st_size
                try:
                    written = os.write(fd, data) if data else 0
                    if written != len(data):
                        raise OSError(f"short write: {written} of {len(data)} bytes")
                    os.fsync(fd)
                except OSError:
                    os.ftruncate(fd, size)  # never leave half a batch behind
                    raise
            finally:
                os.close(fd)
        except OSError as exc:
            raise SinkError(f"cannot append to {self.path}: {exc.strerror or exc}") from None
        path = str(self.path.resolve())
        return [{"path": path, "bytes": len(block)} for block in blocks]

    def close(self) -> None:
        """Nothing to release."""


def read_records(path: str) -> pd.DataFrame:
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
