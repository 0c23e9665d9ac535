"""The registry: the contracts of every registry file in a collectors folder tree, located."""

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import ValidationError

from signals_dagster.contracts.model import Contract, RegistryFile
from signals_dagster.errors import Problem
from signals_dagster.spec import yamlpos
from signals_dagster.spec.located import dotted as _dotted
from signals_dagster.spec.located import pydantic_message as _message
from signals_dagster.spec.yamlpos import Positions

LOCK_NAME = "metrics.lock.json"
# A registry file's top level is `metrics:` (a collector has `metric:`): found without parsing.
_REGISTRY_TEXT = re.compile(r"^metrics[ \t]*:", re.MULTILINE)

Path_ = tuple[str | int, ...]


def is_registry_text(text: str) -> bool:
    """Whether a YAML file's text is a registry file (a top-level `metrics:` key)."""
    return _REGISTRY_TEXT.search(text) is not None


@dataclass(frozen=True)
class Located:
    """Where one contract is written: its file and the positions of its keys."""

    file: str
    index: int
    pos: Positions = field(repr=False)

    def line(self, *path: str | int) -> int:
        """The line of a key of the contract (the contract's own line for ())."""
        return self.pos.line_for(("metrics", self.index, *path))

    def at(self, *path: str | int) -> str:
        """`file:line` of a key of the contract."""
        return f"{self.file}:{self.line(*path)}"


@dataclass
class Registry:
    """Contracts by metric name, each with where it is written."""

    contracts: dict[str, Contract] = field(default_factory=dict)
    where: dict[str, Located] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)

    def get(self, name: str) -> Contract | None:
        """The contract of a metric, if any."""
        return self.contracts.get(name)

    def __bool__(self) -> bool:
        return bool(self.files)


def _data_path(raw: object, loc: Sequence[str | int]) -> Path_:
    """The part of a pydantic location that is in the data (a missing key is kept last)."""
    path: list[str | int] = []
    current = raw
    for part in loc:
        in_dict = isinstance(current, dict) and part in current
        in_list = isinstance(current, list) and isinstance(part, int) and part < len(current)
        if in_dict or in_list:
            current = current[part]  # type: ignore[index]
        elif part == "[key]":  # pydantic's marker of a bad mapping key (the key is in path)
            break
        elif isinstance(current, dict) and isinstance(part, str) and not part[:1].isupper():
            path.append(part)  # a missing or unknown key: its name, at its parent's line
            break
        else:
            break
        path.append(part)
    return tuple(path)


def parse_registry(text: str, file: str) -> tuple[list[tuple[Contract, Located]], list[Problem]]:
    """The contracts of one registry file, each located; or every problem in it."""
    data, pos, yaml_problems = yamlpos.parse(text)
    problems = [
        Problem(file, p.line, "yaml" if p.path is None else _dotted(p.path), p.message)
        for p in yaml_problems
    ]
    if data is None and yaml_problems:
        return [], problems
    if not isinstance(data, dict) or not isinstance(data.get("metrics"), list):
        where = pos.line_for(("metrics",))
        return [], [*problems, Problem(file, where, "metrics", "must be a list of contracts")]
    found: list[Problem] = []
    try:
        registry = RegistryFile.model_validate(data)
    except ValidationError as exc:
        for error in exc.errors():
            loc = tuple(error["loc"])
            path = _data_path(data, loc)
            found.append(Problem(file, pos.line_for(path), _dotted(path), _message(dict(error))))
        return [], problems + found
    if problems:
        return [], problems
    return [
        (contract, Located(file, index, pos)) for index, contract in enumerate(registry.metrics)
    ], []


def load_registry(files: Iterable[tuple[Path, str]]) -> tuple[Registry, list[Problem]]:
    """The registry of some registry files (path, text): duplicates are problems (both named)."""
    registry = Registry()
    problems: list[Problem] = []
    for path, text in files:
        file = str(path)
        registry.files.append(file)
        contracts, found = parse_registry(text, file)
        problems += found
        for contract, located in contracts:
            other = registry.where.get(contract.name)
            if other is not None:
                problems.append(
                    Problem(
                        file,
                        located.line("name"),
                        f"metrics[{located.index}].name",
                        f"a second contract for {contract.name!r} (the first is at "
                        f"{other.at('name')})",
                    )
                )
                continue
            registry.contracts[contract.name] = contract
            registry.where[contract.name] = located
    return registry, problems
