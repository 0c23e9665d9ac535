"""Project-level settings (`signals.yaml` or $SIGNALS_SETTINGS): where failure alerts go."""

import os
from pathlib import Path

from pydantic import Field, ValidationError, field_validator

from signals_dagster.errors import Problem, SpecError
from signals_dagster.spec import templating, yamlpos
from signals_dagster.spec.base import Model
from signals_dagster.spec.fields import PositiveDuration
from signals_dagster.spec.uris import check_http_uri

DEFAULT_PATH = "signals.yaml"


class HttpAlerts(Model):
    uri: str
    headers: dict[str, str] = Field(default_factory=dict)
    timeout: PositiveDuration = Field(default=10)  # type: ignore[assignment]

    @field_validator("uri")
    @classmethod
    def _uri(cls, value: str) -> str:
        return check_http_uri(value)


class Alerts(Model):
    http: HttpAlerts | None = None


class Settings(Model):
    alerts: Alerts = Field(default_factory=Alerts)


def settings_path() -> Path:
    """$SIGNALS_SETTINGS, default signals.yaml in the working directory."""
    return Path(os.environ.get("SIGNALS_SETTINGS", DEFAULT_PATH))


def load_settings(path: Path | None = None) -> Settings:
    """The settings (defaults when the file does not exist); SpecError when it is invalid."""
    path = path or settings_path()
    if not path.exists():
        return Settings()
    text, template_problems = templating.render(path.read_text(encoding="utf-8"))
    data, pos, yaml_problems = yamlpos.parse(text)
    problems = [Problem(str(path), p.line, "template", p.message) for p in template_problems]
    problems += [Problem(str(path), p.line, "yaml", p.message) for p in yaml_problems]
    if problems:
        raise SpecError(problems)
    try:
        return Settings.model_validate(data or {})
    except ValidationError as exc:
        raise SpecError(
            [
                Problem(
                    str(path),
                    pos.line_for(tuple(e["loc"])),
                    ".".join(str(p) for p in e["loc"]),
                    str(e["msg"]).removeprefix("Value error, "),
                )
                for e in exc.errors()
            ]
        ) from None
