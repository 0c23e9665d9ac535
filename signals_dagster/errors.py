"""Error types shared by every layer: located spec problems and run-time collector failures."""

from dataclasses import dataclass


@dataclass(frozen=True, order=True)
class Problem:
    """One located problem in a collector file."""

    file: str
    line: int
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.path}: {self.message}"


class SpecError(Exception):
    """Every problem found in one or more collector files (reported together)."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = sorted(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class CollectorError(Exception):
    """A collector run failed for a reason the user can act on (bad result, old snapshot...).

    `transient` says whether a retry may help (a lost connection) or not (a syntax error).
    """

    def __init__(self, message: str, *, transient: bool = False) -> None:
        super().__init__(message)
        self.transient = transient


class SnapshotWindowError(CollectorError):
    """A snapshot collector was asked for a window it cannot measure."""


class SourceError(CollectorError):
    """The source failed to answer."""


class SinkError(CollectorError):
    """A sink failed to confirm its write (`transient=True` when a retry may succeed)."""
