"""Policies in Rego: the policy measurer of the quality gate.

A policy is a Rego v1 module `package signals.policies.NAME` in the policies folder
($SIGNALS_POLICIES_DIR, else `policies/` beside the collectors folder). It defines

- `applies_to`: a set of metric names (glob patterns; `{"*"}`: every metric), constant;
- `deny`: a set of messages — any message blocks publishing, like a failed `error` check;
- `warn` (optional): a set of messages — they warn, like a failed `warn` check.

Its input, per window of a collector of a metric it applies to:

    {"metric": {name, type, grain, unit, tags},          # tags: the static ones
     "contract": the metric's contract (or null),
     "collector": {name, owners, group, source_type, sinks: {name: type}},  # no URI, no secret
     "window": {key, start, end},                         # ISO-8601
     "records": [the window's records as JSON objects],
     "previous": {record_count, value_sum} (or null)}     # the window before

Each policy is an asset check `policy_NAME`. Modules are evaluated in process by `regopy`
(rego-cpp), imported only when a policy folder exists: one compiled bundle per file content,
kept for the process; each window's input is converted once and shared by every policy.

Every evaluation is also a signal: with `policies: {sinks: ...}` in signals.yaml, one record of
metric `signals.policy.violations` (value: the number of deny messages; tags `policy`,
`metric`) per policy and window is written through those sinks.
"""

import atexit
import contextlib
import functools
import hashlib
import json
import logging
import os
import re
import threading
from collections import OrderedDict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from fnmatch import fnmatchcase
from pathlib import Path
from typing import TYPE_CHECKING, Any

from signals_dagster.errors import CollectorError, Problem, SinkError, SpecError
from signals_dagster.quality.checks import (
    CheckResult,
    Figures,
    History,
    earlier_windows,
    figures_of,
    no_history,
)
from signals_dagster.spec.models import CollectorSpec, Metric
from signals_dagster.window import Window

if TYPE_CHECKING:
    import pyarrow as pa

    from signals_dagster.settings import Settings
    from signals_dagster.sinks import SinkClients
    from signals_dagster.spec.sinks import Sink

log = logging.getLogger("signals_dagster")

POLICIES_ENV = "SIGNALS_POLICIES_DIR"
DEFAULT_FOLDER = "policies"
PACKAGE_PREFIX = "signals.policies."
CHECK_PREFIX = "policy_"
VIOLATIONS_METRIC = "signals.policy.violations"
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
_PACKAGE = re.compile(r"^[ \t]*package[ \t]+([^\s#]+)", re.MULTILINE)
_RULES = ("applies_to", "deny", "warn")
# A rule head at the start of a line: `deny contains m if`, `deny[m]`, `default deny := ...`.
_HEAD = re.compile(r"^[ \t]*(?:default[ \t]+)?(applies_to|deny|warn)\b(?![ \t]*(?:==|!=))", re.M)
_CACHE_SIZE = 256


# ---- where policies live ----------------------------------------------------------------------


def policies_dir(collectors_dir: Path | str) -> Path | None:
    """$SIGNALS_POLICIES_DIR when set (SpecError when it is not a folder), else `policies/`
    beside the collectors folder when it exists, else None (no policies). A collector file
    stands for its folder."""
    configured = os.environ.get(POLICIES_ENV, "").strip()
    if configured:
        folder = Path(configured)
        if not folder.is_dir():
            what = "does not exist" if not folder.exists() else "is not a folder"
            raise SpecError(
                [Problem(configured, 1, f"${POLICIES_ENV}", f"the policies folder {what}")]
            )
        return folder
    collectors = Path(os.path.abspath(collectors_dir))
    if collectors.is_file():
        collectors = collectors.parent
    beside = collectors.parent / DEFAULT_FOLDER
    return beside if beside.is_dir() else None


def policy_files(directory: Path) -> list[Path]:
    """Every `*.rego` file under the folder (recursively; hidden folders such as .git are
    skipped), sorted."""
    found: list[Path] = []
    for root, folders, files in os.walk(directory, followlinks=False):
        folders[:] = sorted(f for f in folders if not f.startswith("."))
        found += [Path(root) / f for f in files if f.endswith(".rego") and not f.startswith(".")]
    return sorted(found)


# ---- compiled policies ------------------------------------------------------------------------


class PolicyEvaluationError(Exception):
    """The Rego interpreter failed on an input (a runtime error of the policy)."""


