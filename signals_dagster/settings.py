"""Project-level settings (`signals.yaml` or $SIGNALS_SETTINGS): where failure alerts go, and
the trust boundary of collector files (sources, templating, sinks, egress)."""

import os
from pathlib import Path

from pydantic import Field, ValidationError, field_validator

from signals_dagster.contracts.model import RegistrySettings
from signals_dagster.errors import Problem, SpecError
from signals_dagster.spec import templating, yamlpos
from signals_dagster.spec.base import Model
from signals_dagster.spec.fields import PositiveDuration
from signals_dagster.spec.sinks import Sink
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


class SourcesSettings(Model):
    """Which SQLAlchemy dialects may run without a guaranteed read-only session (issue 16)."""

    allow_unguarded: list[str] = Field(default_factory=list)


SECRET_ENV_DEFAULT = ["*PASSWORD*", "*SECRET*", "*TOKEN*", "*KEY*", "AWS_*"]


class TemplatingSettings(Model):
    """Which environment variables templates may read, and which count as secrets."""

    secret_env: list[str] = Field(default_factory=lambda: list(SECRET_ENV_DEFAULT))
    allow_env: list[str] | None = None  # glob patterns; None: every variable exists


class FileSinkSettings(Model):
    roots: list[str] | None = None  # None: the working directory and $SIGNALS_DATA_DIR


class SinksSettings(Model):
    file: FileSinkSettings = Field(default_factory=FileSinkSettings)


class EgressSettings(Model):
    allow: list[str] | None = None  # host[:port] glob patterns; None: every host


class PoliciesSettings(Model):
    """Where policy outcomes go: one `signals.policy.violations` record per policy and window,
    written through these sink definitions (a collector's `sinks` schema; none: not written)."""

    sinks: dict[str, Sink] = Field(default_factory=dict)


class Settings(Model):
    alerts: Alerts = Field(default_factory=Alerts)
    sources: SourcesSettings = Field(default_factory=SourcesSettings)
    templating: TemplatingSettings = Field(default_factory=TemplatingSettings)
    sinks: SinksSettings = Field(default_factory=SinksSettings)
    egress: EgressSettings = Field(default_factory=EgressSettings)
    registry: RegistrySettings = Field(default_factory=RegistrySettings)
    policies: PoliciesSettings = Field(default_factory=PoliciesSettings)


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
