"""Second validation phase: checks across fields and across files."""

from collections.abc import Iterator, Sequence
from datetime import timedelta

from signals_dagster.spec.fields import MONTH, format_duration, grain_timedelta
from signals_dagster.spec.models import CollectorSpec
from signals_dagster.spec.quality import check_names_problems
from signals_dagster.spec.sources import GenericSqlConfig, SqlConfig, unguarded_dialect
from signals_dagster.spec.sqltext import WINDOW_PARAMS, bind_params, output_aliases

Located = tuple[tuple[str | int, ...], str]


def check_spec(spec: CollectorSpec) -> Iterator[Located]:
    """Yield (path, message) for each cross-field problem of one collector."""
    from signals_dagster.partitioning import partitioning

    for index, message in check_names_problems(spec.checks, set()):
        yield (("checks", index, "name"), message)
    if spec.freshness is not None and partitioning(spec) is None:
        yield (
            ("freshness",),
            "freshness watches partitions: a collector with a sub-hour grain has none",
        )
    grain = spec.metric.grain
    schedule = spec.schedule
    if schedule is not None and schedule.interval is not None:
        delta = grain_timedelta(grain)
        if grain == MONTH or schedule.interval != delta:
            yield (
                ("schedule", "interval"),
                f"interval {format_duration(schedule.interval)} must equal "
                f"the metric grain {grain}",
            )
    delta = grain_timedelta(grain)
    if delta is not None and spec.partitions.lag >= delta:
        yield (("partitions", "lag"), f"lag must be shorter than the grain {grain}")
    if spec.partitions.lag.total_seconds() % 60:
        yield (("partitions", "lag"), "lag must be a whole number of minutes")
    if spec.late_data is not None:
        if delta is not None and delta < timedelta(hours=1):
            yield (
                ("late_data",),
                f"late data is re-collected per partition; grain {grain} is "
                "not partitioned (sub-hour)",
            )
        if not isinstance(spec.source.config, SqlConfig):
            yield (("late_data", "fingerprint_sql"), "fingerprints are SQL: use a SQL source")
        else:
            unknown = sorted(bind_params(spec.late_data.fingerprint_sql) - set(WINDOW_PARAMS))
            if unknown:
                yield (
                    ("late_data", "fingerprint_sql"),
                    f"unknown bind parameter :{unknown[0]} (only :window_start and :window_end)",
                )
    if isinstance(spec.source.config, SqlConfig):
        sql = spec.source.config.sql
        unknown = sorted(bind_params(sql) - set(WINDOW_PARAMS))
        if unknown:
            yield (
                ("source", "config", "sql"),
                f"unknown bind parameter :{unknown[0]} (only :window_start and :window_end exist)",
            )
        aliases = output_aliases(sql)
        for key in sorted(k for k in spec.metric.static_tags if k.lower() in aliases):
            yield (("metric", "tags"), f"static tag {key!r} clashes with the query column {key!r}")


def check_guarded(spec: CollectorSpec, allow_unguarded: Sequence[str]) -> Iterator[Located]:
    """A `type: sql` URL whose dialect gets no read-only session, unless signals.yaml allows it
    (`sources.allow_unguarded` names the backend, e.g. `mssql`, or `backend+driver`)."""
    config = spec.source.config
    if not isinstance(config, GenericSqlConfig):
        return
    dialect = unguarded_dialect(config.uri)
    if dialect is None or {dialect, dialect.partition("+")[0]} & set(allow_unguarded):
        return
    yield (
        ("source", "config", "uri"),
        f"dialect {dialect!r} cannot be made read-only with a statement timeout (guarded: "
        "postgresql, mysql, mariadb, sqlite, duckdb); to run it anyway, list it in signals.yaml "
        "sources.allow_unguarded",
    )