class _Compiled:
    """One module compiled into a bundle; evaluations are serialised (the interpreter holds the
    input)."""

    def __init__(self, interpreter: Any, bundle: Any) -> None:
        self.interpreter = interpreter
        self.bundle = bundle
        self.lock = threading.Lock()

    def run(self, document: Any) -> dict[str, Any]:
        """The package document for an input (a `regopy.Input`, or None: no input)."""
        with self.lock:
            if document is not None:
                self.interpreter.set_input(document)
            return _query(self.interpreter, self.bundle)


def _query(interpreter: Any, bundle: Any) -> dict[str, Any]:
    """Run the bundle's query (`x := data.signals.policies.NAME`); the package document.

    regopy's `Output` parses the answer as JSON, which an evaluation error is not (rego-cpp
    answers an error term), so the C API is read directly."""
    from regopy import rego_shared as c

    impl = c.rego_bundle_query(interpreter._impl, bundle._impl)  # RegoError when null
    try:
        text = c.rego_output_string(impl)
        ok = c.rego_output_ok(impl)
        if ok and text == "undefined":
            return {}
        if ok:
            try:
                answer = json.loads(text)
            except ValueError:
                raise PolicyEvaluationError(_error_text(text)) from None
        else:
            raise PolicyEvaluationError(_node_errors(c.rego_output_node(impl)))
    finally:
        c.rego_free_output(impl)
    results = answer if isinstance(answer, list) else [answer]
    for result in results:
        bindings = result.get("bindings", {}) if isinstance(result, dict) else {}
        if isinstance(bindings.get("x"), dict):
            return dict(bindings["x"])
    return {}


def _node_errors(root: Any) -> str:
    """The messages of an error node tree (rego-errorseq / error / errormsg)."""
    from regopy import rego_shared as c

    messages: list[str] = []

    def walk(node: Any, depth: int) -> None:
        if depth > 8:
            return
        if c.rego_node_type_name(node) == "errormsg":
            messages.append(c.rego_node_value(node))
            return
        for index in range(c.rego_node_size(node)):
            walk(c.rego_node_get(node, index), depth + 1)

    with contextlib.suppress(Exception):  # an unexpected node shape: a generic message
        walk(root, 0)
    return "; ".join(dict.fromkeys(m.strip() for m in messages if m.strip())) or "rego error"


@dataclass(frozen=True)
class RegoMessage:
    """One error of rego-cpp's error term: where (byte offset into the module) and what."""

    message: str
    offset: int | None


# An error at the top of the term (bare, or a child of rego-errorseq: indented by two), its
# message on the next line; the AST dumped below it (which may quote the policy's strings) is
# never read.
_ERROR = re.compile(rb"^(?: {2})?\(error(?=[\s)])(?: (\d+):)?", re.MULTILINE)
_SPAN = re.compile(rb"\|(\d+)\|(\d+)")
_MSG = re.compile(rb"\s*\(errormsg (\d+):")


def rego_errors(text: str) -> list[RegoMessage]:
    """The errors of rego-cpp's error term, e.g. for a syntax error

        (rego-errorseq
          (error 10:dir/b.rego|78|2
            (errormsg 27:Invalid assignment operator)
            (errorast ...

    where `10:dir/b.rego` is the module name (length-prefixed), `|78|2` the byte offset and
    length of the culprit in the module, and `27:...` the message (length-prefixed)."""
    data = text.encode("utf-8")
    found: list[RegoMessage] = []
    for match in _ERROR.finditer(data):
        at = match.end()
        if match.group(1) is not None:  # the module name: skip exactly its length
            at += int(match.group(1))
        offset: int | None = None
        span = _SPAN.match(data, at)
        if span is not None:
            offset = int(span.group(1))
            at = span.end()
        message = _MSG.match(data, at)
        if message is None:
            continue
        size = int(message.group(1))
        body = data[message.end() : message.end() + size].decode("utf-8", "replace")
        found.append(RegoMessage(body.strip(), offset))
    return found


def _error_text(text: str) -> str:
    messages = [e.message for e in rego_errors(text)]
    if messages:
        return "; ".join(dict.fromkeys(messages))
    return " ".join(text.split())[:300] or "rego error"


def _line_of(source: bytes, offset: int | None) -> int:
    if offset is None or offset < 0:
        return 1
    return source[:offset].count(b"\n") + 1


