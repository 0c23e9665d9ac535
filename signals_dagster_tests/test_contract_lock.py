"""The registry's lock: breaking and compatible changes, the lock file, `signals validate`'s
findings against it and the `signals registry lock` / `diff` commands (no server needed)."""

import json
import textwrap
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner, Result

from signals_dagster.contracts.commands import registry
from signals_dagster.contracts.lock import (
    Change,
    Lock,
    LockError,
    diff_contracts,
    lock_findings,
    lock_text,
    parse_lock,
    read_lock,
    relocked,
    write_lock,
)
from signals_dagster.contracts.model import Contract
from signals_dagster.contracts.registry import LOCK_NAME, Registry, load_registry
from signals_dagster.errors import Problem, SpecError
from signals_dagster.spec.loader import load_collectors
from signals_dagster_tests.sqlite_shop import collector_yaml, make_shop


def contract(snippet: str = "", **fields: object) -> Contract:
    """A contract of `m` v1 (COUNT) with the keys of a YAML snippet."""
    data: dict[str, object] = {"name": "m", "version": 1, "type": "COUNT"}
    data.update(yaml.safe_load(textwrap.dedent(snippet)) or {})
    data.update(fields)
    return Contract.model_validate(data)


def kinds(changes: list[Change]) -> list[tuple[str, str]]:
    return [(change.kind, change.field) for change in changes]


BREAKING = [
    ("type: COUNT", "type: GAUGE", "type"),
    ("unit: ms", "unit: s", "unit"),
    ("", "unit: ms", "unit"),
    ("unit: ms", "", "unit"),
    ("tags: {country: {}}", "", "tags.country"),
    ("", "tags: {country: {required: true}}", "tags.country"),
    ("tags: {country: {}}", "tags: {country: {required: true}}", "tags.country.required"),
    ("tags: {c: {allowed: [de, jp]}}", "tags: {c: {allowed: [de]}}", "tags.c.allowed"),
    ("tags: {c: {}}", "tags: {c: {allowed: [de]}}", "tags.c.allowed"),
    ("tags: {c: {}}", "tags: {c: {pattern: '^a'}}", "tags.c.pattern"),
    ("tags: {c: {pattern: '^a'}}", "tags: {c: {pattern: '^b'}}", "tags.c.pattern"),
    ("values: {min: 0}", "values: {min: 1}", "values.min"),
    ("values: {max: 10}", "values: {max: 9}", "values.max"),
    ("values: {max: 10}", "values: {min: 0, max: 10}", "values.min"),
    ("values: {min: 0}", "values: {min: 0, max: 10}", "values.max"),
    ("", "values: {max: 10}", "values.max"),
    ("max_records: 10", "max_records: 9", "max_records"),
    ("", "max_records: 10", "max_records"),
    ("stability: stable", "stability: development", "stability"),
    ("stability: deprecated", "stability: stable", "stability"),
    ("tags: {e: {}}", "tags: {e: {pii: hash}}", "tags.e.pii"),
    ("tags: {e: {pii: hash}}", "tags: {e: {}}", "tags.e.pii"),
    ("tags: {e: {pii: hash}}", "tags: {e: {pii: drop}}", "tags.e.pii"),
    ("", "min_group_size: {k: 5, column: n}", "min_group_size"),
    ("min_group_size: {k: 5, column: n}", "min_group_size: {k: 6, column: n}", "min_group_size.k"),
]

