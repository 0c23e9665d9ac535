"""signals-collector's templating: `{{ getEnv "V" }}` and `{{ getEnvOrDefault "V" "d" }}`.

Collector files: `protect` swaps actions for placeholders, the YAML is parsed, then `expand` fills
each string value (the loader checks which variables may reach which field). `render` expands a
whole text and is kept for the deployment's own settings file.

latte's window fields (`{{.Year}}`, `{{.Month}}`, `{{.Day}}`, `{{.Hour}}`, `{{.Minute}}` and
`{{.Partition}}`) are not evaluated at load time: in the few fields that render them from the
window (an S3 sink's `partition`, a lake source's `partition` and `sql`) they stay in the parsed
value in their canonical form `{{.Year}}`, and `render_window` fills them from the window's start
when that field is used; anywhere else they are errors. Nothing else is templated.
"""

import fnmatch
import functools
import json
import os
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import datetime

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
    if window_field(body) is not None:
        raise ValueError(
            f"unknown template function {name!r}: latte's window fields are rendered from the "
            f"window only in {WINDOW_TEMPLATE_FIELDS}"
        )
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
    window: Collection[str] = (),
) -> tuple[str, list[Expansion], list[tuple[int, str]]]:
    """Evaluate the placeholders of one parsed string (`refused` ones give '' unread);
    return the value, what was expanded and the (line, problem) of failed actions.

    `window`: the window fields this string may hold (see `window_fields_of`); they stay in
    the value as `{{.Name}}`, rendered later from the window by the field that uses them."""
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
        field = window_field(action.body)
        if field is not None and field in window:
            return window_action(field)
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


# --- latte's window fields (rendered from the window, never from the wall clock) --------------

DATE_FIELDS = ("Year", "Month", "Day", "Hour", "Minute")
PARTITION_FIELD = "Partition"  # a lake source's rendered `partition`, inside its `sql`
WINDOW_TEMPLATE_FIELDS = (
    "an S3 sink's partition, a lake source's partition ({{.Year}} {{.Month}} {{.Day}} "
    "{{.Hour}} {{.Minute}}) and {{.Partition}} in a lake source's sql"
)
_FIELD_BODY = re.compile(r"^\s*\.([A-Za-z]+)\s*$")
_WINDOW_ACTION = re.compile(r"\{\{\.([A-Za-z]+)\}\}")


def window_field(body: str) -> str | None:
    """The latte window field an action body names (`.Year` → 'Year'); None for anything else
    (a function call, an unknown field such as `.Values.host`)."""
    match = _FIELD_BODY.match(body)
    name = match[1] if match else None
    return name if name in (*DATE_FIELDS, PARTITION_FIELD) else None


def window_action(field: str) -> str:
    """The canonical text a window field keeps in a parsed value: `{{.Year}}`."""
    return "{{." + field + "}}"


def window_fields(text: str) -> list[str]:
    """The window fields a parsed value holds, in order (`{{.Year}}` → 'Year')."""
    return _WINDOW_ACTION.findall(text)


def has_window_fields(text: str) -> bool:
    """Whether a parsed value holds any window field."""
    return _WINDOW_ACTION.search(text) is not None


def strip_window_fields(text: str) -> str:
    """The literal text of a parsed value around its window fields."""
    return _WINDOW_ACTION.sub("", text)


def date_parts(moment: datetime) -> dict[str, str]:
    """The date fields of an instant on its own wall clock, unpadded as latte renders them
    (`year=2024/month=3/day=1`)."""
    return {
        "Year": str(moment.year),
        "Month": str(moment.month),
        "Day": str(moment.day),
        "Hour": str(moment.hour),
        "Minute": str(moment.minute),
    }


def render_window(text: str, start: datetime, partition: str | None = None) -> str:
    """Fill the window fields of a parsed value from the window's start.

    `start` is the window's start on the collector's clock (`partitions.timezone`, as
    `signals_dagster.partitioning` gives windows); `partition` is what `{{.Partition}}` stands
    for (a lake source's rendered `partition`), and without it `{{.Partition}}` is an error."""
    parts = date_parts(start)
    if partition is not None:
        parts[PARTITION_FIELD] = partition

    def one(match: re.Match[str]) -> str:
        name = match[1]
        if name not in parts:
            raise ValueError(f"template field {{{{.{name}}}}} has no value here")
        return parts[name]

    return _WINDOW_ACTION.sub(one, text)


def render_lake_sql(sql: str, partition: str, start: datetime) -> str:
    """A lake source's SQL with `{{.Partition}}` replaced by its `partition` pattern rendered
    from the window (a path made of the window's date parts and the pattern's own safe text,
    never a value supplied at run time)."""
    return render_window(sql, start, render_window(partition, start))
