"""Multi-label classification: every example has a set of labels, given as 0/1 indicators.

The model returns one score per label ``[B, L]``; the loss is the sparsemax loss against
q = 1_Y / |Y| (Martins & Astudillo, 2016) or one sigmoid cross-entropy per label, and each
loss predicts a label set by its own rule (``dlcore.losses.multilabel``). Reported:

    micro_f1 = 2 TP / (2 TP + FP + FN)            (TP, FP, FN summed over labels)
    macro_f1 = (1/L) sum_j 2 TP_j / (2 TP_j + FP_j + FN_j)   (0 for a label never
               predicted nor present, as scikit-learn's zero_division=0)
    hamming_loss = mean over examples and labels of [predicted_j != y_j]
    exact_match = fraction of examples whose predicted set equals Y
    set_size = mean size of the predicted set

The F1 scores are ratios of totals over a whole split (per-batch F1s would not average to
them), so the steps report per-label TP, FP and FN sums and :meth:`summarize` divides.
"""

import dataclasses
import functools
from collections.abc import Callable
from typing import Literal

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from pydantic import Field

from dlcore.config.section import one_of
from dlcore.data.needs import Need
from dlcore.engine.task import Batch, Metrics, means
from dlcore.losses.multilabel import MULTILABEL_LOSSES
from dlcore.regularizers import PenaltySection
from dlcore.tasks.context import BuildContext, TaskSection
from dlcore.tasks.supervised import Penalty, SupervisedTask

INDICATORS = Need("y", ("labels",), "0/1 indicators, one per label [L]", (1,))
_CONFUSION = ("tp", "fp", "fn")


def f1_scores(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray) -> dict[str, float]:
    """Micro and macro F1 from per-label totals ``[L]`` (a label with no true and no
    predicted example scores 0 in the macro mean, as scikit-learn's ``zero_division=0``).

    Example:
      >>> f1_scores(np.array([2.0, 0.0]), np.array([0.0, 1.0]), np.array([2.0, 0.0]))
      {'micro_f1': 0.5714285714285714, 'macro_f1': 0.3333333333333333}
    """
    tp, fp, fn = (np.asarray(a, np.float64) for a in (tp, fp, fn))
    denom = 2 * tp + fp + fn
    per_label = np.divide(2 * tp, denom, out=np.zeros_like(tp), where=denom > 0)
    total = float(np.sum(denom))
    return {
        "micro_f1": float(2 * np.sum(tp) / total) if total > 0 else 0.0,
        "macro_f1": float(np.mean(per_label)),
    }


@dataclasses.dataclass(frozen=True)
class MultilabelTask(SupervisedTask):
    """A :class:`SupervisedTask` on label sets whose metrics include micro and macro F1.

    Attributes:
      predict: ``logits [B, L] -> 0/1 predicted labels [B, L]`` (the loss's decision rule,
        with the task's threshold bound).
    """

    predict: Callable[[jax.Array], jax.Array] | None = None

    def _metric_sums(self, pred, batch: Batch, per_example_loss: jax.Array) -> Metrics:
        sums = super()._metric_sums(pred, batch, per_example_loss)
        mask_Bx1 = batch.get("mask", jnp.ones_like(per_example_loss))[:, None]
        y_BxL = batch["y"].astype(jnp.float32)
        p_BxL = self.predict(pred).astype(jnp.float32)
        sums["tp"] = jnp.sum(p_BxL * y_BxL * mask_Bx1, axis=0)
        sums["fp"] = jnp.sum(p_BxL * (1 - y_BxL) * mask_Bx1, axis=0)
        sums["fn"] = jnp.sum((1 - p_BxL) * y_BxL * mask_Bx1, axis=0)
        return sums

    def summarize(self, metric_sums: dict, training_window: bool) -> dict:
        del training_window  # every metric is a mean or a ratio of totals
        scalar = {k: v for k, v in metric_sums.items() if k not in _CONFUSION}
        return {**means(scalar), **f1_scores(*(metric_sums[k] for k in _CONFUSION))}


def multilabel_classification(
    model: nn.Module,
    optimizer: optax.GradientTransformation,
    loss: str = "sparsemax",
    penalty: Penalty | None = None,
    threshold: float | None = None,
) -> MultilabelTask:
    """Label sets as 0/1 indicators ``y [B, L]``, scored by ``model(x) -> [B, L]``.

    Args:
      model: returns one score per label.
      optimizer: the optax chain.
      loss: a key of ``dlcore.losses.multilabel.MULTILABEL_LOSSES`` (``"sparsemax"``,
        ``"sigmoid"``); it also fixes the decision rule.
      penalty: optional weight penalty.
      threshold: predict the labels whose probability (sparsemax(z)_j, or sigmoid(z_j))
        exceeds it; None keeps the rule's default (0: the support of sparsemax; 1/2).
    """
    chosen = MULTILABEL_LOSSES[loss]
    if threshold is None:
        predict = chosen.predict
    else:
        predict = functools.partial(chosen.predict, threshold=threshold)

    def hamming_loss(logits, y):
        return jnp.mean((predict(logits) != y).astype(jnp.float32), axis=-1)

    def exact_match(logits, y):
        return jnp.all(predict(logits) == y, axis=-1).astype(jnp.float32)

    def set_size(logits, y):
        del y
        return jnp.sum(predict(logits), axis=-1).astype(jnp.float32)

    return MultilabelTask(
        model=model,
        loss=chosen.loss,
        metrics={"hamming_loss": hamming_loss, "exact_match": exact_match, "set_size": set_size},
        optimizer=optimizer,
        # set_size has no better direction; "min" only makes it a valid (if odd) choice.
        metric_modes={
            "loss": "min",
            "micro_f1": "max",
            "macro_f1": "max",
            "hamming_loss": "min",
            "exact_match": "max",
            "set_size": "min",
        },
        default_metric="micro_f1",
        penalty=penalty,
        predict=predict,
    )


class MultilabelConfig(PenaltySection, TaskSection):
    """Label sets (``y`` = 0/1 indicators ``[L]``): the sparsemax loss against 1_Y/|Y|,
    predicting the support of sparsemax, or one sigmoid cross-entropy per label, predicting
    the labels scored > 0; reports micro/macro F1, Hamming loss, exact match and the mean
    predicted set size."""

    name: Literal["multilabel"] = "multilabel"
    loss: one_of(MULTILABEL_LOSSES, "multilabel loss") = "sparsemax"
    threshold: float | None = Field(
        None,
        ge=0.0,
        lt=1.0,
        description="predict labels whose probability exceeds it (default: sparsemax 0, "
        "i.e. its support; sigmoid 0.5)",
    )

    def needs(self) -> tuple[Need, ...]:
        return (INDICATORS,)

    def build(self, ctx: BuildContext) -> MultilabelTask:
        (num_labels,) = ctx.data.fields["y"].shape
        if num_labels < 2:
            raise ValueError(f"{ctx.data.name} has {num_labels} label; multilabel needs >= 2")
        model = ctx.model(num_labels)
        return multilabel_classification(
            model, ctx.optimizer(), self.loss, self.make_penalty(), self.threshold
        )
