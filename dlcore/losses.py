"""Per-example losses and their masked reduction.

A loss here maps predictions and targets to one value per example, shape ``[B]``; the
reduction (and any per-example weights or padding mask) is applied by :func:`reduce_loss`,
so every loss supports weights, masks and mean/sum reduction the same way.
"""

from typing import Literal

import jax
import jax.numpy as jnp
import optax

from dlcore.checks import check_same_leading_dim

Reduction = Literal["mean", "sum", "none"]


def softmax_cross_entropy(logits_BxK: jax.Array, labels_B: jax.Array) -> jax.Array:
    """Cross-entropy of integer labels under softmax(logits), stable for large logits.

    L_i = logsumexp(s_i) - s_{i, y_i}

    Args:
      logits_BxK: unnormalized scores, ``[B, K]``.
      labels_B: integer class ids in ``[0, K)``, ``[B]``.

    Returns:
      Per-example loss, ``[B]``.
    """
    check_same_leading_dim(logits_BxK, labels_B, "logits", "labels")
    return optax.softmax_cross_entropy_with_integer_labels(logits_BxK, labels_B)


def squared_error(pred_BxD: jax.Array, target_BxD: jax.Array) -> jax.Array:
    """Half squared Euclidean error per example: L_i = 1/2 * ||p_i - t_i||^2."""
    if pred_BxD.shape != target_BxD.shape:
        raise ValueError(
            f"predictions and targets must have the same shape; got {pred_BxD.shape} "
            f"and {target_BxD.shape}"
        )
    diff = (pred_BxD - target_BxD).reshape(pred_BxD.shape[0], -1)
    return 0.5 * jnp.sum(diff * diff, axis=-1)


def reduce_loss(
    per_example_B: jax.Array,
    weights_B: jax.Array | None = None,
    reduction: Reduction = "mean",
) -> jax.Array:
    """Reduces per-example losses with optional weights (a 0/1 mask is a special case).

    ``mean`` divides by the sum of weights, so padded examples (weight 0) do not dilute it.
    """
    if weights_B is None:
        weights_B = jnp.ones_like(per_example_B)
    elif weights_B.shape != per_example_B.shape:
        raise ValueError(
            f"weights must have shape {per_example_B.shape} (one per example); "
            f"got {weights_B.shape}"
        )
    total = jnp.sum(per_example_B * weights_B)
    if reduction == "sum":
        return total
    if reduction == "mean":
        return total / jnp.maximum(jnp.sum(weights_B), 1e-12)
    if reduction == "none":
        return per_example_B * weights_B
    raise ValueError(f"reduction must be 'mean', 'sum' or 'none'; got {reduction!r}")


LOSSES = {
    "softmax_cross_entropy": softmax_cross_entropy,
    "squared_error": squared_error,
}
