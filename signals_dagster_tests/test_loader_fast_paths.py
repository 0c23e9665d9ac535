"""The shortcuts of loading thousands of collectors keep the behaviour they shortcut (issue 10):
the folder listing, the template expander that walks only into templated paths, redact's
pre-checks and the cyclic collector paused while long-lived objects are built."""

import gc
import os
import random
from pathlib import Path

from signals_dagster import redact as redaction
from signals_dagster.heap import long_lived
from signals_dagster.settings import SECRET_ENV_DEFAULT
from signals_dagster.spec.loader import collector_files, parse_text
from signals_dagster.spec.templating import Policy


def _rglob_listing(folder: Path) -> list[Path]:
    """What the loader listed before its scandir walk (Path.rglob, a stat per entry)."""
    return sorted(
        p
        for p in folder.rglob("*")
        if p.suffix in (".yaml", ".yml")
        and p.is_file()
        and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    )


def test_listing_skips_hidden_follows_file_links_not_folder_links(tmp_path: Path) -> None:
    root = tmp_path / "collectors"
    for folder in ("team_a/sub", "team_a/.hidden", ".git", "team-b", "elsewhere", "d.yaml"):
        (root / folder).mkdir(parents=True)
    for file in (
        "top.yaml",
        "team_a/x.yml",
        "team_a/sub/y.yaml",
        "team_a/sub/.draft.yaml",
        "team_a/.hidden/z.yaml",
        ".git/config.yaml",
        "team-b/w.yaml",
        "team_a/notes.txt",
        "team_a/old.yaml.bak",
        "elsewhere/linked.yaml",
    ):
        (root / file).write_text("name: x\n", encoding="utf-8")
    os.symlink(root / "elsewhere" / "linked.yaml", root / "team_a" / "link.yaml")
    os.symlink(root / "elsewhere", root / "team_a" / "folder_link")
    os.symlink(root / "missing.yaml", root / "team_a" / "broken.yaml")

    listed = collector_files([root])

    assert listed == _rglob_listing(root)
    relative = [p.relative_to(root).as_posix() for p in listed]
    assert relative == [
        "elsewhere/linked.yaml",
        "team-b/w.yaml",
        "team_a/link.yaml",
        "team_a/sub/y.yaml",
        "team_a/x.yml",
        "top.yaml",
    ]
    assert collector_files([root / "top.yaml", root / "team-b"]) == [
        root / "top.yaml",
        root / "team-b" / "w.yaml",
    ]


ALIASED = """\
name: aliased.templates
metric:
  name: test.aliased
  type: GAUGE
  tags:
    - {key: region, value: &region '{{ getEnvOrDefault "REGION" "eu" }}'}
    - {key: plain, value: fixed}
    - {key: home, value: *region}
source:
  type: sqlite
  config:
    uri: 'sqlite:///{{ getEnvOrDefault "DB" "shop.sqlite" }}'
    sql: SELECT 1 AS value
sinks:
  out:
    type: file
    config:
      path: '{{ getEnvOrDefault "OUT" "out" }}/metrics.jsonl'
"""


def test_templates_expand_at_every_path_an_alias_reaches() -> None:
    env = {"REGION": "us", "DB": "/d/x.db", "OUT": "/o"}
    spec, _, problems = parse_text(ALIASED, "c.yaml", env, Policy())
    assert problems == []
    assert spec is not None
    assert spec.metric.static_tags == {"region": "us", "plain": "fixed", "home": "us"}
    assert spec.source.config.uri == "sqlite:////d/x.db"  # type: ignore[attr-defined]
    assert spec.sinks["out"].config.path == "/o/metrics.jsonl"  # type: ignore[attr-defined]


def test_a_template_in_a_key_is_still_refused_where_it_stands() -> None:
    text = ALIASED.replace("  type: GAUGE\n", '  type: GAUGE\n  "{{ .x }}": 1\n')
    _, _, problems = parse_text(text, "c.yaml", {}, Policy(tuple(SECRET_ENV_DEFAULT)))
    assert [(p.line, p.path) for p in problems if "keys" in p.message] == [(5, "metric")]


def _three_passes(text: str) -> str:
    """redact's patterns applied unconditionally (what it did before its pre-checks)."""
    mask = redaction.MASK
    text = redaction._USERINFO.sub(lambda m: f"{m['scheme']}{m['user']}:{mask}@", text)
    text = redaction._SECRET_PARAMS.sub(lambda m: f"{m['k']}{mask}", text)
    return redaction._KEYWORD.sub(lambda m: f"{m['k']}{mask}", text)


def test_redact_pre_checks_change_no_result() -> None:
    pieces = [
        "postgresql://", "u", ":", "pw", "@", "host", "?", "&", ";", "password=", "PassWd=",
        "pwd =", "sslpassword='a b'", "TOKEN=x", "api_key=1", "ApiKey=2", "x=1", " ", "'", '"',
        "secret_key=s", "aws_secret_access_key=z", "=", "db", "\n",
    ]  # fmt: skip
    rng = random.Random(10)
    texts = ["".join(rng.choice(pieces) for _ in range(rng.randint(1, 9))) for _ in range(20_000)]
    changed = [t for t in texts if _three_passes(t) != t]
    assert len(changed) > 2_000  # the corpus exercises every pattern
    assert [redaction.redact(t) for t in texts] == [_three_passes(t) for t in texts]


def test_long_lived_pauses_the_collector_restores_it_and_freezes_what_was_built() -> None:
    assert gc.isenabled()
    before = gc.get_freeze_count()
    with long_lived():
        assert not gc.isenabled()
        built = [{"n": i} for i in range(1_000)]
    assert gc.isenabled()
    assert gc.get_freeze_count() >= before + len(built)
    gc.disable()
    try:
        with long_lived():
            pass
        assert not gc.isenabled()  # a collector that was off stays off
    finally:
        gc.enable()


def test_plain_crons_are_judged_without_croniter_exactly_as_croniter_judges_them() -> None:
    from croniter import croniter

    from signals_dagster.spec import fields

    # Every shape of field: numbers in and out of each field's range (leading zeros too), steps
    # (0, in range, past the range), lists (empty members too), ranges, names, 'L', '?', '#' and
    # a full-width digit (str.isdigit, not ASCII).
    tokens = [
        "*", "*/0", "*/1", "*/5", "*/15", "*/59", "*/60", "*/100", "0", "00", "1", "5", "6",
        "7", "12", "13", "23", "24", "29", "30", "31", "32", "59", "60", "-1", "1,2", "1,,2",
        ",1", "0,59", "59,60", "1-5", "5-1", "mon", "jan", "L", "?", "1#2", "x", "\uff11",
    ]  # fmt: skip
    rng = random.Random(3)
    numeric = tokens[: tokens.index("1-5")]  # the shapes of the fast path and their edges
    texts = {" ".join(rng.choice(tokens) for _ in range(5)) for _ in range(4_000)}
    texts |= {" ".join(rng.choice(numeric) for _ in range(5)) for _ in range(4_000)}
    texts |= {"15 0 * * *", "0 0 * * *", "0 6,18 * * *", "*/5 * * * *", "0 9 * * 1-5"}
    plain = {t for t in texts if fields._plain_cron(t.split(" "))}
    assert len(plain) > 50  # the corpus reaches the fast path
    fields._valid_cron.cache_clear()
    assert {t: fields._valid_cron(t) for t in texts} == {
        t: bool(croniter.is_valid(t)) for t in texts
    }
    assert all(croniter.is_valid(t) for t in plain)
