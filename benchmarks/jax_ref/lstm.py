"""LSTM language-model loss in plain JAX (gate order i, f, o, g as numpy_ref.lstm); a scan."""

import jax
import jax.numpy as jnp
from jax import lax

from benchmarks.jax_ref.rnn import readout_loss


def hidden_states(params: dict, x_BxTxD: jax.Array) -> jax.Array:
    """LSTM hidden states ``[B, T, H]`` from zero state; x Wx is hoisted out of the scan."""
    hidden = params["Wh"].shape[0]
    xw_TxBx4H = jnp.swapaxes(x_BxTxD @ params["Wx"] + params["b"][None, None, :], 0, 1)

    def step(carry, xw):
        h, c = carry
        a = xw + h @ params["Wh"]
        i, f, o, g = jnp.split(a, 4, axis=-1)
        c = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
        h = jax.nn.sigmoid(o) * jnp.tanh(c)
        return (h, c), h

    zeros = jnp.zeros((x_BxTxD.shape[0], hidden), x_BxTxD.dtype)
    _, hs_TxBxH = lax.scan(step, (zeros, zeros), xw_TxBx4H)
    return jnp.swapaxes(hs_TxBxH, 0, 1)


def loss(params: dict, x_BxTxD: jax.Array, targets_BxT: jax.Array) -> jax.Array:
    """Language-model loss over all B*T tokens."""
    return readout_loss(params, hidden_states(params, x_BxTxD), targets_BxT)
