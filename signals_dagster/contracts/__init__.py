"""Metric contracts: the registry, its checks when loading and at run time, its lock."""

from signals_dagster.contracts.model import Contract, TagRule, ValueRange
from signals_dagster.contracts.registry import LOCK_NAME, Registry, is_registry_text

__all__ = ["LOCK_NAME", "Contract", "Registry", "TagRule", "ValueRange", "is_registry_text"]
