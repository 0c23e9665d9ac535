"""A collector file is untrusted: its templates fill parsed values and reach only the secrets
they are given (issue 16).

Each data/hostile/templating_*.yaml opens with `# env: NAME=value` lines (the environment it is
loaded with, `\\n` for a newline), an optional `# allow_env: PATTERN ...` line and
`# expect: LINE: PATH: MESSAGE` lines, matched as in test_malformed.py.
"""

import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from signals_dagster.catalog import load_catalog
from signals_dagster.errors import Problem
from signals_dagster.orchestration.factory import build_definitions
from signals_dagster.redact import MASK, redact, register_secret, registered_secrets
from signals_dagster.settings import SECRET_ENV_DEFAULT
from signals_dagster.spec.loader import parse_text
from signals_dagster.spec.templating import Policy, expand, protect
from signals_dagster_tests.test_malformed import Expected, expectations, mismatch

HOSTILE = Path(__file__).parent / "data" / "hostile"
CORPUS = sorted(HOSTILE.glob("templating_*.yaml"))
REPO = Path(__file__).parents[1]
DEFAULT_POLICY = Policy(tuple(SECRET_ENV_DEFAULT))
CANARY = "canary-7Hq2vX9pLw"


def header(path: Path) -> tuple[dict[str, str], Policy]:
    """The environment and policy a corpus file declares."""
    env: dict[str, str] = {}
    allow: tuple[str, ...] | None = None
    for text in path.read_text(encoding="utf-8").splitlines():
        if not text.startswith("#"):
            break
        if text.startswith("# env: "):
            name, _, value = text.removeprefix("# env: ").partition("=")
            env[name] = value.replace("\\n", "\n")
        elif text.startswith("# allow_env: "):
            allow = tuple(text.removeprefix("# allow_env: ").split())
    return env, Policy(tuple(SECRET_ENV_DEFAULT), allow)


def parse(
    text: str, env: dict[str, str], policy: Policy = DEFAULT_POLICY
) -> tuple[object, list[Problem], list[Problem]]:
    warnings: list[Problem] = []
    spec, _, problems = parse_text(text, "c.yaml", env, policy, warnings)
    return spec, problems, warnings


def test_corpus_has_one_file_per_attack() -> None:
    assert len(CORPUS) >= 10


@pytest.mark.parametrize("path", CORPUS, ids=lambda p: p.stem)
def test_hostile_file_is_refused_with_located_problems(path: Path) -> None:
    env, policy = header(path)
    spec, problems, _ = parse(path.read_text(encoding="utf-8"), env, policy)
    assert spec is None
    reported = [(p.line, p.path, p.message) for p in problems]
    expected: list[Expected] = expectations(path)
    assert expected
    differences = mismatch(expected, reported)
    assert not differences, f"{path.name}:\n{differences}"
    for name, value in env.items():  # no message repeats a secret read from the environment
        if policy.is_secret(name):
            assert all(value not in p.message for p in problems), name


def test_value_with_hash_and_quotes_is_kept_whole() -> None:
    # Pasted into the text, ` #` would cut the line and `'` would end the quoted SQL.
    text = (HOSTILE / "templating_secret_in_sql.yaml").read_text(encoding="utf-8")
    text = text.replace('"AWS_SECRET_ACCESS_KEY"', '"SIGNALS_TENANT"')
    spec, problems, _ = parse(text, {"SIGNALS_TENANT": "acme' #\n  evil: 1"})
    assert problems == []
    assert spec is not None
    assert "'acme' #\n  evil: 1' AS k" in spec.source.config.sql  # type: ignore[attr-defined]


def test_unquoted_and_nested_quote_templates_still_work() -> None:
    # signals-collector expanded the text, so these forms exist in the wild.
    text = (
        "name: ok.forms\n"
        "metric: {name: test.forms, type: GAUGE, tags: [{key: env, value: "
        '{{ getEnvOrDefault "SIGNALS_ENV" "dev" }}}]}\n'
        "source:\n  type: sqlite\n  config:\n"
        '    uri: "sqlite:///{{ getEnvOrDefault "SIGNALS_DB" "shop.sqlite" }}"\n'
        "    sql: SELECT 1 AS value\n"
        "sinks: {console: {type: console}}\n"
    )
    spec, problems, _ = parse(text, {"SIGNALS_DB": "/data/x.sqlite"})
    assert problems == []
    assert spec is not None
    assert spec.source.config.uri == "sqlite:////data/x.sqlite"  # type: ignore[attr-defined]
    assert spec.metric.static_tags == {"env": "dev"}  # type: ignore[attr-defined]


