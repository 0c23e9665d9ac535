"""Load collector files: templating, YAML with positions, shape validation, cross-checks.

Every problem of every file is collected and raised once as a SpecError.
"""

import os
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import ValidationError

from signals_dagster.errors import Problem, SpecError
from signals_dagster.plugins import external_sinks, external_sources
from signals_dagster.redact import register_secret
from signals_dagster.spec import credentials, templating, yamlpos
from signals_dagster.spec.checks import check_guarded, check_spec
from signals_dagster.spec.credentials import literal_credentials, literal_uri_passwords
from signals_dagster.spec.located import dotted as _dotted
from signals_dagster.spec.located import pydantic_message as _message
from signals_dagster.spec.models import CollectorSpec
from signals_dagster.spec.yamlpos import Positions

if TYPE_CHECKING:
    from signals_dagster.settings import Settings, TemplatingSettings

YAML_SUFFIXES = (".yaml", ".yml")


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
    "not_empty",
    "range",
    "change",
    "anomaly",
    "console",
    "file",
    "http",
    "kafka",
    "s3",
    "function-after",
    "function-before",
}
_UNION_TAGS |= {p.type for p in external_sources()} | {p.type for p in external_sinks()}  # plug-ins


def _validation_problems(
    file: str, raw: object, pos: Positions, exc: ValidationError
) -> list[Problem]:
    problems = []
    for error in exc.errors():
        path = _data_path(raw, tuple(error["loc"]))
        if error["type"] == "union_tag_invalid":  # an unknown type: point at the `type:` key
            ctx = error.get("ctx") or {}
            path = (*path, str(ctx.get("discriminator", "type")).strip("'"))
        path = _written(path, pos)
        problems.append(Problem(file, pos.line_for(path), _dotted(path), _message(error)))
    return problems


def _policy(settings: "TemplatingSettings | None" = None) -> templating.Policy:
    """The templating policy of signals.yaml (`templating.secret_env` / `allow_env`)."""
    from signals_dagster.settings import load_settings

    settings = load_settings().templating if settings is None else settings
    allow = None if settings.allow_env is None else tuple(settings.allow_env)
    return templating.Policy(tuple(settings.secret_env), allow)


_CREDENTIAL_FIELDS = (
    "a credential field (a URI's password, a Kafka producer password, an HTTP sink header "
    "value, an S3 key)"
)


class _Expander:
    """Fills the template placeholders of parsed values, field by field (see templating.py)."""

    def __init__(
        self,
        data: dict[str, object],
        actions: list[templating.Action],
        env: Mapping[str, str],
        policy: templating.Policy,
        pos: Positions,
    ) -> None:
        self.data, self.actions, self.env, self.policy, self.pos = data, actions, env, policy, pos
        self.problems: list[tuple[int, tuple[str | int, ...], str]] = []

    def walk(self, node: object, path: tuple[str | int, ...]) -> object:
        if isinstance(node, dict | list) and path not in self.pos.templated:
            return node  # no placeholder below (most of a file)
        if isinstance(node, dict):
            for key in node:
                if isinstance(key, str) and templating.PLACEHOLDER.search(key):
                    line = self.pos.line_for((*path, key))
                    self.problems.append((line, path, "templates are expanded in values, not keys"))
            return {k: self.walk(v, (*path, k)) for k, v in node.items()}
        if isinstance(node, list):
            return [self.walk(v, (*path, i)) for i, v in enumerate(node)]
        if isinstance(node, str) and templating.PLACEHOLDER.search(node):
            value = self.value(node, path)
            return yamlpos.plain_scalar(value) if path in self.pos.plain_templates else value
        return node

    def value(self, raw: str, path: tuple[str | int, ...]) -> str:
        window = window_fields_of(self.data, path)
        kind = credentials.field_kind(self.data, path)
        allowed = credentials.credential_actions(kind, raw)
        refused = set()
        for match in templating.PLACEHOLDER.finditer(raw):
            index = int(match[1])
            name = self.actions[index].variable
            if index not in allowed and name is not None and self.policy.is_secret(name):
                refused.add(index)
                self.problems.append(
                    (
                        self.actions[index].line,
                        path,
                        f"environment variable {name} is a secret (templating.secret_env): it "
                        f"may be expanded only into {_CREDENTIAL_FIELDS}, not into "
                        f"{_dotted(path)}",
                    )
                )
        value, expansions, problems = templating.expand(
            raw, self.actions, self.env, self.policy, refused, window
        )
        self.problems += [(line, path, message) for line, message in problems]
        for item in expansions:
            if item.index in allowed and item.from_env:
                register_secret(item.value)
        return value


