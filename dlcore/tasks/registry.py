"""Task registry: ``[task] name = ...`` -> (config section, builder)."""

from collections.abc import Callable
from typing import Literal, NamedTuple

import flax.linen as nn
import optax

from dlcore.config_base import Section
from dlcore.data import Dataset
from dlcore.tasks.base import Task
from dlcore.tasks.perceptron import PerceptronTask
from dlcore.tasks.supervised import classification, regression


class ClassificationConfig(Section):
    """Softmax cross-entropy on integer labels; reports loss and accuracy."""

    name: Literal["classification"] = "classification"


class RegressionConfig(Section):
    """Half squared error on real targets; reports loss and MSE."""

    name: Literal["regression"] = "regression"


class PerceptronConfig(Section):
    """Rosenblatt's perceptron (binary, or multi-class with a joint feature map)."""

    name: Literal["perceptron"] = "perceptron"
    multiclass: bool = False
    bias: bool = False


class TaskEntry(NamedTuple):
    config: type[Section]
    # (task config, model or None, optax chain, data) -> Task
    build: Callable[[Section, nn.Module | None, optax.GradientTransformation, Dataset], Task]
    needs_model: bool
    summary: str


def _classification(cfg, model, optimizer, data):
    return classification(model, optimizer)


def _regression(cfg, model, optimizer, data):
    return regression(model, optimizer)


def _perceptron(cfg, model, optimizer, data):
    return PerceptronTask(data.num_classes, multiclass=cfg.multiclass, bias=cfg.bias)


TASKS: dict[str, TaskEntry] = {
    "classification": TaskEntry(
        ClassificationConfig,
        _classification,
        True,
        "supervised classification (softmax cross-entropy)",
    ),
    "regression": TaskEntry(
        RegressionConfig, _regression, True, "supervised regression (squared error)"
    ),
    "perceptron": TaskEntry(
        PerceptronConfig,
        _perceptron,
        False,
        "online perceptron; its update rule replaces the optimizer",
    ),
}
