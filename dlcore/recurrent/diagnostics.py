"""Vanishing/exploding-gradient diagnostics: how much the loss depends on each hidden state."""

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from dlcore.recurrent.sequence import RNN, resolve_lengths


def hidden_grad_norms(
    rnn: RNN,
    variables: Any,
    x_BxTxD: jax.Array,
    loss_fn: Callable[[jax.Array], jax.Array],
    *,
    lengths: jax.Array | None = None,
    per_example: bool = False,
) -> jax.Array:
    """‖∂L/∂h_t‖ for every step t, the total derivative through all later steps.

    A zero perturbation δ_t is added to every hidden state inside the recurrence,
    h_t ← h_t + δ_t, so that ∂L/∂δ_t at δ = 0 equals ∂L/∂h_t including every path through
    h_{t+1}, ..., h_T. Tiny norms at small t show vanishing gradients, huge ones exploding.

    Args:
      rnn: the sequence layer (any cell; the plain scan path is used).
      variables: its variables, e.g. from ``rnn.init``.
      x_BxTxD: inputs ``[B, T, D]``.
      loss_fn: maps the layer's outputs ``[B, T, H]`` to a scalar loss (close over any
        readout parameters and targets).
      lengths: optional valid lengths ``[B]``.
      per_example: return ``[B, T]`` norms over H instead of ``[T]`` norms over (B, H).

    Returns:
      ``[T]`` (or ``[B, T]``) gradient norms.

    Example:
      >>> from dlcore.recurrent import ElmanCell
      >>> rnn = RNN(ElmanCell(8))
      >>> x = jnp.ones((2, 10, 3))
      >>> variables = rnn.init(jax.random.key(0), x)
      >>> hidden_grad_norms(rnn, variables, x, lambda y: jnp.sum(y[:, -1])).shape
      (10,)
    """
    lengths = resolve_lengths(x_BxTxD, lengths, None)
    batch, steps, _ = x_BxTxD.shape
    hidden = rnn.cell.features

    def loss_of_delta(delta_BxTxH):
        _, y_BxTxH = rnn.apply(
            variables, x_BxTxD, lengths=lengths, h_delta=delta_BxTxH, method="run"
        )
        return loss_fn(y_BxTxH)

    g_BxTxH = jax.grad(loss_of_delta)(jnp.zeros((batch, steps, hidden), x_BxTxD.dtype))
    if per_example:
        return jnp.sqrt(jnp.sum(g_BxTxH * g_BxTxH, axis=-1))
    return jnp.sqrt(jnp.sum(g_BxTxH * g_BxTxH, axis=(0, 2)))
