"""Truncated backpropagation through time: chunks of k steps, state carried across chunks.

A long stream ``[B, T_total, ...]`` is cut into chunks of k steps. Each training step runs
one chunk from the carry the previous chunk left behind, with ``stop_gradient`` on that
incoming carry, so gradients flow back at most k steps while the forward state spans the
whole stream:

    (L_n, carry_n) = f(θ, sg(carry_{n−1}), x_{nk : (n+1)k}),    g_n = ∂L_n/∂θ

The carry lives in ``TrainState.extra`` (e.g. ``extra={"carry": carry}``), so it is part of
every checkpoint and a resumed run continues from exactly the same state.
"""

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

LossFn = Callable[[Any, Any, Any], tuple[jax.Array, Any]]


def detach(carry: Any) -> Any:
    """``stop_gradient`` on every leaf: the chunk boundary gradients must not cross."""
    return jax.tree.map(jax.lax.stop_gradient, carry)


def tbptt_step(loss_fn: LossFn, params: Any, carry: Any, chunk: Any) -> tuple[jax.Array, Any, Any]:
    """Loss, parameter gradients and next carry for one chunk.

    Args:
      loss_fn: ``loss_fn(params, carry, chunk) -> (loss, new_carry)``, pure.
      params: parameters to differentiate.
      carry: the carry left by the previous chunk (gradient is stopped here).
      chunk: this chunk's batch (any pytree of ``[B, k, ...]`` arrays).

    Returns:
      ``(loss, grads, new_carry)``; ``new_carry`` is detached, ready for ``TrainState.extra``.

    Example:
      >>> def loss_fn(w, h, x):
      ...     h = jnp.tanh(w * h + x)
      ...     return jnp.sum(h), h
      >>> loss, g, h = tbptt_step(loss_fn, 0.5, jnp.zeros(2), jnp.ones(2))
      >>> h.shape
      (2,)
    """
    grad_fn = jax.value_and_grad(loss_fn, has_aux=True)
    (loss, new_carry), grads = grad_fn(params, detach(carry), chunk)
    return loss, grads, detach(new_carry)


def split_chunks(x_BxTx: jax.Array, k: int) -> jax.Array:
    """``[B, T, ...] -> [T/k, B, k, ...]``: the chunks in order along the leading axis.

    Raises:
      ValueError: if k does not divide T.

    Example:
      >>> split_chunks(jnp.zeros((2, 6, 3)), 3).shape
      (2, 2, 3, 3)
    """
    if x_BxTx.ndim < 2:
        raise ValueError(f"split_chunks needs [B, T, ...] inputs; got shape {x_BxTx.shape}")
    batch, steps = x_BxTx.shape[:2]
    if k < 1 or steps % k:
        raise ValueError(f"chunk length k must divide T = {steps}; got k = {k}")
    x = x_BxTx.reshape((batch, steps // k, k) + x_BxTx.shape[2:])
    return jnp.swapaxes(x, 0, 1)


def truncated_bptt(
    loss_fn: LossFn, params: Any, carry: Any, stream: Any, k: int
) -> tuple[jax.Array, Any, Any]:
    """Runs :func:`tbptt_step` over every k-step chunk of ``stream`` with fixed parameters.

    Returns the summed loss, the summed per-chunk gradients and the final carry: the
    gradient truncated BPTT accumulates before one update. With k = T there is a single
    chunk and the result is the full-BPTT gradient.

    Args:
      loss_fn: as in :func:`tbptt_step`.
      params: parameters (not updated between chunks).
      carry: carry before the first chunk.
      stream: pytree of ``[B, T, ...]`` arrays.
      k: chunk length; must divide T.
    """
    chunks = jax.tree.map(lambda x: split_chunks(x, k), stream)

    def body(acc, chunk):
        loss_sum, grad_sum, carry_in = acc
        loss, grads, carry_out = tbptt_step(loss_fn, params, carry_in, chunk)
        grad_sum = jax.tree.map(jnp.add, grad_sum, grads)
        return (loss_sum + loss, grad_sum, carry_out), None

    zeros = jax.tree.map(jnp.zeros_like, params)
    (loss, grads, carry), _ = jax.lax.scan(body, (jnp.zeros(()), zeros, carry), chunks)
    return loss, grads, carry


def reset_carry(carry: Any, reset_B: jax.Array, initial: Any) -> Any:
    """Replaces the carry of every stream b with ``reset_B[b]`` by ``initial`` (same tree).

    Use at document boundaries: a stream that starts a new text must not inherit state.
    """
    if reset_B.ndim != 1:
        raise ValueError(f"reset must be a [B] boolean vector; got shape {reset_B.shape}")

    def pick(c, c0):
        r = reset_B.reshape(reset_B.shape + (1,) * (c.ndim - 1))
        return jnp.where(r, c0, c)

    return jax.tree.map(pick, carry, initial)