@dataclass(frozen=True, eq=False)
class Policy:
    """One policy module: its NAME, its file and its compiled bundle."""

    name: str
    file: Path
    applies_to: tuple[str, ...]
    has_warn: bool
    digest: str  # sha256 of the module text
    compiled: _Compiled = field(repr=False)

    @property
    def check_name(self) -> str:
        """The asset check's name: `policy_NAME`."""
        return f"{CHECK_PREFIX}{self.name}"

    def applies(self, metric_name: str) -> bool:
        """Whether the policy judges collectors of this metric (`*` and globs match)."""
        return any(fnmatchcase(metric_name, pattern) for pattern in self.applies_to)

    def evaluate(self, document: Any) -> tuple[list[str], list[str]]:
        """(deny messages, warn messages) for a prepared input (`prepare_input`)."""
        answer = self.compiled.run(document)
        return _messages(answer.get("deny")), _messages(answer.get("warn"))


def _messages(value: object) -> list[str]:
    if value is None:
        return []
    items = value if isinstance(value, list) else [value]
    texts = [item if isinstance(item, str) else json.dumps(item, sort_keys=True) for item in items]
    return sorted(dict.fromkeys(texts))


# (file, sha256 of its text) → (policy or None, problems): a module compiles once per content.
_LOADED: "OrderedDict[tuple[str, str], tuple[Policy | None, list[Problem]]]" = OrderedDict()
_LOADED_LOCK = threading.Lock()


def load_policies(directory: Path | str) -> tuple[list[Policy], list[Problem]]:
    """Every policy of a folder, compiled, and every problem found (located `file:line`):
    Rego syntax and compile errors, a package that is not `signals.policies.NAME`, a missing
    `applies_to` or `deny`, two files with one NAME."""
    folder = Path(directory)
    policies: list[Policy] = []
    problems: list[Problem] = []
    for file in policy_files(folder):
        try:
            text = file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            problems.append(Problem(str(file), 1, "file", f"cannot read the policy: {exc}"))
            continue
        policy, found = load_policy(file, text)
        problems += found
        if policy is not None:
            policies.append(policy)
    by_name: dict[str, list[Policy]] = {}
    for policy in policies:
        by_name.setdefault(policy.name, []).append(policy)
    kept: list[Policy] = []
    for name, same in by_name.items():
        if len(same) == 1:
            kept.append(same[0])
            continue
        files = ", ".join(str(p.file) for p in same)
        for policy in same:
            others = ", ".join(str(p.file) for p in same if p is not policy)
            text = policy.file.read_text(encoding="utf-8")
            problems.append(
                Problem(
                    str(policy.file),
                    _package_line(text),
                    "package",
                    f"policy {name!r} is defined by {len(same)} files ({files}); "
                    f"also in {others}: one NAME per policy",
                )
            )
    return sorted(kept, key=lambda p: p.name), problems


def load_policy(file: Path, text: str) -> tuple[Policy | None, list[Problem]]:
    """One module compiled (cached per file and content), or its problems."""
    key = (str(file), hashlib.sha256(text.encode("utf-8")).hexdigest())
    with _LOADED_LOCK:
        cached = _LOADED.get(key)
        if cached is not None:
            _LOADED.move_to_end(key)
            return cached[0], list(cached[1])
    loaded = _compile(file, text, key[1])
    with _LOADED_LOCK:
        _LOADED[key] = loaded
        while len(_LOADED) > _CACHE_SIZE:
            _LOADED.popitem(last=False)
    return loaded[0], list(loaded[1])


def _package_line(text: str) -> int:
    match = _PACKAGE.search(text)
    return text.count("\n", 0, match.start()) + 1 if match else 1


@functools.cache
def _quiet_regopy_at_exit() -> None:
    """Compiled policies live in the code location's frozen objects (heap.long_lived), so they
    outlast the interpreter's final collection and are destroyed after regopy's module is torn
    down, where its finalizers find their C functions gone and print "Exception ignored" for
    each. At exit the finalizers are dropped: the process frees that memory anyway."""

    def _drop_finalizers() -> None:
        from regopy import interpreter, output

        for kind in (interpreter.Bundle, interpreter.Input, interpreter.Interpreter, output.Output):
            kind.__del__ = _no_finalizer

    atexit.register(_drop_finalizers)


