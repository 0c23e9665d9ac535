"""Keep secrets out of logs and metadata: passwords in URIs, credentials in query strings and
libpq keyword strings, and every secret value the loader expanded into a credential field."""

import re
from urllib.parse import quote

_USERINFO = re.compile(
    r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<user>[^:@/\s]*):(?P<pw>[^@\s]*)@"
)
_SECRET_PARAMS = re.compile(
    r"(?i)(?P<k>[?&;](?:password|passwd|pwd|secret|token|access_key|secret_key|api_key|apikey|"
    r"sslpassword|aws_secret_access_key)=)(?P<v>[^&;\s'\"]*)"
)
# libpq keyword/value form: `host=db password=hunter2` or `password='a b\'c'`.
_KEYWORD = re.compile(
    r"(?i)(?P<k>(?<![\w-])(?:password|passwd|pwd|sslpassword)\s*=\s*)"
    r"(?P<v>'(?:[^'\\]|\\.)*'?|[^\s'\"&;]+)"
)
# Every key of _SECRET_PARAMS and _KEYWORD contains one of these.
_SECRET_WORDS = ("pass", "pwd", "secret", "token", "key")
MASK = "***"
MIN_SECRET_LENGTH = 4  # shorter values would mask ordinary text everywhere

_registered: set[str] = set()


def register_secret(value: str) -> None:
    """Mask `value` (and its URL-encoded form) in every later redact() of this process."""
    if len(value) >= MIN_SECRET_LENGTH:
        _registered.add(value)
        encoded = quote(value, safe="")
        if encoded != value:
            _registered.add(encoded)


def registered_secrets() -> frozenset[str]:
    """The secret values registered so far (for tests)."""
    return frozenset(_registered)


def _mask_values(text: str, secrets: set[str] | list[str]) -> str:
    for secret in sorted(secrets, key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, MASK)
    return text


def redact(text: str) -> str:
    """Replace registered secrets, passwords in URIs (user:pw@), secret query parameters and
    libpq `password=` keywords with ***."""
    if _registered:
        text = _mask_values(text, _registered)
    # Each pattern needs what is tested before it (most texts need none of the three passes).
    if "@" in text and "://" in text:
        text = _USERINFO.sub(lambda m: f"{m['scheme']}{m['user']}:{MASK}@", text)
    if "=" in text and _has_secret_word(text):
        text = _SECRET_PARAMS.sub(lambda m: f"{m['k']}{MASK}", text)
        text = _KEYWORD.sub(lambda m: f"{m['k']}{MASK}", text)
    return text


def _has_secret_word(text: str) -> bool:
    lowered = text.lower()  # once, not once per word
    return any(word in lowered for word in _SECRET_WORDS)


def redact_secrets(text: str, secrets: list[str]) -> str:
    """Redact URIs and also every literal secret given (e.g. a password found in a config)."""
    text = _mask_values(text, [s for s in secrets if s and len(s) >= 3])
    return redact(text)