LAKE_SOURCE_TYPES = ("s3", "metric.s3")  # latte's metric.s3 is the lake source s3


def window_fields_of(data: object, path: tuple[str | int, ...]) -> tuple[str, ...]:
    """The latte window fields a value may hold, rendered from the window by its field: an S3
    sink's `partition` (date fields), a lake source's `partition` (date fields) and its `sql`
    (`{{.Partition}}`, the rendered partition). Nothing anywhere else."""
    if not isinstance(data, dict):
        return ()
    if path[:2] == ("source", "config") and len(path) == 3:
        source = data.get("source")
        kind = source.get("type") if isinstance(source, dict) else None
        if kind in LAKE_SOURCE_TYPES:
            if path[2] == "partition":
                return templating.DATE_FIELDS
            if path[2] == "sql":
                return (templating.PARTITION_FIELD,)
        return ()
    if len(path) != 4 or path[2:] != ("config", "partition"):
        return ()
    if path[0] == "sinks":
        sinks = data.get("sinks")
        sink = sinks.get(path[1]) if isinstance(sinks, dict) else None
    elif path[:2] == ("on_fail", "quarantine"):
        on_fail = data.get("on_fail")
        sink = on_fail.get("quarantine") if isinstance(on_fail, dict) else None
    else:
        return ()
    is_s3 = isinstance(sink, dict) and sink.get("type") == "s3"
    return templating.DATE_FIELDS if is_s3 else ()


# latte's names of keys this project spells otherwise: where a problem of the key it becomes
# is located when the file wrote latte's (the path of `(*config, key)` → `(*config, latte's)`).
_LATTE_KEYS = {"endpoint_url": "endpoint", "brokers": "uri", "format": "encoding"}


def _written(path: tuple[str | int, ...], pos: Positions) -> tuple[str | int, ...]:
    """The path of a problem as the file wrote it: latte's key for a key it became
    (`brokers[0]` of `uri: host:port`), and for a grain the file does not state, the key it
    came from (latte's `time.window`)."""
    if path in pos.lines:
        return path
    for index, part in enumerate(path):
        if isinstance(part, str) and part in _LATTE_KEYS and path[: index + 1] not in pos.lines:
            latte = (*path[:index], _LATTE_KEYS[part])
            if latte in pos.lines:
                return latte
    if path == ("metric", "grain"):
        window = ("source", "config", "time", "window")
        if window in pos.lines and ("collector", "invocation_strategy") in pos.lines:
            return window
    return path


def _unprotect(message: str, actions: list[templating.Action]) -> str:
    def back(match: re.Match[str]) -> str:
        action = actions[int(match[1])] if int(match[1]) < len(actions) else None
        return "{{" + (action.body if action and action.problem is None else "") + "}}"

    message = templating.PLACEHOLDER.sub(back, message)
    return _ESCAPED_PLACEHOLDER.sub(back, message)  # as repr() shows it


_ESCAPED_PLACEHOLDER = re.compile(r"\\ue000(\d+)\\ue001")