CREDENTIALS = """\
name: ok.credentials
metric: {name: test.credentials, type: GAUGE}
source:
  type: postgres
  config:
    uri: 'postgresql://app:{{ getEnv "PGPASSWORD" }}@{{ getEnvOrDefault "PGHOST" "db" }}/shop'
    sql: SELECT 1 AS value
sinks:
  ingest:
    type: http
    config:
      uri: https://ingest.example.com/m
      headers: {Authorization: 'Bearer {{ getEnv "INGEST_TOKEN" }}'}
  bus:
    type: kafka
    config:
      brokers: ['localhost:9092']
      topic: signals
      producer: {sasl.password: '{{ getEnv "KAFKA_PASSWORD" }}'}
"""
CREDENTIAL_ENV = {
    "PGPASSWORD": "pg-secret-1",
    "INGEST_TOKEN": "tok-secret-2",
    "KAFKA_PASSWORD": "kafka-secret-3",
}


def test_secrets_reach_credential_fields_and_are_registered() -> None:
    spec, problems, warnings = parse(CREDENTIALS, CREDENTIAL_ENV)
    assert problems == []
    assert warnings == []
    assert spec is not None
    assert spec.source.config.uri == "postgresql://app:pg-secret-1@db/shop"  # type: ignore[attr-defined]
    assert set(CREDENTIAL_ENV.values()) <= registered_secrets()
    assert redact("auth failed: pg-secret-1 / tok-secret-2") == f"auth failed: {MASK} / {MASK}"


def test_literal_uri_password_is_a_warning() -> None:
    # signals-collector's own examples write `postgresql://test:test@...`: they stay valid.
    text = CREDENTIALS.replace('{{ getEnv "PGPASSWORD" }}', "written-here")
    spec, problems, warnings = parse(text, CREDENTIAL_ENV)
    assert spec is not None
    assert problems == []
    assert [(w.line, w.path) for w in warnings] == [(6, "source.config.uri")]
    assert "a password written in the URI" in warnings[0].message


def test_literal_secret_in_uri_query_is_a_warning() -> None:
    text = CREDENTIALS.replace(
        "https://ingest.example.com/m", "https://ingest.example.com/m?token=written-here"
    )
    _, problems, warnings = parse(text, CREDENTIAL_ENV)
    assert problems == []
    assert [w.path for w in warnings] == ["sinks.ingest.config.uri"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("host=db password=hunter2 user=x", f"host=db password={MASK} user=x"),
        ("host=db password = 'a b\\'c' user=x", f"host=db password = {MASK} user=x"),
        ("dbname=x sslpassword=pw1 PASSWORD=pw2", f"dbname=x sslpassword={MASK} PASSWORD={MASK}"),
        (
            "https://h/p?password=a&sslpassword=b&token=c&x=1",
            f"https://h/p?password={MASK}&sslpassword={MASK}&token={MASK}&x=1",
        ),
        ("sasl.password=pw9 ok", f"sasl.password={MASK} ok"),
        ("no secrets here: pw=1 passwords", "no secrets here: pw=1 passwords"),
    ],
)
def test_redact_keyword_and_query_forms(text: str, expected: str) -> None:
    assert redact(text) == expected


def test_registered_values_are_masked_short_ones_not() -> None:
    register_secret("abc")  # too short: would mask ordinary words
    register_secret("zz-registered/secret")
    assert "abc" not in registered_secrets()
    assert redact("x zz-registered/secret y zz-registered%2Fsecret abc") == (
        f"x {MASK} y {MASK} abc"
    )


def _canary_collector(folder: Path) -> Path:
    folder.mkdir()
    path = folder / "pg.yaml"
    path.write_text(
        """\
name: pg.canary
metric: {name: pg.canary, type: COUNT}
retries: 0
source:
  type: postgres
  config:
    uri: 'postgresql://app:{{ getEnv "SIGNALS_CANARY_PASSWORD" }}@127.0.0.1:1/shop'
    sql: SELECT COUNT(*) AS value FROM t WHERE ts >= :window_start AND ts < :window_end
sinks:
  console: {type: console}
""",
        encoding="utf-8",
    )
    return path


def test_canary_never_reaches_cli_output(tmp_path: Path) -> None:
    path = _canary_collector(tmp_path / "c")
    env = {**os.environ, "SIGNALS_CANARY_PASSWORD": CANARY, "SIGNALS_DEBUG": "1"}
    for args in (["invoke", str(path), "--partition", "2026-02-03"], ["validate", str(path)]):
        result = subprocess.run(
            [sys.executable, "-m", "signals_dagster.cli", *args],
            capture_output=True,
            text=True,
            timeout=120,
            env=env,
            cwd=REPO,
        )
        assert CANARY not in result.stdout + result.stderr
    assert result.returncode == 0, result.stderr  # validate


