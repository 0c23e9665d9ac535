"""The Dagster-free window arithmetic (signals_dagster.partitioning) against Dagster's own
partitions definitions: the same keys, windows and window of an instant for every partitioned
grain, in zones with DST changes, half-hour offsets and a half-hour DST shift."""

import functools
import itertools
import random
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import dagster as dg
import pytest
from dagster._check import CheckError

from signals_dagster import partitioning
from signals_dagster.errors import CollectorError
from signals_dagster.orchestration import partitions
from signals_dagster.orchestration.partitions import partitions_def
from signals_dagster.partitioning import (
    current_window,
    key_format,
    keys_between,
    last_closed_window,
    next_window,
    partition_key_for,
    previous_window,
    window_containing,
    window_for_key,
    windows_between,
)
from signals_dagster.spec.models import CollectorSpec
from signals_dagster.window import Window

GRAINS = ["1h", "2h", "3h", "4h", "6h", "8h", "12h", "24h", "7d", "1mo"]
ZONES = [
    "UTC",
    "Europe/Berlin",
    "America/New_York",
    "Asia/Kolkata",  # +05:30, no DST
    "Australia/Lord_Howe",  # +10:30 / +11:00: a 30-minute DST shift
    "America/Havana",  # DST changes at midnight: a day starts at 01:00, another twice
]
YEAR = 366  # days from 2026-01-01: every zone above changes its clocks twice
HOUR = timedelta(hours=1)
SECOND = timedelta(seconds=1)
HAVANA_SECOND_MIDNIGHT = datetime(2026, 11, 1, 5, tzinfo=UTC)


def spec_for(grain: str, tz: str = "UTC", start: str = "2026-01-01") -> CollectorSpec:
    return CollectorSpec.model_validate(
        {
            "name": f"p.{grain}",
            "metric": {"name": "p.test", "type": "COUNT", "grain": grain},
            "partitions": {"start": start, "timezone": tz},
            "source": {
                "type": "sqlite",
                "config": {"uri": "sqlite://", "sql": "SELECT 1 AS value"},
            },
            "sinks": {"console": {"type": "console"}},
        }
    )


def span(w: Window | dg.TimeWindow) -> tuple[float, float]:
    return w.start.timestamp(), w.end.timestamp()


@functools.cache  # shared by the tests below: Dagster's cron iteration is the slow part
def dagster_partitions(
    grain: str, tz: str, days: int = YEAR, start: str = "2026-01-01"
) -> tuple[list[str], list[dg.TimeWindow]]:
    """Dagster's keys of the windows starting in [partitions.start, + days), and their windows."""
    pdef = partitions_def(spec_for(grain, tz, start))
    assert pdef is not None
    keys = list(
        pdef.get_partition_keys_in_time_window(
            dg.TimeWindow(pdef.start, pdef.start + timedelta(days=days))
        )
    )
    windows = pdef.time_windows_for_partition_keys(frozenset(keys), validate=False)
    return keys, sorted(windows, key=lambda w: w.start.timestamp())


def transitions(tz: str, start: datetime, end: datetime) -> list[datetime]:
    """The instants where the zone's UTC offset changes, to the minute."""
    zone = ZoneInfo(tz)
    found, moment = [], start
    while moment < end:
        later = moment + HOUR
        if moment.astimezone(zone).utcoffset() != later.astimezone(zone).utcoffset():
            low = moment
            while later - low > timedelta(minutes=1):
                mid = low + (later - low) / 2
                same = mid.astimezone(zone).utcoffset() == low.astimezone(zone).utcoffset()
                low, later = (mid, later) if same else (low, mid)
            found.append(later.replace(second=0, microsecond=0))
        moment += HOUR
    return found


def half_hour_offset(tz: str, moment: datetime) -> bool:
    offset = moment.astimezone(ZoneInfo(tz)).utcoffset()
    return offset is not None and offset % HOUR != timedelta(0)


