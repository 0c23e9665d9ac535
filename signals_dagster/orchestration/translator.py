"""Collector spec → the static facts of its asset (key, kinds, owners, metadata...)."""

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import dagster as dg

from signals_dagster.redact import redact
from signals_dagster.sources.base import query_shape
from signals_dagster.spec.models import CollectorSpec
from signals_dagster.spec.sources import MongoConfig, SqlConfig
from signals_dagster.spec.uris import parse_sql_url

if TYPE_CHECKING:
    from signals_dagster.contracts.model import Contract


def query_text(spec: CollectorSpec) -> str:
    """The query as shown in the UI."""
    config = spec.source.config
    if isinstance(config, SqlConfig):
        return config.sql
    if isinstance(config, MongoConfig):
        return json.dumps(config.agg, indent=2, default=str)
    text = getattr(config, "query", None) or getattr(config, "sql", None)
    if isinstance(text, str):
        return text
    from signals_dagster.sources import open_source  # a plug-in type: its own description

    return open_source(spec).describe().get("query", "")


@dataclass(frozen=True)
class AssetFacts:
    """What the factory needs to declare one collector's asset."""

    key: str
    description: str
    kinds: set[str]
    owners: list[str]
    group: str
    code_version: str
    kind: str
    metadata: dict[str, Any]
    tags: dict[str, str]
    pool: str


def translate(spec: CollectorSpec, file: Path | None = None) -> AssetFacts:
    """The asset facts of a collector."""
    kind = query_shape(spec).kind
    uri = getattr(spec.source.config, "uri", "")
    pool = pool_name(spec)
    metadata: dict[str, Any] = {
        "pool": pool,
        "metric": spec.metric.name,
        "metric_type": spec.metric.type,
        "grain": spec.metric.grain,
        "timezone": spec.partitions.timezone,
        "collector_kind": kind,
        "source_type": spec.source.type,
        "source_uri": redact(uri),
        "query": dg.MetadataValue.md(f"```\n{redact(query_text(spec))}\n```"),
        "sinks": ", ".join(f"{n} ({s.type})" for n, s in spec.sinks.items()),
    }
    if spec.metric.unit:
        metadata["unit"] = spec.metric.unit
    if file is not None:
        metadata["collector_file"] = dg.MetadataValue.path(str(file))
    contract = spec.contract
    if contract is not None:  # its owners and description stay the contract's, not the asset's
        metadata["contract"] = contract.ref
        metadata["contract_version"] = contract.version
        metadata["contract_tags"] = contract_tags_table(contract)
    description = (
        spec.description or f"{spec.metric.type} {spec.metric.name} per {spec.metric.grain}"
    )
    return AssetFacts(
        key=spec.asset_name,
        description=description,
        kinds={spec.source.type, *(s.type for s in spec.sinks.values())},
        owners=list(spec.owners),
        group=spec.group or spec.source.type,
        code_version=code_version(spec),
        kind=kind,
        metadata=metadata,
        tags={"signals/collector_kind": kind, "signals/grain": spec.metric.grain},
        pool=pool,
    )


_CONTRACT_TAGS_SCHEMA = dg.TableSchema(
    columns=[
        dg.TableColumn("tag", "string"),
        dg.TableColumn("required", "bool"),
        dg.TableColumn("allowed", "string"),
        dg.TableColumn("pattern", "string"),
        dg.TableColumn("pii", "string"),
    ]
)


def contract_tags_table(contract: "Contract") -> dg.TableMetadataValue:
    """The tags of a contract as a table: tag, required, allowed (comma-joined), pattern, pii."""
    records = [
        dg.TableRecord(
            {
                "tag": key,
                "required": rule.required,
                "allowed": ", ".join(rule.allowed or ()),
                "pattern": rule.pattern or "",
                "pii": rule.pii or "",
            }
        )
        for key, rule in contract.tags.items()
    ]
    return dg.MetadataValue.table(records=records, schema=_CONTRACT_TAGS_SCHEMA)


def code_version(spec: CollectorSpec) -> str:
    """Hash of what defines the collector's data: the source and its query, the metric (name,
    type, grain, unit, static tags), partitions.start and timezone. Not owners, description,
    schedule, retries, pool, timeouts or sinks, and not the URI's password: changing those
    (rotating a secret) does not make every partition stale."""
    source = spec.source.config.model_dump(mode="json", exclude={"timeout"})  # secrets masked
    data = {
        "source": {"type": spec.source.type, **source},
        "metric": spec.metric.model_dump(mode="json"),
        "partitions": {"start": spec.partitions.start, "timezone": spec.partitions.timezone},
    }
    text = redact(json.dumps(data, sort_keys=True, default=str))  # user:***@ for any password
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def pool_name(spec: CollectorSpec) -> str:
    """The Dagster pool guarding the source: `source.pool`, else type:host/database."""
    if spec.source.pool:
        return spec.source.pool
    config = spec.source.config
    where = ""
    if isinstance(config, SqlConfig):
        url = parse_sql_url(config.uri)
        where = f"{url.host or ''}{':' + str(url.port) if url.port else ''}/{url.database or ''}"
    elif isinstance(getattr(config, "uri", None), str):
        parts = urlsplit(config.uri)
        where = f"{parts.hostname or ''}{':' + str(parts.port) if parts.port else ''}"
        if isinstance(config, MongoConfig):
            where += f"/{config.database}"
    # else a source without a URI (a plug-in type): one pool per type unless source.pool says
    return re.sub(r"\s", "_", f"{spec.source.type}:{where}")
