"""Attention normalisers: scores ``[..., Tk]`` to weights on the simplex, with a keep mask.

Three maps from scores z to weights p (each p >= 0, sum_j p_j = 1), from dense to sparse:

    softmax     p_j = exp(z_j) / sum_l exp(z_l)
    sparsemax   p_j = [z_j - tau]_+                 (Martins & Astudillo, 2016)
    entmax-1.5  p_j = [z_j / 2 - tau]_+^2           (Peters, Niculae & Martins, 2019)

with tau the threshold that makes the weights sum to 1. Sparsemax and entmax-1.5 give exactly
zero weight to scores far enough below the largest (by more than 1 and 2 respectively).

Keys whose ``keep`` entry is False get exactly zero weight and exactly zero gradient, and a query
whose keys are all masked gets all-zero weights (not a uniform average, not NaN).
"""

import functools

import jax
import jax.numpy as jnp

from dlcore.checks import check_choice
from dlcore.layers.attention import softmax_where
from dlcore.sparsemax import sparsemax

NORMALISERS = ("softmax", "sparsemax", "entmax15")

# A masked score is replaced by this value after the row is shifted so that its largest kept
# score is 0. Sparsemax zeroes scores 1 or more below the max, entmax-1.5 scores 2 or more below
# it, so -4 keeps masked keys out of both supports with room to spare; being finite, it also
# keeps the squares and cumulative sums of the entmax threshold free of inf and NaN.
_MASKED_SHIFTED_SCORE = -4.0


