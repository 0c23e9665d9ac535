"""Second validation phase: checks across fields and across files."""

from collections.abc import Iterator

from signals_dagster.spec.fields import MONTH, format_duration, grain_timedelta
from signals_dagster.spec.models import CollectorSpec
from signals_dagster.spec.sources import SqlConfig
from signals_dagster.spec.sqltext import WINDOW_PARAMS, bind_params, output_aliases

Located = tuple[tuple[str | int, ...], str]


def check_spec(spec: CollectorSpec) -> Iterator[Located]:
    """Yield (path, message) for each cross-field problem of one collector."""
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
