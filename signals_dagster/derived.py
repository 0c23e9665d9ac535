"""Derived assets: built on collector assets, whose records the sinks IO manager reads back.

The demo adds one: the ISO-week revenue of `shop.orders.revenue.daily`, summed from its 7 days.
Write your own the same way (see README, "Derived assets"): an asset whose input is a collector's
asset key receives that collector's records for the mapped partitions as a DataFrame.
"""

import json
import os
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import dagster as dg

from signals_dagster.catalog import Catalog
from signals_dagster.records import RECORD_COLUMNS, empty_records, record_uuid, to_pandas
from signals_dagster.spec.models import CollectorSpec, asset_name

if TYPE_CHECKING:
    import pandas as pd

# Demo: daily collector name -> name of its weekly rollup (added only for the demo's folder).
DEMO_WEEKLY = {"shop.orders.revenue.daily": "shop.orders.revenue.weekly"}
# The demo's collectors folder (the repository's collectors/), and the variable that adds the demo's
# derived assets to another folder holding the same collectors (SIGNALS_DEMO_DERIVED=1).
DEMO_DIR = Path(__file__).resolve().parents[1] / "collectors"
DEMO_OPT_IN = "SIGNALS_DEMO_DERIVED"


def first_monday(start: str) -> str:
    """The first Monday on or after an ISO date (weekly partitions start on a Monday)."""
    day = date.fromisoformat(start)
    return (day + timedelta(days=-day.weekday() % 7)).isoformat()


def weekly_records(
    daily: "pd.DataFrame", metric: str, week_start: datetime, collected_at: datetime
) -> "pd.DataFrame":
    """Sum daily records per tag set into one record per tag set for the week."""
    import pandas as pd  # only when a derived asset runs: loading definitions needs no pandas

    if not len(daily):
        return to_pandas(empty_records())
    keyed = daily.assign(_tags=[json.dumps(t, sort_keys=True) for t in daily["tags"]])
    sums = keyed.groupby("_tags", sort=True)["value"].sum()
    kind = str(daily["type"].iloc[0])
    rows = []
    for tags_json, value in sums.items():
        tags = json.loads(str(tags_json))
        rows.append(
            {
                "uuid": record_uuid(metric, tags, week_start),
                "name": metric,
                "value": float(value),
                "type": kind,
                "tags": tags,
                "timestamp": pd.Timestamp(collected_at),
                "grain_datetime": pd.Timestamp(week_start),
            }
        )
    frame = pd.DataFrame(rows, columns=RECORD_COLUMNS)
    for column in ("timestamp", "grain_datetime"):
        frame[column] = frame[column].astype("datetime64[ns, UTC]")
    return frame


def weekly_sum(spec: CollectorSpec, name: str) -> dg.AssetsDefinition:
    """An ISO-week asset summing a daily collector per tag set; fails when a day is missing."""
    upstream = dg.AssetKey(spec.asset_name)
    metric = f"{spec.metric.name}.weekly"
    weeks = dg.WeeklyPartitionsDefinition(
        start_date=first_monday(spec.partitions.start),
        timezone=spec.partitions.timezone,
        day_offset=1,
    )

    @dg.asset(
        name=asset_name(name),
        partitions_def=weeks,
        ins={"daily": dg.AssetIn(key=upstream, partition_mapping=dg.TimeWindowPartitionMapping())},
        group_name=spec.group or spec.source.type,
        owners=list(spec.owners) or None,
        kinds={"pandas"},
        description=f"{metric}: ISO-week sum of {spec.name} per tag set (derived asset)",
        metadata={"metric": metric, "derived_from": spec.name},
    )
    def _weekly(context: dg.AssetExecutionContext, daily: Any) -> dg.Output[Any]:
        days = list(context.asset_partition_keys_for_input("daily"))
        done = context.instance.get_materialized_partitions(upstream)
        missing = [day for day in days if day not in done]
        if missing:
            raise dg.Failure(
                description=(
                    f"week {context.partition_key} needs the {len(days)} daily partitions of "
                    f"{upstream.to_user_string()}; not materialised yet: {', '.join(missing)}"
                ),
                allow_retries=False,
            )
        week_start = context.partition_time_window.start.astimezone(UTC)
        records = weekly_records(daily, metric, week_start, datetime.now(UTC))
        return dg.Output(
            records,
            metadata={
                "record_count": len(records),
                "value_sum": float(records["value"].sum()) if len(records) else 0.0,
                "daily_records": len(daily),
                "days": len(days),
            },
        )

    return _weekly


def _demo_collector(catalog: Catalog, name: str) -> bool:
    """Whether `name` is the demo's daily collector: loaded from the demo's folder (or any
    folder, with SIGNALS_DEMO_DERIVED=1), so a team's collector of the same name never gets
    the demo's rollup unasked."""
    spec, file = catalog.specs.get(name), catalog.files.get(name)
    if spec is None or spec.metric.grain != "24h":
        return False
    if os.environ.get(DEMO_OPT_IN) == "1":
        return True
    return file is not None and file.resolve().is_relative_to(DEMO_DIR)


def derived_definitions(catalog: Catalog) -> dg.Definitions:
    """The demo's derived assets, for the demo's collectors folder only (else none)."""
    assets = [
        weekly_sum(catalog.specs[daily], weekly)
        for daily, weekly in DEMO_WEEKLY.items()
        if _demo_collector(catalog, daily)
    ]
    return dg.Definitions(assets=assets)