def _no_finalizer(_self: object) -> None:
    return None


def _compile(file: Path, text: str, digest: str) -> tuple[Policy | None, list[Problem]]:
    import regopy

    _quiet_regopy_at_exit()
    where = str(file)
    source = text.encode("utf-8")
    problems: list[Problem] = []
    package = _PACKAGE.search(text)
    package_line = _package_line(text)
    name: str | None = None
    if package is None:
        problems.append(
            Problem(where, 1, "package", "no package: a policy is `package signals.policies.NAME`")
        )
    else:
        declared = package.group(1)
        candidate = declared.removeprefix(PACKAGE_PREFIX)
        if not declared.startswith(PACKAGE_PREFIX) or not _NAME.fullmatch(candidate):
            problems.append(
                Problem(
                    where,
                    package_line,
                    "package",
                    f"package {declared!r} is not `signals.policies.NAME` (NAME: a letter, then "
                    "letters, digits or _)",
                )
            )
        else:
            name = candidate

    interpreter = regopy.Interpreter()
    interpreter.log_level = regopy.LogLevel.NONE  # errors are reported, not printed
    try:
        interpreter.add_module(where, text)
        bundle = interpreter.build(f"x := data.{PACKAGE_PREFIX}{name or 'invalid'}", [])
    except regopy.RegoError as exc:
        return None, problems + _rego_problems(where, source, str(exc))
    if name is None:
        return None, problems
    compiled = _Compiled(interpreter, bundle)
    try:
        document = compiled.run(None)  # no input: applies_to must not depend on it
    except (PolicyEvaluationError, regopy.RegoError) as exc:
        return None, [*problems, Problem(where, package_line, "rego", _first_line(exc))]
    heads = {m.group(1): text.count("\n", 0, m.start()) + 1 for m in _HEAD.finditer(text)}
    defined = {rule for rule in _RULES if rule in document or rule in heads}
    for rule, what in (
        ("applies_to", 'a set of metric names, or {"*"}'),
        ("deny", "a set of messages; empty: the window passes"),
    ):
        if rule not in defined:
            problems.append(Problem(where, package_line, rule, f"`{rule}` is not defined ({what})"))
    applies_to: tuple[str, ...] = ()
    if "applies_to" in defined:
        value = document.get("applies_to")
        line = heads.get("applies_to", package_line)
        if value is None:
            problems.append(
                Problem(
                    where,
                    line,
                    "applies_to",
                    "`applies_to` is undefined without input: it must be a constant set of "
                    'metric names (or {"*"})',
                )
            )
        elif not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            problems.append(
                Problem(
                    where,
                    line,
                    "applies_to",
                    f'`applies_to` must be a set of metric names (or {{"*"}}), not {value!r}',
                )
            )
        elif not value:
            problems.append(
                Problem(where, line, "applies_to", "`applies_to` is empty: it applies to nothing")
            )
        else:
            applies_to = tuple(sorted(value))
    if "deny" in document and not isinstance(document["deny"], list):
        line = heads.get("deny", package_line)
        problems.append(
            Problem(where, line, "deny", "`deny` must be a set of messages (deny contains msg if)")
        )
    if problems:
        return None, problems
    return Policy(name, file, applies_to, "warn" in defined, digest, compiled), []


def _first_line(exc: BaseException) -> str:
    text = str(exc)
    return _error_text(text) if "(error" in text else text.strip().splitlines()[0]


def _rego_problems(where: str, source: bytes, text: str) -> list[Problem]:
    """rego-cpp's error term as located problems (one per line and message)."""
    errors = rego_errors(text)
    if not errors:
        return [Problem(where, 1, "rego", " ".join(text.split())[:300] or "rego error")]
    found: dict[tuple[int, str], Problem] = {}
    for error in errors:
        line = _line_of(source, error.offset)
        found.setdefault((line, error.message), Problem(where, line, "rego", error.message))
    return list(found.values())


# ---- loading for a project --------------------------------------------------------------------


def check_policies(collectors_dir: Path | str) -> tuple[list[Policy], list[Problem]]:
    """The policies of a project (none without a policies folder) and every problem (an unset
    folder of $SIGNALS_POLICIES_DIR included) — what `signals validate` reports."""
    try:
        folder = policies_dir(collectors_dir)
    except SpecError as exc:
        return [], list(exc.problems)
    if folder is None:
        return [], []
    return load_policies(folder)


