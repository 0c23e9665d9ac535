"""Second validation phase: checks across fields and across files."""

from collections.abc import Iterator, Sequence
from datetime import timedelta

from signals_dagster.spec.fields import MONTH, format_duration, grain_timedelta
from signals_dagster.spec.models import CollectorSpec
from signals_dagster.spec.quality import check_names_problems
from signals_dagster.spec.sinks import check_partition_template
from signals_dagster.spec.sources import (
    GenericSqlConfig,
    MongoConfig,
    PrometheusConfig,
    SqlConfig,
    unguarded_dialect,
)
from signals_dagster.spec.sqltext import WINDOW_PARAMS, bind_params, output_aliases
from signals_dagster.spec.templating import PARTITION_FIELD, window_fields

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
    tumbling = spec.invocation_strategy == "historic_tumbling_window"
    if schedule is not None and schedule.interval is not None:
        delta = grain_timedelta(grain)
        if tumbling:
            # latte looked for a closed window every interval; here each window is collected
            # once when it closes, so the interval only has to be short enough not to skip one.
            if schedule.interval > (delta or timedelta(days=28)):
                yield (
                    ("schedule", "interval"),
                    f"interval {format_duration(schedule.interval)} must not exceed the metric "
                    f"grain {grain} (historic_tumbling_window collects every closed window)",
                )
        elif grain == MONTH or schedule.interval != delta:
            yield (
                ("schedule", "interval"),
                f"interval {format_duration(schedule.interval)} must equal "
                f"the metric grain {grain}",
            )
    yield from _strategy_problems(spec)
    yield from _lake_problems(spec)
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


def _query_path(spec: CollectorSpec) -> tuple[str, ...]:
    config = spec.source.config
    for key in ("sql", "agg", "query"):
        if hasattr(config, key):
            return ("source", "config", key)
    return ("source", "type")


def _strategy_problems(spec: CollectorSpec) -> Iterator[Located]:
    """latte's invocation_strategy: incremental is refused; historic_tumbling_window needs a
    collector windowed over the grain."""
    from signals_dagster.sources.base import query_shape

    strategy = spec.invocation_strategy
    where = ("collector", "invocation_strategy")
    if strategy == "incremental":
        yield (
            where,
            "invocation_strategy incremental is not supported (latte never ran it either): use "
            "historic_tumbling_window for a collector windowed over the grain (each closed "
            "window collected once, backfills too) or tick; add late_data to re-collect windows "
            "whose data changed after they were collected",
        )
        return
    if strategy != "historic_tumbling_window":
        return
    config = spec.source.config
    if isinstance(config, PrometheusConfig):
        window = config.time.window if config.time else None
        delta = grain_timedelta(spec.metric.grain)
        if window is not None and window != delta:
            yield (
                ("source", "config", "time", "window"),
                f"time.window {format_duration(window)} must equal the metric grain "
                f"{spec.metric.grain}: historic_tumbling_window collects windows of the grain",
            )
        return  # evaluated at each window's end: windowed by its range
    kind = query_shape(spec).kind
    if kind == "windowed":
        return
    uses = {"snapshot": "neither", "as-of": "only :window_end"}.get(kind, kind)
    how = (
        "time_field, or $$window_start and $$window_end"
        if isinstance(config, MongoConfig)
        else ":window_start and :window_end"
    )
    yield (
        _query_path(spec),
        f"historic_tumbling_window collects each closed window of the grain "
        f"({spec.metric.grain}): the query must select that window with {how} (it uses "
        f"{uses}); for a value measured now, use invocation_strategy: tick",
    )


def _lake_problems(spec: CollectorSpec) -> Iterator[Located]:
    """A lake source's latte `partition` pattern, and `{{.Partition}}` in its sql."""
    if spec.source.type != "s3":
        return
    config = spec.source.config
    partition = getattr(config, "partition", None)
    sql = getattr(config, "sql", None)
    if isinstance(partition, str):
        try:
            check_partition_template(partition, glob=True)
        except ValueError as exc:
            yield ("source", "config", "partition"), str(exc)
    if isinstance(sql, str) and PARTITION_FIELD in window_fields(sql) and not partition:
        yield (
            ("source", "config", "sql"),
            "sql uses {{.Partition}}, but the source has no partition pattern to render it from",
        )


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
