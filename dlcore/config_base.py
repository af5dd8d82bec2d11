"""The base class of every config section: strict, immutable, validated by pydantic."""

from pydantic import BaseModel, ConfigDict


class Section(BaseModel):
    """A TOML table. Unknown keys are errors (with a did-you-mean hint from dlcore.config)."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)
