"""Named field types of the collector spec, each with its own validator."""

import functools
import re
import zoneinfo
from datetime import date, datetime, timedelta
from typing import Annotated

from pydantic import AfterValidator, BeforeValidator, Field

_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")


def parse_duration(text: str) -> timedelta:
    """Parse a Go-style duration ('90s', '1h30m', '24h', '7d'); raise ValueError when malformed."""
    text = text.strip()
    if not text or _DURATION_PART.sub("", text) != "":
        raise ValueError(f"invalid duration {text!r} (examples: 30s, 15m, 1h, 24h, 7d)")
    seconds = sum(float(n) * _UNITS[u] for n, u in _DURATION_PART.findall(text))
    return timedelta(seconds=seconds)


def format_duration(delta: timedelta) -> str:
    """The shortest canonical text of a duration ('24h', '15m', '10s')."""
    seconds = int(delta.total_seconds())
    for unit, size in (("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


MONTH = "1mo"
_DAY = 86400
VALID_GRAINS = "10s, 30s, 1m, 5m, 15m, 30m, 1h, 2h, 3h, 4h, 6h, 8h, 12h, 24h (=1d), 7d (=1w), 1mo"


def _grain(value: object) -> str:
    if not isinstance(value, str):
        raise ValueError(f"grain must be a string such as '24h', got {value!r}")
    if "M" in value:
        raise ValueError(f"ambiguous grain {value!r}: write 1m for a minute or 1mo for a month")
    text = value.strip().lower()
    if text in ("1mo", "1month"):
        return MONTH
    seconds = parse_duration(text).total_seconds()
    if seconds == 7 * _DAY:
        return "7d"
    if seconds == _DAY:
        return "24h"
    if (
        seconds >= 1
        and seconds == int(seconds)
        and (
            (seconds < 3600 and 3600 % seconds == 0)
            or (seconds % 3600 == 0 and _DAY % seconds == 0)
        )
    ):
        return format_duration(timedelta(seconds=seconds))
    raise ValueError(f"unsupported grain {value!r}: use one of {VALID_GRAINS}")


def grain_timedelta(grain: str) -> timedelta | None:
    """The fixed length of a grain; None for the calendar month."""
    return None if grain == MONTH else parse_duration(grain)


def _duration(value: object) -> timedelta:
    if isinstance(value, timedelta):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return timedelta(seconds=value)
    if not isinstance(value, str):
        raise ValueError(f"expected a duration such as '15m', got {value!r}")
    return parse_duration(value)


# The everyday cron fields croniter accepts for sure: '*', '*/STEP', a number or a list of numbers
# in the field's range (minute, hour, day of month, month, day of week).
_CRON_RANGES = ((0, 59), (0, 23), (1, 31), (1, 12), (0, 6))


def _plain_cron_field(text: str, low: int, high: int) -> bool:
    if text == "*":
        return True
    if text.startswith("*/"):
        step = text[2:]
        return step.isascii() and step.isdigit() and 1 <= int(step) <= high
    return all(
        part.isascii() and part.isdigit() and low <= int(part) <= high for part in text.split(",")
    )


def _plain_cron(fields: list[str]) -> bool:
    """Whether each of the five fields has one of the everyday shapes."""
    pairs = zip(fields, _CRON_RANGES, strict=True)
    return all(_plain_cron_field(field, low, high) for field, (low, high) in pairs)


@functools.lru_cache(maxsize=1024)
def _valid_cron(text: str) -> bool:
    fields = text.split(" ")
    if len(fields) != 5:
        return False
    if _plain_cron(fields):
        # Valid without importing croniter and dateutil (tens of milliseconds of a short
        # `signals invoke`); names, ranges, 'L', '#', '?' and the rest are croniter's to judge.
        return True
    # croniter expands every field to check it (a third of a millisecond); collectors share a
    # few crons, so each is checked once.
    from croniter import croniter

    return bool(croniter.is_valid(text))


def _cron(value: str) -> str:
    text = " ".join(value.split())
    if not _valid_cron(text):
        raise ValueError(
            f"invalid cron expression {value!r} (5 fields: minute hour day month weekday)"
        )
    return text


def _timezone(value: str) -> str:
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"unknown timezone {value!r} (use an IANA name such as Europe/Berlin)"
        ) from None
    return value


def _date(value: object) -> str:
    # YAML reads `2026-01-01 10:00` as a datetime: a date with a time is not a date.
    if isinstance(value, date) and not isinstance(value, datetime):
        return value.isoformat()
    text = str(value)
    try:
        return date.fromisoformat(text).isoformat()
    except ValueError:
        raise ValueError(f"invalid date {text!r} (expected YYYY-MM-DD)") from None


def _stringify(value: object) -> object:
    # YAML turns `value: prod` into str but `value: 1` into int: tags are strings either way.
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int | float):
        return str(value)
    return value


Grain = Annotated[str, BeforeValidator(_grain)]
Duration = Annotated[timedelta, BeforeValidator(_duration)]
Cron = Annotated[str, AfterValidator(_cron)]
Timezone = Annotated[str, AfterValidator(_timezone)]
IsoDate = Annotated[str, BeforeValidator(_date)]
MetricName = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_.:-]*$", max_length=200)]
TagKey = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_.:-]*$", max_length=100)]
TagValue = Annotated[str, BeforeValidator(_stringify)]
PositiveDuration = Annotated[Duration, AfterValidator(lambda d: _positive(d))]


def _positive(delta: timedelta) -> timedelta:
    if delta.total_seconds() <= 0:
        raise ValueError("must be a positive duration")
    return delta


OWNER = re.compile(r"^(team:[A-Za-z0-9_.-]+|[^@\s]+@[^@\s]+\.[^@\s]+)$")


def check_owners(value: list[str]) -> list[str]:
    """Owners are e-mail addresses or `team:name` (collectors and contracts alike)."""
    for owner in value:
        if not OWNER.match(owner):
            raise ValueError(f"owner {owner!r} must be an email or team:name")
    return value
