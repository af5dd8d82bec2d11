"""Reading experiment TOML files and ``--set`` overrides, with one-line errors.

Every problem becomes a :class:`ConfigError` whose lines read
``<file>: <dotted.field>: <what is wrong>``, so the CLI can print them and exit 2.
"""

import codecs
import difflib
import pathlib
import tomllib
import types
import typing
from typing import Any

import pydantic
import tomli_w

from dlcore.config.errors import ConfigError
from dlcore.config.experiment import (
    NAMED_SECTIONS,
    SECTIONS,
    ExperimentConfig,
    check_run_name,
    safe_name,
)
from dlcore.config.section import BooleanGiven, Section

__all__ = [
    "ConfigError",
    "apply_overrides",
    "load_config",
    "load_raw",
    "parse_override",
    "save_config",
    "set_path",
    "validate",
]


def parse_override(text: str) -> tuple[list[str], Any]:
    """Parses ``a.b=value``; the value is read as TOML, or taken as a bare string."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ConfigError(
            f"--set {printable(text)}", [("", "expected KEY=VALUE, e.g. train.epochs=5")]
        )
    try:
        value = tomllib.loads(f"v = {raw.strip()}")["v"]
    except (ValueError, RecursionError):  # not TOML, or TOML Python cannot hold
        value = raw.strip()  # lets `--set model.activation=tanh` work without quotes
    return key.split("."), value


def set_path(raw: dict, path: list[str], value: Any, where: str) -> None:
    """Sets ``raw[a][b]... = value`` for a dotted path, creating tables on the way."""
    table = raw
    for depth, part in enumerate(path[:-1]):
        table = table.setdefault(part, {})
        if not isinstance(table, dict):
            raise ConfigError(where, [(".".join(path[: depth + 1]), "is not a table")])
    table[path[-1]] = value


def apply_overrides(raw: dict, overrides: list[str]) -> dict[str, str]:
    """Applies ``--set`` overrides to ``raw`` in place; returns {dotted key: option text}."""
    applied = {}
    for text in overrides:
        path, value = parse_override(text)
        set_path(raw, path, value, f"--set {printable(text)}")
        applied[".".join(path)] = text
    return applied


def load_raw(path: str | pathlib.Path, overrides: list[str] = ()) -> tuple[dict, dict[str, str]]:
    """Reads a TOML file and applies overrides, without validating.

    Returns:
      The raw dict and the applied overrides ({dotted key: option text}).

    Raises:
      ConfigError: if the file is missing or not valid TOML, or an override is malformed.
    """
    path = pathlib.Path(path)
    source = str(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(source, [("", "no such file")]) from None
    except IsADirectoryError:
        raise ConfigError(source, [("", "is a directory, expected a .toml file")]) from None
    except OSError as err:
        raise ConfigError(source, [("", f"cannot read: {err.strerror or err}")]) from None
    start = len(codecs.BOM_UTF8) if data.startswith(codecs.BOM_UTF8) else 0  # allowed
    try:
        text = data[start:].decode("utf-8")
    except UnicodeDecodeError as err:
        at = start + err.start
        raise ConfigError(
            source, [("", f"not UTF-8 text (byte 0x{data[at]:02x} at offset {at})")]
        ) from None
    try:
        raw = tomllib.loads(text)
    except ValueError as err:  # TOMLDecodeError, or an integer of more than 4300 digits
        raise ConfigError(source, [("", f"invalid TOML: {printable(str(err))}")]) from None
    except RecursionError:
        raise ConfigError(
            source, [("", "invalid TOML: arrays or tables nested too deeply")]
        ) from None
    applied = apply_overrides(raw, list(overrides))
    if "name" not in raw:
        try:
            raw["name"] = check_run_name(path.stem)
        except ValueError:
            problem = (
                f"the file name {path.stem[:40]!r} is not a usable run name (only "
                "letters, digits, '-', '_' and '.'; at most 100 characters); set "
                f"name = {safe_name(path.stem)!r} in the file or with --set"
            )
            raise ConfigError(source, [("name", problem)]) from None
    return raw, applied


def printable(text: str) -> str:
    """``text`` kept on one line: line breaks and other control characters escaped as
    ``repr`` shows them (``"a\\nb"``)."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def load_config(path: str | pathlib.Path, overrides: list[str] = ()) -> ExperimentConfig:
    """Reads, overrides and validates an experiment file.

    Raises:
      ConfigError: with one line per problem, naming the file and the dotted field.
    """
    raw, applied = load_raw(path, overrides)
    return validate(raw, str(path), applied)


def validate(raw: dict, source: str, applied: dict[str, str] | None = None) -> ExperimentConfig:
    """Validates a raw dict into an ExperimentConfig or raises ConfigError."""
    # A [task] or [optimizer] table that only tunes fields keeps the default choice.
    for section, (_, _, default) in SECTIONS.items():
        if default is not None and isinstance(raw.get(section), dict):
            raw[section].setdefault("name", default)
    for table, section in NAMED_SECTIONS.items():
        default = SECTIONS[section][2]
        if default is not None and isinstance(raw.get(table), dict):
            for entry in raw[table].values():
                if isinstance(entry, dict):
                    entry.setdefault("name", default)
    try:
        return ExperimentConfig.model_validate(raw)
    except pydantic.ValidationError as err:
        problems = [_describe(e, raw) for e in err.errors()]
    problems = [
        (printable(f), printable(m + _override_note(f, applied or {}))) for f, m in problems
    ]
    raise ConfigError(source, list(dict.fromkeys(problems)))  # a union can repeat one


