"""Load collector files: templating, YAML with positions, shape validation, cross-checks.

Every problem of every file is collected and raised once as a SpecError.
"""

import os
from collections.abc import Iterable, Mapping
from pathlib import Path

from pydantic import ValidationError

from signals_dagster.errors import Problem, SpecError
from signals_dagster.spec import templating, yamlpos
from signals_dagster.spec.checks import check_spec
from signals_dagster.spec.credentials import literal_credentials
from signals_dagster.spec.models import CollectorSpec
from signals_dagster.spec.yamlpos import Positions

YAML_SUFFIXES = (".yaml", ".yml")


def _dotted(path: Iterable[str | int]) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "<root>"


def _data_path(raw: object, loc: tuple[str | int, ...]) -> tuple[str | int, ...]:
    """Drop the parts of a pydantic location that are not in the data (union tags, model names)."""
    path: list[str | int] = []
    current = raw
    for part in loc:
        in_dict = isinstance(current, dict) and part in current
        in_list = isinstance(current, list) and isinstance(part, int) and part < len(current)
        if in_dict or in_list:
            current = current[part]  # type: ignore[index]
            path.append(part)
        elif isinstance(current, dict | list):
            if (isinstance(part, str) and part[:1].isupper()) or part in _UNION_TAGS:
                continue
            path.append(part)
            current = None
        else:
            break
    return tuple(path)


_UNION_TAGS = {"postgres", "mysql", "sqlite", "duckdb", "sql", "mongodb", "prometheus"} | {
    "console",
    "file",
    "http",
    "kafka",
    "s3",
    "function-after",
    "function-before",
}


def _message(error: Mapping[str, object]) -> str:
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


def _validation_problems(
    file: str, raw: object, pos: Positions, exc: ValidationError
) -> list[Problem]:
    problems = []
    for error in exc.errors():
        path = _data_path(raw, tuple(error["loc"]))
        if error["type"] == "union_tag_invalid":  # an unknown type: point at the `type:` key
            ctx = error.get("ctx") or {}
            path = (*path, str(ctx.get("discriminator", "type")).strip("'"))
        problems.append(Problem(file, pos.line_for(path), _dotted(path), _message(error)))
    return problems


def parse_text(
    text: str, file: str, env: Mapping[str, str] | None = None
) -> tuple[CollectorSpec | None, Positions, list[Problem]]:
    """Parse and validate one collector's text; return the spec (when valid) and its problems."""
    rendered, template_problems = templating.render(text, env)
    data, pos, yaml_problems = yamlpos.parse(rendered)
    problems = [
        Problem(file, p.line, _dotted(pos.path_at_line(p.line)) if data else "template", p.message)
        for p in template_problems
    ]
    problems += [
        Problem(file, p.line, "yaml" if p.path is None else _dotted(p.path), p.message)
        for p in yaml_problems
    ]
    if data is None and yaml_problems:  # a syntax error: there is nothing to validate
        return None, pos, problems
    if not isinstance(data, dict):
        return None, pos, [Problem(file, 1, "<root>", "a collector file must be a YAML mapping")]
    try:
        spec = CollectorSpec.model_validate(data)
    except ValidationError as exc:
        # A failed template action leaves '' behind: do not report its echo on the same line.
        seen = {p.line for p in problems}
        found = [p for p in _validation_problems(file, data, pos, exc) if p.line not in seen]
        return None, pos, problems + found
    if problems:
        return None, pos, problems
    located = [
        Problem(file, pos.line_for(path), _dotted(path), msg) for path, msg in check_spec(spec)
    ]
    located += [
        Problem(file, pos.line_for(path), _dotted(path), msg)
        for path, msg in literal_credentials(text, spec, pos)
    ]
    return (None if located else spec), pos, located


def load_file(path: str | os.PathLike[str], env: Mapping[str, str] | None = None) -> CollectorSpec:
    """Load one collector file; raise SpecError listing every problem."""
    specs = load_collectors([path], env)
    return next(iter(specs.values()))


def collector_files(paths: Iterable[str | os.PathLike[str]]) -> list[Path]:
    """Expand folders (recursively, skipping hidden ones) to .yaml/.yml files; keep files."""
    files: list[Path] = []
    for item in paths:
        path = Path(item)
        if path.is_dir():
            files += sorted(
                p
                for p in path.rglob("*")
                if p.suffix in YAML_SUFFIXES
                and p.is_file()
                and not any(part.startswith(".") for part in p.relative_to(path).parts)
            )
        else:
            files.append(path)
    return files


def load_collectors(
    paths: Iterable[str | os.PathLike[str]], env: Mapping[str, str] | None = None
) -> dict[Path, CollectorSpec]:
    """Load every collector under `paths`; raise one SpecError with all problems of all files."""
    problems: list[Problem] = []
    specs: dict[Path, CollectorSpec] = {}
    name_lines: dict[str, tuple[str, int]] = {}
    asset_names: dict[str, tuple[str, str]] = {}
    for path in collector_files(paths):
        file = str(path)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            problems.append(Problem(file, 0, "<file>", "no such file"))
            continue
        except (OSError, UnicodeDecodeError) as exc:
            problems.append(Problem(file, 0, "<file>", f"cannot read: {exc}"))
            continue
        spec, pos, found = parse_text(text, file, env)
        problems += found
        if spec is None:
            continue
        line = pos.line_for(("name",))
        if spec.name in name_lines:
            other = name_lines[spec.name]
            problems.append(
                Problem(
                    file,
                    line,
                    "name",
                    f"duplicate collector name {spec.name!r} (also in {other[0]}:{other[1]})",
                )
            )
            continue
        if spec.asset_name in asset_names:
            other_file, other_name = asset_names[spec.asset_name]
            problems.append(
                Problem(
                    file,
                    line,
                    "name",
                    f"asset key {spec.asset_name!r} is also the key of "
                    f"{other_name!r} in {other_file}",
                )
            )
            continue
        name_lines[spec.name] = (file, line)
        asset_names[spec.asset_name] = (file, spec.name)
        specs[path] = spec
    if problems:
        raise SpecError(problems)
    return specs
