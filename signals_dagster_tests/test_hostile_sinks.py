"""Hostile collector files: a collector may write only its sinks (issue 16, "sinks confined").

Each file under data/hostile/ is one attack. Those with `# expect:` lines are refused at
validation, located exactly (as in test_malformed.py), under the settings of their optional
`# egress: PATTERN, ...` line; the others are stopped at run time, before any effect — and the
tests check that the effect did not happen: no file outside the roots, no library loaded, no
request sent.
"""

import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest

from signals_dagster.confine import confined_path, host_allowed
from signals_dagster.errors import Problem, SinkError, SourceError, SpecError
from signals_dagster.sinks.file import FileWriter
from signals_dagster.sinks.http import HttpWriter
from signals_dagster.sinks.preflight import check_sinks
from signals_dagster.spec.loader import load_collectors, load_file
from signals_dagster.spec.sinks import HttpConfig, KafkaConfig, S3Config
from signals_dagster_tests.servers.http import Answer, RecordingServer
from signals_dagster_tests.test_malformed import expectations, mismatch

HOSTILE = Path(__file__).parent / "data" / "hostile"
CORPUS = sorted(HOSTILE.glob("sinks_*.yaml"))
STATIC = [p for p in CORPUS if expectations(p)]
ROOT = Path(__file__).parents[1]
WriteFile = Callable[[str], Path]
WriteCollector = Callable[..., Path]


def egress_of(path: Path) -> list[str] | None:
    """The egress.allow patterns a corpus file is validated under (None: no egress section)."""
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("# egress:"):
            return [p.strip() for p in line.removeprefix("# egress:").split(",")]
    return None


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> WriteFile:
    """Write signals.yaml (dedented text) and point $SIGNALS_SETTINGS at it."""

    def write(text: str) -> Path:
        path = tmp_path / "signals.yaml"
        path.write_text(textwrap.dedent(text), encoding="utf-8")
        monkeypatch.setenv("SIGNALS_SETTINGS", str(path))
        return path

    return write


def egress(settings: WriteFile, *patterns: str) -> None:
    settings("egress:\n  allow: [" + ", ".join(repr(p) for p in patterns) + "]\n")


def test_corpus_has_one_file_per_attack() -> None:
    names = {p.stem for p in CORPUS}
    for attack in ("plugin_library", "ssl_engine", "kinit_cmd", "file_outside_root"):
        assert any(attack in name for name in names), attack
    assert len(CORPUS) >= 9


@pytest.mark.parametrize("path", STATIC, ids=lambda p: p.stem)
def test_hostile_file_is_refused_located(path: Path, settings: WriteFile) -> None:
    patterns = egress_of(path)
    if patterns is not None:
        egress(settings, *patterns)
    with pytest.raises(SpecError) as info:
        load_collectors([path])
    reported = [(p.line, p.path, p.message) for p in info.value.problems]
    differences = mismatch(expectations(path), reported)
    assert not differences, f"{path.name}:\n{differences}"


# ---- Kafka: nothing that loads code or runs commands ------------------------------------------


@pytest.mark.parametrize(
    "key",
    ["plugin.library.paths", "ssl.engine.location", "sasl.kerberos.kinit.cmd", "ssl.providers"],
)
def test_kafka_setting_refused_before_any_producer_exists(key: str, tmp_path: Path) -> None:
    """A config that skipped validation still never reaches librdkafka: had it, a dlopen() of
    this non-library would fail inside Producer() with a KafkaException, not our SinkError."""
    from signals_dagster.sinks.kafka import make_admin, make_producer

    library = tmp_path / "evil.so"
    library.write_bytes(b"not a shared library")
    config = KafkaConfig.model_construct(
        brokers=["127.0.0.1:9"],
        topic="signals",
        allow_auto_topic_creation=False,
        compression="zstd",
        producer={key: str(library)},
        timeout=timedelta(seconds=5),
    )
    for make in (make_producer, make_admin):
        with pytest.raises(SinkError, match=f"producer setting\\(s\\) \\['{key}'\\] not allowed"):
            make(config)


def test_kafka_allowed_settings_still_validate(write_collector: WriteCollector) -> None:
    path = write_collector(
        HOSTILE.joinpath("sinks_kafka_plugin_library.yaml")
        .read_text()
        .replace("plugin.library.paths: /tmp/signals-hostile/evil.so", "linger.ms: 5")
        + "        security.protocol: SASL_SSL\n        sasl.mechanism: PLAIN\n"
        "        ssl.ca.location: /etc/ssl/certs/ca.pem\n        partitioner: murmur2_random\n"
    )
    config = load_file(path).sinks["kafka"].config
    assert isinstance(config, KafkaConfig)
    assert config.producer["linger.ms"] == 5