def parse_text(
    text: str,
    file: str,
    env: Mapping[str, str] | None = None,
    policy: templating.Policy | None = None,
    warnings: list[Problem] | None = None,
) -> tuple[CollectorSpec | None, Positions, list[Problem]]:
    """Parse and validate one collector's text; return the spec (when valid) and its problems.

    Template actions are evaluated into the parsed string values (never into the text), so no
    value can change the file's structure; secret-looking variables reach only credential fields.
    """
    env = os.environ if env is None else env
    policy = _policy() if policy is None else policy
    protected, actions, pre_problems = templating.protect(text)
    data, pos, yaml_problems = yamlpos.parse(protected)
    problems = [Problem(file, p.line, "template", p.message) for p in pre_problems]
    problems += [
        Problem(
            file,
            p.line,
            "yaml" if p.path is None else _dotted(p.path),
            _unprotect(p.message, actions),
        )
        for p in yaml_problems
    ]
    if data is None and yaml_problems:  # a syntax error: there is nothing to validate
        return None, pos, problems
    if not isinstance(data, dict):
        return None, pos, [Problem(file, 1, "<root>", "a collector file must be a YAML mapping")]
    literals = [
        Problem(file, pos.line_for(path), _dotted(path), msg)
        for path, msg in literal_credentials(data, actions)
    ]
    if warnings is not None:
        warnings += [
            Problem(file, pos.line_for(path), _dotted(path), msg)
            for path, msg in literal_uri_passwords(data, actions)
        ]
    expander = _Expander(data, actions, env, policy, pos)
    data = expander.walk(data, ())
    problems += [Problem(file, line, _dotted(path), msg) for line, path, msg in expander.problems]
    try:
        spec = CollectorSpec.model_validate(data)
    except ValidationError as exc:
        # A failed template action leaves '' behind: do not report its echo (same line or field).
        seen = {p.line for p in problems}
        fields = {path for _, path, _ in expander.problems}
        found = [
            p
            for p in _validation_problems(file, data, pos, exc)
            if p.line not in seen and not any(_dotted(f) in (p.path, "<root>") for f in fields)
        ]
        return None, pos, problems + found
    if problems:
        return None, pos, problems
    located = [
        Problem(file, pos.line_for(where), _dotted(where), msg)
        for where, msg in ((_written(path, pos), msg) for path, msg in check_spec(spec))
    ]
    located += literals
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
            files += sorted(_yaml_files(path))
        else:
            files.append(path)
    return files


def _yaml_files(folder: Path) -> Iterator[Path]:
    """The .yaml/.yml files under a folder, not in hidden folders, not hidden; folder links are
    not followed, file links are (as Path.rglob; one scandir per folder, no stat per entry)."""
    try:
        with os.scandir(folder) as listing:
            entries = list(listing)
    except PermissionError:
        return
    for entry in entries:
        if entry.name.startswith("."):
            continue
        if entry.is_dir(follow_symlinks=False):
            yield from _yaml_files(folder / entry.name)
        elif os.path.splitext(entry.name)[1] in YAML_SUFFIXES and entry.is_file():
            yield folder / entry.name


def _registry_scope(file: Path) -> tuple[Path, bool]:
    """Where the registry files covering a collector file given on its own are: the collectors
    folder tree ($SIGNALS_COLLECTORS_DIR, default collectors/) when the file is inside it, else
    the file's own folder (not its subfolders)."""
    from signals_dagster.catalog import collectors_dir

    root = Path(collectors_dir())
    try:
        file.resolve().relative_to(root.resolve())
    except ValueError:
        return file.parent, False
    return root, True


def registry_roots(paths: Iterable[str | os.PathLike[str]]) -> list[Path]:
    """The folders whose registry files (and lock) cover the collectors under `paths`."""
    roots: list[Path] = []
    for item in paths:
        path = Path(item)
        root = path if path.is_dir() else _registry_scope(path)[0]
        if root not in roots:
            roots.append(root)
    return roots


def registry_files(
    paths: Iterable[str | os.PathLike[str]], problems: list[Problem] | None = None
) -> dict[Path, str]:
    """The registry files (path → text) covering the collectors under `paths`: those among
    them, and for a file given on its own those of its scope (see `_registry_scope`)."""
    from signals_dagster.contracts.registry import is_registry_text

    found: dict[Path, str] = {}
    problems = [] if problems is None else problems
    for item in paths:
        path = Path(item)
        if path.is_dir():
            candidates, report = collector_files([path]), True
        elif path.is_file():
            root, recursive = _registry_scope(path)
            if recursive:
                candidates = collector_files([root])
            else:
                candidates = sorted(p for p in root.glob("*") if p.suffix in YAML_SUFFIXES)
            report = recursive
        else:
            continue
        for candidate in candidates:
            if candidate in found or not candidate.is_file():
                continue
            text = _read(candidate, problems if report else [])
            if text is not None and is_registry_text(text):
                found[candidate] = text
    return found


def _read(path: Path, problems: list[Problem]) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        problems.append(Problem(str(path), 0, "<file>", "no such file"))
    except (OSError, UnicodeDecodeError) as exc:
        problems.append(Problem(str(path), 0, "<file>", f"cannot read: {exc}"))
    return None