@pytest.mark.parametrize("tz", ZONES)
@pytest.mark.parametrize("grain", GRAINS)
def test_keys_and_windows_match_dagster(grain: str, tz: str) -> None:
    spec = spec_for(grain, tz)
    keys, expected = dagster_partitions(grain, tz)
    start, end = expected[0].start, expected[-1].end
    assert keys_between(spec, start, end) == keys
    ours = [window_for_key(spec, key) for key in keys]
    assert [w.key for w in ours] == keys
    assert [span(w) for w in ours] == [span(w) for w in expected]
    assert windows_between(spec, start, end) == ours
    for n, (before, after) in enumerate(itertools.pairwise(ours)):
        assert before.end.timestamp() == after.start.timestamp()  # contiguous
        if n % 5 == 0 or before.end.utcoffset() != after.end.utcoffset():
            assert next_window(spec, before) == after
            assert previous_window(spec, after) == before
    assert previous_window(spec, ours[0]) is None
    assert all(w.start.tzinfo == ours[0].start.tzinfo for w in ours)


@pytest.mark.parametrize("tz", ZONES)
@pytest.mark.parametrize("grain", GRAINS)
def test_window_of_an_instant_matches_dagster(grain: str, tz: str) -> None:
    spec = spec_for(grain, tz)
    pdef = partitions_def(spec)
    assert pdef is not None
    keys, expected = dagster_partitions(grain, tz)
    listed = {key: span(w) for key, w in zip(keys, expected, strict=True)}
    first, last = expected[0].start.astimezone(UTC), expected[-2].end.astimezone(UTC)
    rng = random.Random(f"{grain} {tz}")
    seconds = int((last - first).total_seconds())
    instants = [first + timedelta(seconds=rng.randrange(seconds)) for _ in range(120)]
    for change in transitions(tz, first, last):
        near = [w for w in expected if abs(w.start.timestamp() - change.timestamp()) < 86400]
        instants += [
            change + d * timedelta(minutes=m) for m in (0, 1, 30, 59, 60, 90) for d in (1, -1)
        ]
        instants += [w.start.astimezone(UTC) + d for w in near for d in (timedelta(0), -SECOND)]
    instants = [t for t in instants if first <= t < last]
    assert len(instants) >= 120
    for instant in instants:
        window = window_containing(spec, instant)
        assert window.start.timestamp() <= instant.timestamp() < window.end.timestamp()
        assert listed[window.key] == span(window)
        assert current_window(spec, instant) == window
        closed = last_closed_window(spec, instant)
        if window.key == keys[0]:
            assert closed is None
        else:
            assert closed is not None
            assert next_window(spec, closed) == window
        if grain == "1h" and half_hour_offset(tz, instant):
            # Dagster's hourly key of a timestamp in a half-hour offset zone depends on the offset
            # of the day the process runs (`has_nonzero_minute_offset` reads datetime.now()), and
            # then may name an hour that is not in its own partition list (local :00 while the
            # list has :30 since Lord Howe's April change). The partition list is what counts.
            continue
        try:
            dagster_key = pdef.get_partition_key_for_timestamp(instant.timestamp())
        except CheckError:
            # Dagster fails an invariant of its own at Havana's second midnight for 1mo
            # (2026-11-01 00:00 CST); its partition list and windows are still the ones above.
            assert (grain, tz, instant) == ("1mo", "America/Havana", HAVANA_SECOND_MIDNIGHT)
            continue
        assert window.key == dagster_key, instant
        assert partition_key_for(spec, instant) == window.key
        if closed is not None:  # the schedules' "window that just closed", asked of Dagster
            # (not get_prev_partition_window: at Havana's double midnight it overlaps the next
            # window, or fails an invariant for 1mo)
            assert closed.key == pdef.get_partition_key_for_timestamp(window.start.timestamp() - 1)


