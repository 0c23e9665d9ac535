"""What a collector file may reach (issue 16): file sinks under the roots of `signals.yaml`
`sinks.file.roots`, outbound hosts matching `egress.allow`.

Checked twice: statically when collectors are loaded (located problems), and again at run time
right before a file is opened or a connection is made (SinkError / SourceError). No driver is
imported here.
"""

import functools
import os
from collections.abc import Iterator, Sequence
from fnmatch import fnmatchcase
from pathlib import Path
from urllib.parse import urlsplit

from signals_dagster.errors import CollectorError, SinkError
from signals_dagster.settings import Settings, load_settings
from signals_dagster.spec.models import CollectorSpec
from signals_dagster.spec.sinks import FileSink, HttpSink, KafkaSink, S3Sink, Sink, SqlSink
from signals_dagster.spec.sources import LakeConfig, PrometheusConfig
from signals_dagster.spec.sql_sink import sql_sink_problem

Located = tuple[tuple[str | int, ...], str]
DATA_DIR_ENV = "SIGNALS_DATA_DIR"


# ---- file roots -------------------------------------------------------------------------------


def file_roots(settings: Settings | None = None) -> list[Path]:
    """The folders file sinks may write under, absolute: `sinks.file.roots`, by default the
    working directory and each folder of $SIGNALS_DATA_DIR (os.pathsep-separated)."""
    settings = settings or load_settings()
    roots = settings.sinks.file.roots
    if roots is None:
        extra = os.environ.get(DATA_DIR_ENV, "")
        roots = [".", *(part for part in extra.split(os.pathsep) if part)]
    return list(_absolute(tuple(roots), os.getcwd()))


@functools.lru_cache(maxsize=64)  # asked once per collector: thousands of times per load
def _absolute(roots: tuple[str, ...], cwd: str) -> tuple[Path, ...]:
    return tuple(Path(os.path.abspath(root)) for root in roots)


def _under(path: Path, roots: Sequence[Path]) -> bool:
    return any(path == root or path.is_relative_to(root) for root in roots)


def _roots_text(roots: Sequence[Path]) -> str:
    return ", ".join(str(root) for root in roots)


def static_path_problem(path: str, roots: Sequence[Path]) -> str | None:
    """Why a file sink path is refused on its text alone (None: it may be written)."""
    if ".." in Path(path).parts:
        return f"path {path!r} has a '..' segment (file sinks write under {_roots_text(roots)})"
    target = Path(os.path.abspath(path))
    if not _under(target, roots):
        return (
            f"path {str(target)!r} is outside the file sink roots ({_roots_text(roots)}; "
            "set sinks.file.roots in signals.yaml or $SIGNALS_DATA_DIR)"
        )
    return None


def confined_path(path: str, settings: Settings | None = None) -> Path:
    """The real path a file sink would write (nothing is created), or SinkError when it, its
    nearest existing ancestor or a symlink on the way lies outside the roots."""
    roots = file_roots(settings)
    why = static_path_problem(path, roots)
    if why is not None:
        raise SinkError(f"file sink: {why}", transient=False)
    target = Path(os.path.abspath(path))
    existing, missing = target, []
    while not os.path.lexists(existing) and existing != existing.parent:
        missing.append(existing.name)
        existing = existing.parent
    real = Path(os.path.realpath(existing)).joinpath(*reversed(missing))
    real_roots = [Path(os.path.realpath(root)) for root in roots]
    if not _under(real, real_roots):
        raise SinkError(
            f"file sink: {target} resolves to {real}, outside the file sink roots "
            f"({_roots_text(real_roots)}): a symlink leads out of them",
            transient=False,
        )
    return real


# ---- egress -----------------------------------------------------------------------------------


def _split_pattern(pattern: str) -> tuple[str, str | None]:
    if pattern.startswith("["):  # [v6 address]:port
        host, _, rest = pattern[1:].partition("]")
        return host.lower(), rest[1:] if rest.startswith(":") else None
    host, sep, port = pattern.rpartition(":")
    return (host.lower(), port) if sep and host else (pattern.lower(), None)


def host_allowed(host: str, port: int | None, allow: Sequence[str] | None) -> bool:
    """Whether host[:port] matches one of the glob patterns (no patterns: every host)."""
    if allow is None:
        return True
    host = host.lower().strip("[]")
    for pattern in allow:
        host_pattern, port_pattern = _split_pattern(pattern)
        if fnmatchcase(host, host_pattern) and (
            port_pattern is None or (port is not None and fnmatchcase(str(port), port_pattern))
        ):
            return True
    return False


