"""The config reference of the documentation site, generated from the config classes.

Every section of an experiment file is a pydantic model (:class:`dlcore.config.section.
Section`), and the choosable ones come from the registries in
:data:`dlcore.config.experiment.SECTIONS`. :func:`config_reference` walks them and writes
one Markdown table per section (field, type, default, description), plus one per nested
table a field holds (``[optimizer.schedule]``, ``[task.augment]``, ...). Nothing here is
written by hand, so a field added to a section appears in the next ``make docs``.

Example:
  >>> from dlcore.config.reference import config_reference
  >>> "| `epochs` |" in config_reference()
  True
"""

import json
import types
import typing
from typing import Annotated, Any

import annotated_types
from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from dlcore.config.experiment import SECTIONS, ExperimentConfig
from dlcore.config.init_from import InitConfig
from dlcore.config.sweep_space import SweepConfig
from dlcore.engine.train_config import TrainConfig
from dlcore.optim.schedules import SCHEDULES

# The bound a constraint states, written as in the text: ``int > 0``.
_BOUNDS = (
    (annotated_types.Gt, "gt", ">"),
    (annotated_types.Ge, "ge", ">="),
    (annotated_types.Lt, "lt", "<"),
    (annotated_types.Le, "le", "<="),
)


# The member set of each choosable section's union -> the section's key (and page anchor).
_GROUPS = {
    frozenset(entry.config for entry in registry.values()): key
    for key, (_, registry, _) in SECTIONS.items()
}
_GROUPS[frozenset(entry.config for entry in SCHEDULES.values())] = "optimizer.schedule"


def anchor(section: type[BaseModel]) -> str:
    """The page anchor of a section class's table: where it is registered
    (``model-mlp``, ``task-pixelcnn``, ``schedule-cosine``; two registries may hold classes
    of one name), ``train``/``init``/``sweep``, else the class name (``augmentsection``)."""
    fixed = {ExperimentConfig: "top-level", TrainConfig: "train", InitConfig: "init"}
    if section in fixed or section is SweepConfig:
        return fixed.get(section, "sweep")
    for key, (_, registry, _) in SECTIONS.items():
        for name, entry in registry.items():
            if entry.config is section:
                return f"{key}-{name}"
    for name, entry in SCHEDULES.items():
        if entry.config is section:
            return f"schedule-{name}"
    return section.__name__.lower()


def _is_section(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _constraints(metadata: list) -> tuple[list[str], tuple[str, ...] | None]:
    """(the bounds in ``metadata`` as text, the choices of a ``one_of`` field or None)."""
    bounds, choices = [], None
    for item in metadata:
        for kind, attribute, sign in _BOUNDS:
            if isinstance(item, kind):
                bounds.append(f"{sign} {getattr(item, attribute)}")
        func = getattr(item, "func", None)
        if getattr(func, "choices", None) is not None:
            choices = func.choices
    return bounds, choices


def type_text(annotation: Any, metadata: list | None = None) -> str:
    """A field's type as the reference shows it (Markdown; never a ``|``, which would split
    the table's cell): ``int > 0``, ``list of int``, ``"step" or "scan"``, a link to a
    nested section's table."""
    bounds, choices = _constraints(metadata or [])
    origin = typing.get_origin(annotation)
    if origin is Annotated:
        inner, *extra = typing.get_args(annotation)
        for item in extra:
            if isinstance(item, FieldInfo):
                extra = extra + list(item.metadata)
        text = type_text(inner, extra + (metadata or []))
        return text
    if choices is not None:
        text = " or ".join(f'`"{c}"`' for c in choices)
    elif origin is typing.Literal:
        text = " or ".join(f"`{json.dumps(c)}`" for c in typing.get_args(annotation))
    elif origin in (typing.Union, types.UnionType):
        members = typing.get_args(annotation)
        sections = [m for m in members if _is_section(m)]
        group = _GROUPS.get(frozenset(sections))
        if group is not None:
            rest = [type_text(m) for m in members if not _is_section(m)]
            link = f"a [`[{group}]` section](#{group.replace('.', '-')})"
            text = " or ".join([link, *rest])
        else:
            text = " or ".join(type_text(m) for m in members)
    elif origin in (list, tuple):
        args = [a for a in typing.get_args(annotation) if a is not Ellipsis]
        text = "list of " + type_text(args[0]) if args else "list"
    elif origin is dict:
        key, value = typing.get_args(annotation) or (str, Any)
        text = f"table of {type_text(key)} to {type_text(value)}"
    elif _is_section(annotation):
        text = f"[{annotation.__name__}](#{anchor(annotation)})"
    elif annotation is type(None):
        text = "none"
    elif annotation in (Any, object):
        text = "any"
    else:
        text = getattr(annotation, "__name__", str(annotation))
    return ", ".join([text, *bounds])


def _toml(value: Any) -> str:
    """A default value as TOML would write it (sections as their name or ``{}``)."""
    if isinstance(value, BaseModel):
        name = getattr(value, "name", None)
        return f'{{name = "{name}"}}' if isinstance(name, str) else "{} (its defaults)"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {_toml(v)}" for k, v in value.items()) + "}"
    return str(value)


