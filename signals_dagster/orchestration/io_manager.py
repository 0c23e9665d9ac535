"""The sinks IO manager: writes each partition's records to every sink of a collector."""

import json
from collections.abc import Sequence

import dagster as dg
import pandas as pd
from pydantic import Field

from signals_dagster.catalog import load_catalog
from signals_dagster.errors import CollectorError
from signals_dagster.orchestration.clients import sink_clients
from signals_dagster.orchestration.partitions import window_for_key
from signals_dagster.records import empty_records
from signals_dagster.sinks import open_writer
from signals_dagster.spec.models import CollectorSpec
from signals_dagster.spec.sinks import FileSink


def split_by_partition(
    spec: CollectorSpec, keys: Sequence[str], records: pd.DataFrame
) -> list[tuple[str, pd.DataFrame]]:
    """One (key, records) pair per partition, matched on grain_datetime = window start."""
    parts = []
    for key in keys:
        start = pd.Timestamp(window_for_key(spec, key).grain_datetime)
        parts.append((key, records[records["grain_datetime"] == start].reset_index(drop=True)))
    return parts


class SinksIOManager(dg.ConfigurableIOManager):
    """Writes a collector's records to each of its sinks; reads them back from a file sink."""

    collectors_dir: str = Field(description="Folder the collector was loaded from")
    collector: str = Field(description="Collector name")

    def _spec(self) -> CollectorSpec:
        return load_catalog(self.collectors_dir).get(self.collector)

    def handle_output(self, context: dg.OutputContext, obj: pd.DataFrame) -> None:
        """Write every partition to every sink; the run fails if any write is not confirmed."""
        spec = self._spec()
        parts: list[tuple[str | None, pd.DataFrame]] = [(None, obj)]
        if context.has_asset_partitions:
            parts = list(split_by_partition(spec, context.asset_partition_keys, obj))
        written: dict[str, str] = {}
        for sink_name, sink in spec.sinks.items():
            writer = open_writer(sink, clients=sink_clients())
            try:
                results = [writer.write(spec, key, records) for key, records in parts]
            finally:
                writer.close()
            # One line per sink, not per partition: every log line is an event-log row.
            context.log.info(
                f"sink {sink_name} ({sink.type}): {sum(len(r) for _, r in parts)} record(s) "
                f"in {len(parts)} partition(s) confirmed"
            )
            written[f"sink_{sink_name}"] = json.dumps(results[-1], default=str)
        context.add_output_metadata({"sinks_written": len(spec.sinks), **written})

    def load_input(self, context: dg.InputContext) -> pd.DataFrame:
        """Read the partition(s) back from the collector's file sink (latest record per uuid)."""
        spec = self._spec()
        sink = next((s for s in spec.sinks.values() if isinstance(s, FileSink)), None)
        if sink is None:
            raise CollectorError(f"collector {spec.name} has no sink that can be read back (file)")
        from signals_dagster.sinks.file import read_records

        records = read_records(sink.config.path)
        if not len(records):
            return empty_records()
        if context.has_asset_partitions:
            starts = {
                pd.Timestamp(window_for_key(spec, k).grain_datetime)
                for k in context.asset_partition_keys
            }
            records = records[records["grain_datetime"].isin(starts)]
        records = records[records["name"] == spec.metric.name]
        return records.drop_duplicates("uuid", keep="last").reset_index(drop=True)
