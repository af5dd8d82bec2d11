"""LSTM with a per-token softmax read-out and full BPTT, with the step derived in the lectures.

One step (gate order i, f, o, g as in the lecture code; x ``[B, D]``, h and c ``[B, H]``):
    a = x Wx + h_{t-1} Wh + b                       # [B, 4H]
    i = sigma(a_i), f = sigma(a_f), o = sigma(a_o), g = tanh(a_g)
    c_t = f * c_{t-1} + i * g,     h_t = o * tanh(c_t)
Step backward, given dh_t and dc_t (the cell gradient arriving from step t+1):
    do = tanh(c_t) dh_t,   dc = dc_t + o (1 - tanh^2 c_t) dh_t
    df = c_{t-1} dc,  di = g dc,  dg = i dc,  dc_{t-1} = f dc
    da = [i(1-i) di, f(1-f) df, o(1-o) do, (1-g^2) dg]
    dx = da Wx^T,  dh_{t-1} = da Wh^T,  dWx = x^T da,  dWh = h_{t-1}^T da,  db = sum_rows da
The sequence functions hoist x Wx and the weight gradients out of the time loop.
"""

import numpy as np

from benchmarks.numpy_ref.losses import readout_cross_entropy


def sigmoid(x: np.ndarray) -> np.ndarray:
    # tanh form: no overflow warning for large negative x, same value as 1 / (1 + exp(-x)).
    return 0.5 * (np.tanh(0.5 * x) + 1.0)


def init_params(rng: np.random.Generator, d_in: int, hidden: int, d_out: int, dtype=np.float32):
    """Random LSTM and read-out weights; the forget-gate bias starts at 1.

    Example:
      >>> p = init_params(np.random.default_rng(0), 65, 32, 65)
      >>> p["Wx"].shape, p["Wh"].shape, p["b"].shape
      ((65, 128), (32, 128), (128,))
    """

    def normal(shape, fan_in):
        return (rng.standard_normal(shape) / np.sqrt(fan_in)).astype(dtype)

    b = np.zeros(4 * hidden, dtype)
    b[hidden : 2 * hidden] = 1.0
    return {
        "Wx": normal((d_in, 4 * hidden), d_in),
        "Wh": normal((hidden, 4 * hidden), hidden),
        "b": b,
        "Wy": normal((hidden, d_out), hidden),
        "by": np.zeros(d_out, dtype),
    }


def _cell_forward(a_Bx4H: np.ndarray, prev_c: np.ndarray):
    hidden = prev_c.shape[-1]
    i = sigmoid(a_Bx4H[:, :hidden])
    f = sigmoid(a_Bx4H[:, hidden : 2 * hidden])
    o = sigmoid(a_Bx4H[:, 2 * hidden : 3 * hidden])
    g = np.tanh(a_Bx4H[:, 3 * hidden :])
    c = f * prev_c + i * g
    tanh_c = np.tanh(c)
    return o * tanh_c, c, (i, f, o, g, prev_c, tanh_c)


def _cell_backward(dh: np.ndarray, dc_next: np.ndarray, gates):
    i, f, o, g, prev_c, tanh_c = gates
    do = tanh_c * dh
    dc = dc_next + o * (1 - tanh_c * tanh_c) * dh
    da = np.concatenate(
        [
            i * (1 - i) * (g * dc),
            f * (1 - f) * (prev_c * dc),
            o * (1 - o) * do,
            (1 - g * g) * (i * dc),
        ],
        axis=1,
    )
    return da, f * dc


def step_forward(x, prev_h, prev_c, Wx, Wh, b):
    """One LSTM step: ``(next_h, next_c, cache)``."""
    next_h, next_c, gates = _cell_forward(x @ Wx + prev_h @ Wh + b, prev_c)
    return next_h, next_c, (x, prev_h, Wx, Wh, gates)


def step_backward(dnext_h, dnext_c, cache):
    """One LSTM step backward: ``(dx, dprev_h, dprev_c, dWx, dWh, db)``."""
    x, prev_h, Wx, Wh, gates = cache
    da, dprev_c = _cell_backward(dnext_h, dnext_c, gates)
    return da @ Wx.T, da @ Wh.T, dprev_c, x.T @ da, prev_h.T @ da, da.sum(axis=0)


def forward(params: dict, x_BxTxD: np.ndarray, h0=None, c0=None):
    """Hidden states ``[B, T, H]`` and the cache for :func:`backward`; zero initial state."""
    b, t, d = x_BxTxD.shape
    hidden = params["Wh"].shape[0]
    h = np.zeros((b, hidden), x_BxTxD.dtype) if h0 is None else h0
    c = np.zeros((b, hidden), x_BxTxD.dtype) if c0 is None else c0
    xw = (x_BxTxD.reshape(b * t, d) @ params["Wx"] + params["b"]).reshape(b, t, 4 * hidden)
    hs, caches = [h], []
    for step in range(t):
        h, c, gates = _cell_forward(xw[:, step] + h @ params["Wh"], c)
        hs.append(h)
        caches.append(gates)
    h_all = np.stack(hs, axis=1)  # [B, T+1, H], index 0 is h0
    return h_all[:, 1:], (x_BxTxD, h_all, caches)


def backward(dh_BxTxH: np.ndarray, cache, params: dict):
    """BPTT: ``(grads for Wx, Wh, b; dx_BxTxD; (dh0, dc0))`` given dL/dh_t from the outputs."""
    x_BxTxD, h_all, caches = cache
    b, t, d = x_BxTxD.shape
    hidden = h_all.shape[-1]
    dh_next = np.zeros((b, hidden), dh_BxTxH.dtype)
    dc_next = np.zeros_like(dh_next)
    da_steps = [None] * t
    for step in reversed(range(t)):
        da, dc_next = _cell_backward(dh_BxTxH[:, step] + dh_next, dc_next, caches[step])
        dh_next = da @ params["Wh"].T
        da_steps[step] = da
    da_Nx4H = np.stack(da_steps, axis=1).reshape(b * t, 4 * hidden)
    grads = {
        "Wx": x_BxTxD.reshape(b * t, d).T @ da_Nx4H,
        "Wh": h_all[:, :-1].reshape(b * t, hidden).T @ da_Nx4H,
        "b": da_Nx4H.sum(axis=0),
    }
    dx = (da_Nx4H @ params["Wx"].T).reshape(b, t, d)
    return grads, dx, (dh_next, dc_next)


def loss_and_grads(params: dict, x_BxTxD: np.ndarray, targets_BxT: np.ndarray):
    """Mean per-token cross-entropy of the read-out and the gradients of every parameter."""
    h_BxTxH, cache = forward(params, x_BxTxD)
    loss, dh, dWy, dby = readout_cross_entropy(h_BxTxH, params["Wy"], params["by"], targets_BxT)
    grads, _, _ = backward(dh, cache, params)
    grads["Wy"], grads["by"] = dWy, dby
    return loss, grads
