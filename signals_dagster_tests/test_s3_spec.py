"""S3 sink configuration: defaults, prefix normalisation, credentials only from the environment."""

import pytest

from signals_dagster.errors import Problem
from signals_dagster.spec.loader import parse_text
from signals_dagster.spec.models import CollectorSpec
from signals_dagster.spec.sinks import S3Config, S3Sink

HEAD = """name: s3.spec
metric: {name: s3.spec, type: COUNT}
source:
  type: sqlite
  config:
    uri: sqlite:///x.db
    sql: SELECT COUNT(*) AS value FROM t WHERE ts >= :window_start AND ts < :window_end
sinks:
  lake:
    type: s3
"""
ENV = {"LAKE_KEY_ID": "AKIAFROMENV", "LAKE_SECRET": "s3cr3t-from-env", "LAKE_TOKEN": "tok-env"}


def parse(config_lines: str, env: dict[str, str] | None = None) -> tuple[S3Config, list[Problem]]:
    """Parse the head plus an s3 `config:` block; return its config (if valid) and problems."""
    spec, _, problems = parse_text(HEAD + config_lines, "c.yaml", env if env is not None else ENV)
    if spec is None:
        return S3Config(bucket="unused"), problems
    return _config(spec), problems


def _config(spec: CollectorSpec) -> S3Config:
    sink = spec.sinks["lake"]
    assert isinstance(sink, S3Sink)
    return sink.config


def test_defaults() -> None:
    config, problems = parse("    config: {bucket: lake}\n")
    assert problems == []
    assert (config.prefix, config.format, config.retries) == ("", "parquet", 4)
    assert config.endpoint_url is None
    assert config.aws_access_key_id is None
    assert config.aws_secret_access_key is None


@pytest.mark.parametrize(
    ("prefix", "expected"),
    [("signals", "signals"), ("/signals/prod/", "signals/prod"), ("", ""), ("/", "")],
)
def test_prefix_is_normalised(prefix: str, expected: str) -> None:
    config, problems = parse(f"    config: {{bucket: lake, prefix: '{prefix}'}}\n")
    assert problems == []
    assert config.prefix == expected


@pytest.mark.parametrize("prefix", ["a//b", "a/./b", "../up", "a/.."])
def test_bad_prefix(prefix: str) -> None:
    _, problems = parse(f"    config: {{bucket: lake, prefix: '{prefix}'}}\n")
    assert [p.path for p in problems] == ["sinks.lake.config.prefix"]


def test_templated_credentials_are_accepted_block_style() -> None:
    config, problems = parse(
        "    config:\n"
        "      bucket: lake\n"
        "      aws_access_key_id: '{{ getEnv \"LAKE_KEY_ID\" }}'\n"
        '      aws_secret_access_key: "{{ getEnv "LAKE_SECRET" }}"   # from the vault\n'
        '      aws_session_token: {{ getEnv "LAKE_TOKEN" }}\n'
    )
    assert problems == []
    assert config.aws_access_key_id == "AKIAFROMENV"
    assert config.aws_secret_access_key is not None
    assert config.aws_secret_access_key.get_secret_value() == "s3cr3t-from-env"
    assert config.aws_session_token is not None
    assert config.aws_session_token.get_secret_value() == "tok-env"


def test_templated_credentials_are_accepted_flow_style() -> None:
    config, problems = parse(
        '    config: {bucket: lake, aws_access_key_id: {{ getEnv "LAKE_KEY_ID" }},\n'
        "             aws_secret_access_key: '{{ getEnv \"LAKE_SECRET\" }}'}\n"
    )
    assert problems == []
    assert config.aws_secret_access_key is not None


def test_secret_never_reaches_the_dump_or_the_code_version() -> None:
    text = (
        "    config:\n      bucket: lake\n"
        "      aws_access_key_id: '{{ getEnv \"LAKE_KEY_ID\" }}'\n"
        "      aws_secret_access_key: '{{ getEnv \"LAKE_SECRET\" }}'\n"
    )
    spec, _, problems = parse_text(HEAD + text, "c.yaml", ENV)
    assert spec is not None
    assert problems == []
    assert "s3cr3t-from-env" not in spec.model_dump_json()
    assert "s3cr3t-from-env" not in repr(spec)
    rotated, _, _ = parse_text(HEAD + text, "c.yaml", {**ENV, "LAKE_SECRET": "rotated"})
    assert rotated is not None
    assert rotated.code_version == spec.code_version  # rotating a secret is not a new collector


@pytest.mark.parametrize(
    "line",
    [
        "      aws_secret_access_key: plain-secret-value\n",
        "      aws_secret_access_key: 'plain-secret-value'\n",
        "      aws_secret_access_key: "
        '\'{{ getEnvOrDefault "LAKE_SECRET" "plain-secret-value" }}\'\n',
        "      aws_secret_access_key: 'x{{ getEnv \"LAKE_SECRET\" }}'\n",
        '      aws_secret_access_key: \'{{ getEnv "LAKE_SECRET" }}{{ getEnv "LAKE_TOKEN" }}\'\n',
    ],
    ids=["plain", "quoted", "default", "prefixed", "two-actions"],
)
def test_literal_secret_is_a_validation_error(line: str) -> None:
    key_id = "      aws_access_key_id: '{{ getEnv \"LAKE_KEY_ID\" }}'\n"
    _, problems = parse("    config:\n      bucket: lake\n" + key_id + line)
    assert len(problems) == 1, problems
    (problem,) = problems
    assert problem.line == 14
    assert problem.path == "sinks.lake.config.aws_secret_access_key"
    assert "must not be written in the file" in problem.message
    assert "plain-secret-value" not in problem.message
    assert "s3cr3t-from-env" not in problem.message


def test_unset_secret_variable_is_named() -> None:
    _, problems = parse(
        "    config:\n      bucket: lake\n"
        "      aws_access_key_id: '{{ getEnv \"LAKE_KEY_ID\" }}'\n"
        "      aws_secret_access_key: '{{ getEnv \"LAKE_SECRET\" }}'\n",
        env={"LAKE_KEY_ID": "AKIA"},
    )
    assert [p.message for p in problems] == ["environment variable LAKE_SECRET is not set (getEnv)"]


@pytest.mark.parametrize(
    "keys",
    [("aws_secret_access_key",), ("aws_access_key_id",), ("aws_session_token",)],
)
def test_credentials_go_together(keys: tuple[str, ...]) -> None:
    env = {"LAKE_KEY_ID": "AKIA", "LAKE_SECRET": "s", "LAKE_TOKEN": "t"}
    var = {"aws_access_key_id": "LAKE_KEY_ID", "aws_secret_access_key": "LAKE_SECRET"}
    lines = "".join(
        f"      {key}: '{{{{ getEnv \"{var.get(key, 'LAKE_TOKEN')}\" }}}}'\n" for key in keys
    )
    _, problems = parse("    config:\n      bucket: lake\n" + lines, env=env)
    assert [(p.path, p.line) for p in problems] == [("sinks.lake.config", 11)]
    assert "go together" in problems[0].message
