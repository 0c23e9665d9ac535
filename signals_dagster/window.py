"""Time windows: the half-open interval [start, end) a partition stands for."""

from dataclasses import dataclass
from datetime import UTC, datetime

from signals_dagster.errors import CollectorError, SnapshotWindowError


@dataclass(frozen=True)
class Window:
    """One partition's window; `start`/`end` are timezone-aware."""

    key: str
    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise ValueError("window bounds must be timezone-aware")
        # In UTC: two datetimes of one zone compare by wall clock, and the first 02:00 hour of a
        # Berlin fall-back night ends at 02:00 again.
        if self.end.astimezone(UTC) <= self.start.astimezone(UTC):
            raise ValueError(f"empty window {self.start} .. {self.end}")

    @property
    def grain_datetime(self) -> datetime:
        """Window start in UTC: the record's grain_datetime."""
        return self.start.astimezone(UTC)

    @property
    def grain_micros(self) -> int:
        """grain_datetime as µs since the epoch, as a records table holds it."""
        return micros(self.start)

    def describe(self) -> str:
        """Human text: key and bounds."""
        return f"partition {self.key} [{self.start.isoformat()}, {self.end.isoformat()})"


def micros(moment: datetime) -> int:
    """An aware instant as whole µs since the epoch."""
    return int(moment.timestamp() * 1_000_000)


def check_window(window: Window, kind: str, now: datetime) -> None:
    """Refuse windows that cannot be measured: future ones, and old ones for snapshots."""
    if window.start > now:
        raise CollectorError(f"{window.describe()} has not started yet (now {now.isoformat()})")
    if kind != "snapshot":
        return
    # A snapshot measures "now": only the open window and the one that just closed are honest.
    end = window.end.astimezone(UTC)
    if now >= end + (end - window.start.astimezone(UTC)):  # real length: 23 h / 25 h on DST days
        raise SnapshotWindowError(
            f"{window.describe()} cannot be collected: this is a snapshot collector (its query "
            "uses neither :window_start nor :window_end), so it measures the current state and "
            "would report today's value as history. Only the current or just-closed window can be "
            "materialised; make the query windowed (:window_start/:window_end) or as-of "
            "(:window_end) to backfill."
        )
