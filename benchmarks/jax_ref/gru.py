"""GRU language-model loss in plain JAX, flax.linen.GRUCell convention (see numpy_ref.gru)."""

import jax
import jax.numpy as jnp
from jax import lax

from benchmarks.jax_ref.rnn import readout_loss


def hidden_states(params: dict, x_BxTxD: jax.Array) -> jax.Array:
    """h' = (1 - z) n + z h, n = tanh(x Wx_n + bx_n + r (h Wh_n + bh_n)); ``[B, T, H]``."""
    hidden = params["Wh"].shape[0]
    ax_TxBx3H = jnp.swapaxes(x_BxTxD @ params["Wx"] + params["bx"][None, None, :], 0, 1)

    def step(h, ax):
        ah = h @ params["Wh"]
        r = jax.nn.sigmoid(ax[:, :hidden] + ah[:, :hidden])
        z = jax.nn.sigmoid(ax[:, hidden : 2 * hidden] + ah[:, hidden : 2 * hidden])
        n = jnp.tanh(ax[:, 2 * hidden :] + r * (ah[:, 2 * hidden :] + params["bh_n"][None, :]))
        h = (1 - z) * n + z * h
        return h, h

    h0 = jnp.zeros((x_BxTxD.shape[0], hidden), x_BxTxD.dtype)
    _, hs_TxBxH = lax.scan(step, h0, ax_TxBx3H)
    return jnp.swapaxes(hs_TxBxH, 0, 1)


def loss(params: dict, x_BxTxD: jax.Array, targets_BxT: jax.Array) -> jax.Array:
    """Language-model loss over all B*T tokens."""
    return readout_loss(params, hidden_states(params, x_BxTxD), targets_BxT)