def project_policies(collectors_dir: Path | str) -> list[Policy]:
    """The policies a run evaluates; SpecError listing every problem (a broken policy must not
    silently stop judging)."""
    policies, problems = check_policies(collectors_dir)
    if problems:
        raise SpecError(problems)
    return policies


# ---- evaluation -------------------------------------------------------------------------------


def policy_input(
    spec: CollectorSpec,
    window: Window,
    records: "pa.Table",
    previous: Figures | None,
) -> dict[str, Any]:
    """The input document of every policy for one window (no URI, no secret of the collector:
    its sinks by name and type only)."""
    from signals_dagster.records import to_dicts

    metric = spec.metric
    contract = spec.contract
    return {
        "metric": {
            "name": metric.name,
            "type": metric.type,
            "grain": metric.grain,
            "unit": metric.unit,
            "tags": metric.static_tags,
        },
        "contract": contract.model_dump(mode="json") if contract is not None else None,
        "collector": {
            "name": spec.name,
            "owners": list(spec.owners),
            "group": spec.group,
            "source_type": spec.source.type,
            "sinks": {name: sink.type for name, sink in spec.sinks.items()},
        },
        "window": {
            "key": window.key,
            "start": window.start.isoformat(),
            "end": window.end.isoformat(),
        },
        "records": to_dicts(records) if len(records) else [],
        "previous": (
            None
            if previous is None
            else {"record_count": previous.record_count, "value_sum": previous.value_sum}
        ),
    }


def prepare_input(document: Mapping[str, Any]) -> Any:
    """An input document converted once for the interpreter (shared by every policy).

    regopy's `Input` converts value by value through its C API with generic type tests; the
    same calls made directly (exact types, encoded keys reused) take half the time. Anything
    else than JSON's types — or a regopy without that API — takes regopy's own path."""
    import regopy

    try:
        return _fast_input(regopy, document)
    except (AttributeError, TypeError, OverflowError):
        return regopy.Input(document)


def _fast_input(regopy: Any, document: Mapping[str, Any]) -> Any:
    lib = regopy.rego_shared.rego
    ok = regopy.rego_shared.Code.OK
    text, integer, number = lib.regoInputString, lib.regoInputInt, lib.regoInputFloat
    boolean, null, item = lib.regoInputBoolean, lib.regoInputNull, lib.regoInputObjectItem
    obj, array = lib.regoInputObject, lib.regoInputArray
    keys: dict[str, bytes] = {}
    handle = regopy.rego_shared.rego_new_input()

    def add(value: Any) -> int:
        kind = type(value)
        if kind is str:
            return int(text(handle, value.encode("utf-8")))
        if kind is dict:
            for key, inner in value.items():
                encoded = keys.get(key)
                if encoded is None:
                    if type(key) is not str:
                        raise TypeError("object keys are texts")
                    encoded = keys[key] = key.encode("utf-8")
                if text(handle, encoded) != ok or add(inner) != ok or item(handle) != ok:
                    return 1
            return int(obj(handle, len(value)))
        if kind is list:
            for inner in value:
                if add(inner) != ok:
                    return 1
            return int(array(handle, len(value)))
        if kind is float:
            return int(number(handle, value))
        if kind is bool:
            return int(boolean(handle, value))
        if kind is int:
            if not -(2**63) <= value < 2**63:
                raise OverflowError("integer out of int64 range")
            return int(integer(handle, value))
        if value is None:
            return int(null(handle))
        raise TypeError(f"not a JSON value: {kind.__name__}")

    try:
        if add(dict(document)) != ok:
            raise TypeError("the interpreter refused the input")
    except BaseException:
        regopy.rego_shared.rego_free_input(handle)
        raise
    prepared = regopy.Input.__new__(regopy.Input)
    prepared._impl = handle  # freed by Input.__del__
    return prepared


def evaluate_policies(
    policies: Sequence[Policy],
    spec: CollectorSpec,
    window: Window,
    records: "pa.Table",
    previous: Figures | None,
) -> list[CheckResult]:
    """Every policy that applies to the collector's metric on one window's records.

    A deny fails the check with severity `error` (it blocks publishing); warn messages alone fail
    it with severity `warn`; none passes. An evaluation error fails it as `error` too (a policy
    that cannot judge does not let the window through)."""
    applicable = [p for p in policies if p.applies(spec.metric.name)]
    if not applicable:
        return []
    document = prepare_input(policy_input(spec, window, records, previous))
    return [_judge(policy, document, window.key) for policy in applicable]


