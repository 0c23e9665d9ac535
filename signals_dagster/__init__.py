"""signals_dagster: source-side metric collection as Dagster assets.

`signals_dagster.SignalsCollectors` (the Dagster Component, see component.py) is imported on
first use: the `signals` commands that need no Dagster must not import it (test_cli_imports)."""

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from signals_dagster.component import SignalsCollectors

__all__ = ["SignalsCollectors"]


def __getattr__(name: str) -> Any:
    if name == "SignalsCollectors":
        from signals_dagster.component import SignalsCollectors

        return SignalsCollectors
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
