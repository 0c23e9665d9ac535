"""Credential fields of a collector file: the only fields secrets reach, never written literally.

A credential field is a URI's password part (every source and sink URI), a Kafka producer password,
an HTTP sink header value, or an S3 key. A secret-looking environment variable (settings
`templating.secret_env`) may be expanded only there; and there (header values: the
Authorization-like ones) a value must come from `{{ getEnv "VAR" }}`, never stand in the file.
The checks read the parsed file with its template actions still as placeholders.
"""

import re
from collections.abc import Iterator
from typing import Any, Literal

from signals_dagster.spec.templating import PLACEHOLDER, Action

Located = tuple[tuple[str | int, ...], str]
Kind = Literal["uri", "secret"]

S3_CREDENTIAL_KEYS = ("aws_access_key_id", "aws_secret_access_key", "aws_session_token")
KAFKA_SECRET_KEYS = (
    "sasl.password",
    "ssl.key.password",
    "ssl.keystore.password",
    "sasl.oauthbearer.client.secret",
)
_AUTH_HEADER = re.compile(
    r"(?i)^(?:(?:proxy-)?authorization|cookie|api-?key|x-api-key|.*-token|.*-key|.*secret.*)$"
)
_AUTH_SCHEME = re.compile(r"^\s*(?:[A-Za-z][A-Za-z0-9-]*\s+)?$")  # "Bearer " before the secret
# scheme://user:password@ — on the text with placeholders (an action has no ':', '@' or '/').
_USERINFO = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://[^:@/?#]*:(?P<pw>[^@/?#]*)@")
_SECRET_PARAM = re.compile(
    r"(?i)[?&;](?P<k>password|passwd|pwd|sslpassword|secret|token|api_?key|access_key|"
    r"secret_key|aws_secret_access_key)=(?P<v>[^&;#]*)"
)
_GIVE_ENV = "give it as '{{ getEnv \"VAR\" }}'"


def field_kind(data: object, path: tuple[str | int, ...]) -> Kind | None:
    """'uri' for a URI field (its password part), 'secret' for a whole credential value."""
    if path == ("source", "config", "uri"):
        return "uri"
    if len(path) < 4 or path[0] != "sinks" or path[2] != "config":
        return None
    sinks = data.get("sinks") if isinstance(data, dict) else None
    sink = sinks.get(path[1]) if isinstance(sinks, dict) else None
    kind = sink.get("type") if isinstance(sink, dict) else None
    rest = path[3:]
    if rest == ("uri",) and kind in ("http", "sql"):
        return "uri"
    if len(rest) == 2 and rest[0] == "headers" and kind == "http":
        return "secret"
    if (
        len(rest) == 2
        and rest[0] == "producer"
        and rest[1] in KAFKA_SECRET_KEYS
        and kind == "kafka"
    ):
        return "secret"
    if len(rest) == 1 and rest[0] in S3_CREDENTIAL_KEYS and kind == "s3":
        return "secret"
    return None


def _indices(text: str) -> set[int]:
    return {int(m[1]) for m in PLACEHOLDER.finditer(text)}


def _secret_spans(raw: str) -> list[str]:
    """The parts of a URI template that are credentials: its password and secret parameters."""
    parts = []
    match = _USERINFO.match(raw)
    if match:
        parts.append(match["pw"])
    parts += [m["v"] for m in _SECRET_PARAM.finditer(raw)]
    return parts


def credential_actions(kind: Kind | None, raw: str) -> set[int]:
    """Indices of the placeholders of `raw` that stand in a credential position."""
    if kind == "secret":
        return _indices(raw)
    if kind == "uri":
        return {i for part in _secret_spans(raw) for i in _indices(part)}
    return set()


def _env_only(raw: str, actions: list[Action]) -> bool:
    """One `{{ getEnv "VAR" }}` action and blanks: no literal, no default."""
    found = _indices(raw)
    rest = PLACEHOLDER.sub("", raw)
    return len(found) == 1 and not rest.strip() and actions[found.pop()].function == "getEnv"


def _uri_problems(raw: str, actions: list[Action]) -> Iterator[str]:
    for part in _secret_spans(raw):
        if part and not _env_only(part, actions):
            yield (
                "a password written in the URI (anyone who reads the file reads it): give it "
                'as scheme://user:{{ getEnv "VAR" }}@host/... (no default)'
            )
            return


def literal_uri_passwords(data: object, actions: list[Action]) -> Iterator[Located]:
    """Yield (path, message) for each source/sink URI whose password stands in the file.

    A warning, not an error: signals-collector's own examples (`postgresql://test:test@...`)
    write one, and they must keep validating unchanged."""
    if not isinstance(data, dict):
        return
    source = data.get("source")
    config = source.get("config") if isinstance(source, dict) else None
    if isinstance(config, dict) and isinstance(config.get("uri"), str):
        for message in _uri_problems(config["uri"], actions):
            yield ("source", "config", "uri"), message
    sinks = data.get("sinks")
    for name, sink in sinks.items() if isinstance(sinks, dict) else ():
        config = sink.get("config") if isinstance(sink, dict) else None
        if isinstance(config, dict) and sink.get("type") in ("http", "sql"):
            for message in _uri_problems(str(config.get("uri", "")), actions):
                yield ("sinks", name, "config", "uri"), message


def literal_credentials(data: object, actions: list[Action]) -> Iterator[Located]:
    """Yield (path, message) for each credential written in the file rather than read by getEnv:
    Kafka producer passwords, Authorization-like HTTP headers, S3 keys (errors)."""
    if not isinstance(data, dict):
        return
    sinks = data.get("sinks")
    for name, sink in sinks.items() if isinstance(sinks, dict) else ():
        config = sink.get("config") if isinstance(sink, dict) else None
        if isinstance(config, dict):
            yield from _sink_literals(name, sink.get("type"), config, actions)


def _sink_literals(
    name: str, kind: object, config: dict[str, Any], actions: list[Action]
) -> Iterator[Located]:
    base = ("sinks", name, "config")
    headers = config.get("headers") if kind == "http" else None
    for header, value in headers.items() if isinstance(headers, dict) else ():
        if not _AUTH_HEADER.match(str(header)):
            continue
        text = value if isinstance(value, str) else ""
        scheme_only = _AUTH_SCHEME.match(PLACEHOLDER.sub("", text))
        found = _indices(text)
        env_only = len(found) == 1 and actions[found.pop()].function == "getEnv"
        if not (scheme_only and env_only):
            yield (
                (*base, "headers", header),
                f"header {header} must not be written in the file: {_GIVE_ENV} (no default; "
                "an auth scheme may come first: 'Bearer {{ getEnv \"VAR\" }}')",
            )
    producer = config.get("producer") if kind == "kafka" else None
    for key, value in producer.items() if isinstance(producer, dict) else ():
        if key in KAFKA_SECRET_KEYS and not (isinstance(value, str) and _env_only(value, actions)):
            yield (*base, "producer", key), f"{key} must not be written in the file: {_GIVE_ENV}"
    for key in S3_CREDENTIAL_KEYS if kind == "s3" else ():
        value = config.get(key)
        if value is not None and not (isinstance(value, str) and _env_only(value, actions)):
            yield (
                (*base, key),
                f"{key} must not be written in the file: {_GIVE_ENV} (no default), or leave it "
                "out and let the AWS credential chain find it (env vars, profile, instance role)",
            )
