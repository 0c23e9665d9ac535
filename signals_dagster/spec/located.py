"""How a pydantic error is told in a located problem: its field path and its message (shared by
collector files, registry files and settings)."""

from collections.abc import Iterable, Mapping


def dotted(path: Iterable[str | int]) -> str:
    """`metric.tags[0].value` of a data path (`<root>` for the empty path)."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "<root>"


def pydantic_message(error: Mapping[str, object]) -> str:
    """The message of one pydantic error in this project's words (`unknown key`, `required`,
    `unknown type 'x' (expected one of …)`, …)."""
    kind = error["type"]
    msg = str(error["msg"])
    if kind == "extra_forbidden":
        return "unknown key"
    if kind == "missing":
        return "required"
    if kind == "union_tag_invalid":
        ctx = error.get("ctx") or {}
        assert isinstance(ctx, dict)
        return f"unknown type {ctx.get('tag')!r} (expected one of {ctx.get('expected_tags')})"
    if kind == "string_pattern_mismatch":
        ctx = error.get("ctx") or {}
        assert isinstance(ctx, dict)
        return f"invalid value {error.get('input')!r} (must match {ctx.get('pattern')})"
    if kind == "union_tag_not_found":
        return "type is required"
    if kind == "too_short":  # pydantic says "Dictionary should have ... after validation"
        ctx = error.get("ctx") or {}
        assert isinstance(ctx, dict)
        return f"must have at least {ctx.get('min_length')} item(s), got {ctx.get('actual_length')}"
    return msg.removeprefix("Value error, ")