COMPATIBLE = [
    ("", "tags: {channel: {}}", "tags.channel"),
    ("", "tags: {channel: {required: false}}", "tags.channel"),
    ("tags: {c: {allowed: [de]}}", "tags: {c: {allowed: [de, jp]}}", "tags.c.allowed"),
    ("tags: {c: {allowed: [de]}}", "tags: {c: {}}", "tags.c.allowed"),
    ("tags: {c: {allowed: [de, jp]}}", "tags: {c: {allowed: [jp, de]}}", "tags.c.allowed"),
    ("tags: {c: {pattern: '^a'}}", "tags: {c: {}}", "tags.c.pattern"),
    ("tags: {c: {required: true}}", "tags: {c: {}}", "tags.c.required"),
    ("tags: {c: {description: a}}", "tags: {c: {description: b}}", "tags.c.description"),
    ("values: {min: 1}", "values: {min: 0}", "values.min"),
    ("values: {max: 9}", "values: {max: 10}", "values.max"),
    ("values: {min: 0, max: 10}", "values: {max: 10}", "values.min"),
    ("values: {min: 0, max: 10}", "values: {min: 0}", "values.max"),
    ("values: {min: 0}", "", "values.min"),
    ("max_records: 9", "max_records: 10", "max_records"),
    ("max_records: 10", "", "max_records"),
    ("description: a", "description: b", "description"),
    ("owners: [team:a]", "owners: [team:a, team:b]", "owners"),
    ("stability: development", "stability: stable", "stability"),
    ("stability: stable", "stability: deprecated", "stability"),
    ("stability: development", "stability: deprecated", "stability"),
    ("min_group_size: {k: 5, column: n}", "", "min_group_size"),
    ("min_group_size: {k: 5, column: n}", "min_group_size: {k: 3, column: n}", "min_group_size.k"),
    (
        "min_group_size: {k: 5, column: n}",
        "min_group_size: {k: 5, column: m}",
        "min_group_size.column",
    ),
]


@pytest.mark.parametrize(("old", "new", "field"), BREAKING)
def test_breaking_change(old: str, new: str, field: str) -> None:
    assert kinds(diff_contracts(contract(old), contract(new))) == [("breaking", field)]


@pytest.mark.parametrize(("old", "new", "field"), COMPATIBLE)
def test_compatible_change(old: str, new: str, field: str) -> None:
    assert kinds(diff_contracts(contract(old), contract(new))) == [("compatible", field)]


def test_no_change_and_a_version_alone_is_no_change() -> None:
    text = "tags: {c: {required: true, allowed: [de]}}\nvalues: {min: 0}\nmax_records: 5"
    assert diff_contracts(contract(text), contract(text)) == []
    assert diff_contracts(contract(text), contract(text, version=2)) == []
    assert diff_contracts(None, None) == []


def test_whole_contract_changes() -> None:
    assert kinds(diff_contracts(None, contract())) == [("compatible", "<contract>")]
    assert kinds(diff_contracts(contract("stability: stable"), None)) == [
        ("breaking", "<contract>")
    ]
    assert kinds(diff_contracts(contract("stability: deprecated"), None)) == [
        ("compatible", "<contract>")
    ]


def test_change_messages() -> None:
    old = contract("tags: {c: {allowed: [de, fr, jp, us]}}\nvalues: {min: 0}")
    new = contract("tags: {c: {allowed: [de, br]}}\nvalues: {min: 1, max: 5}")
    assert [(c.kind, c.field, c.message) for c in diff_contracts(old, new)] == [
        ("breaking", "tags.c.allowed", "allowed values 'fr', 'jp', 'us' removed"),
        ("compatible", "tags.c.allowed", "allowed value 'br' added"),
        ("breaking", "values.min", "range narrowed: min raised from 0 to 1 ([0, inf] → [1, 5])"),
        ("breaking", "values.max", "range narrowed: max 5 added ([0, inf] → [1, 5])"),
    ]
    assert diff_contracts(contract("tags: {c: {}}"), contract())[0].path == ("tags", "c")


def test_several_changes_at_once() -> None:
    old = contract("type: COUNT\ntags: {a: {}, b: {required: true}}\nstability: stable")
    new = contract("type: GAUGE\ntags: {b: {}, c: {}}\nstability: deprecated")
    assert kinds(diff_contracts(old, new)) == [
        ("breaking", "type"),
        ("compatible", "stability"),
        ("breaking", "tags.a"),
        ("compatible", "tags.c"),
        ("compatible", "tags.b.required"),
    ]


# The lock file.


def test_lock_round_trip_is_stable(tmp_path: Path) -> None:
    one = contract("tags: {c: {allowed: [de]}}\nvalues: {min: 0, max: 1.5}\nowners: [a@b.io]")
    other = contract(name="a.first", type="GAUGE", unit="s")
    lock = Lock({"m": {1: one}, "a.first": {1: other}})
    path = tmp_path / LOCK_NAME
    write_lock(path, lock)
    text = path.read_text(encoding="utf-8")
    assert text.endswith("}\n")
    data = json.loads(text)
    assert list(data) == ["lock_version", "metrics", "removed"]
    assert list(data["metrics"]) == ["a.first", "m"]  # sorted
    assert data["metrics"]["m"]["1"] == one.model_dump(mode="json")
    assert text == json.dumps(data, indent=2, sort_keys=True) + "\n"
    back = read_lock(path)
    assert back == lock
    assert lock_text(back) == text
    assert list(tmp_path.iterdir()) == [path]  # no temporary file left behind
    assert read_lock(tmp_path / "none.json") is None


