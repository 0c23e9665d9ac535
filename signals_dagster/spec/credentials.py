"""Credentials never stand in a collector file as plain text: only `{{ getEnv "VAR" }}` is allowed.

Templating runs before parsing, so the check reads the file text as written, at the key's line.
"""

import re
from collections.abc import Iterator

from signals_dagster.spec.models import CollectorSpec
from signals_dagster.spec.sinks import S3Sink
from signals_dagster.spec.yamlpos import Positions

Located = tuple[tuple[str | int, ...], str]

S3_CREDENTIAL_KEYS = ("aws_access_key_id", "aws_secret_access_key", "aws_session_token")


def _env_only(key: str) -> re.Pattern[str]:
    # `key: {{ getEnv "VAR" }}`, optionally quoted, then the end of the value (block or flow style).
    return re.compile(
        rf"(?:^|[\s{{,]){key}\s*:\s*(?P<q>[\"']?)\{{\{{-?\s*getEnv\s+\"[A-Za-z_][A-Za-z0-9_]*\""
        r"\s*-?\}\}(?P=q)\s*(?:$|#|,|\})"
    )


_PATTERNS = {key: _env_only(key) for key in S3_CREDENTIAL_KEYS}


def literal_credentials(text: str, spec: CollectorSpec, pos: Positions) -> Iterator[Located]:
    """Yield (path, message) for each credential not written as a getEnv template."""
    lines = text.splitlines()
    for name, sink in spec.sinks.items():
        if not isinstance(sink, S3Sink):
            continue
        for key in S3_CREDENTIAL_KEYS:
            if getattr(sink.config, key) is None:
                continue
            path = ("sinks", name, "config", key)
            line = pos.line_for(path)
            raw = lines[line - 1] if 0 < line <= len(lines) else ""
            if not _PATTERNS[key].search(raw):
                yield (
                    path,
                    f"{key} must not be written in the file: give it as "
                    f"'{{{{ getEnv \"VAR\" }}}}' (no default), or leave it out and let the AWS "
                    "credential chain find it (env vars, profile, instance role)",
                )
