"""The metric catalog: every metric of a collectors folder with its contract and the collectors
that emit it (`signals catalog`), as JSON or Markdown. Source URIs are redacted."""

import json
import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TypedDict

from signals_dagster.contracts.model import Contract
from signals_dagster.contracts.registry import Registry, load_registry
from signals_dagster.errors import Problem, SpecError
from signals_dagster.redact import redact
from signals_dagster.spec.fields import format_duration
from signals_dagster.spec.loader import registry_files
from signals_dagster.spec.models import CollectorSpec

_NAME_KEY = re.compile(r"^name[ \t]*:", re.MULTILINE)


class TagEntry(TypedDict):
    """One tag rule of a contract."""

    required: bool
    allowed: list[str] | None
    pattern: str | None
    pii: str | None


class RangeEntry(TypedDict):
    """A contract's value range (None: open on that side)."""

    min: float | None
    max: float | None


class SourceEntry(TypedDict):
    """A collector's source: its type and its URI, redacted (None: the source has no URI)."""

    type: str
    uri: str | None


class CollectorEntry(TypedDict):
    """One collector of a metric."""

    name: str
    file: str
    line: int
    source: SourceEntry
    grain: str
    schedule: dict[str, str] | None
    sinks: dict[str, str]


class MetricEntry(TypedDict):
    """One metric: its contract (None fields without one) and its collectors."""

    name: str
    version: int | None
    type: str | None
    unit: str | None
    stability: str | None
    description: str | None
    owners: list[str]
    tags: dict[str, TagEntry]
    values: RangeEntry | None
    max_records: int | None
    contract: str | None
    collectors: list[CollectorEntry]


class CatalogData(TypedDict):
    """The whole catalog (the JSON document)."""

    metrics: list[MetricEntry]


def load_registry_of(paths: Iterable[str | os.PathLike[str]]) -> Registry:
    """The registry covering the collectors under `paths` (as load_collectors reads it: the
    registry files of the paths and of their registry roots); SpecError on any problem."""
    problems: list[Problem] = []
    texts = registry_files(paths, problems)
    registry, found = load_registry(sorted(texts.items()))
    problems += found
    if problems:
        raise SpecError(problems)
    return registry


