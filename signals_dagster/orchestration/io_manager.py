"""The sinks IO manager: writes each partition's records to every sink of a collector."""

import itertools
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import dagster as dg
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from signals_dagster.errors import CollectorError
from signals_dagster.orchestration.clients import sink_clients
from signals_dagster.orchestration.failures import as_failure
from signals_dagster.orchestration.partitions import window_for_key
from signals_dagster.orchestration.resources import KafkaProducerResource
from signals_dagster.records import as_table, empty_records, grain_micros, to_pandas
from signals_dagster.sinks import open_writer
from signals_dagster.spec.models import CollectorSpec
from signals_dagster.spec.sinks import FileSink, S3Sink

if TYPE_CHECKING:
    import pandas as pd  # only derived assets read records back as pandas (imported then)

# Past this many partitions in one run, per-partition metadata keeps only the figures.
DETAILED_PARTITIONS = 31


def split_by_partition(
    spec: CollectorSpec, keys: Sequence[str], records: Any
) -> list[tuple[str, pa.Table]]:
    """One (key, records) pair per partition, matched on grain_datetime = window start."""
    table = as_table(records)
    grains = grain_micros(table)
    # Our assets emit each partition's records as one contiguous run: cut at the changes.
    cuts = [0, *(np.flatnonzero(grains[1:] != grains[:-1]) + 1).tolist(), len(grains)]
    runs = {int(grains[a]): (a, b) for a, b in itertools.pairwise(cuts) if b > a}
    if len(runs) == len(cuts) - 1 or not len(grains):
        parts = {g: table.slice(a, b - a) for g, (a, b) in runs.items()}
    else:  # interleaved (someone else's frame): filter instead
        parts = {g: table.filter(pc.equal(pa.array(grains), g)) for g in runs}
    empty = table.slice(0, 0)
    return [(key, parts.get(window_for_key(spec, key).grain_micros, empty)) for key in keys]


def sink_metadata(name: str, result: Mapping[str, object]) -> dict[str, Any]:
    """A sink's confirmation as metadata: the whole of it as JSON, and each figure on its own."""
    metadata: dict[str, Any] = {f"sink_{name}": json.dumps(result, default=str)}
    for field, value in result.items():
        if isinstance(value, str | int | float) and not isinstance(value, bool):
            metadata[f"sink_{name}_{field}"] = value  # numbers are plotted across partitions
    return metadata


def _add_partition_metadata(context: dg.OutputContext, key: str, metadata: dict[str, Any]) -> bool:
    """Attach metadata to one partition's materialisation (False outside a real step)."""
    try:
        step = context.step_context
    except dg.DagsterInvariantViolationError:
        return False
    step.add_asset_metadata(metadata, asset_key=context.asset_key, partition_key=key)
    return True


class SinksIOManager(dg.IOManager):
    """Writes a collector's records to each of its sinks; reads them back from S3 or a file.

    One instance serves every collector of a code location: each collector's spec is bound when
    the definitions are built, so a run never re-reads the collector folder (a file broken since
    then cannot fail another collector's run). Kafka clients come from `kafka`, the
    deployment's KafkaProducerResource (its `settings` apply to every Kafka sink).
    """

    def __init__(
        self, specs: Iterable[CollectorSpec], kafka: KafkaProducerResource | None = None
    ) -> None:
        self._specs = {dg.AssetKey(spec.asset_name): spec for spec in specs}
        self._kafka = kafka

    def _spec(self, context: dg.OutputContext | dg.InputContext) -> CollectorSpec:
        key = context.asset_key
        try:
            return self._specs[key]
        except KeyError:
            raise CollectorError(
                f"asset {key.to_user_string()} is not a collector of this code location"
            ) from None

    def handle_output(self, context: dg.OutputContext, obj: pa.Table) -> None:
        """Write every partition to every sink; the run fails if any write is not confirmed."""
        spec = self._spec(context)
        parts: list[tuple[str | None, pa.Table]] = [(None, as_table(obj))]
        if context.has_asset_partitions:
            parts = list(split_by_partition(spec, context.asset_partition_keys, obj))
        written: dict[str, Any] = {}
        writers = {}
        try:
            # Open (and check: S3 bucket...) every sink before writing to any of them, so a
            # misconfigured sink fails the run with nothing written elsewhere.
            clients = sink_clients(self._kafka)
            for sink_name, sink in spec.sinks.items():
                writers[sink_name] = open_writer(sink, clients=clients)
            for sink_name, writer in writers.items():
                write_many = getattr(writer, "write_many", None)
                results = (
                    write_many(spec, parts)
                    if write_many is not None
                    else [writer.write(spec, key, records) for key, records in parts]
                )
                # One line per sink, not per partition: every log line is an event-log row.
                context.log.info(
                    f"sink {sink_name} ({spec.sinks[sink_name].type}): "
                    f"{sum(len(r) for _, r in parts)} record(s) "
                    f"in {len(parts)} partition(s) confirmed"
                )
                if len(parts) > DETAILED_PARTITIONS:  # a long range: the run's summary only
                    total = {"partitions": len(parts), "records": sum(len(r) for _, r in parts)}
                    written.update(sink_metadata(sink_name, total))
                    continue
                for (key, _), result in zip(parts, results, strict=True):
                    metadata = sink_metadata(sink_name, result)
                    if key is None or not _add_partition_metadata(context, key, metadata):
                        written.update(metadata)
        except CollectorError as exc:
            raise as_failure(exc) from None
        finally:
            for writer in writers.values():
                writer.close()
        context.add_output_metadata({"sinks_written": len(spec.sinks), **written})

    def load_input(self, context: dg.InputContext) -> "pd.DataFrame":
        """Read the partition(s) back: from the S3 sink if any, else the file sink."""
        import pandas as pd

        spec = self._spec(context)
        s3 = next((s for s in spec.sinks.values() if isinstance(s, S3Sink)), None)
        if s3 is not None:
            from signals_dagster.sinks.s3 import read_partitions

            keys = list(context.asset_partition_keys) if context.has_asset_partitions else None
            try:
                return read_partitions(s3.config, spec, keys, sink_clients(self._kafka).s3)
            except CollectorError as exc:
                raise as_failure(exc) from None
        sink = next((s for s in spec.sinks.values() if isinstance(s, FileSink)), None)
        if sink is None:
            raise CollectorError(
                f"collector {spec.name} has no sink that can be read back (s3, file)"
            )
        from signals_dagster.sinks.file import read_records

        records = read_records(sink.config.path)
        if not len(records):
            return to_pandas(empty_records())
        if context.has_asset_partitions:
            starts = {
                pd.Timestamp(window_for_key(spec, k).grain_datetime)
                for k in context.asset_partition_keys
            }
            records = records[records["grain_datetime"].isin(starts)]
        records = records[records["name"] == spec.metric.name]
        return records.drop_duplicates("uuid", keep="last").reset_index(drop=True)
