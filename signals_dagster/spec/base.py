"""The strict, frozen base model every spec model derives from."""

from pydantic import BaseModel, ConfigDict


class Model(BaseModel):
    """Strict spec model: unknown keys are errors, instances are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)
