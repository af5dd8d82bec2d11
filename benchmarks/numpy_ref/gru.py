"""GRU in the flax.linen.GRUCell convention, with a softmax read-out and full BPTT, by hand.

flax's convention (which this follows, so results compare with flax/dlcore directly):
    r = sigma(x Wx_r + bx_r + h Wh_r)
    z = sigma(x Wx_z + bx_z + h Wh_z)
    n = tanh(x Wx_n + bx_n + r * (h Wh_n + bh_n))
    h' = (1 - z) * n + z * h
so z is the gate that *keeps* the old state, as in Cho et al. (2014, eq. 7); the form
h' = (1 - z) h + z h~ found in many textbooks is the same cell with z's pre-activation negated.
Unlike Cho et al., who reset the state before the product (U (r * h)), flax resets after it
(r * (h Wh_n + bh_n)), which is what lets all three hidden projections run as one GEMM.
Weights pack the gates as ``[r | z | n]``: Wx ``[D, 3H]``, bx ``[3H]``,
Wh ``[H, 3H]`` and a bias ``bh_n`` ``[H]`` on the hidden n-projection only (flax's hidden
Dense layers for r and z have no bias; ``hn`` has one).
Step backward, given dh':
    dn = (1 - z) dh',  dz = (h - n) dh',  dh = z dh'
    dan = (1 - n^2) dn,  dr = (h Wh_n + bh_n) dan
    dar = r(1-r) dr,  daz = z(1-z) dz
    dax = [dar, daz, dan],  dah = [dar, daz, r dan]
    dh += dah Wh^T,  dWx = x^T dax,  dWh = h^T dah,  dbx = sum dax,  dbh_n = sum r dan
"""

import numpy as np

from benchmarks.numpy_ref.losses import readout_cross_entropy
from benchmarks.numpy_ref.lstm import sigmoid


def init_params(rng: np.random.Generator, d_in: int, hidden: int, d_out: int, dtype=np.float32):
    """Random GRU and read-out weights.

    Example:
      >>> p = init_params(np.random.default_rng(0), 8, 4, 8)
      >>> p["Wx"].shape, p["Wh"].shape, p["bh_n"].shape
      ((8, 12), (4, 12), (4,))
    """

    def normal(shape, fan_in):
        return (rng.standard_normal(shape) / np.sqrt(fan_in)).astype(dtype)

    return {
        "Wx": normal((d_in, 3 * hidden), d_in),
        "bx": np.zeros(3 * hidden, dtype),
        "Wh": normal((hidden, 3 * hidden), hidden),
        "bh_n": np.zeros(hidden, dtype),
        "Wy": normal((hidden, d_out), hidden),
        "by": np.zeros(d_out, dtype),
    }


def _cell_forward(ax_Bx3H, h, Wh, bh_n):
    hidden = h.shape[-1]
    ah = h @ Wh
    hn = ah[:, 2 * hidden :] + bh_n
    r = sigmoid(ax_Bx3H[:, :hidden] + ah[:, :hidden])
    z = sigmoid(ax_Bx3H[:, hidden : 2 * hidden] + ah[:, hidden : 2 * hidden])
    n = np.tanh(ax_Bx3H[:, 2 * hidden :] + r * hn)
    return (1 - z) * n + z * h, (h, r, z, n, hn)


def _cell_backward(dh_new, cache, Wh):
    h, r, z, n, hn = cache
    dn = (1 - z) * dh_new
    dan = (1 - n * n) * dn
    dar = r * (1 - r) * (hn * dan)
    daz = z * (1 - z) * ((h - n) * dh_new)
    dax = np.concatenate([dar, daz, dan], axis=1)
    dah = np.concatenate([dar, daz, r * dan], axis=1)
    return dax, dah, z * dh_new + dah @ Wh.T


def forward(params: dict, x_BxTxD: np.ndarray, h0_BxH: np.ndarray | None = None):
    """Hidden states ``[B, T, H]`` and the cache for :func:`backward`."""
    b, t, d = x_BxTxD.shape
    hidden = params["Wh"].shape[0]
    h = np.zeros((b, hidden), x_BxTxD.dtype) if h0_BxH is None else h0_BxH
    ax = (x_BxTxD.reshape(b * t, d) @ params["Wx"] + params["bx"]).reshape(b, t, 3 * hidden)
    hs, caches = [], []
    for step in range(t):
        h, cache = _cell_forward(ax[:, step], h, params["Wh"], params["bh_n"])
        hs.append(h)
        caches.append(cache)
    return np.stack(hs, axis=1), (x_BxTxD, caches)


def backward(dh_BxTxH: np.ndarray, cache, params: dict):
    """BPTT: ``(grads for Wx, bx, Wh, bh_n; dx_BxTxD; dh0)`` given dL/dh_t from the outputs."""
    x_BxTxD, caches = cache
    b, t, d = x_BxTxD.shape
    hidden = params["Wh"].shape[0]
    dh_next = np.zeros((b, hidden), dh_BxTxH.dtype)
    dax_steps, dah_steps = [None] * t, [None] * t
    for step in reversed(range(t)):
        dax_steps[step], dah_steps[step], dh_next = _cell_backward(
            dh_BxTxH[:, step] + dh_next, caches[step], params["Wh"]
        )
    dax = np.stack(dax_steps, axis=1).reshape(b * t, 3 * hidden)
    dah = np.stack(dah_steps, axis=1).reshape(b * t, 3 * hidden)
    h_prev = np.stack([c[0] for c in caches], axis=1).reshape(b * t, hidden)
    grads = {
        "Wx": x_BxTxD.reshape(b * t, d).T @ dax,
        "bx": dax.sum(axis=0),
        "Wh": h_prev.T @ dah,
        "bh_n": dah[:, 2 * hidden :].sum(axis=0),
    }
    dx = (dax @ params["Wx"].T).reshape(b, t, d)
    return grads, dx, dh_next


def loss_and_grads(params: dict, x_BxTxD: np.ndarray, targets_BxT: np.ndarray):
    """Mean per-token cross-entropy of the read-out and the gradients of every parameter."""
    h_BxTxH, cache = forward(params, x_BxTxD)
    loss, dh, dWy, dby = readout_cross_entropy(h_BxTxH, params["Wy"], params["by"], targets_BxT)
    grads, _, _ = backward(dh, cache, params)
    grads["Wy"], grads["by"] = dWy, dby
    return loss, grads