def url_host(url: str) -> tuple[str, int | None]:
    """Host and port of an http(s) URL (the scheme's default port when absent)."""
    parts = urlsplit(url)
    default = {"http": 80, "https": 443}.get(parts.scheme)
    return parts.hostname or "", parts.port or default


def broker_host(broker: str) -> tuple[str, int | None]:
    """Host and port of a Kafka bootstrap server `host:port`."""
    host, _, port = broker.rpartition(":")
    return host.strip("[]"), int(port) if port.isdigit() else None


def egress_problem(host: str, port: int | None, allow: Sequence[str] | None) -> str | None:
    """Why a connection to host:port is refused (None: allowed)."""
    if host_allowed(host, port, allow):
        return None
    where = host if port is None else f"{host}:{port}"
    return f"host {where} is not allowed by egress.allow in signals.yaml ({', '.join(allow or [])})"


def check_egress(
    what: str,
    host: str,
    port: int | None,
    settings: Settings | None = None,
    error: type[CollectorError] = SinkError,
) -> None:
    """Run-time check right before connecting: `error` (SinkError) when host:port is refused."""
    settings = settings or load_settings()
    why = egress_problem(host, port, settings.egress.allow)
    if why is not None:
        raise error(f"{what}: {why}", transient=False)


# ---- static checks of one collector -----------------------------------------------------------


def located_sinks(spec: CollectorSpec) -> Iterator[tuple[tuple[str, ...], Sink]]:
    """Every sink a collector writes, with its path in the file: its sinks and the quarantine
    sink of `on_fail`."""
    for name, sink in spec.sinks.items():
        yield ("sinks", name), sink
    if spec.on_fail is not None:
        yield ("on_fail", "quarantine"), spec.on_fail.quarantine


def confinement_problems(spec: CollectorSpec, settings: Settings) -> Iterator[Located]:
    """Yield (path, message) for every sink path or outbound host the settings refuse."""
    allow = settings.egress.allow
    if isinstance(spec.source.config, PrometheusConfig):
        why = egress_problem(*url_host(spec.source.config.uri), allow)
        if why:
            yield ("source", "config", "uri"), why
    if isinstance(spec.source.config, LakeConfig) and spec.source.config.endpoint is not None:
        why = egress_problem(*url_host(spec.source.config.endpoint), allow)
        if why:
            yield ("source", "config", "endpoint"), why
    roots: list[Path] | None = None
    for at, sink in located_sinks(spec):
        where: tuple[str | int, ...] = (*at, "config")
        if isinstance(sink, FileSink):
            roots = roots if roots is not None else file_roots(settings)
            why = static_path_problem(sink.config.path, roots)
            if why:
                yield (*where, "path"), why
        elif isinstance(sink, HttpSink):
            why = egress_problem(*url_host(sink.config.uri), allow)
            if why:
                yield (*where, "uri"), why
        elif isinstance(sink, S3Sink) and sink.config.endpoint_url is not None:
            why = egress_problem(*url_host(sink.config.endpoint_url), allow)
            if why:
                yield (*where, "endpoint_url"), why
        elif isinstance(sink, KafkaSink):
            for index, broker in enumerate(sink.config.brokers):
                why = egress_problem(*broker_host(broker), allow)
                if why:
                    yield (*where, "brokers", index), why
        elif isinstance(sink, SqlSink) and (why := sql_sink_problem(sink.config, settings)):
            yield (*where, "uri"), why


def confinement_warnings(spec: CollectorSpec, settings: Settings) -> Iterator[Located]:
    """Yield (path, message) for what is allowed but risky: without egress.allow, an S3
    endpoint_url (a sink's, a lake source's endpoint) would receive requests signed with the
    deployment's AWS credential chain."""
    if settings.egress.allow is not None:
        return
    source = spec.source.config
    if isinstance(source, LakeConfig) and source.endpoint is not None:
        yield (
            ("source", "config", "endpoint"),
            f"endpoint {source.endpoint!r} receives requests signed with the deployment's AWS "
            "credential chain; name its host in egress.allow of signals.yaml",
        )
    for at, sink in located_sinks(spec):
        if (
            isinstance(sink, S3Sink)
            and sink.config.endpoint_url is not None
            and sink.config.aws_access_key_id is None
        ):
            yield (
                (*at, "config", "endpoint_url"),
                f"endpoint {sink.config.endpoint_url!r} receives requests signed with the "
                "deployment's AWS credential chain; name its host in egress.allow of "
                "signals.yaml, or give the sink its own aws_access_key_id",
            )
