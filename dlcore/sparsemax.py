"""Sparsemax: the Euclidean projection onto the probability simplex (Martins & Astudillo, 2016).

The forward pass is the exact sort-based algorithm; the derivative is given as a custom JVP
(JAX transposes it to get the VJP), because the Jacobian has the closed form

    J = diag(s) - s s^T / |S|,     s_j = 1[p_j > 0],  S = support(p),

which is cheaper and better defined at the breakpoints than differentiating through the sort.
"""

import functools

import jax
import jax.numpy as jnp


def shifted_threshold(z: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Scores shifted by their max, the threshold in those coordinates, and the support size.

    Sorting z descending as z_(1) >= ... >= z_(K), the support size is
    k(z) = max{k : 1 + k z_(k) > sum_{j<=k} z_(j)} and tau = (sum_{j<=k(z)} z_(j) - 1) / k(z),
    so that sparsemax(z) = max(z - tau, 0). Sparsemax is shift-equivariant; working with
    z - max(z) keeps the support entries in (-1, 0], so the sums stay accurate in float32 even
    for scores of magnitude 1e4.

    Args:
      z: scores, ``[..., K]``.

    Returns:
      ``(z - max(z), tau - max(z), support_size)``; the last two are ``[..., 1]``.
    """
    z_shift = z - jnp.max(z, axis=-1, keepdims=True)
    z_sorted = -jnp.sort(-z_shift, axis=-1)  # [..., K], descending
    cumsum = jnp.cumsum(z_sorted, axis=-1)
    ks = jnp.cumsum(jnp.ones_like(z_sorted), axis=-1)  # 1, 2, ..., K along the last axis
    in_support = 1 + ks * z_sorted > cumsum  # true exactly on a prefix of the sorted scores
    support_size = jnp.sum(in_support, axis=-1, keepdims=True)  # >= 1: the max always is
    cumsum_at_k = jnp.take_along_axis(cumsum, support_size - 1, axis=-1)
    tau_shift = (cumsum_at_k - 1) / support_size.astype(z.dtype)
    return z_shift, tau_shift, support_size


@jax.custom_jvp
def _sparsemax_last(z: jax.Array) -> jax.Array:
    z_shift, tau_shift, _ = shifted_threshold(z)
    return jnp.maximum(z_shift - tau_shift, 0)


@_sparsemax_last.defjvp
def _sparsemax_last_jvp(primals, tangents):
    (z,), (z_dot,) = primals, tangents
    p = _sparsemax_last(z)
    support = (p > 0).astype(z.dtype)
    support_size = jnp.sum(support, axis=-1, keepdims=True)
    # J z_dot = s * z_dot - s (s . z_dot) / |S|: project the tangent onto the support and
    # remove its mean there, so the output stays on the simplex.
    mean_on_support = jnp.sum(support * z_dot, axis=-1, keepdims=True) / support_size
    return p, support * (z_dot - mean_on_support)


@functools.partial(jax.jit, static_argnames="axis")
def sparsemax(z: jax.Array, axis: int = -1) -> jax.Array:
    """Sparsemax along ``axis``: the closest point of the simplex to ``z``.

    sparsemax(z) = argmin_{p in simplex} ||p - z||^2 = max(z - tau(z), 0)

    The output sums to 1 along ``axis``, is >= 0, and is exactly zero for scores more than
    1 below the largest ones, so spread-out scores give sparse outputs.

    Args:
      z: scores of any rank >= 1.
      axis: the axis that holds the classes.

    Returns:
      Probabilities with the shape of ``z``.

    Example:
      >>> sparsemax(jnp.array([2.0, 1.5, -1.0]))
      Array([0.75, 0.25, 0.  ], dtype=float32)
    """
    z_last = jnp.moveaxis(z, axis, -1)
    return jnp.moveaxis(_sparsemax_last(z_last), -1, axis)
