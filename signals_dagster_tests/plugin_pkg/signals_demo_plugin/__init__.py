"""A signals_dagster plug-in: a source type `static` (rows written in the collector file) and a
sink type `ndjson_dir` (one JSON-lines file per partition in a folder).

A plug-in module imports only `signals_dagster.plugins` and `signals_dagster.spec.base` at the
top: it is loaded while the collector format's models are being built.
"""

import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydantic import Field

from signals_dagster.plugins import SinkPlugin, SourcePlugin
from signals_dagster.spec.base import Model


class StaticConfig(Model):
    """Rows of the answer, the same for every window (`value` and any tag columns)."""

    rows: list[dict[str, str | float | int]] = Field(
        min_length=1, description="The answer's rows: `value` and tag columns"
    )


class _Session:
    def __init__(self, rows: list[dict[str, Any]]) -> None:
        self.rows = rows

    def fetch(self, window: Any) -> Any:
        from signals_dagster.sources.base import Fetched

        columns = list(self.rows[0])
        return Fetched(columns, rows=iter([[row.get(c) for c in columns] for row in self.rows]))


class StaticSource:
    """Answers every window with the configured rows."""

    kind = "windowed"
    range_capable = False

    def __init__(self, config: StaticConfig) -> None:
        self.config = config

    def describe(self) -> dict[str, str]:
        return {"uri": "static:", "query": f"{len(self.config.rows)} static row(s)"}

    @contextlib.contextmanager
    def session(self) -> Iterator[_Session]:
        yield _Session([dict(row) for row in self.config.rows])


class NdjsonDirConfig(Model):
    """A folder: each partition's records go to `<folder>/<partition>.jsonl` (replaced)."""

    folder: str = Field(min_length=1, description="The folder of the partitions' files")


class NdjsonDirWriter:
    """Writes each partition's records as one file, atomically; confined like file sinks."""

    def __init__(self, config: NdjsonDirConfig) -> None:
        from signals_dagster.confine import confined_path

        confined_path(str(Path(config.folder) / "x.jsonl"))  # refused outside the file roots
        self.folder = Path(config.folder)
        self.folder.mkdir(parents=True, exist_ok=True)

    def write(self, spec: Any, partition_key: str | None, records: Any) -> dict[str, object]:
        from signals_dagster.records import to_dicts

        target = self.folder / f"{partition_key or 'unpartitioned'}.jsonl"
        tmp = target.with_suffix(".tmp")
        lines = "".join(json.dumps(r, sort_keys=True) + "\n" for r in to_dicts(records))
        tmp.write_text(lines, encoding="utf-8")
        os.replace(tmp, target)
        return {"path": str(target), "records": len(records)}

    def close(self) -> None:
        """Nothing to release."""


STATIC_SOURCE = SourcePlugin(
    type="static",
    config=StaticConfig,
    open=lambda spec: StaticSource(spec.source.config),
)
NDJSON_DIR_SINK = SinkPlugin(
    type="ndjson_dir",
    config=NdjsonDirConfig,
    open=lambda sink, clients: NdjsonDirWriter(sink.config),
)
