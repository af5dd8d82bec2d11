"""Task registry: ``[task] name = ...`` -> (config section, builder)."""

from collections.abc import Callable
from typing import Literal, NamedTuple

import flax.linen as nn
import optax
from pydantic import Field

from dlcore.config_base import Section
from dlcore.data import Dataset
from dlcore.tasks.base import Task
from dlcore.tasks.perceptron import PerceptronTask
from dlcore.tasks.sequence import TaggingTask
from dlcore.tasks.supervised import classification, regression
from dlcore.tasks.tbptt import TruncatedBPTTTask


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


class TaggingConfig(Section):
    """Per-step softmax cross-entropy on [T] integer targets (-1 = padding, not counted).

    Many-to-many tagging, one-to-many generation, or a language model on shuffled windows.
    """

    name: Literal["tagging"] = "tagging"
    bits_metric: str | None = Field(
        None, description="also report the loss in bits under this name, e.g. bits_per_char"
    )


class TruncatedBPTTConfig(Section):
    """Truncated BPTT: the training windows are read as train.batch_size parallel streams,
    one k-step chunk per update, the recurrent state carried across chunks (and checkpointed).
    """

    name: Literal["truncated_bptt"] = "truncated_bptt"
    bits_metric: str | None = "bits_per_char"


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


def _tagging(cfg, model, optimizer, data):
    default = cfg.bits_metric or "accuracy"
    return TaggingTask(model, optimizer, bits_metric=cfg.bits_metric, default_metric=default)


def _truncated_bptt(cfg, model, optimizer, data):
    default = cfg.bits_metric or "loss"
    return TruncatedBPTTTask(
        model, optimizer, len(data.train), bits_metric=cfg.bits_metric, default_metric=default
    )


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
    "tagging": TaskEntry(
        TaggingConfig, _tagging, True, "per-step classification (tagging, generation, LM)"
    ),
    "truncated_bptt": TaskEntry(
        TruncatedBPTTConfig,
        _truncated_bptt,
        True,
        "per-step classification over parallel streams, state carried across chunks",
    ),
}
