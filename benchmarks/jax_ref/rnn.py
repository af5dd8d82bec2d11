"""Elman RNN language-model loss in plain JAX; the recurrence is a ``lax.scan``."""

import jax
import jax.numpy as jnp
from jax import lax

from benchmarks.jax_ref.mlp import cross_entropy


def readout_loss(params: dict, h_BxTxH: jax.Array, targets_BxT: jax.Array) -> jax.Array:
    """Mean per-token cross-entropy of the read-out ``h Wy + by``."""
    b, t, hidden = h_BxTxH.shape
    logits = h_BxTxH.reshape(b * t, hidden) @ params["Wy"] + params["by"][None, :]
    return cross_entropy(logits, targets_BxT.reshape(b * t))


def hidden_states(params: dict, x_BxTxD: jax.Array) -> jax.Array:
    """h_t = tanh(x_t Wx + h_{t-1} Wh + b) from h_0 = 0, as ``[B, T, H]``."""
    xw_TxBxH = jnp.swapaxes(x_BxTxD @ params["Wx"] + params["b"][None, None, :], 0, 1)

    def step(h, xw):
        h = jnp.tanh(xw + h @ params["Wh"])
        return h, h

    h0 = jnp.zeros((x_BxTxD.shape[0], params["Wh"].shape[0]), x_BxTxD.dtype)
    _, hs_TxBxH = lax.scan(step, h0, xw_TxBxH)
    return jnp.swapaxes(hs_TxBxH, 0, 1)


def loss(params: dict, x_BxTxD: jax.Array, targets_BxT: jax.Array) -> jax.Array:
    """Language-model loss over all B*T tokens."""
    return readout_loss(params, hidden_states(params, x_BxTxD), targets_BxT)
