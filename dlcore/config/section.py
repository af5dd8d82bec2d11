"""The base class of every config section, and the type of a field that names a choice."""

from collections.abc import Iterable
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict

from dlcore.checks import check_choice


class Section(BaseModel):
    """A TOML table. Unknown keys are errors (with a did-you-mean hint from dlcore.config)."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)


def one_of(choices: Iterable[str], what: str) -> type[str]:
    """A ``str`` field that must name one of ``choices`` (e.g. a registry's keys); the
    error lists the valid names: ``activation: one_of(ACTIVATIONS, "activation") = "relu"``."""
    valid = tuple(choices)

    def check(value: str) -> str:
        check_choice(value, valid, what)
        return value

    return Annotated[str, AfterValidator(check)]
