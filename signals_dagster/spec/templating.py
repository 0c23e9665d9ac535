"""signals-collector's templating: `{{ getEnv "V" }}` and `{{ getEnvOrDefault "V" "d" }}`.

Collector files: `protect` swaps actions for placeholders, the YAML is parsed, then `expand` fills
each string value (the loader checks which variables may reach which field). `render` expands a
whole text and is kept for the deployment's own settings file. Nothing else is templated.
"""

import fnmatch
import functools
import json
import os
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass

_ACTION = re.compile(r"\{\{(-?)(.*?)(-?)\}\}", re.DOTALL)
_TOKEN = re.compile(r'\s*(?:"((?:[^"\\]|\\.)*)"|`([^`]*)`|([A-Za-z_][A-Za-z0-9_.]*)|(\S+))')
_ARITY = {"getEnv": 1, "getEnvOrDefault": 2}


@dataclass(frozen=True)
class TemplateProblem:
    """A templating mistake at a 1-based line."""

    line: int
    message: str


@functools.lru_cache(maxsize=4096)  # the same few actions recur in every file of a folder
def _tokens(body: str) -> tuple[tuple[str, str], ...]:
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
    return tuple(out)


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
            last = _trim_right(text, last, pieces)
    pieces.append(text[last:])
    rendered = "".join(pieces)
    stray = [
        TemplateProblem(text.count("\n", 0, m.start()) + 1, "unclosed template action '{{'")
        for m in re.finditer(r"\{\{(?![\s\S]*?\}\})", text)
    ]
    return rendered, problems + stray


# --- templates in parsed values (collector files) -------------------------------------------
# A collector file is untrusted: its actions are swapped for placeholders before parsing, the
# YAML is parsed, and each action is evaluated into the one string value that holds it. No value
# can change the file's structure or be cut short by a ` #`.

_OPEN, _CLOSE = "\ue000", "\ue001"  # private-use characters: a plain scalar in any YAML style
PLACEHOLDER = re.compile(f"{_OPEN}(\\d+){_CLOSE}")


@dataclass(frozen=True)
class Action:
    """One `{{ ... }}` of a file: its 1-based line, its body and the function it calls."""

    line: int
    body: str
    problem: str | None = None  # set for an action that cannot be evaluated (unclosed)

    @property
    def function(self) -> str | None:
        """The called function's name (None when the body does not start with one)."""
        tokens = _tokens(self.body)
        return tokens[0][1] if tokens and tokens[0][0] == "ident" else None

    @property
    def variable(self) -> str | None:
        """The environment variable read (getEnv / getEnvOrDefault), when well-formed."""
        tokens = _tokens(self.body)
        if self.function in _ARITY and len(tokens) > 1 and tokens[1][0] == "str":
            return tokens[1][1]
        return None


def _trim_right(text: str, last: int, pieces: list[str]) -> int:
    """`-}}`: skip the whitespace after an action, keeping its newlines' count (true lines)."""
    rest = text[last:]
    stripped = rest.lstrip()
    pieces.append("\n" * rest[: len(rest) - len(stripped)].count("\n"))
    return len(text) - len(stripped)


def protect(text: str) -> tuple[str, list[Action], list[TemplateProblem]]:
    """Replace each template action by a placeholder; return the text, the actions, problems."""
    if _OPEN in text or _CLOSE in text:
        return text, [], [TemplateProblem(1, "the file contains U+E000/U+E001 characters")]
    actions: list[Action] = []
    pieces: list[str] = []
    last = 0
    for match in _ACTION.finditer(text):
        left_trim, body, right_trim = match.groups()
        before = text[last : match.start()]
        pieces.append(before.rstrip() if left_trim else before)
        actions.append(Action(text.count("\n", 0, match.start()) + 1, body))
        pieces.append(f"{_OPEN}{len(actions) - 1}{_CLOSE}" + "\n" * body.count("\n"))
        last = match.end()
        if right_trim:
            last = _trim_right(text, last, pieces)
    pieces.append(text[last:])
    protected = "".join(pieces)
    # A '{{' never closed: its own placeholder, so the problem is located in its value.
    out: list[str] = []
    last = 0
    for match in re.finditer(r"\{\{", protected):
        line = protected.count("\n", 0, match.start()) + 1
        actions.append(Action(line, "", "unclosed template action '{{'"))
        out += [protected[last : match.start()], f"{_OPEN}{len(actions) - 1}{_CLOSE}"]
        last = match.end()
    out.append(protected[last:])
    return "".join(out), actions, []


@dataclass(frozen=True)
class Policy:
    """Which variables exist (allow_env) and which are secrets (secret_env): glob patterns."""

    secret_env: tuple[str, ...] = ()
    allow_env: tuple[str, ...] | None = None

    def is_secret(self, name: str) -> bool:
        """The variable's name matches a secret_env pattern (ignoring case: `db_password` too)."""
        return any(fnmatch.fnmatchcase(name.upper(), p.upper()) for p in self.secret_env)

    def allows(self, name: str) -> bool:
        """The variable may be read at all."""
        return self.allow_env is None or any(fnmatch.fnmatchcase(name, p) for p in self.allow_env)


@dataclass(frozen=True)
class Expansion:
    """The value of one action placed in a string: the variable read and whether from env."""

    index: int
    variable: str | None
    value: str
    from_env: bool


def expand(
    raw: str,
    actions: list[Action],
    env: Mapping[str, str],
    policy: Policy,
    refused: Collection[int] = (),
) -> tuple[str, list[Expansion], list[tuple[int, str]]]:
    """Evaluate the placeholders of one parsed string (`refused` ones give '' unread);
    return the value, what was expanded and the (line, problem) of failed actions."""
    problems: list[tuple[int, str]] = []
    expansions: list[Expansion] = []

    def one(match: re.Match[str]) -> str:
        index = int(match[1])
        action = actions[index]
        if index in refused:
            return ""
        if action.problem is not None:
            problems.append((action.line, action.problem))
            return ""
        name = action.variable
        if name is not None and not policy.allows(name):
            problems.append(
                (action.line, f"environment variable {name} is not allowed by templating.allow_env")
            )
            return ""
        try:
            value = _evaluate(action.body, env)
        except ValueError as exc:
            problems.append((action.line, str(exc)))
            return ""
        from_env = name is not None and name in env and value == env[name]
        expansions.append(Expansion(index, name, value, from_env))
        return value

    return PLACEHOLDER.sub(one, raw), expansions, problems
