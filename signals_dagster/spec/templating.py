"""signals-collector's templating: `{{ getEnv "V" }}` and `{{ getEnvOrDefault "V" "d" }}`.

Expanded on the file text before YAML parsing (as the Go original does). Nothing else is templated.
"""

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass

_ACTION = re.compile(r"\{\{(-?)(.*?)(-?)\}\}", re.DOTALL)
_TOKEN = re.compile(r'\s*(?:"((?:[^"\\]|\\.)*)"|`([^`]*)`|([A-Za-z_][A-Za-z0-9_.]*)|(\S+))')
_ARITY = {"getEnv": 1, "getEnvOrDefault": 2}


@dataclass(frozen=True)
class TemplateProblem:
    """A templating mistake at a 1-based line."""

    line: int
    message: str


def _tokens(body: str) -> list[tuple[str, str]]:
    """Split an action body into (kind, text) tokens: 'str', 'ident' or 'bad'."""
    out: list[tuple[str, str]] = []
    for match in _TOKEN.finditer(body):
        quoted, raw, ident, bad = match.groups()
        if quoted is not None:
            try:
                out.append(("str", json.loads(f'"{quoted}"')))
            except json.JSONDecodeError:
                out.append(("bad", f'"{quoted}"'))
        elif raw is not None:
            out.append(("str", raw))
        elif ident is not None:
            out.append(("ident", ident))
        elif bad is not None:
            out.append(("bad", bad))
    return out


def _evaluate(body: str, env: Mapping[str, str]) -> str:
    tokens = _tokens(body)
    if not tokens:
        raise ValueError("empty template action {{ }}")
    kind, name = tokens[0]
    if kind != "ident" or name not in _ARITY:
        raise ValueError(f"unknown template function {name!r} (known: getEnv, getEnvOrDefault)")
    args = tokens[1:]
    if len(args) != _ARITY[name]:
        raise ValueError(f"{name} takes {_ARITY[name]} argument(s), got {len(args)}")
    for arg_kind, text in args:
        if arg_kind != "str":
            raise ValueError(f"{name}: argument {text} must be a double-quoted string")
    values = [text for _, text in args]
    if name == "getEnv":
        if values[0] not in env:
            raise ValueError(f"environment variable {values[0]} is not set (getEnv)")
        return env[values[0]]
    current = env.get(values[0], "")
    return current if current != "" else values[1]


def render(text: str, env: Mapping[str, str] | None = None) -> tuple[str, list[TemplateProblem]]:
    """Expand template actions; return the text and every problem (failed actions become '')."""
    env = os.environ if env is None else env
    problems: list[TemplateProblem] = []
    pieces: list[str] = []
    last = 0
    for match in _ACTION.finditer(text):
        left_trim, body, right_trim = match.groups()
        line = text.count("\n", 0, match.start()) + 1
        before = text[last : match.start()]
        pieces.append(before.rstrip() if left_trim else before)
        try:
            value = _evaluate(body, env)
        except ValueError as exc:
            problems.append(TemplateProblem(line, str(exc)))
            value = ""
        if "\n" in value:
            problems.append(TemplateProblem(line, "template value contains a newline"))
            value = value.replace("\n", " ")
        # Keep the line count of the action so later line numbers stay true.
        pieces.append(value + "\n" * body.count("\n"))
        last = match.end()
        if right_trim:
            rest = text[last:]
            stripped = rest.lstrip()
            pieces.append("\n" * rest[: len(rest) - len(stripped)].count("\n"))
            last = len(text) - len(stripped)
    pieces.append(text[last:])
    rendered = "".join(pieces)
    stray = [
        TemplateProblem(text.count("\n", 0, m.start()) + 1, "unclosed template action '{{'")
        for m in re.finditer(r"\{\{(?![\s\S]*?\}\})", text)
    ]
    return rendered, problems + stray
