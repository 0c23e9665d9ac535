"""URI checks shared by source and sink configs (no driver is imported)."""

import re
from dataclasses import dataclass
from urllib.parse import urlsplit

# SQLAlchemy's own URL grammar (sqlalchemy.engine.url._parse_url), so that loading collectors
# needs no SQLAlchemy import (0.2-0.3 s, a fifth of `signals validate`'s time); a test checks
# that it accepts, rejects and splits URLs exactly as make_url does.
_SQL_URL = re.compile(
    r"""
        (?P<name>[\w\+]+)://
        (?:
            (?P<username>[^:/]*)
            (?::(?P<password>[^@]*))?
        @)?
        (?:
            (?:
                \[(?P<ipv6host>[^/\?]+)\] |
                (?P<ipv4host>[^/:\?]+)
            )?
            (?::(?P<port>[^/\?]*))?
        )?
        (?:/(?P<database>[^\?]*))?
        (?:\?(?P<query>.*))?
    """,
    re.X,
)


@dataclass(frozen=True)
class SqlUrl:
    """The parts of a SQLAlchemy URL that validation and pool names use, as make_url gives
    them (`backend` is `get_backend_name()`: `postgresql+psycopg` → postgresql)."""

    backend: str
    host: str | None
    port: int | None
    database: str | None


def parse_sql_url(value: str) -> SqlUrl:
    """Split a SQLAlchemy URL as make_url does; ValueError when make_url would refuse it."""
    match = _SQL_URL.match(value)
    if match is None:
        raise ValueError(f"not a database URL: {value!r}")
    port = match["port"]
    return SqlUrl(
        backend=match["name"].split("+")[0],
        host=match["ipv4host"] or match["ipv6host"],
        port=None if port is None else int(port),  # as make_url: ValueError for 'abc' or ''
        database=match["database"],
    )


# Drivers the sources run for a backend (psycopg 3 only: the Postgres path streams with its
# cursor API, which psycopg2 lacks). Other backends take any driver SQLAlchemy has.
_SQL_DRIVERS = {"postgresql": ("", "psycopg"), "postgres": ("",)}


def check_sql_uri(value: str, schemes: tuple[str, ...]) -> str:
    """A SQLAlchemy URL whose backend is one of `schemes` (any backend when empty) and whose
    driver, if named, is one the sources run."""
    try:
        backend = parse_sql_url(value).backend
    except ValueError:
        raise ValueError("uri is not a valid database URL (scheme://user@host:port/db)") from None
    if schemes and backend not in schemes:
        raise ValueError(
            f"uri scheme {backend!r} does not match the source (expected {schemes[0]}://)"
        )
    driver = value.split("://", 1)[0].partition("+")[2]
    if backend in _SQL_DRIVERS and driver not in _SQL_DRIVERS[backend]:
        raise ValueError(
            f"uri driver {driver!r} is not supported for {backend} "
            "(use postgresql:// or postgresql+psycopg://, psycopg 3)"
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
