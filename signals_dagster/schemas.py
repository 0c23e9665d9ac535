"""JSON schemas of the YAML formats (for editors: `# yaml-language-server: $schema=…`), made
from the pydantic models that validate them."""

from typing import Any

from pydantic import BaseModel

DRAFT = "https://json-schema.org/draft/2020-12/schema"
KINDS = ("collector", "registry", "settings")


def _model(kind: str) -> type[BaseModel]:
    if kind == "collector":
        from signals_dagster.spec.models import CollectorSpec

        return CollectorSpec
    if kind == "registry":
        from signals_dagster.contracts.model import RegistryFile

        return RegistryFile
    if kind == "settings":
        from signals_dagster.settings import Settings

        return Settings
    raise ValueError(f"unknown schema {kind!r} (one of {', '.join(KINDS)})")


def _registry_forms(schema: dict[str, Any]) -> None:
    """What the contract's validators accept besides the plain model: `tags:` empty, a tag
    given by its key alone (`channel:`), a type in lower case."""
    contract = schema["$defs"]["Contract"]["properties"]
    tags = contract["tags"]
    rule = {"anyOf": [{"$ref": "#/$defs/TagRule"}, {"type": "null"}]}
    tags["patternProperties"] = dict.fromkeys(tags.get("patternProperties", {}), rule)
    tags["additionalProperties"] = False
    contract["tags"] = {"anyOf": [tags, {"type": "null"}], "description": tags.get("description")}
    kinds = contract["type"]["enum"]
    contract["type"] = {"enum": [*kinds, *(k.lower() for k in kinds)]}


def json_schema(kind: str) -> dict[str, Any]:
    """The JSON schema of a collector file, a registry file or signals.yaml."""
    schema = _model(kind).model_json_schema(mode="validation")
    if kind == "registry":
        _registry_forms(schema)
    titles = {
        "collector": "signals_dagster collector file",
        "registry": "signals_dagster registry file (metric contracts)",
        "settings": "signals_dagster settings (signals.yaml)",
    }
    return {
        "$schema": DRAFT,
        "title": titles[kind],
        **{k: v for k, v in schema.items() if k != "title"},
    }
