"""Elman RNN with a per-token softmax read-out, full back-propagation through time, by hand.

Forward (row-vector convention, x_t ``[B, D]``, h_t ``[B, H]``):
    h_t = tanh(x_t Wx + h_{t-1} Wh + b),     y_t = h_t Wy + by
Backward, with dh_t the total gradient reaching h_t (from y_t and from h_{t+1}):
    da_t = dh_t * (1 - h_t^2),   dh_{t-1} += da_t Wh^T,
    dWx = sum_t x_t^T da_t,  dWh = sum_t h_{t-1}^T da_t,  db = sum_t sum_rows da_t
The input projection x_t Wx and the weight gradients are computed for all steps at once (one
large matrix product instead of T small ones); only the recurrence is a loop over time.
"""

import numpy as np

from benchmarks.numpy_ref.losses import readout_cross_entropy


def init_params(rng: np.random.Generator, d_in: int, hidden: int, d_out: int, dtype=np.float32):
    """Glorot-style input/read-out weights, scaled-orthogonal-free random recurrent weights.

    Example:
      >>> p = init_params(np.random.default_rng(0), 65, 32, 65)
      >>> sorted(p)
      ['Wh', 'Wx', 'Wy', 'b', 'by']
    """

    def normal(shape, fan_in):
        return (rng.standard_normal(shape) / np.sqrt(fan_in)).astype(dtype)

    return {
        "Wx": normal((d_in, hidden), d_in),
        "Wh": normal((hidden, hidden), hidden),
        "b": np.zeros(hidden, dtype),
        "Wy": normal((hidden, d_out), hidden),
        "by": np.zeros(d_out, dtype),
    }


def forward(params: dict, x_BxTxD: np.ndarray, h0_BxH: np.ndarray | None = None):
    """Hidden states ``[B, T, H]`` and the cache for :func:`backward`."""
    b, t, d = x_BxTxD.shape
    hidden = params["Wh"].shape[0]
    h = np.zeros((b, hidden), x_BxTxD.dtype) if h0_BxH is None else h0_BxH
    xw_BxTxH = (x_BxTxD.reshape(b * t, d) @ params["Wx"] + params["b"]).reshape(b, t, hidden)
    hs = [h]
    for step in range(t):
        h = np.tanh(xw_BxTxH[:, step] + h @ params["Wh"])
        hs.append(h)
    h_all = np.stack(hs, axis=1)  # [B, T+1, H], index 0 is h0
    return h_all[:, 1:], (x_BxTxD, h_all)


def backward(dh_BxTxH: np.ndarray, cache, params: dict):
    """BPTT: ``(grads for Wx, Wh, b; dx_BxTxD; dh0_BxH)`` given dL/dh_t from the outputs."""
    x_BxTxD, h_all = cache
    b, t, d = x_BxTxD.shape
    hidden = h_all.shape[-1]
    da_steps = [None] * t
    dh_next = np.zeros((b, hidden), dh_BxTxH.dtype)
    for step in reversed(range(t)):
        h = h_all[:, step + 1]
        da = (dh_BxTxH[:, step] + dh_next) * (1 - h * h)
        dh_next = da @ params["Wh"].T
        da_steps[step] = da
    da_NxH = np.stack(da_steps, axis=1).reshape(b * t, hidden)
    grads = {
        "Wx": x_BxTxD.reshape(b * t, d).T @ da_NxH,
        "Wh": h_all[:, :-1].reshape(b * t, hidden).T @ da_NxH,
        "b": da_NxH.sum(axis=0),
    }
    dx = (da_NxH @ params["Wx"].T).reshape(b, t, d)
    return grads, dx, dh_next


def loss_and_grads(params: dict, x_BxTxD: np.ndarray, targets_BxT: np.ndarray):
    """Mean per-token cross-entropy of the read-out and the gradients of every parameter."""
    h_BxTxH, cache = forward(params, x_BxTxD)
    loss, dh, dWy, dby = readout_cross_entropy(h_BxTxH, params["Wy"], params["by"], targets_BxT)
    grads, _, _ = backward(dh, cache, params)
    grads["Wy"], grads["by"] = dWy, dby
    return loss, grads
