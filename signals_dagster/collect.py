"""Run a collector for windows: source → records. No Dagster here."""

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import pandas as pd

from signals_dagster.errors import CollectorError
from signals_dagster.records import build_records
from signals_dagster.sources import Source, open_source
from signals_dagster.spec.models import CollectorSpec
from signals_dagster.window import Window, check_window

log = logging.getLogger("signals_dagster")


@dataclass
class Collected:
    """One window's records and how they were obtained."""

    window: Window
    records: pd.DataFrame
    source_rows: int
    null_values: int
    query_seconds: float

    def metadata(self) -> dict[str, float | int | str]:
        """Plain figures about the collection (plotted by the UI across partitions)."""
        return {
            "record_count": len(self.records),
            "value_sum": float(self.records["value"].sum()) if len(self.records) else 0.0,
            "source_rows": self.source_rows,
            "null_values_dropped": self.null_values,
            "query_seconds": round(self.query_seconds, 6),
            "window_start": self.window.start.isoformat(),
            "window_end": self.window.end.isoformat(),
        }


def collect(
    spec: CollectorSpec,
    windows: Sequence[Window],
    now: datetime | None = None,
    source: Source | None = None,
) -> list[Collected]:
    """Collect every window over one source session; all windows are checked before any query."""
    now = now or datetime.now(UTC)
    source = source or open_source(spec)
    for window in windows:
        check_window(window, source.kind, now)
    results: list[Collected] = []
    with source.session() as session:
        for window in windows:
            started = time.perf_counter()
            fetched = session.fetch(window)
            try:
                records, rows, nulls = build_records(
                    spec, window.grain_datetime, fetched.columns, fetched.rows, now
                )
            except CollectorError as exc:
                raise CollectorError(f"{spec.name}, {window.describe()}: {exc}") from None
            finally:
                close = getattr(fetched.rows, "close", None)
                if close is not None:
                    close()  # end the stream (and its cursor) even when a row was rejected
            elapsed = time.perf_counter() - started
            if nulls:
                log.warning(
                    "%s %s: %d row(s) with a NULL value dropped", spec.name, window.key, nulls
                )
            results.append(Collected(window, records, rows, nulls, elapsed))
    return results
