"""Plug-in source and sink types: another installed package provides a type through an entry
point (`signals_dagster.sources`, `signals_dagster.sinks`) naming a SourcePlugin or SinkPlugin —
its config model and its implementation — and the type is validated (located errors, unknown
keys), described in the JSON schema, shown as a kind, opened by runs, `invoke` and `redrive`
exactly like a built-in one. The built-in types are in the same tables (`sources.base.SOURCES`,
`sinks.base.SINKS`): adding a type is one module and one registration line.

A plug-in module is imported while the collector format's models are built: at its top it may
import only this module and `signals_dagster.spec.base` (and its own dependencies).
"""

import builtins
import functools
import re
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any, Literal

from pydantic import BaseModel, Field, create_model

SOURCE_GROUP = "signals_dagster.sources"
SINK_GROUP = "signals_dagster.sinks"
_TYPE_NAME = re.compile(r"^[a-z][a-z0-9_.]*$")


class PluginError(Exception):
    """An installed plug-in that cannot be used (named, with why)."""


@dataclass(frozen=True)
class SourcePlugin:
    """A source type: `type:` value, config model, and `open(spec) -> Source` (not connecting:
    `kind` and `range_capable` are read from what it returns before any run)."""

    type: str
    config: builtins.type[BaseModel]
    open: Callable[[Any], Any]


@dataclass(frozen=True)
class SinkPlugin:
    """A sink type: `type:` value, config model, and `open(sink, clients) -> Writer` (opening
    checks what can be checked without writing, as built-in sinks do before the query)."""

    type: str
    config: builtins.type[BaseModel]
    open: Callable[[Any, Any], Any]


@functools.cache
def _entry_points() -> Any:
    """Every installed entry point, read once (each scan reads every distribution's metadata)."""
    return entry_points()


def _load(group: str, kind: builtins.type) -> tuple[Any, ...]:
    found: list[Any] = []
    for point in sorted(_entry_points().select(group=group), key=lambda p: p.name):
        try:
            plugin: Any = point.load()
        except Exception as exc:  # a broken package names itself, not a traceback
            raise PluginError(f"plug-in {point.name!r} ({point.value}) cannot load: {exc}") from exc
        if not isinstance(plugin, kind):
            raise PluginError(f"plug-in {point.name!r} ({point.value}) is not a {kind.__name__}")
        name = str(getattr(plugin, "type", ""))
        if not _TYPE_NAME.match(name):
            raise PluginError(f"plug-in {point.name!r}: type {name!r} must match [a-z][a-z0-9_.]*")
        found.append(plugin)
    return tuple(found)


@functools.cache
def external_sources() -> tuple[SourcePlugin, ...]:
    """The source plug-ins of the installed packages (by entry point name)."""
    return _load(SOURCE_GROUP, SourcePlugin)


@functools.cache
def external_sinks() -> tuple[SinkPlugin, ...]:
    """The sink plug-ins of the installed packages (by entry point name)."""
    return _load(SINK_GROUP, SinkPlugin)


def typed_model(plugin: SourcePlugin | SinkPlugin, base: type[BaseModel]) -> type[BaseModel]:
    """The `{type: <its name>, config: <its model>}` model of a plug-in type (on `base`, the
    built-in types' base), a member of the Source or Sink union."""
    name = "".join(part.title() for part in re.split(r"[_.]", plugin.type)) + "Plugin"
    fields: dict[str, Any] = {
        "type": (Literal[plugin.type], Field(description=f"The plug-in type {plugin.type!r}")),
        "config": (
            plugin.config,
            Field(description=f"The configuration of the {plugin.type!r} type"),
        ),
    }
    model: type[BaseModel] = create_model(
        name,
        __base__=base,
        __module__=__name__,
        __doc__=f"The {plugin.type!r} type of an installed plug-in package",
        **fields,
    )
    return model


def source_plugin(type_name: str) -> SourcePlugin | None:
    """The plug-in of a source type (None for a built-in type)."""
    return next((p for p in external_sources() if p.type == type_name), None)


def sink_plugin(type_name: str) -> SinkPlugin | None:
    """The plug-in of a sink type (None for a built-in type)."""
    return next((p for p in external_sinks() if p.type == type_name), None)
