"""Multi-label losses on scores ``[B, L]`` against 0/1 label indicators ``[B, L]``, and the
decision rule that turns each loss's scores into a predicted label set.

sparsemax (Martins & Astudillo, 2016, section 3): the label set Y becomes the target
distribution q = 1_Y / |Y| and the loss is the sparsemax loss with that target; the
predicted set is the support of sparsemax(z), which is never empty.
sigmoid: one logistic regression per label (binary cross-entropy summed over the labels);
the predicted set is {j : z_j > 0}, i.e. sigmoid(z_j) > 1/2.
"""

import math
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp

from dlcore.checks import check_rank, check_same_shape
from dlcore.losses.classification import binary_cross_entropy, sparsemax_loss
from dlcore.sparsemax import sparsemax


def label_distribution(labels_BxL: jax.Array, dtype=jnp.float32) -> jax.Array:
    """q = 1_Y / |Y|, the uniform distribution over each example's labels, ``[B, L]``.

    An example without labels would give 0/0; it gets q = 0 (and then a loss whose
    gradient pushes all its probabilities down) rather than NaN.

    Example:
      >>> label_distribution(jnp.array([[1, 0, 1, 0]]))
      Array([[0.5, 0. , 0.5, 0. ]], dtype=float32)
    """
    y = labels_BxL.astype(dtype)
    return y / jnp.maximum(jnp.sum(y, axis=-1, keepdims=True), 1.0)


def multilabel_sparsemax_loss(logits_BxL: jax.Array, labels_BxL: jax.Array) -> jax.Array:
    """The sparsemax loss against the label set's uniform distribution q = 1_Y / |Y|:

    L(z, Y) = -z.q + 1/2 sum_{j in S(z)} (z_j^2 - tau(z)^2) + 1/2 ||q||^2,
    dL/dz = sparsemax(z) - q,

    zero exactly when sparsemax(z) = q, i.e. when the scores put equal probability on the
    labels of Y and none elsewhere.

    Args:
      logits_BxL: scores, ``[B, L]``.
      labels_BxL: 0/1 label indicators, ``[B, L]``, at least one 1 per example.

    Returns:
      Per-example loss, ``[B]``.

    Example:
      >>> multilabel_sparsemax_loss(jnp.array([[2.0, 2.0, 0.0]]), jnp.array([[1, 1, 0]]))
      Array([0.], dtype=float32)
    """
    check_rank(logits_BxL, 2, "logits", "[B, L]")
    check_same_shape(logits_BxL, labels_BxL, "logits", "label indicators")
    return sparsemax_loss(logits_BxL, label_distribution(labels_BxL, logits_BxL.dtype))


def multilabel_sigmoid_loss(logits_BxL: jax.Array, labels_BxL: jax.Array) -> jax.Array:
    """Binary cross-entropy of every label under sigmoid(z_j), summed over the labels:
    L = sum_j [-y_j log sigma(z_j) - (1 - y_j) log(1 - sigma(z_j))], ``[B]``.

    Example:
      >>> multilabel_sigmoid_loss(jnp.zeros((1, 2)), jnp.array([[1, 0]]))
      Array([1.3862944], dtype=float32)
    """
    check_rank(logits_BxL, 2, "logits", "[B, L]")
    return binary_cross_entropy(logits_BxL, labels_BxL)


def sparsemax_labels(logits_BxL: jax.Array, threshold: float = 0.0) -> jax.Array:
    """The predicted label set of the sparsemax loss: 1 where sparsemax(z)_j > threshold,
    ``[B, L]``; the default threshold 0 predicts the support of sparsemax(z).

    Example:
      >>> sparsemax_labels(jnp.array([[2.0, 1.5, -1.0]]))
      Array([[1, 1, 0]], dtype=int32)
    """
    return (sparsemax(logits_BxL) > threshold).astype(jnp.int32)


def sigmoid_labels(logits_BxL: jax.Array, threshold: float = 0.5) -> jax.Array:
    """The predicted label set of the sigmoid loss: 1 where sigmoid(z_j) > threshold,
    ``[B, L]``; the default 1/2 is z_j > 0.

    Example:
      >>> sigmoid_labels(jnp.array([[2.0, -0.5, 0.1]]))
      Array([[1, 0, 1]], dtype=int32)
    """
    # compared as logits, log(t / (1 - t)), so that no score saturates the sigmoid
    cut = -math.inf if threshold <= 0 else math.log(threshold / (1.0 - threshold))
    return (logits_BxL > cut).astype(jnp.int32)


class MultilabelLoss(NamedTuple):
    """A multi-label loss and the decision rule that belongs to it.

    Attributes:
      loss: ``(logits [B, L], labels [B, L]) -> [B]``.
      predict: ``(logits [B, L], threshold) -> 0/1 predicted labels [B, L]``: the labels
        whose probability exceeds the threshold (keyword; each rule has its default).
    """

    loss: Callable[[jax.Array, jax.Array], jax.Array]
    predict: Callable[..., jax.Array]


# The multilabel task's ``loss`` choices (its config validates against these keys).
MULTILABEL_LOSSES: dict[str, MultilabelLoss] = {
    "sparsemax": MultilabelLoss(multilabel_sparsemax_loss, sparsemax_labels),
    "sigmoid": MultilabelLoss(multilabel_sigmoid_loss, sigmoid_labels),
}