@pytest.mark.parametrize("grain", ["2h", "24h", "7d", "1mo"])
@pytest.mark.parametrize("start", ["2025-12-17", "2026-03-29", "2026-10-25"])
def test_first_partition_follows_partitions_start(grain: str, start: str) -> None:
    """A start inside a week or month: the first partition is the first window from it on."""
    spec = spec_for(grain, "Europe/Berlin", start)
    keys, _ = dagster_partitions(grain, "Europe/Berlin", 100, start)
    pdef = partitions_def(spec)
    assert pdef is not None
    assert (
        keys_between(spec, pdef.start - timedelta(days=40), pdef.start + timedelta(days=100))
        == keys
    )
    assert keys[0] == pdef.get_first_partition_key()
    window = window_containing(spec, pdef.start)
    if window.key != keys[0]:  # the week or month that contains partitions.start began before it
        with pytest.raises(CollectorError, match=r"is before partitions\.start"):
            window_for_key(spec, window.key)
        with pytest.raises(CollectorError, match=r"is before partitions\.start"):
            current_window(spec, pdef.start)


@pytest.mark.parametrize("tz", ZONES)
@pytest.mark.parametrize("grain", GRAINS)
def test_only_listed_keys_are_accepted(grain: str, tz: str) -> None:
    """Every local wall time of the DST days, every 30 min, written as a key: accepted exactly
    when Dagster lists it; refused with the key of the window that contains it otherwise."""
    spec = spec_for(grain, tz)
    keys, expected = dagster_partitions(grain, tz)
    fmt = key_format(grain)
    assert fmt is not None
    zone = ZoneInfo(tz)
    days = {c.astimezone(zone).date() for c in transitions(tz, expected[0].start, expected[-1].end)}
    days |= {datetime(2026, 3, 1).date(), datetime(2026, 6, 15).date()}
    candidates = {
        (datetime(d.year, d.month, d.day) + timedelta(minutes=30 * i)).strftime(fmt)
        for d in days
        for i in range(48)
    }
    listed = set(keys)
    for key in sorted(candidates):
        if key in listed:
            assert window_for_key(spec, key).key == key
            continue
        with pytest.raises(CollectorError, match="is not the start of a") as refused:
            window_for_key(spec, key)
        containing = str(refused.value).rsplit("starts at ", 1)[1].strip("')")
        assert containing in listed, key


def test_dst_days_in_berlin() -> None:
    """The README's promise, written out: a Berlin day is 23 h or 25 h; N-hour windows follow
    the local clock; the second 02:00 hour of the fall-back night has its own key."""

    def hours(grain: str, key: str) -> float:
        w = window_for_key(spec_for(grain, "Europe/Berlin"), key)
        return (w.end.astimezone(UTC) - w.start.astimezone(UTC)) / HOUR

    assert hours("24h", "2026-03-29") == 23
    assert hours("24h", "2026-10-25") == 25
    assert hours("7d", "2026-03-23") == 7 * 24 - 1
    assert hours("1mo", "2026-10-01") == 31 * 24 + 1
    assert hours("2h", "2026-03-29-00:00") == 2  # ends at 03:00 CEST: 02:00 does not exist
    assert hours("2h", "2026-03-29-03:00") == 1
    assert hours("2h", "2026-10-25-00:00") == 3  # ends at the second 02:00 (CET)
    assert hours("1h", "2026-10-25-02:00") == 1
    assert hours("1h", "2026-10-25-02:00+0100") == 1
    second = window_for_key(spec_for("1h", "Europe/Berlin"), "2026-10-25-02:00+0100")
    assert second.start.isoformat() == "2026-10-25T02:00:00+01:00"
    assert second.grain_datetime == datetime(2026, 10, 25, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("grain", "key", "message"),
    [
        (
            "24h",
            "2026-02-03T10",
            "invalid partition key '2026-02-03T10' for grain 24h (expected e.g. '2026-01-01')",
        ),
        ("24h", "2026-13-01", "invalid partition key '2026-13-01'"),
        # Read as 2026-02-03 at UTC-10:00, as Dagster reads it: a key with an offset.
        ("24h", "2026-02-03-10:00", "the window containing it starts at '2026-02-03'"),
        (
            "1h",
            "2026-02-03",
            "invalid partition key '2026-02-03' for grain 1h (expected e.g. '2026-01-01-00:00')",
        ),
        (
            "24h",
            "2026-2-3",
            "partition key '2026-2-3' is not the start of a 24h window "
            "(the window containing it starts at '2026-02-03')",
        ),
        (
            "1h",
            "2026-03-01-10:30",
            "partition key '2026-03-01-10:30' is not the start of a 1h "
            "window (the window containing it starts at '2026-03-01-10:00')",
        ),
        ("2h", "2026-03-01-03:00", "the window containing it starts at '2026-03-01-02:00'"),
        (
            "7d",
            "2026-02-11",
            "partition key '2026-02-11' is not the start of a 7d window "
            "(the window containing it starts at '2026-02-09')",
        ),
        ("1mo", "2026-02-11", "the window containing it starts at '2026-02-01'"),
        ("24h", "2026-02-03+0100", "is not the start of a 24h window"),
        ("24h", "2025-12-31", "partition '2025-12-31' is before partitions.start (2026-01-01)"),
        ("1mo", "2025-12-01", "partition '2025-12-01' is before partitions.start (2026-01-01)"),
    ],
)
def test_bad_keys_are_refused_with_a_clear_message(grain: str, key: str, message: str) -> None:
    with pytest.raises(CollectorError) as refused:
        window_for_key(spec_for(grain), key)
    assert message in str(refused.value)