def name_line(path: Path) -> int:
    """The line of a collector file's top-level `name:` key (1 when not found)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return 1
    match = _NAME_KEY.search(text)
    return 1 if match is None else text.count("\n", 0, match.start()) + 1


def _schedule(spec: CollectorSpec) -> dict[str, str] | None:
    schedule = spec.schedule
    if schedule is None:
        return None
    if schedule.interval is not None:
        return {"interval": format_duration(schedule.interval)}
    return {"cron": str(schedule.cron)}


def collector_entry(path: Path, spec: CollectorSpec) -> CollectorEntry:
    """What the catalog shows of one collector (its source URI redacted)."""
    uri = getattr(spec.source.config, "uri", None)
    return {
        "name": spec.name,
        "file": str(path),
        "line": name_line(path),
        "source": {
            "type": str(spec.source.type),
            "uri": redact(uri) if isinstance(uri, str) else None,
        },
        "grain": str(spec.metric.grain),
        "schedule": _schedule(spec),
        "sinks": {name: str(sink.type) for name, sink in spec.sinks.items()},
    }


def metric_entry(
    name: str,
    contract: Contract | None,
    where: str | None,
    collectors: list[CollectorEntry],
) -> MetricEntry:
    """One metric of the catalog: its contract's fields (None/empty without one) and its
    collectors."""
    if contract is None:
        return {
            "name": name,
            "version": None,
            "type": None,
            "unit": None,
            "stability": None,
            "description": None,
            "owners": [],
            "tags": {},
            "values": None,
            "max_records": None,
            "contract": None,
            "collectors": collectors,
        }
    values = contract.values
    return {
        "name": name,
        "version": contract.version,
        "type": contract.type,
        "unit": contract.unit,
        "stability": contract.stability,
        "description": contract.description,
        "owners": list(contract.owners),
        "tags": {
            key: {
                "required": rule.required,
                "allowed": None if rule.allowed is None else list(rule.allowed),
                "pattern": rule.pattern,
                "pii": rule.pii,
            }
            for key, rule in contract.tags.items()
        },
        "values": None if values is None else {"min": values.min, "max": values.max},
        "max_records": contract.max_records,
        "contract": where,
        "collectors": collectors,
    }


def build_catalog(specs: Mapping[Path, CollectorSpec], registry: Registry) -> CatalogData:
    """Every metric (by name) that a collector emits or the registry has a contract for."""
    by_metric: dict[str, list[CollectorEntry]] = {}
    contracts: dict[str, Contract] = dict(registry.contracts)
    for path, spec in specs.items():
        by_metric.setdefault(spec.metric.name, []).append(collector_entry(path, spec))
        if spec.contract is not None:
            contracts.setdefault(spec.metric.name, spec.contract)
    metrics: list[MetricEntry] = []
    for name in sorted(by_metric.keys() | contracts.keys()):
        located = registry.where.get(name)
        collectors = sorted(by_metric.get(name, []), key=lambda c: c["name"])
        where = None if located is None else located.at()
        metrics.append(metric_entry(name, contracts.get(name), where, collectors))
    return {"metrics": metrics}


def render_json(data: CatalogData) -> str:
    """The catalog as indented JSON."""
    return json.dumps(data, indent=2, ensure_ascii=False)


def _cell(value: object) -> str:
    """A Markdown table cell: pipes escaped, on one line."""
    text = "" if value is None else str(value)
    return " ".join(text.split()).replace("|", "\\|")


def _code(value: object) -> str:
    text = _cell(value)
    return f"`{text}`" if text else ""


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def _schedule_text(schedule: dict[str, str] | None) -> str:
    if schedule is None:
        return "none"
    return ", ".join(f"{kind} {value}" for kind, value in schedule.items())


def _range_text(values: RangeEntry | None) -> str:
    if values is None:
        return "any"
    low = "-inf" if values["min"] is None else f"{values['min']:g}"
    high = "inf" if values["max"] is None else f"{values['max']:g}"
    return f"[{low}, {high}]"


def _metric_markdown(metric: MetricEntry) -> list[str]:
    lines = [f"## {metric['name']}", ""]
    if metric["version"] is None:
        lines += ["No contract.", ""]
    else:
        lines += [
            f"Contract v{metric['version']} at `{metric['contract']}`",
            "",
            f"- Type: {metric['type']}",
            f"- Unit: {metric['unit'] or 'none'}",
            f"- Stability: {metric['stability']}",
            f"- Description: {' '.join((metric['description'] or 'none').split())}",
            f"- Owners: {', '.join(metric['owners']) or 'none'}",
            f"- Values: {_range_text(metric['values'])}",
            f"- Max records: {metric['max_records'] or 'no limit'}",
            "",
        ]
        if metric["tags"]:
            rows = [
                [
                    _cell(key),
                    "yes" if rule["required"] else "no",
                    _cell(", ".join(rule["allowed"] or [])),
                    _code(rule["pattern"]),
                    rule["pii"] or "",
                ]
                for key, rule in metric["tags"].items()
            ]
            lines += [*_table(["Tag", "Required", "Allowed", "Pattern", "PII"], rows), ""]
        else:
            lines += ["Tags: none (the contract allows no tag).", ""]
    if metric["collectors"]:
        rows = [
            [
                _cell(c["name"]),
                _code(f"{c['file']}:{c['line']}"),
                _cell(c["source"]["type"]),
                _code(c["source"]["uri"]),
                _cell(c["grain"]),
                _cell(_schedule_text(c["schedule"])),
                _cell(", ".join(f"{name}: {kind}" for name, kind in c["sinks"].items())),
            ]
            for c in metric["collectors"]
        ]
        header = ["Collector", "File", "Source", "URI", "Grain", "Schedule", "Sinks"]
        lines += [*_table(header, rows), ""]
    else:
        lines += ["Collectors: none.", ""]
    return lines


def render_markdown(data: CatalogData, title: str = "Metric catalog") -> str:
    """The catalog as Markdown: a title, then one section per metric (tags, collectors)."""
    metrics = data["metrics"]
    collectors = sum(len(m["collectors"]) for m in metrics)
    lines = [f"# {title}", "", f"{len(metrics)} metric(s), {collectors} collector(s).", ""]
    for metric in metrics:
        lines += _metric_markdown(metric)
    return "\n".join(lines).rstrip("\n") + "\n"
