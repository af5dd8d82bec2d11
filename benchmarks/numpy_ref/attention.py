"""Additive (Bahdanau) attention, forward and hand-derived backward.

For queries q_t ``[B, Tq, Dq]``, keys k_s ``[B, Tk, Dk]`` and values v_s ``[B, Tk, Dv]``:
    u_ts = tanh(q_t Wq + k_s Wk + b)        # [B, Tq, Tk, A]
    e_ts = u_ts . w                         # [B, Tq, Tk]   (w is the score vector)
    alpha_t = softmax_s(e_t),   ctx_t = sum_s alpha_ts v_s
Backward, given dctx:
    dalpha = dctx v^T,  dv = alpha^T dctx,  de = alpha * (dalpha - sum_s alpha dalpha)
    dw = sum de u,  du = de w,  dpre = du (1 - u^2),  db = sum dpre
    dq = (sum_s dpre) Wq^T,  dWq = q^T (sum_s dpre),  and likewise for k over t
In Bahdanau et al. (2015) the keys and values are both the encoder states: pass the same array
twice and add ``dk + dv`` for its gradient.
"""

import numpy as np

from benchmarks.numpy_ref.losses import softmax


def init_params(rng: np.random.Generator, d_q: int, d_k: int, d_attn: int, dtype=np.float32):
    """Projection weights ``Wq [Dq, A]``, ``Wk [Dk, A]``, bias ``b [A]``, score vector ``w [A]``.

    Example:
      >>> p = init_params(np.random.default_rng(0), 16, 8, 32)
      >>> p["Wq"].shape, p["w"].shape
      ((16, 32), (32,))
    """

    def normal(shape, fan_in):
        return (rng.standard_normal(shape) / np.sqrt(fan_in)).astype(dtype)

    return {
        "Wq": normal((d_q, d_attn), d_q),
        "Wk": normal((d_k, d_attn), d_k),
        "b": np.zeros(d_attn, dtype),
        "w": normal((d_attn,), d_attn),
    }


def forward(params: dict, q_BxTqxD, k_BxTkxD, v_BxTkxE):
    """Context vectors ``[B, Tq, Dv]``, attention weights ``[B, Tq, Tk]`` and the cache."""
    pq = q_BxTqxD @ params["Wq"]  # [B, Tq, A]
    pk = k_BxTkxD @ params["Wk"]  # [B, Tk, A]
    u = np.tanh(pq[:, :, None, :] + pk[:, None, :, :] + params["b"])  # [B, Tq, Tk, A]
    e = u @ params["w"]  # [B, Tq, Tk]
    alpha = softmax(e)
    ctx = alpha @ v_BxTkxE
    return ctx, alpha, (q_BxTqxD, k_BxTkxD, v_BxTkxE, u, alpha)


def backward(dctx_BxTqxE: np.ndarray, cache, params: dict):
    """Returns ``(grads for Wq, Wk, b, w; dq; dk; dv)``."""
    q, k, v, u, alpha = cache
    dalpha = dctx_BxTqxE @ v.transpose(0, 2, 1)  # [B, Tq, Tk]
    dv = alpha.transpose(0, 2, 1) @ dctx_BxTqxE
    de = alpha * (dalpha - np.sum(alpha * dalpha, axis=-1, keepdims=True))
    dw = np.einsum("bqs,bqsa->a", de, u)
    dpre = de[..., None] * params["w"] * (1 - u * u)  # [B, Tq, Tk, A]
    dpq = dpre.sum(axis=2)  # [B, Tq, A]
    dpk = dpre.sum(axis=1)  # [B, Tk, A]
    grads = {
        "Wq": np.einsum("bqd,bqa->da", q, dpq),
        "Wk": np.einsum("bsd,bsa->da", k, dpk),
        "b": dpq.sum(axis=(0, 1)),
        "w": dw,
    }
    return grads, dpq @ params["Wq"].T, dpk @ params["Wk"].T, dv


def loss_and_grads(params: dict, q, k, v, target_BxTqxE):
    """Half squared error of the contexts against a target, L = 1/(2B) ||ctx - target||^2."""
    ctx, _, cache = forward(params, q, k, v)
    diff = ctx - target_BxTqxE
    loss = 0.5 * np.sum(diff * diff) / ctx.shape[0]
    grads, _, _, _ = backward(diff / ctx.shape[0], cache, params)
    return loss, grads