def _judge(policy: Policy, document: Any, key: str) -> CheckResult:
    import regopy

    figures: dict[str, object] = {"deny": 0, "warn": 0, "policy_file": str(policy.file)}
    try:
        deny, warn = policy.evaluate(document)
    except (PolicyEvaluationError, regopy.RegoError) as exc:
        message = f"evaluation failed: {_first_line(exc)}"
        figures["error"] = message
        return CheckResult(key, policy.check_name, "policy", "error", False, message, figures)
    figures |= {"deny": len(deny), "warn": len(warn)}
    if deny:
        return CheckResult(
            key, policy.check_name, "policy", "error", False, "; ".join(deny), figures
        )
    if warn:
        return CheckResult(
            key, policy.check_name, "policy", "warn", False, "; ".join(warn), figures
        )
    return CheckResult(key, policy.check_name, "policy", "error", True, "no deny", figures)


def policy_results(
    policies: Sequence[Policy],
    spec: CollectorSpec,
    windows: Sequence[tuple[Window, "pa.Table"]],
    history: History = no_history,
) -> list[CheckResult]:
    """Every applicable policy on every window of a run (oldest first); `previous` is the window
    before: of the run, else the stored history (as the `change` check sees it)."""
    applicable = [p for p in policies if p.applies(spec.metric.name)]
    if not applicable or not windows:
        return []
    before = earlier_windows(spec, windows[0][0], 1)
    previous = history(before).get(before[0].key) if before else None
    results: list[CheckResult] = []
    for window, records in windows:
        results += evaluate_policies(applicable, spec, window, records, previous)
        previous = figures_of(records)
    return results


# ---- violations as signals --------------------------------------------------------------------


def _evaluations(results: Sequence[CheckResult], key: str) -> Iterator[tuple[str, int]]:
    """(policy NAME, deny count) of each policy evaluated on a window (not the failed ones)."""
    for result in results:
        if result.kind != "policy" or result.window != key or "error" in result.figures:
            continue
        deny = result.figures.get("deny", 0)
        yield result.name.removeprefix(CHECK_PREFIX), int(deny) if isinstance(deny, int) else 0


def violation_records(
    spec: CollectorSpec,
    window: Window,
    results: Sequence[CheckResult],
    now: datetime | None = None,
) -> list[dict[str, Any]]:
    """One `signals.policy.violations` record per policy evaluated on the window, as the
    records' JSON objects: GAUGE, value = deny messages, tags {policy, metric, collector} (two
    collectors of one metric are two records), grain_datetime = the window's start, uuid = the
    deterministic record uuid."""
    from signals_dagster.records import iso_z, record_uuid

    stamp = iso_z(now or datetime.now(UTC), millis=True)
    grain = window.grain_datetime
    found: list[dict[str, Any]] = []
    for policy, deny in _evaluations(results, window.key):
        tags = {"policy": policy, "metric": spec.metric.name, "collector": spec.name}
        found.append(
            {
                "uuid": record_uuid(VIOLATIONS_METRIC, tags, grain),
                "name": VIOLATIONS_METRIC,
                "value": deny,
                "type": "GAUGE",
                "tags": tags,
                "timestamp": stamp,
                "grain_datetime": iso_z(grain),
            }
        )
    return found


def violation_table(
    spec: CollectorSpec,
    window: Window,
    results: Sequence[CheckResult],
    now: datetime | None = None,
) -> "pa.Table":
    """`violation_records` as a records table (what writers take)."""
    import pyarrow as pa

    from signals_dagster.records import TAGS_TYPE, TEXT_TAGS, empty_records
    from signals_dagster.records.frame import make_records

    moment = (now or datetime.now(UTC)).astimezone(UTC)
    rows = violation_records(spec, window, results, moment)
    if not rows:
        return empty_records()
    return make_records(
        pa.array([row["uuid"] for row in rows], pa.string()),
        VIOLATIONS_METRIC,
        pa.array([float(row["value"]) for row in rows], pa.float64()),
        "GAUGE",
        pa.array([list(row["tags"].items()) for row in rows], TEXT_TAGS).cast(TAGS_TYPE),
        moment,
        window.grain_datetime,
    )