def test_canary_never_reaches_dagster_event_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "c"
    _canary_collector(folder)
    monkeypatch.setenv("SIGNALS_CANARY_PASSWORD", CANARY)
    defs = build_definitions(load_catalog(str(folder)), str(folder))
    (asset,) = list(defs.assets or [])
    assert CANARY not in repr(asset.specs_by_key[dg.AssetKey("pg_canary")].metadata)
    instance = dg.DagsterInstance.ephemeral()
    result = dg.materialize(
        list(defs.assets or []),
        resources=defs.resources,
        instance=instance,
        partition_key="2026-02-03",
        raise_on_error=False,
    )
    assert not result.success
    logs = instance.all_logs(result.run_id)
    assert logs
    assert not any(CANARY in repr(entry) for entry in logs)
    assert any("127.0.0.1" in repr(entry) for entry in logs)  # the cause is still reported


def test_secret_names_match_ignoring_case_and_allow_env_restricts() -> None:
    assert DEFAULT_POLICY.is_secret("db_password")
    assert DEFAULT_POLICY.is_secret("AWS_REGION")
    assert not DEFAULT_POLICY.is_secret("PGHOST")
    restricted = Policy((), ("SIGNALS_*", "PGHOST"))
    assert restricted.allows("PGHOST")
    assert restricted.allows("SIGNALS_DB")
    assert not restricted.allows("HOME")


def test_unset_secret_outside_credentials_is_refused_as_a_secret() -> None:
    text = (HOSTILE / "templating_secret_in_tag.yaml").read_text(encoding="utf-8")
    _, problems, _ = parse(text, {})
    assert [(p.line, p.path) for p in problems] == [(10, "metric.tags[0].value")]
    assert "SIGNALS_API_TOKEN is a secret" in problems[0].message


def test_templates_in_comments_are_not_evaluated() -> None:
    text = CREDENTIALS.replace(
        "    sql: SELECT 1 AS value\n",
        '    sql: SELECT 1 AS value   # {{ getEnv "AWS_SECRET_ACCESS_KEY" }} {{ nope }}\n',
    )
    spec, problems, _ = parse(text, CREDENTIAL_ENV)
    assert problems == []
    assert spec is not None


def test_yaml_error_messages_show_the_template_not_its_placeholder() -> None:
    _, problems, _ = parse("a: !!int '{{ getEnv \"X\" }}'\n", {"X": "1"})
    assert problems
    assert all("\ue000" not in p.message for p in problems)
    assert any('{{ getEnv "X" }}' in p.message for p in problems)


def test_plain_template_is_typed_as_yaml_types_a_plain_scalar() -> None:
    # As when the text was expanded: `retries: {{ ... }}` is an int, a quoted one a string;
    # a value that looks like YAML structure stays a string.
    text = (
        CREDENTIALS.replace(
            "    sql: SELECT 1 AS value\n",
            '    sql: SELECT 1 AS value\n    timeout: {{ getEnvOrDefault "SIGNALS_T" "90" }}\n',
        ).replace("retries", "x")
        + 'retries: {{ getEnvOrDefault "SIGNALS_R" "2" }}\n'
    )
    spec, problems, _ = parse(text, CREDENTIAL_ENV)
    assert problems == []
    assert spec is not None
    assert spec.retries == 2  # type: ignore[attr-defined]
    assert spec.source.config.timeout.total_seconds() == 90  # type: ignore[attr-defined]
    _, problems, _ = parse(text, {**CREDENTIAL_ENV, "SIGNALS_R": "[1, 2]"})
    assert [(p.line, p.path) for p in problems] == [(21, "retries")]


def test_protect_keeps_lines_and_marks_unclosed_actions() -> None:
    text, actions, problems = protect(
        'a: {{\n  getEnv "A"\n}}\nb: x{{ getEnv "B" -}}  y\nc: {{ z\n'
    )
    assert problems == []
    assert text.count("\n") == 5  # later lines keep their numbers
    assert [(a.line, a.function, a.variable, a.problem) for a in actions] == [
        (1, "getEnv", "A", None),
        (4, "getEnv", "B", None),
        (5, None, None, "unclosed template action '{{'"),
    ]
    assert "x\ue0001\ue001y" in text  # `-}}` trims the blanks after the action
    value, expansions, found = expand(text.split("\n")[3][3:], actions, {"B": "bee"}, Policy())
    assert (value, found) == ("xbeey", [])
    assert [(e.variable, e.value, e.from_env) for e in expansions] == [("B", "bee", True)]
