"""Light SQL text analysis: which bind parameters a query uses, outside literals and comments."""

import re
from collections.abc import Callable

WINDOW_PARAMS = ("window_start", "window_end")
_LITERALS = re.compile(
    r"""'(?:[^']|'')*'|"(?:[^"]|"")*"|`[^`]*`|--[^\n]*|/\*.*?\*/|\$(\w*)\$.*?\$\1\$""",
    re.DOTALL,
)
# SQLAlchemy's own rule for text(): a colon not preceded by a colon or word char, then a name.
_BIND = re.compile(r"(?<![:\w\\]):(\w+)(?!:)")
_ALIAS = re.compile(r"\bAS\s+\"?([A-Za-z_][A-Za-z0-9_]*)\"?\s*(?=,|\bFROM\b)", re.IGNORECASE)


# A parameter followed by a cast: `:window_start::timestamptz` (`:foo::int` would read as `:fo`).
_CAST_AFTER_PARAM = re.compile(r"(?<![:\w\\]):(\w+)::")


def normalize(sql: str) -> str:
    """Make `:window_start::timestamptz` bind as a parameter (SQLAlchemy would misread it)."""
    return _CAST_AFTER_PARAM.sub(r":\1 ::", sql)


def strip_literals(sql: str) -> str:
    """The query with string literals, quoted identifiers and comments blanked out."""
    return _LITERALS.sub(lambda m: " " * len(m.group(0)), sql)


def escape_literal_colons(sql: str) -> str:
    """Escape (`\\:`) every `:name` inside string literals and comments for SQLAlchemy text().

    text() binds every `:name`, even in '...' or -- comments, so a comment mentioning
    :window_start in an as-of query would demand a parameter the query does not use.
    """
    blanked = strip_literals(sql)
    starts = [m.start() for m in _BIND.finditer(sql) if blanked[m.start()] != ":"]
    for start in reversed(starts):
        sql = sql[:start] + "\\" + sql[start:]
    return sql


def bind_params(sql: str) -> set[str]:
    """Names of the :name bind parameters the query uses."""
    return set(_BIND.findall(strip_literals(normalize(sql))))


def output_aliases(sql: str) -> set[str]:
    """Best-effort names of select-list aliases (`expr AS name` followed by ',' or FROM)."""
    # Blank literals and comments but keep "quoted" identifiers: `AS "region"` is an alias too.
    text = _LITERALS.sub(lambda m: m[0] if m[0][0] == '"' else " " * len(m[0]), sql)
    return {alias.lower() for alias in _ALIAS.findall(text)}


def mentions_grain(sql: str) -> bool:
    """Whether the query names a grain_datetime column (outside literals and comments)."""
    return re.search(r"\bgrain_datetime\b", strip_literals(sql), re.IGNORECASE) is not None


def collector_kind(params: set[str]) -> str:
    """windowed (start and end), as-of (end only) or snapshot (neither)."""
    if "window_start" in params:
        return "windowed"
    if "window_end" in params:
        return "as-of"
    return "snapshot"


def replace_params(sql: str, placeholder: Callable[[str, int], str]) -> tuple[str, list[str]]:
    """The query with each `:name` bind parameter (outside literals and comments) replaced by
    placeholder(name, number) (numbers from 1, by first use), and the names in number order."""
    sql = normalize(sql)
    blanked = strip_literals(sql)
    order: list[str] = []
    pieces: list[str] = []
    last = 0
    for match in _BIND.finditer(sql):
        if blanked[match.start()] != ":":
            continue  # inside a literal or comment
        name = match.group(1)
        if name not in order:
            order.append(name)
        pieces += [sql[last : match.start()], placeholder(name, order.index(name) + 1)]
        last = match.end()
    pieces.append(sql[last:])
    return "".join(pieces), order


def numbered_params(sql: str) -> tuple[str, list[str]]:
    """The query with Postgres' own placeholders `$1`, `$2`… for its bind parameters."""
    return replace_params(sql, lambda _, number: f"${number}")