def default_text(field: FieldInfo) -> str:
    """``required``, ``unset`` (a None default) or the TOML of the default value."""
    if field.is_required():
        return "**required**"
    if field.default_factory is not None:
        value = field.default_factory()
    else:
        value = field.default
    if value is None or value is PydanticUndefined:
        return "unset"
    return f"`{_toml(value)}`"


def _cell(text: str) -> str:
    return " ".join(text.replace("|", "\\|").split())


def section_table(section: type[BaseModel]) -> str:
    """The Markdown table of one section's fields: field, type, default, description."""
    rows = ["| field | type | default | description |", "|---|---|---|---|"]
    for name, field in section.model_fields.items():
        kind = type_text(field.annotation, list(field.metadata))
        rows.append(
            f"| `{name}` | {_cell(kind)} | {_cell(default_text(field))} "
            f"| {_cell(field.description or '')} |"
        )
    return "\n".join(rows)


def _summary(section: type[BaseModel]) -> str:
    """The first paragraph of a section's docstring, on one line."""
    doc = section.__doc__ or ""
    if section.__doc__ == BaseModel.__doc__:
        return ""
    return " ".join(doc.strip().split("\n\n")[0].split())


def _nested(section: type[BaseModel]) -> list[type[BaseModel]]:
    """The section classes the fields of ``section`` can hold, at any depth of types."""
    found: list[type[BaseModel]] = []

    def walk(annotation: Any) -> None:
        if _is_section(annotation):
            found.append(annotation)
            return
        for arg in typing.get_args(annotation):
            walk(arg)

    for field in section.model_fields.values():
        walk(field.annotation)
    return found


def _block(title: str, section: type[BaseModel], summary: str = "") -> str:
    text = summary or _summary(section)
    head = f"### {title} {{#{anchor(section)}}}"
    return "\n\n".join(part for part in (head, text, section_table(section)) if part)


def config_reference() -> str:
    """The whole config reference as Markdown: the top level, ``[train]``, ``[init]``,
    ``[sweep]``, every registered data set, model, task, optimizer and schedule, and every
    nested table one of them holds, each documented once.

    Returns:
      Markdown text starting with a level-2 heading.
    """
    done: set[type[BaseModel]] = set()
    parts: list[str] = []

    def add(title: str, section: type[BaseModel], summary: str = "") -> None:
        if section not in done:
            done.add(section)
            parts.append(_block(title, section, summary))

    parts.append("## The experiment file")
    add("Top level", ExperimentConfig)
    add("`[train]`", TrainConfig)
    add("`[init]`", InitConfig)
    add("`[sweep]`", SweepConfig)
    groups = ((f"[{key}]", label, registry) for key, (label, registry, _) in SECTIONS.items())
    for table, label, registry in groups:
        parts.append(f"## `{table}`: one section per {label} {{#{table[1:-1]}}}")
        parts.append(f"`name` picks the {label}; the other fields depend on it.")
        for name, entry in registry.items():
            add(f'`name = "{name}"`', entry.config, getattr(entry, "summary", ""))
    parts.append("## `[optimizer.schedule]`: learning-rate schedules {#optimizer-schedule}")
    for name, entry in SCHEDULES.items():
        add(f'`name = "{name}"`', entry.config)
    # Tables inside sections (augmentation, LRN options, ...), found from the types.
    nested, seen = [], list(done)
    while seen:
        for inner in _nested(seen.pop()):
            if inner not in done and inner not in nested:
                nested.append(inner)
                seen.append(inner)
    if nested:
        parts.append("## Nested tables")
        for section in nested:
            add(f"`{section.__name__}`", section)
    return "\n\n".join(parts) + "\n"
