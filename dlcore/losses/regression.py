"""Regression losses, one value per example: squared error, MSE, MAE, Huber / smooth-L1 and
mean bias error.

Predictions and targets must have the same shape ``[B, ...]`` (no silent broadcasting); the
per-example value sums or averages over the non-batch axes, as each docstring states.
"""

import jax
import jax.numpy as jnp

from dlcore.checks import check_same_shape
from dlcore.losses.reduce import ElementReduction, reduce_elements


def _residual_BxD(pred: jax.Array, target: jax.Array) -> jax.Array:
    check_same_shape(pred, target, "predictions", "targets")
    if pred.ndim == 0:
        raise ValueError("predictions must have a batch dimension; got a scalar")
    return (target - pred).reshape(pred.shape[0], -1)


def squared_error(pred_BxD: jax.Array, target_BxD: jax.Array) -> jax.Array:
    """Half squared Euclidean error per example: L_i = 1/2 ||p_i - t_i||^2.

    The 1/2 makes the gradient exactly p_i - t_i.

    Example:
      >>> squared_error(jnp.array([[1.0, 2.0]]), jnp.array([[0.0, 0.0]]))
      Array([2.5], dtype=float32)
    """
    diff_BxD = _residual_BxD(pred_BxD, target_BxD)
    return 0.5 * jnp.sum(diff_BxD * diff_BxD, axis=-1)


def mean_squared_error(pred_BxD: jax.Array, target_BxD: jax.Array) -> jax.Array:
    """L_i = (1/D) sum_d (t_id - p_id)^2; its mean over examples is the usual MSE."""
    diff_BxD = _residual_BxD(pred_BxD, target_BxD)
    return jnp.mean(diff_BxD * diff_BxD, axis=-1)


def mean_absolute_error(pred_BxD: jax.Array, target_BxD: jax.Array) -> jax.Array:
    """L_i = (1/D) sum_d |t_id - p_id| (the L1 loss); robust to outlying targets."""
    return jnp.mean(jnp.abs(_residual_BxD(pred_BxD, target_BxD)), axis=-1)


def mean_bias_error(pred_BxD: jax.Array, target_BxD: jax.Array) -> jax.Array:
    """L_i = (1/D) sum_d (t_id - p_id): signed, so over- and under-estimates cancel.

    A diagnostic of systematic bias (positive: the model predicts too low) rather than a
    training objective: it is unbounded below.
    """
    return jnp.mean(_residual_BxD(pred_BxD, target_BxD), axis=-1)


def huber_loss(
    pred_BxD: jax.Array,
    target_BxD: jax.Array,
    delta: float = 1.0,
    element_reduction: ElementReduction = "sum",
) -> jax.Array:
    """Huber loss (Huber, 1964): quadratic near zero, linear beyond delta.

    h(r) = r^2 / 2              if |r| <= delta,
           delta (|r| - delta/2)  otherwise,          r = t - p,

    summed over the elements of each example (``element_reduction="sum"``, dlcore's rule)
    or averaged (``"mean"``: with the mean over examples, PyTorch's ``HuberLoss(delta)``;
    Keras's ``Huber`` averages over the last axis). optax's ``huber_loss`` is h itself.

    Example:
      >>> huber_loss(jnp.array([[0.5, 3.0]]), jnp.zeros((1, 2)))
      Array([2.625], dtype=float32)
    """
    if not delta > 0:
        raise ValueError(f"huber delta must be > 0; got {delta}")
    abs_BxD = jnp.abs(_residual_BxD(pred_BxD, target_BxD))
    # min(|r|, delta) splits |r| into its quadratic part q and linear part |r| - q:
    # q^2/2 + delta (|r| - q) is h(r) on both sides, with no branch to differentiate.
    quad_BxD = jnp.minimum(abs_BxD, delta)
    return reduce_elements(
        0.5 * quad_BxD * quad_BxD + delta * (abs_BxD - quad_BxD), element_reduction
    )


def smooth_l1_loss(
    pred_BxD: jax.Array,
    target_BxD: jax.Array,
    beta: float = 1.0,
    element_reduction: ElementReduction = "sum",
) -> jax.Array:
    """Smooth L1 loss (Girshick, 2015, Fast R-CNN): the Huber loss divided by its delta.

    s(r) = r^2 / (2 beta)    if |r| < beta,
           |r| - beta/2       otherwise,     so s = h_beta / beta,

    which is PyTorch's ``SmoothL1Loss(beta)`` (``HuberLoss(delta)`` is beta times it):
    the slope beyond beta is 1 rather than delta. Elements combine as in :func:`huber_loss`.

    Example:
      >>> smooth_l1_loss(jnp.array([[0.5, 3.0]]), jnp.zeros((1, 2)), beta=2.0)
      Array([2.0625], dtype=float32)
    """
    if not beta > 0:
        raise ValueError(f"smooth_l1 beta must be > 0 (beta = 0 is mae); got {beta}")
    return huber_loss(pred_BxD, target_BxD, beta, element_reduction) / beta
