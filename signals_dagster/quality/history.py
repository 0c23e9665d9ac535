"""A collector's own history for `change` and `anomaly` checks outside Dagster: its file sink.

`signals invoke` has no instance to ask; the collector's file sink (the audit log) holds every
record it published, so each earlier window's figures are read back from it: the latest copy of
each uuid, summed exactly as the materialisation metadata is.
"""

import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

from signals_dagster.quality.checks import Figures, History, no_history
from signals_dagster.records.frame import iso_z
from signals_dagster.spec.models import CollectorSpec
from signals_dagster.spec.sinks import FileSink
from signals_dagster.window import Window

_GRAIN = re.compile(r'"grain_datetime"\s*:\s*"([^"]+)"')


def _exact_sum(values: list[float]) -> float:
    import pyarrow as pa

    from signals_dagster.records import value_sum

    return value_sum(pa.array(values, pa.float64())) if values else 0.0


def file_history(spec: CollectorSpec) -> History:
    """The figures of earlier windows from the collector's first file sink (none: no history)."""
    sink = next((s for s in spec.sinks.values() if isinstance(s, FileSink)), None)
    if sink is None:
        return no_history
    path = Path(sink.config.path)

    def figures(windows: Sequence[Window]) -> Mapping[str, Figures]:
        grains = {iso_z(window.grain_datetime): window.key for window in windows}
        if not grains or not path.exists():
            return {}
        latest: dict[str, dict[str, float]] = {w.key: {} for w in windows}  # uuid → value
        with path.open(encoding="utf-8") as lines:
            for line in lines:
                match = _GRAIN.search(line)
                if match is None or match[1] not in grains:
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError:
                    continue
                if record.get("name") != spec.metric.name or record.get("value") is None:
                    continue
                key = grains[match[1]]
                latest[key][str(record.get("uuid"))] = float(record["value"])
        return {
            key: Figures(len(items), _exact_sum(list(items.values())))
            for key, items in latest.items()
            if items
        }

    return figures
