"""Experiment configs: TOML files validated into typed, immutable objects.

Every section is a pydantic model that forbids unknown keys. Sections whose contents
depend on a ``name`` (data set, model, optimizer) are discriminated unions built from
the registries, so adding a registry entry is all it takes to make a name selectable.
"""

from typing import Annotated, Literal, Union

from pydantic import Field, PositiveInt

from dlcore.config_base import Section
from dlcore.data import DATASETS
from dlcore.models import MODELS
from dlcore.optim import OPTIMIZERS, AdamConfig
from dlcore.sweep_space import SweepConfig
from dlcore.tasks.registry import TASKS, ClassificationConfig

DEFAULT_OPTIMIZER = "adam"
DEFAULT_TASK = "classification"


def _union(registry) -> object:
    members = tuple(entry.config for entry in registry.values())
    return Annotated[Union[members], Field(discriminator="name")]  # noqa: UP007


DataConfig = _union(DATASETS)
ModelConfig = _union(MODELS)
OptimizerConfig = _union(OPTIMIZERS)
TaskConfig = _union(TASKS)


class TrainConfig(Section):
    """How the generic loop runs.

    ``mode = "scan"`` compiles a whole epoch as one ``lax.scan`` over on-device shuffled
    batches (data must fit on the device); ``"step"`` runs one compiled step per batch.
    Both give the same results.
    """

    epochs: PositiveInt = 10
    batch_size: PositiveInt = 32
    mode: Literal["step", "scan"] = "scan"
    log_every: PositiveInt = Field(50, description="steps per logged training window")
    eval_every: PositiveInt = Field(1, description="epochs between validation passes")
    checkpoint_every: PositiveInt | None = Field(
        None,
        description="steps between checkpoints (step mode); each validation pass, "
        "the end of training and a SIGINT/SIGTERM stop also save one",
    )
    keep_checkpoints: PositiveInt = Field(3, description="latest checkpoints kept")
    best_metric: str | None = Field(
        None, description="validation metric that picks the best checkpoint (task default)"
    )
    eval_batch_size: PositiveInt = 1024
    early_stopping_patience: PositiveInt | None = Field(
        None, description="stop after this many validation passes without improvement"
    )
    restore_best: bool = Field(
        True, description="after early stopping, continue with the best checkpoint's state"
    )


class ExperimentConfig(Section):
    """A whole experiment: one TOML file."""

    name: str = Field("experiment", min_length=1)
    seed: int = 0
    data: DataConfig  # type: ignore[valid-type]
    model: ModelConfig | None = None  # type: ignore[valid-type]
    task: TaskConfig = Field(default_factory=ClassificationConfig)  # type: ignore[valid-type]
    optimizer: OptimizerConfig = Field(default_factory=AdamConfig)  # type: ignore[valid-type]
    train: TrainConfig = Field(default_factory=TrainConfig)
    sweep: SweepConfig | None = Field(None, description="search space for `dlcore sweep`")


# Sections that are unions over a registry, and what their names are called in errors.
UNION_SECTIONS = {
    "data": ("data set", DATASETS),
    "model": ("model", MODELS),
    "optimizer": ("optimizer", OPTIMIZERS),
}