@pytest.mark.parametrize("grain", ["1h", "2h"])
def test_a_key_inside_the_spring_gap_names_the_window_after_it(grain: str) -> None:
    with pytest.raises(CollectorError, match="containing it starts at '2026-03-29-03:00'"):
        window_for_key(spec_for(grain, "Europe/Berlin"), "2026-03-29-02:00")


@pytest.mark.parametrize(
    ("grain", "now", "key", "end"),
    [
        ("10s", "2026-02-03T10:07:35.5Z", "2026-02-03T10:07:30Z", "2026-02-03T10:07:40Z"),
        ("1m", "2026-02-03T10:07:35Z", "2026-02-03T10:07:00Z", "2026-02-03T10:08:00Z"),
        ("5m", "2026-02-03T10:05:00Z", "2026-02-03T10:05:00Z", "2026-02-03T10:10:00Z"),
        ("30m", "2026-02-03T10:59:59Z", "2026-02-03T10:30:00Z", "2026-02-03T11:00:00Z"),
    ],
)
def test_subhour_grains_are_epoch_aligned_and_not_partitioned(
    grain: str, now: str, key: str, end: str
) -> None:
    spec = spec_for(grain, "Europe/Berlin")
    window = current_window(spec, datetime.fromisoformat(now))
    assert window.key == key
    assert window.start == datetime.fromisoformat(key)
    assert window.end == datetime.fromisoformat(end)
    assert key_format(grain) is None
    assert partitioning.partitioning(spec) is None
    closed = last_closed_window(spec, datetime.fromisoformat(now))
    assert closed is not None
    assert closed.end == window.start
    with pytest.raises(CollectorError, match=rf"sub-hour grain \({grain}\) and is not partitioned"):
        window_for_key(spec, key)


def test_current_window_before_partitions_start_is_an_error() -> None:
    spec = spec_for("24h", start="2027-01-01")
    with pytest.raises(CollectorError, match=r"partition '2026-12-31' is before partitions\.start"):
        current_window(spec, datetime(2026, 12, 31, 12, tzinfo=UTC))
    with pytest.raises(
        CollectorError, match=r"key '2026-12-31T00' for grain 24h \(expected e.g. '2027-01-01'\)"
    ):
        window_for_key(spec, "2026-12-31T00")
    assert last_closed_window(spec, datetime(2027, 1, 1, tzinfo=UTC)) is None
    with pytest.raises(ValueError, match="no timezone"):
        window_containing(spec, datetime(2027, 1, 5))


def test_orchestration_reexports_the_core() -> None:
    assert partitions.window_for_key is partitioning.window_for_key
    assert partitions.current_window is partitioning.current_window
    assert key_format("1h") == partitions.MINUTE_FMT
