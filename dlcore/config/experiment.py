"""The experiment schema: one TOML file validated into typed, immutable sections.

Every section is a pydantic model that forbids unknown keys. Sections that name a choice
(``[data]``, ``[model]``, ``[task]``, ``[optimizer]``, and the named ``[models.*]`` and
``[optimizers.*]`` tables) are discriminated unions derived from the registries in
:data:`SECTIONS`, so adding a registry entry is all it takes to make a name selectable, and
a bad name in any of them is the same one-line config error.
"""

import re
from typing import Annotated, Union

from pydantic import AfterValidator, Field

from dlcore.config.init_from import InitConfig
from dlcore.config.section import Section, Seed
from dlcore.config.sweep_space import SweepConfig
from dlcore.data.registry import DATASETS
from dlcore.engine.train_config import TrainConfig
from dlcore.models.registry import MODELS
from dlcore.optim.recipes import OPTIMIZERS, AdamConfig
from dlcore.tasks.registry import TASKS
from dlcore.tasks.supervised import ClassificationConfig

# section -> (what its names are called in errors, registry, default name or None)
SECTIONS = {
    "data": ("data set", DATASETS, None),
    "model": ("model", MODELS, None),
    "task": ("task", TASKS, "classification"),
    "optimizer": ("optimizer", OPTIMIZERS, "adam"),
}
# tables of named sections -> the section kind each entry is
NAMED_SECTIONS = {"models": "model", "optimizers": "optimizer"}


def _union(section: str) -> object:
    members = tuple(entry.config for entry in SECTIONS[section][1].values())
    return Annotated[Union[members], Field(discriminator="name")]  # noqa: UP007


DataConfig = _union("data")
ModelConfig = _union("model")
OptimizerConfig = _union("optimizer")
TaskConfig = _union("task")


NAME_LIMIT = 100
_NAME_CHARS = re.compile(r"[A-Za-z0-9._-]+")


def check_run_name(name: str) -> str:
    """Returns ``name`` if it is a safe run-directory name, else raises ValueError.

    The name becomes one path component, ``runs/<name>-<time>``, so it may only hold ASCII
    letters, digits, ``-``, ``_`` and ``.``, is not ``.`` or ``..`` and has at most 100
    characters: ``"../../x"``, ``"a/b"`` or an absolute path cannot leave ``runs/``.

    Example:
      >>> check_run_name("digits_mlp-v2")
      'digits_mlp-v2'
    """
    if len(name) > NAME_LIMIT:
        raise ValueError(f"must have at most {NAME_LIMIT} characters; got {len(name)}")
    if not _NAME_CHARS.fullmatch(name) or name in (".", ".."):
        shown = name if len(name) <= 40 else name[:40] + "..."
        raise ValueError(
            "must be one path component of letters, digits, '-', '_' and '.' (not '.' or "
            f"'..'), e.g. {safe_name(name)!r}; got {shown!r}"
        )
    return name


def safe_name(text: str) -> str:
    """A safe run name close to ``text``: other characters become ``_``."""
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", text)[:NAME_LIMIT].strip(".")
    return name or "experiment"


class ExperimentConfig(Section):
    """A whole experiment: one TOML file."""

    name: Annotated[str, AfterValidator(check_run_name)] = Field(
        "experiment", description="run directories are runs/<name>-<time>"
    )
    seed: Seed = Field(0, description="init, dropout and batch order")
    data: DataConfig  # type: ignore[valid-type]
    model: ModelConfig | None = None  # type: ignore[valid-type]
    models: dict[str, ModelConfig] = Field(  # type: ignore[valid-type]
        default_factory=dict, description="named models of tasks with several ([models.NAME])"
    )
    task: TaskConfig = Field(default_factory=ClassificationConfig)  # type: ignore[valid-type]
    optimizer: OptimizerConfig = Field(default_factory=AdamConfig)  # type: ignore[valid-type]
    optimizers: dict[str, OptimizerConfig] = Field(  # type: ignore[valid-type]
        default_factory=dict, description="per-chain overrides of [optimizer] ([optimizers.NAME])"
    )
    train: TrainConfig = Field(default_factory=TrainConfig)
    sweep: SweepConfig | None = Field(None, description="search space for `dlcore sweep`")
    init: InitConfig | None = Field(
        None, description="start from another run's parameters ([init], transfer learning)"
    )
