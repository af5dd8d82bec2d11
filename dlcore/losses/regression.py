"""Regression losses, one value per example: squared error, MSE, MAE and mean bias error.

Predictions and targets must have the same shape ``[B, ...]`` (no silent broadcasting); the
per-example value sums or averages over the non-batch axes, as each docstring states.
"""

import jax
import jax.numpy as jnp

from dlcore.checks import check_same_shape


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