def violations_spec(spec: CollectorSpec, sinks: Mapping[str, "Sink"]) -> CollectorSpec:
    """The collector the violation records are written as: `NAME.policies`, metric
    `signals.policy.violations` (GAUGE, the collector's grain), the given sinks, no contract
    (its S3 object, Kafka headers and audit lines are the collector's own, not its metric's)."""
    metric = Metric(name=VIOLATIONS_METRIC, type="GAUGE", grain=spec.metric.grain)
    return CollectorSpec.model_construct(
        name=f"{spec.name}.policies",
        description=f"Policy violations of {spec.name}",
        owners=list(spec.owners),
        group=spec.group,
        metric=metric,
        partitions=spec.partitions,
        source=spec.source,
        sinks=dict(sinks),
    )


def publish_violations(
    settings: "Settings",
    spec: CollectorSpec,
    window_results: Sequence[tuple[Window, Sequence[CheckResult]]],
    now: datetime | None = None,
    clients: "SinkClients | None" = None,
) -> dict[str, list[dict[str, object]]]:
    """Write each window's violation records through `policies.sinks` of signals.yaml (nothing
    without sinks or policy results); each sink's write metadata by name. File sinks are
    confined to the file roots and outbound hosts to `egress.allow`, as a collector's are (the
    writers check right before writing); a failed write is a CollectorError naming the sink."""
    from signals_dagster.sinks import open_writer

    sinks = settings.policies.sinks
    if not sinks:
        return {}
    moment = now or datetime.now(UTC)
    parts = [
        (window.key, table)
        for window, results in window_results
        if len(table := violation_table(spec, window, results, moment))
    ]
    if not parts:
        return {}
    target = violations_spec(spec, sinks)
    written: dict[str, list[dict[str, object]]] = {}
    for name, sink in sinks.items():
        try:
            writer = open_writer(sink, clients=clients)
            try:
                written[name] = [writer.write(target, key, table) for key, table in parts]
            finally:
                writer.close()
        except CollectorError as exc:
            raise SinkError(
                f"{spec.name}: policy violations sink {name!r}: {exc}", transient=exc.transient
            ) from None
    count = sum(len(table) for _, table in parts)
    log.info("%s: %d policy violation record(s) written to %s", spec.name, count, ", ".join(sinks))
    return written


def policy_sink_problems(settings: "Settings", settings_file: Path | str) -> list[Problem]:
    """Static checks of `policies.sinks` (located in signals.yaml), as a collector's sinks get:
    file paths under the file roots, outbound hosts allowed by egress.allow."""
    from signals_dagster.confine import (
        broker_host,
        egress_problem,
        file_roots,
        static_path_problem,
        url_host,
    )
    from signals_dagster.spec.sinks import FileSink, HttpSink, KafkaSink, S3Sink

    sinks = settings.policies.sinks
    if not sinks:
        return []
    allow = settings.egress.allow
    located: list[tuple[tuple[str | int, ...], str]] = []
    for name, sink in sinks.items():
        at: tuple[str | int, ...] = ("policies", "sinks", name, "config")
        why: str | None = None
        if isinstance(sink, FileSink):
            why = static_path_problem(sink.config.path, file_roots(settings))
            at += ("path",)
        elif isinstance(sink, HttpSink):
            why = egress_problem(*url_host(sink.config.uri), allow)
            at += ("uri",)
        elif isinstance(sink, S3Sink) and sink.config.endpoint_url is not None:
            why = egress_problem(*url_host(sink.config.endpoint_url), allow)
            at += ("endpoint_url",)
        elif isinstance(sink, KafkaSink):
            for index, broker in enumerate(sink.config.brokers):
                reason = egress_problem(*broker_host(broker), allow)
                if reason:
                    located.append(((*at, "brokers", index), reason))
        if why:
            located.append((at, why))
    if not located:
        return []
    lines = _settings_lines(Path(settings_file))
    return [
        Problem(str(settings_file), lines(path), ".".join(str(p) for p in path), message)
        for path, message in located
    ]


def _settings_lines(path: Path) -> Any:
    from signals_dagster.spec import templating, yamlpos

    try:
        text, _ = templating.render(path.read_text(encoding="utf-8"))
        _, positions, _ = yamlpos.parse(text)
    except (OSError, UnicodeDecodeError):
        return lambda _path: 1
    return positions.line_for