def test_relock_keeps_every_version_and_marks_removals() -> None:
    v1, v2 = contract(), contract("type: GAUGE", version=2)
    old = contract(name="old", stability="deprecated")
    lock = Lock({"m": {1: v1}, "old": {1: old}})
    reg = Registry(contracts={"m": v2})
    after = relocked(lock, reg)
    assert after.metrics == {"m": {1: v1, 2: v2}, "old": {1: old}}
    assert after.removed == {"old"}
    assert after.latest("m") == v2
    back = relocked(after, Registry(contracts={"m": v2, "old": old}))
    assert back.removed == set()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{", "not JSON"),
        ("[]", "must be a JSON object"),
        ('{"lock_version": 2, "metrics": {}}', "lock_version must be 1, got 2"),
        ('{"lock_version": 1}', "metrics must be an object"),
        ('{"lock_version": 1, "metrics": {}, "x": 1}', "unknown key 'x'"),
        ('{"lock_version": 1, "metrics": {"m": {"one": {}}}}', "metrics.m.one: a version"),
        (
            '{"lock_version": 1, "metrics": {"m": {"1": {"name": "m", "version": 1}}}}',
            "metrics.m.1.type: Field required",
        ),
        (
            '{"lock_version": 1, "metrics": {"m": {"2": {"name": "m", "version": 1, '
            '"type": "COUNT"}}}}',
            "metrics.m.2: holds m v1, not m v2",
        ),
    ],
)
def test_invalid_lock(text: str, message: str) -> None:
    with pytest.raises(LockError, match="^" + message.replace(".", r"\.")):
        parse_lock(text)


# Validate-time findings (signals validate: load_collectors) and the commands.

REGISTRY = """\
metrics:
  - name: shop.revenue
    version: 1
    type: GAUGE
    description: Revenue per customer
    owners: [team:growth]
    stability: stable
    tags:
      env: {required: true}
      customer: {}
      country:
        allowed: [de, fr, jp]
    values: {min: 0}
    max_records: 100
  - name: shop.legacy
    version: 1
    type: COUNT
    stability: stable
"""
LEGACY = REGISTRY[REGISTRY.index("  - name: shop.legacy") :]


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """A collectors folder: a registry file and a valid SQLite collector of shop.revenue."""
    root = tmp_path / "collectors"
    root.mkdir()
    db = make_shop(tmp_path / "shop.sqlite", days=1)
    (root / "revenue.yaml").write_text(collector_yaml(db, tmp_path / "audit.jsonl"))
    (root / "metrics.yaml").write_text(REGISTRY)
    return root


def run(*args: str) -> Result:
    return CliRunner().invoke(registry, list(args), catch_exceptions=False)


def lock(root: Path) -> None:
    result = run("lock", str(root))
    assert result.exit_code == 0, result.output
    assert f"locked 2 contract(s) in {root / LOCK_NAME}" in result.output


def edit(root: Path, old: str, new: str) -> None:
    path = root / "metrics.yaml"
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


def validate(root: Path) -> tuple[list[str], list[str]]:
    """The errors and the warnings of `signals validate root`."""
    warnings: list[Problem] = []
    try:
        load_collectors([root], warnings=warnings)
    except SpecError as exc:
        return [str(p) for p in exc.problems], [str(w) for w in sorted(warnings)]
    return [], [str(w) for w in sorted(warnings)]


def test_no_lock_no_findings(folder: Path) -> None:
    assert validate(folder) == ([], [])
    (spec,) = load_collectors([folder]).values()
    assert spec.contract is not None
    assert spec.contract.label == "shop.revenue v1"
    registry_, problems = load_registry([(folder / "metrics.yaml", REGISTRY)])
    assert problems == []
    assert list(lock_findings(registry_, folder)) == []


def test_locked_and_unchanged_is_quiet(folder: Path) -> None:
    lock(folder)
    assert validate(folder) == ([], [])
    result = run("diff", str(folder))
    assert result.exit_code == 0
    assert result.output == f"no changes against {folder / LOCK_NAME}\n"


