"""YAML parsing that remembers where every key and value stands (for located errors)."""

from dataclasses import dataclass, field
from typing import Any

import yaml

Path = tuple[str | int, ...]


_LOADER = yaml.SafeLoader("")
# libyaml composes ~15x faster and keeps every node's start/end marks (line and column) exactly
# as the pure-Python parser does; its syntax error messages differ, so a document it rejects is
# parsed again by the pure parser, whose messages (and lines) are the ones reported.
_FAST_LOADER: type[yaml.SafeLoader] | None = (
    getattr(yaml, "CSafeLoader", None) if yaml.__with_libyaml__ else None
)
_STR = "tag:yaml.org,2002:str"


class _TooLarge(Exception):
    """The document expands to more nodes than any collector needs."""


class YamlProblem(Exception):
    """A YAML syntax problem at a (1-based) line."""

    def __init__(self, line: int, message: str, path: "Path | None" = None) -> None:
        super().__init__(message)
        self.line = line
        self.message = message
        self.path = path  # set when the problem belongs to a known key


@dataclass
class Positions:
    """Maps a data path to the line of its key (mappings) or item (sequences)."""

    lines: dict[Path, int] = field(default_factory=dict)
    spans: list[tuple[int, int, Path]] = field(default_factory=list)
    nodes: int = 0
    # Plain (unquoted) scalars holding a template placeholder: their value, once expanded, is
    # typed as YAML types a plain scalar (`retries: {{ getEnv "R" }}` gives an int).
    plain_templates: set[Path] = field(default_factory=set)
    # Every path holding a template placeholder (a value, or a key of the mapping at the path),
    # with all its prefixes: the expander walks only into these.
    templated: set[Path] = field(default_factory=set)

    def mark_templated(self, path: Path) -> None:
        """`path` holds a placeholder: it and every prefix lead the expander to it."""
        self.templated.update(path[:cut] for cut in range(len(path) + 1))

    def line_for(self, path: Path) -> int:
        """Line of the deepest existing prefix of `path` (1 when nothing matches)."""
        for cut in range(len(path), -1, -1):
            if path[:cut] in self.lines:
                return self.lines[path[:cut]]
        return 1

    def path_at_line(self, line: int) -> Path:
        """The innermost scalar value spanning `line` (for errors found before parsing)."""
        best: tuple[int, Path] | None = None
        for start, end, path in self.spans:
            if start <= line <= end and (best is None or end - start <= best[0]):
                best = (end - start, path)
        return best[1] if best else ()


MAX_NODES = 20_000  # a collector is a few hundred nodes; aliases must not expand without bound


def _walk(node: yaml.Node, path: Path, pos: Positions, problems: list[YamlProblem]) -> Any:
    pos.nodes += 1
    if pos.nodes > MAX_NODES:
        raise _TooLarge
    if isinstance(node, yaml.MappingNode):
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                problems.append(
                    YamlProblem(key_node.start_mark.line + 1, "keys must be plain scalars")
                )
                continue
            key = str(key_node.value)
            if "\ue000" in key:
                pos.mark_templated(path)
            if key_node.tag == "tag:yaml.org,2002:merge" or key == "<<":
                problems.append(
                    YamlProblem(key_node.start_mark.line + 1, "merge keys are not allowed")
                )
                continue
            if key in out:
                problems.append(
                    YamlProblem(
                        key_node.start_mark.line + 1,
                        f"duplicate key {key!r} (first at line {pos.lines[(*path, key)]})",
                        (*path, key),
                    )
                )
                continue
            pos.lines[(*path, key)] = key_node.start_mark.line + 1
            out[key] = _walk(value_node, (*path, key), pos, problems)
        return out
    if isinstance(node, yaml.SequenceNode):
        items = []
        for index, item in enumerate(node.value):
            pos.lines[(*path, index)] = item.start_mark.line + 1
            items.append(_walk(item, (*path, index), pos, problems))
        return items
    pos.spans.append((node.start_mark.line + 1, node.end_mark.line + 1, path))
    if "\ue000" in node.value:
        pos.mark_templated(path)
        if not getattr(node, "style", None):  # plain: None or ""
            pos.plain_templates.add(path)
    if node.tag == _STR:  # most scalars: what SafeConstructor would return, without its cost
        return node.value
    try:
        return _LOADER.construct_object(node, deep=True)
    except (yaml.YAMLError, ValueError, TypeError) as exc:
        # e.g. `2026-13-01` (YAML reads a date), `!!int abc`, an unknown tag `!foo`.
        reason = exc.problem if isinstance(exc, yaml.MarkedYAMLError) else str(exc)
        problems.append(
            YamlProblem(node.start_mark.line + 1, f"invalid value {node.value!r}: {reason}", path)
        )
        return None


def _compose(text: str) -> yaml.Node | None:
    """The document's node tree: libyaml when present; the pure parser for what it rejects."""
    if _FAST_LOADER is not None:
        try:
            return yaml.compose(text, Loader=_FAST_LOADER)
        except yaml.YAMLError:
            pass  # report with the pure parser's own messages and lines
    return yaml.compose(text, Loader=yaml.SafeLoader)


_PLAIN_TYPES = {
    "tag:yaml.org,2002:bool",
    "tag:yaml.org,2002:int",
    "tag:yaml.org,2002:float",
    "tag:yaml.org,2002:null",
}


def plain_scalar(value: str) -> Any:
    """`value` typed as YAML types a plain scalar: bool, int, float or null; else the string."""
    tag = _LOADER.resolve(yaml.ScalarNode, value, (True, False))
    if tag not in _PLAIN_TYPES:
        return value
    return _LOADER.construct_object(yaml.ScalarNode(tag, value), deep=True)


def parse(text: str) -> tuple[Any, Positions, list[YamlProblem]]:
    """Parse one YAML document; return data, positions and every structural problem found."""
    problems = [
        YamlProblem(number, "tab character in indentation: YAML indentation must use spaces")
        for number, line in enumerate(text.splitlines(), start=1)
        if line.startswith("\t")
    ]
    try:
        node = _compose(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 1
        message = " ".join(str(part) for part in (exc.context, exc.problem) if part)
        if "\\t" in message or "'\\t'" in message:
            message = "tab character in indentation: YAML indentation must use spaces"
        if not any(p.line == line for p in problems):
            problems.append(YamlProblem(line, message))
        return None, Positions(), problems
    except yaml.YAMLError as exc:
        return None, Positions(), [*problems, YamlProblem(1, str(exc))]
    pos = Positions()
    if node is None:
        return None, pos, problems
    try:
        data = _walk(node, (), pos, problems)
    except RecursionError:  # an alias inside its own anchor: `a: &x [*x]`
        message = "recursive alias: an anchor (&name) contains an alias to itself (*name)"
        return None, Positions(), [*problems, YamlProblem(1, message)]
    except _TooLarge:
        message = f"the document expands to more than {MAX_NODES} nodes (alias bomb?)"
        return None, Positions(), [*problems, YamlProblem(1, message)]
    finally:
        # The shared loader caches every node it constructed (and so the whole text): forget them.
        _LOADER.constructed_objects.clear()
        _LOADER.recursive_objects.clear()
    return data, pos, problems
