"""Keep secrets out of logs and metadata: passwords in URIs, credentials in query strings."""

import re

_USERINFO = re.compile(
    r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<user>[^:@/\s]*):(?P<pw>[^@\s]*)@"
)
_SECRET_PARAMS = re.compile(
    r"(?i)(?P<k>[?&;](?:password|passwd|pwd|secret|token|access_key|secret_key|api_key|apikey|"
    r"sslpassword|aws_secret_access_key)=)(?P<v>[^&;\s'\"]*)"
)
MASK = "***"


def redact(text: str) -> str:
    """Replace passwords in URIs (user:pw@) and secret query parameters with ***."""
    text = _USERINFO.sub(lambda m: f"{m['scheme']}{m['user']}:{MASK}@", text)
    return _SECRET_PARAMS.sub(lambda m: f"{m['k']}{MASK}", text)


def redact_secrets(text: str, secrets: list[str]) -> str:
    """Redact URIs and also every literal secret given (e.g. a password found in a config)."""
    for secret in sorted((s for s in secrets if s and len(s) >= 3), key=len, reverse=True):
        text = text.replace(secret, MASK)
    return redact(text)
