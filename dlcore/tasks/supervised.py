"""Supervised learning as a task: (model, per-example loss, per-example metrics, optax chain)."""

import dataclasses
import math
from collections.abc import Callable, Mapping
from typing import Literal

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
from pydantic import Field

from dlcore.config.errors import FieldError
from dlcore.config.section import one_of
from dlcore.data.augment import Augment, AugmentSection, identity
from dlcore.data.needs import Need
from dlcore.engine.state import TrainState, apply_gradients
from dlcore.engine.task import Batch, Metrics, Mode, TaskDefaults
from dlcore.losses import (
    ELEMENT_REDUCTIONS,
    TASK_LOSSES,
    LossOptionError,
    binary_cross_entropy,
    binary_hinge,
    bind_loss,
    mean_absolute_error,
    mean_squared_error,
    reduce_loss,
    zero_one_loss,
)
from dlcore.losses.classification import CLASS_REDUCTIONS
from dlcore.regularizers import PenaltySection, check_penalty
from dlcore.tasks.base import apply_model, init_state
from dlcore.tasks.context import BuildContext, TaskSection

PerExample = Callable[[jax.Array, jax.Array], jax.Array]  # (pred, target) -> [B]
Penalty = Callable[[object], jax.Array]  # params -> scalar
LABELS = Need("y", ("labels",), "integer class labels, one per example", (0,))
TARGETS = Need("y", ("targets",), "real-valued targets (regression)")


def accuracy(logits_BxK: jax.Array, labels_B: jax.Array) -> jax.Array:
    """1.0 where the arg-max class equals the label, else 0.0; shape ``[B]``."""
    return (jnp.argmax(logits_BxK, axis=-1) == labels_B).astype(jnp.float32)


@dataclasses.dataclass(frozen=True)
class SupervisedTask(TaskDefaults):
    """Fits ``model(x) -> pred`` to targets ``y`` by minimizing mean ``loss(pred, y)``
    plus an optional weight ``penalty(params)``.

    Batches are dicts with ``x``, ``y`` and optionally ``mask`` (``[B]``, 1 for real
    examples, 0 for padding). Dropout keys come from ``state.step_key("dropout")``, and
    training batches' ``x`` pass through ``augment`` with ``state.step_key("augment")``.
    The reported ``loss`` is the data loss (the penalty is not included).

    Attributes:
      model: a Flax linen module called as ``model(x, train=bool)``.
      loss: per-example loss ``(pred, y) -> [B]``; its weighted mean is minimized.
      metrics: per-example metrics ``(pred, y) -> [B]`` reported as means (with "loss").
      optimizer: the optax chain.
      metric_modes: whether each metric is better large or small (``loss`` is added).
      default_metric: validation metric that picks the best checkpoint.
      penalty: optional ``params -> lambda R(W)`` added to the objective.
      augment: ``(key, x, None) -> (x, None)`` applied to training inputs only
        (``dlcore.data.augment``); the identity by default.
    """

    model: nn.Module
    loss: PerExample
    metrics: Mapping[str, PerExample]
    optimizer: optax.GradientTransformation
    metric_modes: dict[str, Mode]
    default_metric: str
    penalty: Penalty | None = None
    augment: Augment = identity

    def init(self, rng: jax.Array, batch: Batch) -> TrainState:
        state = init_state(self.model, self.optimizer, rng, batch["x"])
        check_penalty(self.penalty, state.params)  # per-layer globs that match no weight
        return state

    def _forward(self, state: TrainState, params, x: jax.Array, train: bool):
        key = state.step_key("dropout") if train else None
        return apply_model(self.model, params, state.model_state, x, key)

    def _metric_sums(self, pred, batch: Batch, per_example_loss: jax.Array) -> Metrics:
        mask = batch.get("mask", jnp.ones_like(per_example_loss))
        sums = {"loss": jnp.sum(per_example_loss * mask), "count": jnp.sum(mask)}
        for name, fn in self.metrics.items():
            sums[name] = jnp.sum(fn(pred, batch["y"]) * mask)
        return sums

    def train_step(self, state: TrainState, batch: Batch) -> tuple[TrainState, Metrics]:
        x, _ = self.augment(state.step_key("augment"), batch["x"], None)

        def objective(params):
            pred, model_state = self._forward(state, params, x, train=True)
            per_example = self.loss(pred, batch["y"])
            total = reduce_loss(per_example, batch.get("mask"))
            if self.penalty is not None:
                total = total + self.penalty(params)
            return total, (pred, model_state, per_example)

        grads, (pred, model_state, per_example) = jax.grad(objective, has_aux=True)(state.params)
        new_state = apply_gradients(state, self.optimizer, grads)
        new_state = new_state.replace(step=state.step + 1, model_state=model_state)
        return new_state, self._metric_sums(pred, batch, per_example)

    def eval_step(self, state: TrainState, batch: Batch) -> Metrics:
        pred, _ = self._forward(state, state.params, batch["x"], train=False)
        return self._metric_sums(pred, batch, self.loss(pred, batch["y"]))


