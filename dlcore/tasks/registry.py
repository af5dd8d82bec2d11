"""Task registry: ``[task] name = ...`` -> (config section, builder)."""

from collections.abc import Callable
from typing import Literal, NamedTuple

import flax.linen as nn
import optax
from pydantic import Field, model_validator

from dlcore.config_base import Section
from dlcore.data import Dataset
from dlcore.regularizers import make_penalty
from dlcore.tasks.base import Task
from dlcore.tasks.embedding import embedding
from dlcore.tasks.multitask import multitask_classification
from dlcore.tasks.perceptron import PerceptronTask
from dlcore.tasks.sequence import TaggingTask
from dlcore.tasks.supervised import (
    CLASSIFICATION_LOSSES,
    REGRESSION_LOSSES,
    binary_classification,
    classification,
    regression,
)
from dlcore.tasks.tbptt import TruncatedBPTTTask


class _Penalized(Section):
    penalty: Literal["none", "l2", "l1", "elastic_net"] = Field(
        "none", description="weight penalty added to the loss (biases and norms excluded)"
    )
    penalty_strength: float = Field(0.0, ge=0.0, description="lambda of the penalty")
    elastic_net_beta: float = Field(1.0, ge=0.0, description="L2 weight inside elastic net")

    @model_validator(mode="after")
    def _strength_needs_penalty(self):
        if self.penalty == "none" and self.penalty_strength > 0:
            raise ValueError("penalty_strength is set but penalty = 'none'; name the penalty")
        return self

    def make_penalty(self):
        if self.penalty == "none" or self.penalty_strength == 0:
            return None
        return make_penalty(self.penalty, self.penalty_strength, beta=self.elastic_net_beta)


class ClassificationConfig(_Penalized):
    """K-way classification on integer labels; reports loss, accuracy and zero-one loss."""

    name: Literal["classification"] = "classification"
    loss: Literal[tuple(CLASSIFICATION_LOSSES)] = "softmax_cross_entropy"  # type: ignore[valid-type]


class BinaryClassificationConfig(_Penalized):
    """Two classes scored by one output s (label 1 when s >= 0): logistic regression with
    ``binary_cross_entropy``, a linear SVM with ``binary_hinge``."""

    name: Literal["binary_classification"] = "binary_classification"
    loss: Literal["binary_cross_entropy", "binary_hinge"] = "binary_cross_entropy"


class RegressionConfig(_Penalized):
    """Real-valued targets; reports loss, MSE and MAE."""

    name: Literal["regression"] = "regression"
    loss: Literal[tuple(REGRESSION_LOSSES)] = "squared_error"  # type: ignore[valid-type]


class MultitaskConfig(_Penalized):
    """One softmax cross-entropy per target of the data, L = sum_k weights[k] CE_k, over a
    shared-trunk multi-head model (``[model] name = "multihead_mlp"``)."""

    name: Literal["multitask"] = "multitask"
    weights: dict[str, float] = Field(
        default_factory=dict, description="alpha per target name (default 1.0 each)"
    )


class EmbeddingConfig(_Penalized):
    """Metric learning: the model outputs ``embedding_dim`` numbers per example and is
    trained with in-batch ``contrastive`` pairs or ``triplet`` triplets (see
    ``dlcore.tasks.embedding``); reports loss and in-batch 1-NN accuracy."""

    name: Literal["embedding"] = "embedding"
    loss: Literal["contrastive", "triplet"] = "triplet"
    margin: float = Field(0.2, gt=0.0)
    embedding_dim: int = Field(16, ge=1)


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
    out_features: Callable[[Section, Dataset], int] | None  # (task cfg, data) -> width
    summary: str


def _classification(cfg, model, optimizer, data):
    return classification(model, optimizer, loss=cfg.loss, penalty=cfg.make_penalty())


def _binary(cfg, model, optimizer, data):
    return binary_classification(model, optimizer, loss=cfg.loss, penalty=cfg.make_penalty())


def _regression(cfg, model, optimizer, data):
    return regression(model, optimizer, loss=cfg.loss, penalty=cfg.make_penalty())


def _multitask(cfg, model, optimizer, data):
    targets = list(data.info.get("targets", {}))
    unknown = sorted(set(cfg.weights) - set(targets))
    if unknown:
        raise ValueError(
            f"weights name targets {unknown} that the data does not have; its targets are {targets}"
        )
    weights = {t: cfg.weights.get(t, 1.0) for t in targets}
    return multitask_classification(model, optimizer, targets, weights, cfg.make_penalty())


def _embedding(cfg, model, optimizer, data):
    return embedding(model, optimizer, cfg.loss, cfg.margin, cfg.make_penalty())


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
        lambda c, d: d.num_classes,
        "K-way classification (cross-entropy, hinge or sparsemax)",
    ),
    "binary_classification": TaskEntry(
        BinaryClassificationConfig,
        _binary,
        True,
        lambda c, d: 1,
        "two classes, one score (logistic, SVM)",
    ),
    "regression": TaskEntry(
        RegressionConfig,
        _regression,
        True,
        lambda c, d: int(d.train.y[0].size),
        "real targets (squared error...)",
    ),
    "multitask": TaskEntry(
        MultitaskConfig,
        _multitask,
        True,
        lambda c, d: d.info.get("targets", {}),
        "several classification targets, one head and loss each",
    ),
    "embedding": TaskEntry(
        EmbeddingConfig,
        _embedding,
        True,
        lambda c, d: c.embedding_dim,
        "metric learning with contrastive or triplet loss (in-batch mining)",
    ),
    "perceptron": TaskEntry(
        PerceptronConfig,
        _perceptron,
        False,
        None,
        "online perceptron; its update rule replaces the optimizer",
    ),
    "tagging": TaskEntry(
        TaggingConfig,
        _tagging,
        True,
        lambda c, d: d.num_classes,
        "per-step classification (tagging, generation, LM)",
    ),
    "truncated_bptt": TaskEntry(
        TruncatedBPTTConfig,
        _truncated_bptt,
        True,
        lambda c, d: d.num_classes,
        "per-step classification over parallel streams, state carried across chunks",
    ),
}