def _override_note(field: str, applied: dict[str, str]) -> str:
    for key, text in applied.items():
        if field == key or field.startswith((key + ".", key + "[")) or key.startswith(field + "."):
            return f" (from --set {text if len(text) <= 80 else text[:77] + '...'})"
    return ""


def save_config(cfg: ExperimentConfig, path: pathlib.Path) -> None:
    """Writes the fully resolved config (every default made explicit) as TOML."""
    path.write_text(tomli_w.dumps(cfg.model_dump(mode="json", exclude_none=True)))


def _describe(error: dict, raw: dict) -> tuple[str, str]:
    """Turns one pydantic error into (dotted field, message)."""
    loc, model = _strip_union_tags(error["loc"], raw)
    field = _dotted(loc)
    kind = error["type"]
    ctx = error.get("ctx", {})
    if kind == "extra_forbidden":
        valid = list(model.model_fields) if model else []
        near = difflib.get_close_matches(str(loc[-1]), valid, n=1, cutoff=0.6)
        hint = f"; did you mean '{near[0]}'?" if near else f"; valid keys: {', '.join(valid)}"
        return field, f"unknown key{hint}"
    if kind in ("union_tag_invalid", "union_tag_not_found"):
        what, registry, _ = SECTIONS[NAMED_SECTIONS.get(loc[0], loc[0])]
        valid = ", ".join(sorted(registry))
        if kind == "union_tag_not_found":
            return f"{field}.name", f"missing; name the {what}, one of: {valid}"
        return f"{field}.name", f"unknown {what} {ctx.get('tag')!r}; valid: {valid}"
    if kind == "missing":
        return field, "missing required field"
    if isinstance(error.get("input"), BooleanGiven):
        number = "an integer" if kind.startswith("int") else "a number"
        return field, f"expected {number}, not a boolean (got {error['input']!r})"
    message = error["msg"].removeprefix("Value error, ")
    if kind != "value_error" and "input" in error and not isinstance(error["input"], dict):
        message += f" (got {_shown(error['input'])})"
    return field, message


def _shown(value: Any) -> str:
    """A short ``repr`` of a rejected value."""
    try:
        text = repr(value)
    except ValueError:  # an integer of more than 4300 digits
        return "an integer too long to print"
    return text if len(text) <= 60 else text[:57] + "..."


def _strip_union_tags(loc: tuple, raw: dict) -> tuple[tuple, type[Section] | None]:
    """Drops the discriminator tags pydantic puts in error locations, and returns the
    section class that owns the last element (for did-you-mean suggestions)."""
    out: list = []
    model: type[Section] | None = ExperimentConfig
    owner = model
    node: Any = raw
    i = 0
    while i < len(loc):
        part = loc[i]
        out.append(part)
        owner = model
        node = node.get(part) if isinstance(node, dict) else None
        if len(out) == 1 and part in NAMED_SECTIONS and i + 1 < len(loc):
            out.append(loc[i + 1])  # the entry's own name: [models.generator]
            i += 1
            part = NAMED_SECTIONS[part]
        if len(out) <= 2 and part in SECTIONS and (len(out) == 1 or out[0] in NAMED_SECTIONS):
            registry = SECTIONS[part][1]
            if i + 1 < len(loc) and loc[i + 1] in registry:
                model = registry[loc[i + 1]].config
                i += 1  # skip the tag
            else:
                model = None
        elif model is not None and isinstance(part, str) and part in model.model_fields:
            annotation = model.model_fields[part].annotation
            members = _tagged_members(annotation)
            element = _listed_section(annotation)
            if i + 1 < len(loc) and loc[i + 1] in members:  # a nested union, e.g. a schedule
                model = members[loc[i + 1]]
                i += 1  # skip the tag
            elif element is not None and i + 1 < len(loc) and isinstance(loc[i + 1], int):
                out.append(loc[i + 1])  # an entry of a list of sections: model.layers[0]
                model = element
                i += 1
            else:
                model = (
                    annotation
                    if isinstance(annotation, type) and issubclass(annotation, Section)
                    else None
                )
        else:
            model = None
        i += 1
    return tuple(out), owner


def _listed_section(annotation: Any) -> type[Section] | None:
    """The section of ``list[S]`` / ``tuple[S, ...]`` (optionally ``| None``), else None."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        inner = [a for a in typing.get_args(annotation) if a is not type(None)]
        annotation = inner[0] if len(inner) == 1 else None
    if typing.get_origin(annotation) not in (list, tuple):
        return None
    args = typing.get_args(annotation)
    element = args[0] if args else None
    return element if isinstance(element, type) and issubclass(element, Section) else None


def _tagged_members(annotation: Any) -> dict[str, type[Section]]:
    """{name: section} for a union of sections told apart by their ``name``, else {}."""
    if typing.get_origin(annotation) not in (typing.Union, types.UnionType):
        return {}
    return {
        member.model_fields["name"].default: member
        for member in typing.get_args(annotation)
        if isinstance(member, type)
        and issubclass(member, Section)
        and "name" in member.model_fields
    }


def _dotted(loc: tuple) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text
