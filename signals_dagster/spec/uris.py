"""URI checks shared by source and sink configs (no driver is imported)."""

from urllib.parse import urlsplit

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError


def check_sql_uri(value: str, schemes: tuple[str, ...]) -> str:
    """A SQLAlchemy URL whose backend is one of `schemes` (any backend when empty)."""
    try:
        url = make_url(value)
    except (ArgumentError, ValueError):
        raise ValueError("uri is not a valid database URL (scheme://user@host:port/db)") from None
    backend = url.get_backend_name()
    if schemes and backend not in schemes:
        raise ValueError(
            f"uri scheme {backend!r} does not match the source (expected {schemes[0]}://)"
        )
    return value


def check_mongo_uri(value: str) -> str:
    """A mongodb:// or mongodb+srv:// URI with a host."""
    parts = urlsplit(value)
    if parts.scheme not in ("mongodb", "mongodb+srv") or not parts.netloc.rsplit("@", 1)[-1]:
        raise ValueError("uri must be mongodb://host[:port]/... or mongodb+srv://...")
    return value


def check_http_uri(value: str) -> str:
    """An absolute http:// or https:// URL with a host."""
    parts = urlsplit(value)
    try:
        parts.port  # noqa: B018 — raises ValueError on a malformed port
    except ValueError:
        raise ValueError("uri has an invalid port") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("uri must be an absolute http:// or https:// URL")
    return value


def check_broker(value: str) -> str:
    """A Kafka bootstrap server as host:port."""
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"broker {value!r} must be host:port")
    return value
