"""Partition keys and time windows of a collector, without Dagster.

The arithmetic of the Dagster partitions definitions built in `orchestration/partitions.py`, DST
quirks included, so that `signals invoke` and `signals redrive` see the windows a Dagster run sees
(`test_partitioning.py` checks the two against each other over DST changes):

- 24h, 7d (ISO weeks, Monday start) and 1mo windows start at local midnight;
- N-hour windows (2h ... 12h) follow the cron `0 */N * * *` on the local clock: a start inside a
  spring-forward gap moves to the end of the gap, a start that occurs twice takes the later one;
- 1h windows are whole hours counted from partitions.start; on a fall-back night the second of two
  equal local hours has its UTC offset in the key (`2026-10-25-02:00+0100`), as in Dagster (where
  the clock moves by 30 minutes, Australia/Lord_Howe, the hours then start at :30 local time until
  the next change, as in Dagster's partition list);
- sub-hour grains are not partitioned: a run's window is the epoch-aligned one containing it.

A window's bounds are aware datetimes in the collector's zone (`datetime.UTC` for "UTC").
Compare or subtract them in UTC (`.astimezone(UTC)`): Python compares and subtracts two datetimes
of one zone by the wall clock, which gives 24 h for a 23 h day.
"""

import functools
from datetime import UTC, date, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo

from signals_dagster.errors import CollectorError
from signals_dagster.spec.fields import MONTH, grain_timedelta
from signals_dagster.spec.models import CollectorSpec
from signals_dagster.window import Window

DATE_FMT = "%Y-%m-%d"  # 24h, 7d, 1mo keys: the window's first local day
MINUTE_FMT = "%Y-%m-%d-%H:%M"  # 1h ... 12h keys: the window's local start
INSTANT_FMT = "%Y-%m-%dT%H:%M:%SZ"  # sub-hour window keys (not partitions): the UTC start
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
WEEK = timedelta(days=7)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# Dagster moves a cron time out of a DST gap, or to the later of two equal times, only when it
# falls in these hours; a nonexistent midnight keeps its wall-clock key (the instant is the same).
_DST_HOURS = frozenset({1, 2, 3})


def key_format(grain: str) -> str | None:
    """The strftime format of a grain's partition keys; None for sub-hour grains."""
    if grain == MONTH:
        return DATE_FMT
    delta = grain_timedelta(grain)
    if delta is None or delta < HOUR:
        return None
    return DATE_FMT if delta >= DAY else MINUTE_FMT


def zone(name: str) -> tzinfo:
    """The tzinfo of an IANA name, as Dagster builds it (`datetime.UTC` for UTC)."""
    return UTC if name in ("UTC", "utc") else ZoneInfo(name)


def _exists(moment: datetime) -> bool:
    """False for a wall-clock time inside a spring-forward gap."""
    back = moment.astimezone(UTC).astimezone(moment.tzinfo)
    return back.replace(tzinfo=None) == moment.replace(tzinfo=None)


def _ambiguous(moment: datetime) -> bool:
    """True for a wall-clock time that occurs twice (fall back); call only for existing times."""
    first, second = moment.replace(fold=0), moment.replace(fold=1)
    return first.utcoffset() != second.utcoffset() or first.dst() != second.dst()


def _second_of_two(moment: datetime) -> bool:
    """The later of two equal wall-clock times (the one whose hourly key carries its offset)."""
    if moment.fold == 0:
        return False
    before, after = moment.replace(fold=0).utcoffset(), moment.utcoffset()
    return before is not None and after is not None and before > after


