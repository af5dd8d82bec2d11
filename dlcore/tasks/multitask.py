"""Multi-task classification: one shared-trunk model, one head and one loss per target.

The data's targets are integer columns ``y [B, K]`` named by ``Dataset.info["targets"]``
(e.g. a digit's class and its parity); the model returns a dict of logits keyed by the same
names (``dlcore.models.MultiHeadMLP``); the objective is L = sum_k alpha_k CE_k.
"""

from collections.abc import Mapping

import flax.linen as nn
import jax
import optax

from dlcore.losses import MultiTaskLoss, softmax_cross_entropy
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
