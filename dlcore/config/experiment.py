"""The experiment schema: one TOML file validated into typed, immutable sections.

Every section is a pydantic model that forbids unknown keys. Sections that name a choice
(``[data]``, ``[model]``, ``[task]``, ``[optimizer]``, and the named ``[models.*]`` and
``[optimizers.*]`` tables) are discriminated unions derived from the registries in
:data:`SECTIONS`, so adding a registry entry is all it takes to make a name selectable, and
a bad name in any of them is the same one-line config error.
"""

from typing import Annotated, Union

from pydantic import Field

from dlcore.config.section import Section
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


class ExperimentConfig(Section):
    """A whole experiment: one TOML file."""

    name: str = Field("experiment", min_length=1)
    seed: int = 0
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