class Partitioning:
    """The time-window partitions of one partitioned grain from a start date in a timezone.

    Windows are numbered: window `i` is `[boundary(i), boundary(i + 1))`. For 1h the number counts
    hours from partitions.start; for the calendar grains it counts N-hour slots, days, weeks or
    months of the proleptic calendar.
    """

    def __init__(self, grain: str, start: str, timezone: str) -> None:
        fmt = key_format(grain)
        if fmt is None:
            raise ValueError(f"grain {grain} is not partitioned")
        self.grain = grain
        self.start_date = start
        self.timezone = timezone
        self.fmt = fmt
        self.tz = zone(timezone)
        delta = grain_timedelta(grain)
        self._hours = int(delta / HOUR) if delta is not None and delta < DAY else 0
        self._kind = "month" if delta is None else "week" if delta == WEEK else "day"
        if self._hours:
            self._kind = "hour" if self._hours == 1 else "hours"
        # partitions.start stands for local midnight of that date (fold 0, as Dagster reads it).
        day = date.fromisoformat(start)
        self.start = datetime(day.year, day.month, day.day, tzinfo=self.tz)
        self._start_utc = self.start.astimezone(UTC)
        self.first = self._first_starting_at_or_after(self.start)

    # -- the numbering -------------------------------------------------------------------------

    def _wall(self, index: int) -> datetime:
        """The naive local start of a calendar window (not used for 1h)."""
        if self._kind == "hours":
            day, slot = divmod(index, 24 // self._hours)
            return datetime.fromordinal(day) + timedelta(hours=slot * self._hours)
        if self._kind == "day":
            return datetime.fromordinal(index)
        if self._kind == "week":
            return datetime.fromordinal(7 * index + 1)  # ordinal 1 (0001-01-01) is a Monday
        year, month = divmod(index, 12)
        return datetime(year, month + 1, 1)

    def _guess(self, local: datetime) -> int:
        """The number of the calendar window whose wall-clock span holds a local time."""
        if self._kind == "hours":
            return local.toordinal() * (24 // self._hours) + local.hour // self._hours
        if self._kind == "day":
            return local.toordinal()
        if self._kind == "week":
            return (local.toordinal() - 1) // 7
        return local.year * 12 + local.month - 1

    def boundary(self, index: int) -> datetime:
        """The start of window `index`, as Dagster holds it (wall time and fold as it computes)."""
        if self._kind == "hour":
            return (self._start_utc + index * HOUR).astimezone(self.tz)
        moment = self._wall(index).replace(tzinfo=self.tz)
        if self._kind != "hours":
            return moment  # midnight: outside the hours Dagster corrects
        if not _exists(moment):
            if moment.hour in _DST_HOURS:
                # The end of the gap (Dagster's apply_post_transition). Elsewhere (a gap at
                # midnight, Havana) Dagster keeps the missing wall time: its key says 00:00 and
                # its instant (fold 0) is the end of the gap all the same.
                moment = moment.replace(minute=0) + (self.tz.dst(moment + HOUR) or timedelta(0))
        elif _ambiguous(moment):
            moment = moment.replace(fold=1)
        return moment

    def index_at(self, instant: datetime) -> int:
        """The number of the window containing an aware instant."""
        if self._kind == "hour":
            return (instant.astimezone(UTC) - self._start_utc) // HOUR
        stamp = instant.timestamp()
        index = self._guess(instant.astimezone(self.tz).replace(tzinfo=None))
        while self.boundary(index).timestamp() > stamp:
            index -= 1
        while self.boundary(index + 1).timestamp() <= stamp:
            index += 1
        return index

    def _first_starting_at_or_after(self, instant: datetime) -> int:
        index = self.index_at(instant)
        return index if self.boundary(index).timestamp() >= instant.timestamp() else index + 1

    # -- keys and windows ----------------------------------------------------------------------

    def key(self, index: int) -> str:
        """The partition key of window `index`."""
        start = self.boundary(index)
        if self._kind == "hour" and _second_of_two(start):
            return start.strftime(self.fmt + "%z")
        return start.strftime(self.fmt)

    def window(self, index: int) -> Window:
        """Window `index` with its key; bounds normalised to real wall times."""
        start = self.boundary(index).astimezone(UTC).astimezone(self.tz)
        end = self.boundary(index + 1).astimezone(UTC).astimezone(self.tz)
        return Window(self.key(index), start, end)

    def parse(self, key: str) -> datetime:
        """The instant a key names (Dagster's dst_safe_strptime); ValueError when malformed."""
        try:
            return datetime.strptime(key, self.fmt).replace(tzinfo=self.tz)
        except ValueError:
            return datetime.strptime(key, self.fmt + "%z")

    def window_for_key(self, key: str) -> Window:
        """The window of a partition key; CollectorError for a malformed or misaligned key."""
        try:
            instant = self.parse(key)
        except (ValueError, TypeError):
            raise CollectorError(
                f"invalid partition key {key!r} for grain {self.grain} "
                f"(expected e.g. {self.key(self.first)!r})"
            ) from None
        # The first window starting at or after the instant: a key names the later of two equal
        # local times (fold 0 reads the earlier one), as in Dagster's time_window_for_partition_key.
        index = self._first_starting_at_or_after(instant)
        if self.key(index) != key:
            raise CollectorError(
                f"partition key {key!r} is not the start of a {self.grain} window "
                f"(the window containing it starts at {self.key(self.index_at(instant))!r})"
            )
        if index < self.first:
            raise CollectorError(
                f"partition {key!r} is before partitions.start ({self.start_date})"
            )
        return self.window(index)

    def indexes_between(self, start: datetime, end: datetime) -> range:
        """Numbers of the windows starting in [start, end), from partitions.start on."""
        first = max(self.first, self._first_starting_at_or_after(start))
        stop = max(first, self._first_starting_at_or_after(end))
        return range(first, stop)


@functools.lru_cache(maxsize=256)
def _partitioning(grain: str, start: str, timezone: str) -> Partitioning | None:
    return None if key_format(grain) is None else Partitioning(grain, start, timezone)


def partitioning(spec: CollectorSpec) -> Partitioning | None:
    """The partitions of a collector; None for sub-hour grains (not partitioned)."""
    return _partitioning(spec.metric.grain, spec.partitions.start, spec.partitions.timezone)


def _aware(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise ValueError(f"{moment.isoformat()} has no timezone (windows need aware instants)")
    return moment


def _subhour_window(spec: CollectorSpec, instant: datetime) -> Window:
    delta = grain_timedelta(spec.metric.grain)
    assert delta is not None
    start = _EPOCH + ((instant.astimezone(UTC) - _EPOCH) // delta) * delta
    return Window(start.strftime(INSTANT_FMT), start, start + delta)


def window_for_key(spec: CollectorSpec, key: str) -> Window:
    """The window of a partition key; a clear error for a malformed or misaligned key."""
    parts = partitioning(spec)
    if parts is None:
        raise CollectorError(
            f"{spec.name} has a sub-hour grain ({spec.metric.grain}) and is not partitioned"
        )
    return parts.window_for_key(key)


def window_containing(spec: CollectorSpec, instant: datetime) -> Window:
    """The window that contains an instant, before partitions.start too (epoch-aligned for
    sub-hour grains)."""
    parts = partitioning(spec)
    if parts is None:
        return _subhour_window(spec, _aware(instant))
    return parts.window(parts.index_at(_aware(instant)))


def partition_key_for(spec: CollectorSpec, instant: datetime) -> str:
    """The key of the window containing an instant (Dagster's get_partition_key_for_timestamp)."""
    return window_containing(spec, instant).key


def current_window(spec: CollectorSpec, now: datetime | None = None) -> Window:
    """The window that contains `now` (the open one); an error before partitions.start."""
    window = window_containing(spec, now or datetime.now(UTC))
    parts = partitioning(spec)
    if parts is not None and window.start.timestamp() < parts.start.timestamp():
        raise CollectorError(
            f"partition {window.key!r} is before partitions.start ({spec.partitions.start})"
        )
    return window


def next_window(spec: CollectorSpec, window: Window) -> Window:
    """The window after `window`."""
    return window_containing(spec, window.end)


def previous_window(spec: CollectorSpec, window: Window) -> Window | None:
    """The window before `window`; None when `window` is the first partition."""
    parts = partitioning(spec)
    if parts is None:
        return _subhour_window(spec, window.start - timedelta(microseconds=1))
    index = parts.index_at(window.start) - 1
    return parts.window(index) if index >= parts.first else None


def last_closed_window(spec: CollectorSpec, moment: datetime) -> Window | None:
    """The last window whose end is at or before `moment`; None before the first partition
    closed (what a schedule ticking at window close + lag requests with `moment = tick - lag`)."""
    parts = partitioning(spec)
    if parts is None:
        open_window = _subhour_window(spec, _aware(moment))
        return _subhour_window(spec, open_window.start - timedelta(microseconds=1))
    index = parts.index_at(_aware(moment)) - 1
    return parts.window(index) if index >= parts.first else None


def windows_between(spec: CollectorSpec, start: datetime, end: datetime) -> list[Window]:
    """The partitions whose windows start in [start, end), from partitions.start on."""
    parts = partitioning(spec)
    if parts is None:
        raise CollectorError(
            f"{spec.name} has a sub-hour grain ({spec.metric.grain}) and is not partitioned"
        )
    return [parts.window(i) for i in parts.indexes_between(_aware(start), _aware(end))]


def keys_between(spec: CollectorSpec, start: datetime, end: datetime) -> list[str]:
    """The keys of the partitions whose windows start in [start, end) (Dagster's
    get_partition_keys_in_time_window, bounded by partitions.start)."""
    return [window.key for window in windows_between(spec, start, end)]
