"""Additive (Bahdanau) attention in plain JAX (same parameters as numpy_ref.attention)."""

import jax
import jax.numpy as jnp


def apply(params: dict, q_BxTqxD, k_BxTkxD, v_BxTkxE):
    """Context ``[B, Tq, Dv]`` and weights ``[B, Tq, Tk]``: softmax_s(w . tanh(qWq + kWk + b))."""
    pq = q_BxTqxD @ params["Wq"]
    pk = k_BxTkxD @ params["Wk"]
    u = jnp.tanh(
        pq[:, :, None, :] + pk[:, None, :, :] + params["b"][None, None, None, :]
    )  # [B, Tq, Tk, A]
    alpha = jax.nn.softmax(u @ params["w"], axis=-1)
    return alpha @ v_BxTkxE, alpha


def loss(params: dict, q, k, v, target_BxTqxE) -> jax.Array:
    """L = 1/(2B) ||ctx - target||^2."""
    ctx, _ = apply(params, q, k, v)
    return 0.5 * jnp.sum((ctx - target_BxTqxE) ** 2) / ctx.shape[0]