def test_breaking_change_without_a_bump_is_an_error(folder: Path) -> None:
    lock(folder)
    edit(folder, "allowed: [de, fr, jp]", "allowed: [de, fr]")
    edit(folder, "values: {min: 0}", "values: {min: 1}")
    lockfile = folder / LOCK_NAME
    file = folder / "metrics.yaml"
    errors, _ = validate(folder)
    assert errors == [
        f"{file}:12: metrics[0].tags.country.allowed: breaking change without a version bump: "
        f"allowed value 'jp' removed (locked v1 in {lockfile}; bump version to 2)",
        f"{file}:13: metrics[0].values.min: breaking change without a version bump: range "
        f"narrowed: min raised from 0 to 1 ([0, inf] → [1, inf]) (locked v1 in {lockfile}; "
        "bump version to 2)",
    ]
    before = lockfile.read_text()
    result = run("lock", str(folder))  # refused
    assert result.exit_code == 1
    assert errors[0] in result.output
    assert lockfile.read_text() == before
    result = run("diff", str(folder))
    assert result.exit_code == 0
    assert result.output.splitlines() == [
        "shop.revenue: breaking: tags.country.allowed: allowed value 'jp' removed",
        "shop.revenue: breaking: values.min: range narrowed: min raised from 0 to 1 "
        "([0, inf] → [1, inf])",
        f"2 change(s) in 1 contract(s) against {lockfile}: 2 breaking, 0 compatible",
    ]


def test_a_removed_tag_is_located_at_the_tags(folder: Path) -> None:
    lock(folder)
    edit(folder, "      customer: {}\n", "")
    errors, _ = validate(folder)
    assert len(errors) == 1
    assert errors[0].startswith(
        f"{folder / 'metrics.yaml'}:8: metrics[0].tags.customer: breaking change without a "
        "version bump: tag 'customer' removed"
    )


def test_breaking_change_with_a_bump_is_a_reminder(folder: Path) -> None:
    lock(folder)
    edit(folder, "allowed: [de, fr, jp]", "allowed: [de, fr]")
    edit(folder, "version: 1\n    type: GAUGE", "version: 2\n    type: GAUGE")
    errors, warnings = validate(folder)
    assert errors == []
    assert warnings == [
        f"{folder / 'metrics.yaml'}:3: metrics[0].version: shop.revenue v2 is not locked yet "
        "(1 change(s), 1 breaking, since v1): run `signals registry lock`"
    ]
    lock(folder)
    assert validate(folder) == ([], [])
    locked = read_lock(folder / LOCK_NAME)
    assert locked is not None
    assert sorted(locked.metrics["shop.revenue"]) == [1, 2]  # the history is kept


def test_compatible_change_is_a_reminder(folder: Path) -> None:
    lock(folder)
    edit(folder, "allowed: [de, fr, jp]", "allowed: [de, fr, jp, us]")
    edit(folder, "description: Revenue per customer", "description: Revenue")
    errors, warnings = validate(folder)
    assert errors == []
    assert warnings == [
        f"{folder / 'metrics.yaml'}:2: metrics[0]: shop.revenue v1 differs from the lock "
        "(description: description changed; tags.country.allowed: allowed value 'us' added): "
        "run `signals registry lock`"
    ]
    result = run("diff", str(folder))
    assert result.output.splitlines()[-1].endswith("0 breaking, 2 compatible")
    lock(folder)
    assert validate(folder) == ([], [])


def test_a_new_contract_is_a_reminder(folder: Path) -> None:
    lock(folder)
    (folder / "more.yaml").write_text(
        "metrics:\n  - name: shop.new\n    version: 1\n    type: COUNT\n"
    )
    assert validate(folder) == (
        [],
        [
            f"{folder / 'more.yaml'}:2: metrics[0]: shop.new v1 is not in the lock: run "
            "`signals registry lock`"
        ],
    )
    assert run("diff", str(folder)).output.startswith(
        "shop.new: compatible: <contract>: new contract (not in the lock)\n"
    )


