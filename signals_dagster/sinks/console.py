"""Console sink: records as JSON lines on standard output."""

import sys
from typing import Any, TextIO

from signals_dagster.records import to_json_lines
from signals_dagster.spec.models import CollectorSpec


class ConsoleWriter:
    """Prints records as JSON lines."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream

    def write(
        self, spec: CollectorSpec, partition_key: str | None, records: Any
    ) -> dict[str, object]:
        """Print and flush."""
        stream = self.stream or sys.stdout
        stream.write(to_json_lines(records))
        stream.flush()
        return {"lines": len(records)}

    def close(self) -> None:
        """Nothing to release."""
