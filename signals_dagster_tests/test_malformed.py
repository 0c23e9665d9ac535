"""Malformed collector files: every problem is reported, located exactly, and nothing else.

Each file under data/malformed/ opens with `# expect: LINE: PATH: MESSAGE` comment lines; a
reported problem matches when its line and field path are equal and MESSAGE is a substring of
its message. Every expectation must be met and no other problem may be reported.
"""

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from signals_dagster.errors import Problem, SpecError
from signals_dagster.spec.loader import load_collectors

DATA = Path(__file__).parent / "data"
MALFORMED = DATA / "malformed"
DUPLICATES = DATA / "duplicates"
CORPUS = sorted(MALFORMED.glob("*.yaml"))
REPO = Path(__file__).parents[1]

# Variables the corpus reads with getEnv and expects to be unset.
UNSET_VARS = ("SIGNALS_MALFORMED_UNSET_PGHOST",)

_EXPECT = re.compile(r"^# expect: (?P<line>\d+): (?P<path>\S+): (?P<message>.+)$")
_CLI_LINE = re.compile(r"^(?P<file>.+?\.yaml):(?P<line>\d+): (?P<path>\S+): (?P<message>.+)$")


@dataclass(frozen=True)
class Expected:
    """One `# expect:` line of a corpus file."""

    line: int
    path: str
    message: str

    def matches(self, line: int, path: str, message: str) -> bool:
        """Same line, same field path, message contains the expected text."""
        return line == self.line and path == self.path and self.message in message

    def __str__(self) -> str:
        return f"{self.line}: {self.path}: ...{self.message}..."


def expectations(path: Path) -> list[Expected]:
    """The expectations declared in the leading comment block of a corpus file."""
    found = []
    for text in path.read_text(encoding="utf-8").splitlines():
        if not text.startswith("#"):
            break
        if text.startswith("# expect"):
            match = _EXPECT.match(text)
            assert match, f"{path.name}: malformed expectation line {text!r}"
            found.append(Expected(int(match["line"]), match["path"], match["message"]))
    return found


def unmatched(
    expected: list[Expected], reported: list[tuple[int, str, str]]
) -> tuple[list[Expected], list[tuple[int, str, str]]]:
    """Pair expectations with reported (line, path, message); return what is left on each side."""
    left = list(reported)
    missing = []
    for exp in expected:
        hit = next((r for r in left if exp.matches(*r)), None)
        if hit is None:
            missing.append(exp)
        else:
            left.remove(hit)
    return missing, left


def problems_of(paths: list[Path]) -> list[Problem]:
    """The problems the loader reports for `paths` (it must reject them)."""
    with pytest.raises(SpecError) as info:
        load_collectors(paths)
    return info.value.problems


def mismatch(expected: list[Expected], reported: list[tuple[int, str, str]]) -> str:
    """'' when the reported problems are exactly the expected ones, else what differs."""
    missing, extra = unmatched(expected, reported)
    lines = [f"  missing:    {exp}" for exp in missing]
    lines += [f"  unexpected: {line}: {path}: {message}" for line, path, message in extra]
    return "\n".join(lines)


@pytest.fixture(autouse=True)
def _unset_corpus_vars(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in UNSET_VARS:
        monkeypatch.delenv(var, raising=False)


def _cli_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in UNSET_VARS}


def test_corpus_is_large() -> None:
    assert len(CORPUS) >= 30, f"only {len(CORPUS)} malformed files in {MALFORMED}"


@pytest.mark.parametrize("path", CORPUS, ids=lambda p: p.stem)
def test_file_declares_its_problems(path: Path) -> None:
    assert expectations(path), f"{path.name} has no '# expect:' header line"


@pytest.mark.parametrize("path", CORPUS, ids=lambda p: p.stem)
def test_malformed_file_reports_exactly_the_expected_problems(path: Path) -> None:
    problems = problems_of([path])
    assert {p.file for p in problems} == {str(path)}
    reported = [(p.line, p.path, p.message) for p in problems]
    differences = mismatch(expectations(path), reported)
    assert not differences, f"{path.name}:\n{differences}"


@pytest.mark.parametrize("path", CORPUS, ids=lambda p: p.stem)
def test_problem_lines_are_inside_the_file(path: Path) -> None:
    lines = len(path.read_text(encoding="utf-8").splitlines())
    for problem in problems_of([path]):
        assert 1 <= problem.line <= lines, str(problem)


def test_zero_byte_file_is_rejected(tmp_path: Path) -> None:
    empty = tmp_path / "empty.yaml"
    empty.write_bytes(b"")
    assert problems_of([empty]) == [
        Problem(str(empty), 1, "<root>", "a collector file must be a YAML mapping")
    ]


def test_missing_file_is_a_problem_not_a_crash(tmp_path: Path) -> None:
    ghost = tmp_path / "ghost.yaml"
    assert problems_of([ghost]) == [Problem(str(ghost), 0, "<file>", "no such file")]


def test_folder_reports_every_file_in_one_pass() -> None:
    problems = problems_of([MALFORMED])
    assert {Path(p.file).name for p in problems} == {p.name for p in CORPUS}
    per_file = [problem for path in CORPUS for problem in problems_of([path])]
    assert problems == sorted(per_file)


def test_cli_validate_prints_every_problem_once() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "signals_dagster.cli", "validate", str(MALFORMED)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
        env=_cli_env(),
        check=False,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    reported: dict[str, list[tuple[int, str, str]]] = {p.name: [] for p in CORPUS}
    for text in result.stdout.splitlines():
        match = _CLI_LINE.match(text)
        assert match, f"not a 'file:line: path: message' line: {text!r}"
        assert Path(match["file"]).parent == MALFORMED
        reported[Path(match["file"]).name].append(
            (int(match["line"]), match["path"], match["message"])
        )
    failures = []
    for path in CORPUS:
        assert reported[path.name], f"{path.name} not reported"
        differences = mismatch(expectations(path), reported[path.name])
        if differences:
            failures.append(f"{path.name}:\n{differences}")
    assert not failures, "\n".join(failures)
    total = sum(len(expectations(path)) for path in CORPUS)
    assert len(result.stdout.splitlines()) == total
    assert f"{total} problem(s) in {len(CORPUS)} file(s)" in result.stderr


def test_duplicate_collector_names_across_files() -> None:
    files = sorted(DUPLICATES.glob("*.yaml"))
    for path in files:  # each file is valid alone: the clash exists only across files
        assert len(load_collectors([path])) == 1
    problems = problems_of([DUPLICATES])
    for path in files:
        reported = [(p.line, p.path, p.message) for p in problems if p.file == str(path)]
        differences = mismatch(expectations(path), reported)
        assert not differences, f"{path.name}:\n{differences}"
    first = DUPLICATES / "a_orders_count.yaml"
    (duplicate,) = [p for p in problems if "duplicate collector name" in p.message]
    assert duplicate.message.endswith(f"(also in {first}:2)")
    assert not [p for p in problems if p.file == str(first)]


def test_duplicate_names_via_cli() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "signals_dagster.cli", "validate", str(DUPLICATES)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
        check=False,
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 2
    assert all(_CLI_LINE.match(line) for line in lines)
    assert "duplicate collector name 'orders.count.daily'" in result.stdout