def test_a_lower_version_is_an_error(folder: Path) -> None:
    edit(folder, "version: 1\n    type: GAUGE", "version: 2\n    type: GAUGE")
    lock(folder)
    edit(folder, "version: 2\n    type: GAUGE", "version: 1\n    type: GAUGE")
    errors, _ = validate(folder)
    assert errors == [
        f"{folder / 'metrics.yaml'}:3: metrics[0].version: version 1 is lower than the locked "
        f"v2 ({folder / LOCK_NAME}): versions only go up (bump version to 3)"
    ]


def test_removal_without_deprecation_is_an_error(folder: Path) -> None:
    lock(folder)
    edit(folder, LEGACY, "")
    lockfile = folder / LOCK_NAME
    line = lockfile.read_text().splitlines().index('    "shop.legacy": {') + 1
    errors, _ = validate(folder)
    assert errors == [
        f"{lockfile}:{line}: metrics.shop.legacy: contract 'shop.legacy' was removed from the "
        "registry without being deprecated first (locked shop.legacy v1 is stable): restore it, "
        "or publish it with stability: deprecated (a new version, locked) before removing it"
    ]
    assert run("lock", str(folder)).exit_code == 1
    assert "breaking: <contract>: removed without being deprecated first" in (
        run("diff", str(folder)).output
    )


def test_removal_after_deprecation_is_fine(folder: Path) -> None:
    edit(folder, LEGACY, LEGACY.replace("version: 1", "version: 2").replace("stable", "deprecated"))
    lock(folder)
    edit(folder, LEGACY.replace("version: 1", "version: 2").replace("stable", "deprecated"), "")
    lockfile = folder / LOCK_NAME
    errors, warnings = validate(folder)
    assert errors == []
    assert len(warnings) == 1
    assert warnings[0].endswith(
        "metrics.shop.legacy: deprecated contract shop.legacy v2 was removed from the registry: "
        "run `signals registry lock`"
    )
    assert run("diff", str(folder)).output.startswith(
        "shop.legacy: compatible: <contract>: removed after deprecation (locked shop.legacy v2)\n"
    )
    result = run("lock", str(folder))
    assert result.exit_code == 0, result.output
    assert "locked 1 contract(s)" in result.output
    assert validate(folder) == ([], [])
    assert run("diff", str(folder)).output == f"no changes against {lockfile}\n"
    locked = read_lock(lockfile)
    assert locked is not None
    assert locked.removed == {"shop.legacy"}
    assert sorted(locked.metrics["shop.legacy"]) == [2]


def test_an_invalid_lock_is_one_error(folder: Path) -> None:
    (folder / LOCK_NAME).write_text("{not json")
    errors, _ = validate(folder)
    assert len(errors) == 1
    assert errors[0].startswith(f"{folder / LOCK_NAME}:1: <root>: invalid lock: not JSON: ")
    assert run("lock", str(folder)).exit_code == 1
    assert run("diff", str(folder)).exit_code == 1


def test_diff_without_a_lock_and_against_another(folder: Path, tmp_path: Path) -> None:
    result = run("diff", str(folder))
    assert result.exit_code == 0
    assert result.output == (
        f"no lock at {folder / LOCK_NAME}: run `signals registry lock` to write one\n"
    )
    lock(folder)
    other = tmp_path / "old.lock.json"
    (folder / LOCK_NAME).rename(other)
    edit(folder, "max_records: 100", "max_records: 200")
    result = run("diff", str(folder), "--against", str(other))
    assert result.exit_code == 0
    assert result.output.splitlines() == [
        "shop.revenue: compatible: max_records: max_records raised from 100 to 200",
        f"1 change(s) in 1 contract(s) against {other}: 0 breaking, 1 compatible",
    ]


def test_lock_reports_registry_problems(folder: Path) -> None:
    edit(folder, "type: GAUGE", "type: RATE")
    result = run("lock", str(folder))
    assert result.exit_code == 1
    assert f"{folder / 'metrics.yaml'}:4: metrics[0].type: " in result.output
    assert not (folder / LOCK_NAME).exists()


def test_lock_default_folder_and_missing_folder(
    folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SIGNALS_COLLECTORS_DIR", str(folder))
    result = run("lock")
    assert result.exit_code == 0, result.output
    assert (folder / LOCK_NAME).exists()
    result = run("lock", str(tmp_path / "nowhere"))
    assert result.exit_code == 1
    assert "no such folder" in result.output


def test_the_group_help() -> None:
    result = run("--help")
    assert "The metric registry: lock its contracts, diff them against the lock." in result.output
