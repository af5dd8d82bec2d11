"""The base class of every config section, the type of a field that names a choice, and
the type of a seed.

These rules hold for every field of every section, so no section has to repeat them:

* numbers are finite: ``inf`` and ``nan`` are errors, in lists and tables of numbers and
  in fields that take any value (a sweep's ``choices``) too;
* a boolean is not a number: ``epochs = true`` is an error instead of ``epochs = 1``
  (an integer still fills a float field: ``learning_rate = 1`` is ``1.0``);
* the ``name`` that picks a section's kind is looked up as text (a list there is an
  unknown name, not a crash of the lookup).
"""

import functools
import math
import types
import typing
from collections.abc import Iterable
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from dlcore.checks import check_choice

# jax.random.PRNGKey keeps the low 32 bits of a seed (2**32 would repeat seed 0, and -1
# would be 2**32 - 1), and NumPy's generators refuse negative seeds.
SEED_LIMIT = 2**32
Seed = Annotated[int, Field(ge=0, lt=SEED_LIMIT, description="0 <= seed < 2**32")]


class Section(BaseModel):
    """A TOML table. Unknown keys are errors (with a did-you-mean hint from dlcore.config);
    numbers must be finite, and a boolean is not accepted where a number is expected (see
    the module docstring)."""

    model_config = ConfigDict(
        extra="forbid", frozen=True, validate_default=True, allow_inf_nan=False
    )

    @model_validator(mode="before")
    @classmethod
    def _screen_input(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        screened = dict(data)
        for key, value in data.items():
            if key not in cls.model_fields:
                continue
            numbers, tables, section, anything = _field_kind(cls, key)
            if numbers:
                screened[key] = _mark_booleans(value, tables)
            elif anything and (where := _find_non_finite(value)) is not None:
                # typed float fields refuse inf and nan themselves (allow_inf_nan=False)
                raise ValueError(f"{key}{where[0]}: numbers must be finite; got {where[1]}")
            elif section and isinstance(value, dict) and isinstance(value.get("name"), list | dict):
                # The name picks the kind of section from a registry, so it is looked up:
                # a list or table there is shown as text, as pydantic's tagged unions do.
                screened[key] = {**value, "name": str(value["name"])}
        return screened


class BooleanGiven:
    """Stands in for a boolean given where a number is expected (``epochs = true``), so
    that the number's own validation fails at the exact place (``model.widths[1]``)
    instead of reading ``true`` as 1. Shown as TOML writes it."""

    def __init__(self, value: bool):
        self.value = value

    def __repr__(self) -> str:
        return "true" if self.value else "false"


def one_of(choices: Iterable[str], what: str) -> type[str]:
    """A ``str`` field that must name one of ``choices`` (e.g. a registry's keys); the
    error lists the valid names: ``activation: one_of(ACTIVATIONS, "activation") = "relu"``."""
    valid = tuple(choices)

    def check(value: str) -> str:
        check_choice(value, valid, what)
        return value

    check.choices = valid  # the generated config reference (dlcore.config.reference) lists them
    return Annotated[str, AfterValidator(check)]


@functools.cache
def _field_kind(section: type[Section], field: str) -> tuple[bool, bool, bool, bool]:
    """(whether the field holds numbers and no booleans, whether it holds sections at any
    depth, whether it is a section or a choice of sections itself, whether it takes any
    value)."""
    annotation = section.model_fields[field].annotation
    leaves = _leaf_types(annotation)
    anything = bool(leaves & {Any, object})
    numbers = bool(leaves & {int, float}) and not anything and bool not in leaves
    sections = any(_is_section(t) for t in leaves)
    return numbers, sections, _is_section_choice(annotation), anything


def _is_section(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _is_section_choice(annotation: Any) -> bool:
    """``Section``, ``A | B | None`` or an annotated union of sections (not a list of them)."""
    origin = typing.get_origin(annotation)
    if origin is Annotated:
        return _is_section_choice(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        members = [a for a in typing.get_args(annotation) if a is not type(None)]
        return all(_is_section_choice(a) for a in members)
    return _is_section(annotation)


def _leaf_types(annotation: Any) -> set:
    """Every type an annotation can hold at any depth: ``list[int] | None`` -> {int, None}."""
    origin = typing.get_origin(annotation)
    if origin is Annotated:
        return _leaf_types(typing.get_args(annotation)[0])
    if origin is typing.Literal:
        return {type(choice) for choice in typing.get_args(annotation)}
    if origin is None:
        return {annotation}
    leaves = set()
    for arg in typing.get_args(annotation):
        if arg is not Ellipsis:
            leaves |= _leaf_types(arg)
    if not leaves and origin not in (typing.Union, types.UnionType):
        leaves.add(Any)  # a bare ``list`` or ``dict``: anything goes
    return leaves


def _mark_booleans(value: Any, skip_tables: bool) -> Any:
    """``value`` with every boolean replaced by a :class:`BooleanGiven`, at any depth of
    lists (and of tables, unless they are sections that check themselves)."""
    if isinstance(value, bool):
        return BooleanGiven(value)
    if isinstance(value, list | tuple):
        return [_mark_booleans(item, skip_tables) for item in value]
    if isinstance(value, dict) and not skip_tables:
        return {k: _mark_booleans(item, skip_tables) for k, item in value.items()}
    return value


def _find_non_finite(value: Any, where: str = "") -> tuple[str, float] | None:
    """(the index path of the first inf or nan in ``value``, the number), else None."""
    if isinstance(value, float) and not math.isfinite(value):
        return where, value
    if isinstance(value, list | tuple):
        items: Iterable = enumerate(value)
    elif isinstance(value, dict):
        items = value.items()
    else:
        return None
    for key, item in items:
        found = _find_non_finite(item, f"{where}[{key!r}]")
        if found is not None:
            return found
    return None