def classification(
    model: nn.Module,
    optimizer: optax.GradientTransformation,
    loss: str = "softmax_cross_entropy",
    penalty: Penalty | None = None,
    augment: Augment = identity,
    loss_options: Mapping[str, object] | None = None,
) -> SupervisedTask:
    """K-way classification on integer labels, reporting loss, accuracy and zero-one loss.

    ``loss`` is ``softmax_cross_entropy``, ``multiclass_hinge`` (a multi-class linear SVM
    with a linear model and an L2 penalty) or ``sparsemax_loss``; ``augment`` transforms
    training inputs (see :class:`SupervisedTask`); ``loss_options`` are keyword options of
    the loss (``{"label_smoothing": 0.1}``; None values keep the loss's default).
    """
    return SupervisedTask(
        model=model,
        loss=bind_loss(loss, loss_options or {}),
        metrics={"accuracy": accuracy, "zero_one": zero_one_loss},
        optimizer=optimizer,
        metric_modes={"loss": "min", "accuracy": "max", "zero_one": "min"},
        default_metric="accuracy",
        penalty=penalty,
        augment=augment,
    )


def _one_score(pred_Bx1: jax.Array) -> jax.Array:
    if pred_Bx1.ndim != 2 or pred_Bx1.shape[1] != 1:
        raise ValueError(
            f"binary classification needs one output per example, [B, 1]; got "
            f"{tuple(pred_Bx1.shape)}"
        )
    return pred_Bx1[:, 0]


def binary_classification(
    model: nn.Module,
    optimizer: optax.GradientTransformation,
    loss: str = "binary_cross_entropy",
    penalty: Penalty | None = None,
) -> SupervisedTask:
    """Labels {0, 1} scored by one output s: class 1 when s >= 0.

    ``binary_cross_entropy`` is logistic regression (sigmoid cross-entropy on s);
    ``binary_hinge`` is the SVM hinge max(0, 1 - y s) with y = 2 label - 1.
    """
    if loss == "binary_cross_entropy":

        def per_example(pred, y):
            return binary_cross_entropy(_one_score(pred), y.astype(pred.dtype))
    elif loss == "binary_hinge":

        def per_example(pred, y):
            return binary_hinge(_one_score(pred), 2.0 * y.astype(pred.dtype) - 1.0)
    else:
        raise ValueError(
            f"binary loss must be 'binary_cross_entropy' or 'binary_hinge'; got {loss!r}"
        )

    def binary_accuracy(pred, y):
        return ((_one_score(pred) >= 0).astype(jnp.int32) == y).astype(jnp.float32)

    return SupervisedTask(
        model=model,
        loss=per_example,
        metrics={"accuracy": binary_accuracy, "zero_one": lambda p, y: 1.0 - binary_accuracy(p, y)},
        optimizer=optimizer,
        metric_modes={"loss": "min", "accuracy": "max", "zero_one": "min"},
        default_metric="accuracy",
        penalty=penalty,
    )


def regression(
    model: nn.Module,
    optimizer: optax.GradientTransformation,
    loss: str = "squared_error",
    penalty: Penalty | None = None,
    loss_options: Mapping[str, object] | None = None,
) -> SupervisedTask:
    """Real-valued targets, reporting the loss, MSE and MAE; ``loss_options`` as in
    :func:`classification` (``{"delta": 2.0}`` for ``huber``)."""
    return SupervisedTask(
        model=model,
        loss=bind_loss(loss, loss_options or {}),
        metrics={"mse": mean_squared_error, "mae": mean_absolute_error},
        optimizer=optimizer,
        metric_modes={"loss": "min", "mse": "min", "mae": "min"},
        default_metric="mse",
        penalty=penalty,
    )


