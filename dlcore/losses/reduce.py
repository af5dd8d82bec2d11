"""Reduction of per-example losses, with per-example weights or a padding mask.

Every loss in :mod:`dlcore.losses` returns one value per example, shape ``[B]``; this one
function turns that into the scalar that is minimized, so weights, masks and mean/sum
reduction work the same way for all of them.
"""

from typing import Literal

import jax
import jax.numpy as jnp

from dlcore.checks import check_choice

Reduction = Literal["mean", "sum", "none"]
# How a per-example loss combines the elements of one example (labels, outputs, pixels):
# dlcore sums them; PyTorch's reduction="mean" averages over every element of the batch,
# which for equal-sized examples is the mean over examples of the per-example "mean".
ELEMENT_REDUCTIONS = ("sum", "mean")
ElementReduction = Literal["sum", "mean"]


def reduce_elements(per_element_BxE: jax.Array, element_reduction: ElementReduction) -> jax.Array:
    """Combines the non-batch axes of a per-element loss into one value per example.

    sum: L_i = sum_e l_ie;   mean: L_i = (1/E) sum_e l_ie,   E = elements per example.

    Example:
      >>> reduce_elements(jnp.array([[1.0, 3.0]]), "mean")
      Array([2.], dtype=float32)
    """
    check_choice(element_reduction, ELEMENT_REDUCTIONS, "element_reduction")
    flat_BxE = per_element_BxE.reshape(per_element_BxE.shape[0], -1)
    if element_reduction == "mean":
        return jnp.mean(flat_BxE, axis=-1)
    return jnp.sum(flat_BxE, axis=-1)


def reduce_loss(
    per_example_B: jax.Array,
    weights_B: jax.Array | None = None,
    reduction: Reduction = "mean",
) -> jax.Array:
    """Reduces per-example losses with optional weights (a 0/1 mask is a special case).

    mean: sum_i w_i L_i / sum_i w_i;   sum: sum_i w_i L_i;   none: w_i L_i.

    ``mean`` divides by the sum of weights, so padded examples (weight 0) do not dilute it.

    Example:
      >>> reduce_loss(jnp.array([1.0, 3.0, 100.0]), jnp.array([1.0, 1.0, 0.0]))
      Array(2., dtype=float32)
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