def test_kafka_broker_refused_at_run_time(settings: WriteFile) -> None:
    from signals_dagster.sinks.kafka import make_producer

    egress(settings, "kafka-*.example.com:9092")
    config = KafkaConfig(brokers=["127.0.0.1:9092"], topic="signals")
    with pytest.raises(SinkError, match=r"broker 127.0.0.1:9092: host 127.0.0.1:9092 is not allow"):
        make_producer(config)


# ---- file sinks: under the roots only ---------------------------------------------------------


@pytest.fixture
def only_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The file sink roots are the working directory and tmp_path/root (not tmp_path)."""
    root = tmp_path / "root"
    root.mkdir()
    monkeypatch.setenv("SIGNALS_DATA_DIR", str(root))
    return root


def test_file_outside_root_is_never_created(tmp_path: Path, only_root: Path) -> None:
    target = tmp_path / "outside" / "deep" / "audit.jsonl"
    with pytest.raises(SinkError, match="outside the file sink roots"):
        FileWriter(str(target))
    assert not (tmp_path / "outside").exists()  # no parent was made either


def test_file_dotdot_out_of_root_refused(only_root: Path, tmp_path: Path) -> None:
    with pytest.raises(SinkError, match=r"'\.\.' segment"):
        FileWriter(str(only_root / "a" / ".." / ".." / "escape.jsonl"))
    assert not (tmp_path / "escape.jsonl").exists()


def test_file_symlink_out_of_root_refused_before_the_source(
    tmp_path: Path, only_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (only_root / "link").symlink_to(outside)
    monkeypatch.setenv("HOSTILE_ROOT", str(only_root))
    spec = load_file(HOSTILE / "sinks_file_symlink.yaml")  # inside the root on its text
    with pytest.raises(SinkError, match="a symlink leads out of them"):
        check_sinks(spec)  # the preflight, before any query
    assert list(outside.iterdir()) == []


def test_file_symlink_appearing_after_the_preflight_refused(
    tmp_path: Path, only_root: Path
) -> None:
    """The check runs again right before the write: a folder swapped for a symlink is caught."""
    outside = tmp_path / "outside"
    outside.mkdir()
    writer = FileWriter(str(only_root / "logs" / "audit.jsonl"))  # logs/ does not exist yet
    (only_root / "logs").symlink_to(outside)
    with (
        pytest.raises(SinkError, match="a symlink leads out of them"),
        writer.appending() as append,
    ):
        append(b"{}\n")
    assert list(outside.iterdir()) == []


def test_file_inside_root_and_symlink_within_root_allowed(only_root: Path) -> None:
    (only_root / "real").mkdir()
    (only_root / "alias").symlink_to(only_root / "real")
    assert (
        confined_path(str(only_root / "alias" / "a.jsonl"))
        == (only_root / "real" / "a.jsonl").resolve()
    )
    with FileWriter(str(only_root / "alias" / "a.jsonl")).appending() as append:
        append(b"{}\n")
    assert (only_root / "real" / "a.jsonl").read_bytes() == b"{}\n"


def test_file_roots_from_settings(
    tmp_path: Path, settings: WriteFile, write_collector: WriteCollector
) -> None:
    settings(f"sinks:\n  file:\n    roots: ['{tmp_path / 'lake'}']\n")
    inside = f"""
        name: roots.ok
        metric: {{name: test.roots, type: COUNT}}
        source: {{type: postgres, config: {{uri: 'postgresql://a@h/db', sql: 'SELECT 1 AS value'}}}}
        sinks:
          audit: {{type: file, config: {{path: '{tmp_path / "lake" / "a.jsonl"}'}}}}
    """
    load_file(write_collector(inside))
    outside = inside.replace(str(tmp_path / "lake"), str(tmp_path / "elsewhere"))
    with pytest.raises(SpecError) as info:
        load_file(write_collector(outside, "outside.yaml"))
    (problem,) = info.value.problems
    assert (problem.line, problem.path) == (5, "sinks.audit.config.path")


# ---- egress: HTTP, S3, Prometheus -------------------------------------------------------------


def test_http_sink_refused_sends_nothing(http_server: RecordingServer, settings: WriteFile) -> None:
    egress(settings, "ingest.example.com")
    with pytest.raises(SinkError, match=r"host 127.0.0.1:\d+ is not allowed by egress.allow"):
        HttpWriter(HttpConfig(uri=http_server.url()))
    assert http_server.requests == []


def test_http_sink_allowed_by_pattern_with_port(
    http_server: RecordingServer, settings: WriteFile
) -> None:
    egress(settings, f"127.0.0.*:{http_server.port}")
    writer = HttpWriter(HttpConfig(uri=http_server.url()))
    writer._post(b"[]", "batch 1/1")
    assert len(http_server.requests) == 1


def test_http_redirect_is_not_followed(http_server: RecordingServer) -> None:
    http_server.script(Answer(307, {"Location": "http://attacker.example.net/x"}))
    writer = HttpWriter(HttpConfig(uri=http_server.url(), retries=0))
    with pytest.raises(SinkError, match="redirects are not followed"):
        writer._post(b"[]", "batch 1/1")
    assert len(http_server.requests) == 1


def test_s3_endpoint_refused_before_any_request(
    http_server: RecordingServer, settings: WriteFile
) -> None:
    from signals_dagster.sinks.s3 import check_bucket

    egress(settings, "s3.*.amazonaws.com")
    config = S3Config(bucket="signals-lake", endpoint_url=http_server.url(""), region="us-east-1")
    with pytest.raises(SinkError, match=r"s3 sink: endpoint .* is not allowed by egress\.allow"):
        check_bucket(config)
    assert http_server.requests == []  # no signed HeadBucket reached it


def test_s3_custom_endpoint_without_egress_is_a_warning(tmp_path: Path) -> None:
    path = tmp_path / "lake.yaml"
    text = (HOSTILE / "sinks_s3_endpoint_egress.yaml").read_text()
    path.write_text(text)
    warnings: list[Problem] = []
    load_collectors([path], warnings=warnings)
    assert [(w.line, w.path) for w in warnings] == [(18, "sinks.lake.config.endpoint_url")]
    out = subprocess.run(
        [sys.executable, "-m", "signals_dagster.cli", "validate", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        env={k: v for k, v in os.environ.items() if k != "SIGNALS_SETTINGS"},
    )
    assert out.returncode == 0, out.stderr
    assert f"warning: {path}:18: sinks.lake.config.endpoint_url: endpoint " in out.stderr
    assert "signed with the deployment's AWS credential chain" in out.stderr
    assert out.stdout.startswith("ok: 1 collector(s) valid")


def test_prometheus_source_refused(settings: WriteFile, write_collector: WriteCollector) -> None:
    egress(settings, "prometheus.internal:9090")
    path = write_collector("""
        name: prom.egress
        metric: {name: test.prom, type: GAUGE}
        source:
          type: prometheus
          config:
            uri: http://attacker.example.net:9090
            query: up
        sinks: {out: {type: console}}
    """)
    with pytest.raises(SpecError) as info:
        load_file(path)
    (problem,) = info.value.problems
    assert (problem.line, problem.path) == (6, "source.config.uri")
    assert "attacker.example.net:9090 is not allowed" in problem.message


@pytest.mark.parametrize(
    ("host", "port", "patterns", "allowed"),
    [
        ("ingest.example.com", 443, None, True),
        ("ingest.example.com", 443, [], False),
        ("ingest.example.com", 443, ["ingest.example.com"], True),
        ("INGEST.example.com", 443, ["ingest.example.com:443"], True),
        ("ingest.example.com", 80, ["ingest.example.com:443"], False),
        ("a.b.internal", 9092, ["*.internal:90*"], True),
        ("internal.evil.net", 9092, ["*.internal"], False),
        ("::1", 9092, ["[::1]:9092"], True),
        ("10.0.0.7", 9000, ["10.0.0.*"], True),
    ],
)
def test_host_patterns(host: str, port: int, patterns: list[str] | None, allowed: bool) -> None:
    assert host_allowed(host, port, patterns) is allowed


def test_runtime_source_error_type() -> None:
    from signals_dagster.confine import check_egress
    from signals_dagster.settings import Settings

    settings = Settings.model_validate({"egress": {"allow": ["prometheus.internal"]}})
    with pytest.raises(SourceError, match="not allowed"):
        check_egress("prometheus", "attacker.example.net", 9090, settings, error=SourceError)


def test_alert_refused_sends_nothing(http_server: RecordingServer, settings: WriteFile) -> None:
    from signals_dagster.orchestration.sensors import post_alert

    egress(settings, "alerts.example.com")
    with pytest.raises(SinkError, match=r"alert: host 127\.0\.0\.1:\d+ is not allowed"):
        post_alert({"run": "x"}, http_server.url("/alert"), {}, timedelta(seconds=5))
    assert http_server.requests == []