def checked_loss_options(section, fields: tuple[str, ...]) -> dict[str, object]:
    """The section's loss options by name, refused (naming the field) where the selected
    ``section.loss`` does not take one that is set."""
    options = {field: getattr(section, field) for field in fields}
    try:
        bind_loss(section.loss, options)
    except LossOptionError as err:
        raise FieldError(f"task.{err.option}", str(err)) from None
    return options


class ClassificationConfig(PenaltySection, TaskSection):
    """K-way classification on integer labels; reports loss, accuracy and zero-one loss.

    Loss options (unset: the loss's default) apply only to the losses that take them:
    ``label_smoothing`` to softmax_cross_entropy, ``class_reduction`` to multiclass_hinge."""

    name: Literal["classification"] = "classification"
    loss: one_of(TASK_LOSSES["classification"], "classification loss") = "softmax_cross_entropy"
    label_smoothing: float | None = Field(
        None, ge=0.0, lt=1.0, description="targets (1 - eps) y + eps/K (PyTorch's formula)"
    )
    class_reduction: one_of(CLASS_REDUCTIONS, "class_reduction") | None = Field(
        None, description="multiclass_hinge: 'sum' over classes, or 'mean' (/K, PyTorch)"
    )
    augment: AugmentSection = Field(
        default_factory=AugmentSection, description="training-time image augmentation"
    )

    def needs(self) -> tuple[Need, ...]:
        return (LABELS,)

    def build(self, ctx: BuildContext) -> SupervisedTask:
        self.augment.check(ctx.data)
        model = ctx.model(ctx.data.num_classes)
        options = checked_loss_options(self, ("label_smoothing", "class_reduction"))
        penalty = self.make_penalty()
        return classification(
            model, ctx.optimizer(), self.loss, penalty, self.augment.make(), options
        )


class BinaryClassificationConfig(PenaltySection, TaskSection):
    """Two classes scored by one output s (label 1 when s >= 0): logistic regression with
    ``binary_cross_entropy``, a linear SVM with ``binary_hinge``."""

    name: Literal["binary_classification"] = "binary_classification"
    loss: one_of(TASK_LOSSES["binary_classification"], "binary loss") = "binary_cross_entropy"

    def needs(self) -> tuple[Need, ...]:
        return (LABELS,)

    def build(self, ctx: BuildContext) -> SupervisedTask:
        if ctx.data.num_classes != 2:
            raise ValueError(
                f"{ctx.data.name} has {ctx.data.num_classes} classes; binary_classification "
                "needs 2 (use classification)"
            )
        model = ctx.model(1)
        return binary_classification(model, ctx.optimizer(), self.loss, self.make_penalty())


class RegressionConfig(PenaltySection, TaskSection):
    """Real-valued targets; reports loss, MSE and MAE. ``delta`` applies to huber, ``beta``
    to smooth_l1 and ``element_reduction`` to both (unset: the loss's default)."""

    name: Literal["regression"] = "regression"
    loss: one_of(TASK_LOSSES["regression"], "regression loss") = "squared_error"
    delta: float | None = Field(None, gt=0.0, description="huber: quadratic for |r| <= delta")
    beta: float | None = Field(None, gt=0.0, description="smooth_l1: quadratic for |r| < beta")
    element_reduction: one_of(ELEMENT_REDUCTIONS, "element_reduction") | None = Field(
        None, description="'sum' over target elements (dlcore) or 'mean' (PyTorch)"
    )

    def needs(self) -> tuple[Need, ...]:
        return (TARGETS,)

    def build(self, ctx: BuildContext) -> SupervisedTask:
        model = ctx.model(math.prod(ctx.data.fields["y"].shape))
        options = checked_loss_options(self, ("delta", "beta", "element_reduction"))
        return regression(model, ctx.optimizer(), self.loss, self.make_penalty(), options)