def load_collectors(
    paths: Iterable[str | os.PathLike[str]],
    env: Mapping[str, str] | None = None,
    warnings: list[Problem] | None = None,
    files: Sequence[Path] | None = None,
    registries: list[Path] | None = None,
) -> dict[Path, CollectorSpec]:
    """Load every collector under `paths`; raise one SpecError with all problems of all files.

    Registry files (a top-level `metrics:`) of the folders are read too: each collector is
    checked against its metric's contract and carries it. What signals.yaml allows but is
    risky is appended to `warnings` when given. `files`: `collector_files(paths)` when the
    caller has listed them already (a folder of thousands is walked once). The registry files
    found among them are appended to `registries` when given."""
    from signals_dagster.confine import confinement_problems, confinement_warnings
    from signals_dagster.contracts.registry import is_registry_text
    from signals_dagster.settings import load_settings

    paths = list(paths)
    settings = load_settings()
    policy = _policy(settings.templating)
    problems: list[Problem] = []
    specs: dict[Path, CollectorSpec] = {}
    positions: dict[Path, Positions] = {}
    name_lines: dict[str, tuple[str, int]] = {}
    asset_names: dict[str, tuple[str, str]] = {}
    registry_texts: dict[Path, str] = {}
    for path in collector_files(paths) if files is None else files:
        file = str(path)
        text = _read(path, problems)
        if text is None:
            continue
        if is_registry_text(text):
            registry_texts[path] = text
            if registries is not None:
                registries.append(path)
            continue
        spec, pos, found = parse_text(text, file, env, policy, warnings)
        problems += found
        if spec is None:
            continue
        for where, msg in confinement_problems(spec, settings):
            where = _written(where, pos)
            problems.append(Problem(file, pos.line_for(where), _dotted(where), msg))
        for where, msg in check_guarded(spec, settings.sources.allow_unguarded):
            problems.append(Problem(file, pos.line_for(where), _dotted(where), msg))
        if warnings is not None:
            for where, msg in confinement_warnings(spec, settings):
                where = _written(where, pos)
                warnings.append(Problem(file, pos.line_for(where), _dotted(where), msg))
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
        positions[path] = pos
    problems += _bind_registry(paths, registry_texts, specs, positions, settings, warnings, env)
    if problems:
        raise SpecError(problems)
    return specs


def _bind_registry(
    paths: list[str | os.PathLike[str]],
    registry_texts: dict[Path, str],
    specs: dict[Path, CollectorSpec],
    positions: dict[Path, Positions],
    settings: "Settings",
    warnings: list[Problem] | None,
    env: Mapping[str, str] | None,
) -> list[Problem]:
    """Read the registry of the folders, check each collector against its contract (and the
    registry against its lock), and attach each collector's contract."""
    from signals_dagster.contracts.conform import conform
    from signals_dagster.contracts.lock import lock_findings
    from signals_dagster.contracts.registry import load_registry

    problems: list[Problem] = []
    roots = registry_roots(paths)
    for path, text in registry_files([p for p in paths if not Path(p).is_dir()], problems).items():
        registry_texts.setdefault(path, text)
    registry, found = load_registry(sorted(registry_texts.items()))
    problems += found
    if found:
        return problems
    for root in roots:
        for locked in lock_findings(registry, root):
            if not locked.warning:
                problems.append(locked.problem)
            elif warnings is not None:
                warnings.append(locked.problem)
    for path, spec in specs.items():
        pos = positions[path]
        for finding in conform(spec, registry, settings.registry.strict, env):
            where = _tag_path(finding.path, spec, pos)
            problem = Problem(str(path), pos.line_for(where), _dotted(where), finding.message)
            if not finding.warning:
                problems.append(problem)
            elif warnings is not None:
                warnings.append(problem)
        spec.bind_contract(registry.get(spec.metric.name))
    return problems


def _tag_path(
    path: tuple[str | int, ...], spec: CollectorSpec, pos: Positions
) -> tuple[str | int, ...]:
    """A static tag's path by index as written: `tags[0].value` (list form) or `tags.env`."""
    if path[:2] != ("metric", "tags") or len(path) < 3 or path[:3] in pos.lines:
        return path
    assert isinstance(path[2], int)
    return ("metric", "tags", spec.metric.tags[path[2]].key)
