"""The quality gate's configuration: `checks:` (on a collector or a contract), `on_fail:` and
`freshness:` of a collector."""

from typing import Annotated, Literal

from pydantic import Field, StrictInt, model_validator

from signals_dagster.spec.base import Model
from signals_dagster.spec.fields import PositiveDuration
from signals_dagster.spec.sinks import FileSink, S3Sink

Severity = Literal["error", "warn"]
Figure = Literal["value_sum", "record_count"]
CHECK_NAME = r"^[A-Za-z][A-Za-z0-9_]*$"


class _Check(Model):
    name: str | None = Field(
        default=None,
        pattern=CHECK_NAME,
        max_length=60,
        description="The asset check's name (default: the check's type); unique per collector",
    )
    severity: Severity = Field(
        default="error", description="error: a failure blocks publishing; warn: publish and warn"
    )

    @property
    def check_name(self) -> str:
        """The name of the check (its type when it has none)."""
        return self.name or str(getattr(self, "type"))  # noqa: B009


class NotEmptyCheck(_Check):
    """At least one record."""

    type: Literal["not_empty"]


class RangeCheck(_Check):
    """Every value within [min, max] (bounds included)."""

    type: Literal["range"]
    min: float | None = None
    max: float | None = None

    @model_validator(mode="after")
    def _bounds(self) -> "RangeCheck":
        if self.min is None and self.max is None:
            raise ValueError("give min, max or both")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min {self.min:g} is greater than max {self.max:g}")
        return self


class ChangeCheck(_Check):
    """The window's figure against the previous window's: at most `max_pct` percent apart."""

    type: Literal["change"]
    max_pct: float = Field(gt=0, description="Largest change allowed, in percent")
    on: Figure = "value_sum"


class AnomalyCheck(_Check):
    """A z-score of the window's figure against the same figure of the previous windows."""

    type: Literal["anomaly"]
    on: Figure = "value_sum"
    lookback: StrictInt = Field(default=14, ge=2, le=400, description="Windows of history")
    sigma: float = Field(default=3, gt=0, description="Largest |z| allowed")
    min_history: StrictInt = Field(
        default=7, ge=2, description="Windows of history needed to judge (else: skipped)"
    )
    direction: Literal["both", "up", "down"] = "both"

    @model_validator(mode="after")
    def _history(self) -> "AnomalyCheck":
        if self.min_history > self.lookback:
            raise ValueError(
                f"min_history {self.min_history} is more than lookback {self.lookback}"
            )
        return self


Check = Annotated[
    NotEmptyCheck | RangeCheck | ChangeCheck | AnomalyCheck, Field(discriminator="type")
]
HISTORY_CHECKS = (ChangeCheck, AnomalyCheck)


class OnFail(Model):
    """What happens to a batch an `error` check blocked."""

    quarantine: Annotated[FileSink | S3Sink, Field(discriminator="type")] = Field(
        description="An extra sink (file or s3) the blocked batch is written to, marked "
        "quarantined (a file's name gets `.quarantine`, an S3 prefix `quarantine/`), so that "
        "`signals redrive` can publish it after review"
    )


class Freshness(Model):
    """Missing windows: closed windows not materialised `grace` after they could have been."""

    grace: PositiveDuration = Field(description="Time after the window's end + lag")
    lookback: PositiveDuration = Field(description="How far back windows are watched")


CONTRACT_CHECK = "contract"  # the asset check of a metric's contract
FRESHNESS_CHECK = "freshness"  # the asset check of missing windows
RESERVED_CHECKS = (CONTRACT_CHECK, FRESHNESS_CHECK)


def check_names_problems(checks: list[Check], taken: set[str]) -> list[tuple[int, str]]:
    """(index, message) for each check whose name is already taken (names are unique), or
    reserved (`contract`, `freshness`, `policy_*`)."""
    problems: list[tuple[int, str]] = []
    seen = set(taken)
    for index, check in enumerate(checks):
        name = check.check_name
        if name in RESERVED_CHECKS or name.startswith("policy_"):
            problems.append((index, f"check name {name!r} is reserved"))
        elif name in seen:
            problems.append(
                (index, f"check name {name!r} is used twice (give the checks distinct `name`s)")
            )
        seen.add(name)
    return problems
