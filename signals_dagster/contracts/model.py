"""A metric contract: one definition per metric name, with a version (the registry's shape)."""

import re
from typing import Literal

from pydantic import Field, StrictInt, field_validator, model_validator

from signals_dagster.spec.base import Model
from signals_dagster.spec.fields import MetricName, TagKey, TagValue, check_owners
from signals_dagster.spec.quality import Check, check_names_problems

STABILITY_ORDER = ("development", "stable", "deprecated")
_RESERVED_TAGS = ("value", "grain_datetime")


class TagRule(Model):
    """What one tag of a metric may hold (a tag not listed in the contract is a violation)."""

    required: bool = Field(default=False, description="Every record must carry the tag")
    allowed: list[TagValue] | None = Field(
        default=None,
        min_length=1,
        description="The only values the tag may take",
        examples=[["br", "de", "fr"]],
    )
    pattern: str | None = Field(
        default=None,
        description="A regular expression every value must match (searched, as in JSON "
        "Schema: anchor it with ^…$ to match the whole value)",
        examples=["^(demo|prod|staging)$"],
    )
    description: str | None = None
    pii: Literal["hash", "drop"] | None = Field(
        default=None,
        description="Personal data: `hash` replaces the value by a keyed HMAC-SHA256 pseudonym "
        "($SIGNALS_PII_KEY); `drop` removes the tag before records are built",
    )

    @model_validator(mode="after")
    def _pii(self) -> "TagRule":
        if self.pii is not None and (self.allowed is not None or self.pattern is not None):
            raise ValueError(
                f"a `pii: {self.pii}` tag cannot list allowed values or a pattern (they would "
                "name personal values in the registry)"
            )
        if self.pii == "drop" and self.required:
            raise ValueError("a `pii: drop` tag is never published, so it cannot be required")
        return self

    @field_validator("allowed")
    @classmethod
    def _unique(cls, value: list[str] | None) -> list[str] | None:
        if value is not None:
            seen: set[str] = set()
            for item in value:
                if item in seen:
                    raise ValueError(f"value {item!r} is listed twice")
                seen.add(item)
        return value

    @field_validator("pattern")
    @classmethod
    def _regex(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"invalid regular expression {value!r}: {exc}") from None
        return value

    def accepts(self, value: str) -> bool:
        """Whether one value satisfies `allowed` and `pattern`."""
        if self.allowed is not None and value not in self.allowed:
            return False
        return self.pattern is None or re.search(self.pattern, value) is not None


class ValueRange(Model):
    """The range every record's value must be in (bounds included)."""

    min: float | None = None
    max: float | None = None

    @model_validator(mode="after")
    def _ordered(self) -> "ValueRange":
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min {self.min:g} is greater than max {self.max:g}")
        return self

    def describe(self) -> str:
        """[min, max] with an open side as ∞."""
        low = "-inf" if self.min is None else f"{self.min:g}"
        high = "inf" if self.max is None else f"{self.max:g}"
        return f"[{low}, {high}]"


class MinGroupSize(Model):
    """Small groups suppressed: rows behind fewer than `k` people are not emitted."""

    k: StrictInt = Field(ge=2, description="The smallest group that may be published")
    column: TagKey = Field(
        description="The query column with the number of distinct people (or devices…) behind "
        "each row; it never becomes a tag",
        examples=["subjects"],
    )


class Contract(Model):
    """One metric's contract: what every collector of the metric emits."""

    name: MetricName = Field(description="The metric.name collectors emit")
    version: StrictInt = Field(ge=1, description="Bumped on every breaking change")
    type: Literal["COUNT", "GAUGE"]
    unit: str | None = Field(default=None, description="A collector that sets one must agree")
    description: str | None = None
    owners: list[str] = Field(default_factory=list, examples=[["team:growth"]])
    stability: Literal["development", "stable", "deprecated"] = "development"
    tags: dict[TagKey, TagRule] = Field(
        default_factory=dict, description="Closed: a tag that is not listed is a violation"
    )
    values: ValueRange | None = None
    max_records: StrictInt | None = Field(
        default=None, ge=1, description="Records per window at most (a cardinality budget)"
    )

    min_group_size: MinGroupSize | None = None
    checks: list[Check] = Field(
        default_factory=list, description="Quality checks for every collector of the metric"
    )

    @field_validator("type", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @model_validator(mode="after")
    def _group_column(self) -> "Contract":
        group = self.min_group_size
        if group is not None and group.column in self.tags:
            raise ValueError(
                f"min_group_size.column {group.column!r} is also a tag: the count column never "
                "becomes a tag"
            )
        return self

    @field_validator("checks")
    @classmethod
    def _check_names(cls, value: list[Check]) -> list[Check]:
        problems = check_names_problems(value, set())
        if problems:
            raise ValueError("; ".join(f"checks[{i}]: {m}" for i, m in problems))
        return value

    @property
    def hashed_tags(self) -> list[str]:
        """The tags whose values are pseudonymised (`pii: hash`)."""
        return [key for key, rule in self.tags.items() if rule.pii == "hash"]

    @property
    def dropped_tags(self) -> list[str]:
        """The tags removed before records are built (`pii: drop`)."""
        return [key for key, rule in self.tags.items() if rule.pii == "drop"]

    @field_validator("tags", mode="before")
    @classmethod
    def _tags(cls, value: object) -> object:
        if value is None:
            return {}
        if isinstance(value, dict):  # `channel:` alone, or `channel: {}`: an optional tag
            return {k: ({} if v is None else v) for k, v in value.items()}
        return value

    @field_validator("tags")
    @classmethod
    def _reserved(cls, value: dict[str, TagRule]) -> dict[str, TagRule]:
        for key in value:
            if key in _RESERVED_TAGS:
                raise ValueError(f"tag {key!r} clashes with the query column of the same name")
        return value

    @field_validator("owners")
    @classmethod
    def _owners(cls, value: list[str]) -> list[str]:
        return check_owners(value)

    @property
    def label(self) -> str:
        """`name v<version>`, as messages name the contract."""
        return f"{self.name} v{self.version}"

    @property
    def ref(self) -> str:
        """`name/version`, as published batches name the contract."""
        return f"{self.name}/{self.version}"


class RegistrySettings(Model):
    """`registry:` in signals.yaml."""

    strict: bool = Field(
        default=False, description="A collector whose metric has no contract is an error"
    )


class RegistryFile(Model):
    """A registry file: any YAML file of the collectors folder tree whose top level is
    `metrics:` (a list of contracts)."""

    metrics: list[Contract]
