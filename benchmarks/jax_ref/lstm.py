"""LSTM language-model loss in plain JAX (gate order i, f, o, g as numpy_ref.lstm); a scan."""

import jax
import jax.numpy as jnp
from jax import lax

from benchmarks.jax_ref.rnn import readout_loss


def hidden_states(params: dict, x_BxTxD: jax.Array, remat: bool = False) -> jax.Array:
    """LSTM hidden states ``[B, T, H]`` from zero state; x Wx is hoisted out of the scan.

    With ``remat`` the step is wrapped in ``jax.checkpoint``: backward keeps only the carry
    of every step and recomputes the gates, trading FLOPs for BPTT memory.
    """
    hidden = params["Wh"].shape[0]
    xw_TxBx4H = jnp.swapaxes(x_BxTxD @ params["Wx"] + params["b"][None, None, :], 0, 1)

    def step(carry, xw):
        h, c = carry
        a = xw + h @ params["Wh"]
        i, f, o, g = jnp.split(a, 4, axis=-1)
        c = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
        h = jax.nn.sigmoid(o) * jnp.tanh(c)
        return (h, c), h

    if remat:
        step = jax.checkpoint(step)
    zeros = jnp.zeros((x_BxTxD.shape[0], hidden), x_BxTxD.dtype)
    _, hs_TxBxH = lax.scan(step, (zeros, zeros), xw_TxBx4H)
    return jnp.swapaxes(hs_TxBxH, 0, 1)


def loss(params: dict, x_BxTxD: jax.Array, targets_BxT: jax.Array) -> jax.Array:
    """Language-model loss over all B*T tokens."""
    return readout_loss(params, hidden_states(params, x_BxTxD), targets_BxT)


def remat_loss(params: dict, x_BxTxD: jax.Array, targets_BxT: jax.Array) -> jax.Array:
    """:func:`loss` with the scan step rematerialized in the backward pass."""
    return readout_loss(params, hidden_states(params, x_BxTxD, remat=True), targets_BxT)
