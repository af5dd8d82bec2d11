"""Multi-task classification: one shared-trunk model, one head and one loss per target.

The data's targets are integer columns ``y [B, K]`` named by ``Dataset.info["targets"]``
(e.g. a digit's class and its parity); the model returns a dict of logits keyed by the same
names (``dlcore.models.MultiHeadMLP``); the objective is L = sum_k alpha_k CE_k.
"""

from collections.abc import Mapping
from typing import Literal

import flax.linen as nn
import jax
import optax
from pydantic import Field

from dlcore.data.needs import Need
from dlcore.losses import MultiTaskLoss, softmax_cross_entropy
from dlcore.regularizers import PenaltySection
from dlcore.tasks.context import BuildContext, TaskSection
from dlcore.tasks.supervised import Penalty, SupervisedTask, accuracy


def multitask_classification(
    model: nn.Module,
    optimizer: optax.GradientTransformation,
    targets: list[str],
    weights: Mapping[str, float],
    penalty: Penalty | None = None,
) -> SupervisedTask:
    """Reports the combined ``loss`` and ``<target>_accuracy`` for every target.

    Args:
      model: returns ``{target: logits [B, K_target]}``.
      optimizer: the optax chain.
      targets: target names in the column order of ``y``.
      weights: alpha of each target.
      penalty: optional weight penalty.
    """
    combined = MultiTaskLoss({t: softmax_cross_entropy for t in targets}, dict(weights))

    def columns(y_BxK: jax.Array) -> dict[str, jax.Array]:
        return {t: y_BxK[:, i] for i, t in enumerate(targets)}

    def head_accuracy(name):
        return lambda preds, y: accuracy(preds[name], columns(y)[name])

    metrics = {f"{t}_accuracy": head_accuracy(t) for t in targets}
    return SupervisedTask(
        model=model,
        loss=lambda preds, y: combined(preds, columns(y)),
        metrics=metrics,
        optimizer=optimizer,
        metric_modes={"loss": "min", **{m: "max" for m in metrics}},
        default_metric=f"{targets[0]}_accuracy",
        penalty=penalty,
    )


class MultitaskConfig(PenaltySection, TaskSection):
    """One softmax cross-entropy per target of the data, L = sum_k weights[k] CE_k, over a
    shared-trunk multi-head model (``[model] name = "multihead_mlp"``)."""

    name: Literal["multitask"] = "multitask"
    weights: dict[str, float] = Field(
        default_factory=dict, description="alpha per target name (default 1.0 each)"
    )

    def needs(self) -> tuple[Need, ...]:
        return (Need("y", ("labels",), "one integer label column per target [K]", (1,)),)

    def build(self, ctx: BuildContext) -> SupervisedTask:
        heads = ctx.data.info.get("targets", {})
        if not heads:
            raise ValueError(f"{ctx.data.name} names no targets; multitask needs several")
        targets = list(heads)
        unknown = sorted(set(self.weights) - set(targets))
        if unknown:
            raise ValueError(
                f"weights name targets {unknown} that the data does not have; "
                f"its targets are {targets}"
            )
        weights = {t: self.weights.get(t, 1.0) for t in targets}
        model = ctx.model(heads)
        return multitask_classification(
            model, ctx.optimizer(), targets, weights, self.make_penalty()
        )
