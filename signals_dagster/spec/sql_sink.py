"""The SQL table sink's configuration (`type: sql`): records upserted by `uuid` into a table of
a Postgres, MySQL/MariaDB, SQLite or DuckDB database (signals_dagster/sinks/sql.py writes).

No driver is imported here: the URL is checked with the shared SQLAlchemy-grammar parser.
"""

from typing import TYPE_CHECKING, Literal

from pydantic import Field, field_validator

from signals_dagster.spec.base import Model
from signals_dagster.spec.fields import PositiveDuration
from signals_dagster.spec.uris import parse_sql_url

if TYPE_CHECKING:
    from signals_dagster.settings import Settings

# backend: the drivers the sink runs (empty: the bare scheme, which gets this project's driver).
SQL_SINK_DRIVERS: dict[str, tuple[str, ...]] = {
    "postgresql": ("", "psycopg"),
    "postgres": ("",),
    "mysql": ("", "pymysql"),
    "mariadb": ("", "pymysql"),
    "sqlite": ("", "pysqlite"),
    "duckdb": ("",),
}
FILE_BACKENDS = ("sqlite", "duckdb")
DEFAULT_PORTS = {"postgresql": 5432, "mysql": 3306, "mariadb": 3306}
# Lower case only: an unquoted name means the same table in every database (no case folding).
_NAME = r"[a-z_][a-z0-9_]{0,62}"


def check_sink_uri(value: str) -> str:
    """A database URL the sink can write: a supported backend and driver, the driver options
    the SQL sources accept (none for SQLite and DuckDB), a file for the file databases."""
    from signals_dagster.spec.sources import check_uri_options

    try:
        url = parse_sql_url(value)
    except ValueError:
        raise ValueError("uri is not a valid database URL (scheme://user@host:port/db)") from None
    backend, _, driver = value.split("://", 1)[0].lower().partition("+")
    if backend not in SQL_SINK_DRIVERS:
        raise ValueError(
            f"uri scheme {backend!r}: the sql sink writes to postgresql://, mysql://, "
            "mariadb://, sqlite:/// and duckdb:/// databases"
        )
    if driver not in SQL_SINK_DRIVERS[backend]:
        raise ValueError(
            f"uri driver {driver!r} is not supported for {backend} (write {backend}://: the "
            "sink uses psycopg 3, PyMySQL, sqlite3 or duckdb)"
        )
    check_uri_options(value, ())
    if backend in FILE_BACKENDS and url.database in (None, "", ":memory:"):
        raise ValueError(
            f"uri names no database file: an in-memory {backend} database forgets the records "
            f"when the run ends (write {backend}:///relative/path or {backend}:////absolute/path)"
        )
    return value


class SqlSinkConfig(Model):
    """Records upserted by uuid into a table: one transaction per run, re-runs overwrite."""

    uri: str = Field(
        description='SQLAlchemy URL of the database (a password only as {{ getEnv "VAR" }})',
        examples=[
            'postgresql://writer:{{ getEnv "PG_PASSWORD" }}@db:5432/metrics',
            "sqlite:///data/signals.db",
        ],
    )
    table: str = Field(
        pattern=rf"^{_NAME}(\.{_NAME})?$",
        description="The table, optionally schema-qualified (schema.table); lower case",
        examples=["signals", "analytics.signals"],
    )
    create_table: bool = Field(
        default=False,
        description="true: create the table (and a SQLite/DuckDB file) when missing; false: a "
        "missing table fails the run before the source is queried",
    )
    timeout: PositiveDuration = Field(  # type: ignore[assignment]
        default=60, description="Bound on connecting and on each statement of the write"
    )

    @field_validator("uri")
    @classmethod
    def _uri(cls, value: str) -> str:
        return check_sink_uri(value)

    @property
    def backend(self) -> str:
        """postgresql, mysql, mariadb, sqlite or duckdb."""
        backend = parse_sql_url(self.uri).backend.lower()
        return "postgresql" if backend == "postgres" else backend

    @property
    def database_file(self) -> str | None:
        """The database file of SQLite and DuckDB (None for a server)."""
        if self.backend not in FILE_BACKENDS:
            return None
        return parse_sql_url(self.uri).database

    @property
    def address(self) -> tuple[str, int | None]:
        """Host and port of a database server (the backend's default port when absent)."""
        url = parse_sql_url(self.uri)
        return url.host or "localhost", url.port or DEFAULT_PORTS.get(self.backend)

    @property
    def schema_name(self) -> str | None:
        """The schema (a MySQL database) of a qualified `table`; None: the connection's own."""
        return self.table.rpartition(".")[0] or None

    @property
    def table_name(self) -> str:
        """The table's name without its schema."""
        return self.table.rpartition(".")[2]


class SqlSink(Model):
    type: Literal["sql"]
    config: SqlSinkConfig


def sql_sink_problem(config: SqlSinkConfig, settings: "Settings") -> str | None:
    """Why signals.yaml refuses the sink (None: allowed): a database file outside the file sink
    roots, a server host not matched by egress.allow."""
    from signals_dagster.confine import egress_problem, file_roots, static_path_problem

    path = config.database_file
    if path is not None:
        why = static_path_problem(path, file_roots(settings))
        return None if why is None else f"database file: {why}"
    return egress_problem(*config.address, settings.egress.allow)