def entmax15_threshold(z: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Half the max-shifted scores, x = (z - max z) / 2, and the entmax-1.5 threshold tau.

    Entmax-1.5 is p = [x - tau]_+^2 with tau such that sum_j p_j = 1. If the support is the k
    largest entries x_(1) >= ... >= x_(k), that equation is quadratic in tau, with root

        tau_k = m_k - sqrt((1 - k (q_k - m_k^2)) / k),
        m_k = (1/k) sum_{j<=k} x_(j),   q_k = (1/k) sum_{j<=k} x_(j)^2

    (the smaller root: tau must lie below every x_(j) of the support). The support size is the
    largest k with tau_k <= x_(k); the argument under the square root is clipped at 0 for the k
    beyond it, where it may turn negative. Shifting by the max keeps the support entries in
    (-1, 0], so float32 sums stay accurate for scores of any magnitude.

    Args:
      z: scores, ``[..., K]``.

    Returns:
      ``(x, tau)``, of shapes ``[..., K]`` and ``[..., 1]``.
    """
    x = (z - jnp.max(z, axis=-1, keepdims=True)) / 2
    x_sorted = -jnp.sort(-x, axis=-1)  # [..., K], descending
    ks = jnp.cumsum(jnp.ones_like(x_sorted), axis=-1)  # 1, 2, ..., K along the last axis
    mean = jnp.cumsum(x_sorted, axis=-1) / ks
    mean_sq = jnp.cumsum(x_sorted * x_sorted, axis=-1) / ks
    delta = (1 - ks * (mean_sq - mean * mean)) / ks
    tau_k = mean - jnp.sqrt(jnp.maximum(delta, 0))
    support_size = jnp.sum(tau_k <= x_sorted, axis=-1, keepdims=True)  # >= 1: k = 1 always holds
    tau = jnp.take_along_axis(tau_k, support_size - 1, axis=-1)
    return x, tau


@jax.custom_jvp
def _entmax15_last(z: jax.Array) -> jax.Array:
    x, tau = entmax15_threshold(z)
    return jnp.square(jnp.maximum(x - tau, 0))


@_entmax15_last.defjvp
def _entmax15_last_jvp(primals, tangents):
    (z,), (z_dot,) = primals, tangents
    x, tau = entmax15_threshold(z)
    s = jnp.maximum(x - tau, 0)  # sqrt(p): zero off the support
    p = s * s
    # J = diag(s) - s s^T / sum(s): differentiate p_j = (z_j / 2 - tau)^2 with tau moving so
    # that sum_j p_j stays 1. J is symmetric, so the VJP JAX derives by transposition is J too.
    s_dot_z = jnp.sum(s * z_dot, axis=-1, keepdims=True)
    return p, s * z_dot - s * s_dot_z / jnp.sum(s, axis=-1, keepdims=True)


@functools.partial(jax.jit, static_argnames="axis")
def entmax15(z: jax.Array, axis: int = -1) -> jax.Array:
    """Entmax with alpha = 1.5 along ``axis`` (Peters, Niculae & Martins, 2019).

    entmax_alpha(z) = argmax_{p in simplex} p . z + H_alpha(p), the Tsallis entropy
    H_alpha(p) = sum_j (p_j - p_j^alpha) / (alpha (alpha - 1)); for alpha = 1.5 the solution is

        p_j = [(alpha - 1) z_j - tau]_+^(1 / (alpha - 1)) = [z_j / 2 - tau]_+^2,

    computed exactly by sorting (see :func:`entmax15_threshold`). Between softmax (alpha = 1)
    and sparsemax (alpha = 2): sparse, but smoother than sparsemax. The derivative is a custom
    JVP with the closed form, for s = sqrt(p),

        J = diag(s) - s s^T / sum_j s_j.

    Args:
      z: scores of any rank >= 1.
      axis: the axis that holds the keys (classes).

    Returns:
      Probabilities with the shape of ``z``.

    Example:
      >>> [round(p, 4) for p in entmax15(jnp.array([0.4, 0.0, -5.0])).tolist()]  # tau = -0.8
      [0.64, 0.36, 0.0]
    """
    return jnp.moveaxis(_entmax15_last(jnp.moveaxis(z, axis, -1)), -1, axis)


def _shift_and_fill(scores: jax.Array, keep: jax.Array) -> jax.Array:
    """Scores minus their largest kept value per row, masked ones set to -4 (see above).

    Both sparse maps are shift-invariant, so the shift changes nothing but the masked entries'
    distance from the support. The max is a constant (stop_gradient): its derivative would
    cancel anyway, since each map's Jacobian rows sum to zero.
    """
    kept_max = jnp.max(jnp.where(keep, scores, -jnp.inf), axis=-1, keepdims=True)
    kept_max = jax.lax.stop_gradient(jnp.where(jnp.isfinite(kept_max), kept_max, 0))
    return jnp.where(keep, scores - kept_max, _MASKED_SHIFTED_SCORE)


def sparsemax_where(scores: jax.Array, keep: jax.Array | None) -> jax.Array:
    """Sparsemax over the last axis with keys where ``keep`` is False excluded: zero weight,
    zero gradient, and all-zero weights for a row with every key masked."""
    if keep is None:
        return sparsemax(scores, axis=-1)
    keep = jnp.broadcast_to(keep, scores.shape)
    return jnp.where(keep, sparsemax(_shift_and_fill(scores, keep), axis=-1), 0.0)


def entmax15_where(scores: jax.Array, keep: jax.Array | None) -> jax.Array:
    """:func:`entmax15` over the last axis with the masking of :func:`sparsemax_where`."""
    if keep is None:
        return entmax15(scores, axis=-1)
    keep = jnp.broadcast_to(keep, scores.shape)
    return jnp.where(keep, entmax15(_shift_and_fill(scores, keep), axis=-1), 0.0)


_BY_NAME = {"softmax": softmax_where, "sparsemax": sparsemax_where, "entmax15": entmax15_where}


def normalise(name: str, scores: jax.Array, keep: jax.Array | None = None) -> jax.Array:
    """Attention weights from scores over the last (key) axis.

    Args:
      name: ``"softmax"``, ``"sparsemax"`` or ``"entmax15"``.
      scores: ``[..., Tk]``, e.g. ``[B, Tq, Tk]``.
      keep: bool, True = attend; the rank of ``scores`` with axes of size 1 or full size
        (``[B, 1, Tk]`` for a key mask shared by every query); None keeps every key.

    Returns:
      Weights with the shape of ``scores``: >= 0, each row summing to 1 over its kept keys
      (0 for a row with none kept), exactly 0 and without gradient where ``keep`` is False.

    Raises:
      ValueError: for another name.

    Example:
      >>> normalise("sparsemax", jnp.array([[2.0, 1.5, 9.0]]), jnp.array([[True, True, False]]))
      Array([[0.75, 0.25, 0.  ]], dtype=float32)
    """
    check_choice(name, NORMALISERS, "attention normaliser")
    if keep is not None:
        keep = keep.astype(bool)
    return _BY_NAME[name](scores, keep)
