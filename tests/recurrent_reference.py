"""Textbook recurrent equations in NumPy (float64), one gate at a time, for the tests.

Written from the papers' equations, independently of dlcore's packed-gate code: each gate
gets its own slice of the packed parameters and its own line.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np

CELL_NAMES = ("rnn_tanh", "rnn_relu", "lstm", "peephole_lstm", "coupled_lstm", "gru")
LSTM_LIKE = ("lstm", "peephole_lstm", "coupled_lstm")


def sigmoid(a):
    return 1.0 / (1.0 + np.exp(-a))


def _block(m, k, h):
    return m[..., k * h : (k + 1) * h]


def np_step(name, params, carry, x_BxD):
    """One step of cell ``name`` from its equations; params is the cell's flax param dict."""
    p = jax.tree.map(np.asarray, params)
    w, b, u = p["input"]["kernel"], p["input"]["bias"], p["recurrent_kernel"]
    hid = u.shape[0]

    def pre(k, h_in):  # W_k x + b_k + U_k h_in for gate block k
        return x_BxD @ _block(w, k, hid) + _block(b, k, hid) + h_in @ _block(u, k, hid)

    h = np.asarray(carry["h"])
    if name == "rnn_tanh":
        h_new = np.tanh(pre(0, h))
        return {"h": h_new}, h_new
    if name == "rnn_relu":
        h_new = np.maximum(pre(0, h), 0.0)
        return {"h": h_new}, h_new
    if name == "gru":
        z = sigmoid(pre(0, h))
        r = sigmoid(pre(1, h))
        n = np.tanh(x_BxD @ _block(w, 2, hid) + _block(b, 2, hid) + (r * h) @ _block(u, 2, hid))
        h_new = z * h + (1.0 - z) * n
        return {"h": h_new}, h_new
    c = np.asarray(carry["c"])
    if name == "lstm":
        i, f = sigmoid(pre(0, h)), sigmoid(pre(1, h))
        g, o = np.tanh(pre(2, h)), sigmoid(pre(3, h))
        c_new = f * c + i * g
    elif name == "peephole_lstm":
        i = sigmoid(pre(0, h) + p["peephole_i"] * c)
        f = sigmoid(pre(1, h) + p["peephole_f"] * c)
        g = np.tanh(pre(2, h))
        c_new = f * c + i * g
        o = sigmoid(pre(3, h) + p["peephole_o"] * c_new)
    elif name == "coupled_lstm":
        f, g, o = sigmoid(pre(0, h)), np.tanh(pre(1, h)), sigmoid(pre(2, h))
        c_new = f * c + (1.0 - f) * g
    else:
        raise KeyError(name)
    h_new = o * np.tanh(c_new)
    return {"c": c_new, "h": h_new}, h_new


def np_run(name, params, x_TxD, carry=None):
    """Runs one UNPADDED sequence ``[T, D]``; returns (final carry, outputs [T, H])."""
    hid = np.asarray(params["recurrent_kernel"]).shape[0]
    if carry is None:
        names = ("c", "h") if name in LSTM_LIKE else ("h",)
        carry = {k: np.zeros((1, hid)) for k in names}
    ys = []
    for t in range(x_TxD.shape[0]):
        carry, y = np_step(name, params, carry, np.asarray(x_TxD[t : t + 1]))
        ys.append(y[0])
    return carry, np.stack(ys) if ys else np.zeros((0, hid))


def randomize(tree, seed=0, scale=0.5):
    """Every leaf replaced by float64 N(0, scale²) draws, so no parameter sits at its init.

    NumPy draws: no initializer to compile. float64 inside ``jax.enable_x64(True)``.
    """
    rng = np.random.default_rng(seed)
    dtype = jax.dtypes.canonicalize_dtype(np.float64)  # float32 outside enable_x64
    return jax.tree.map(lambda leaf: jnp.asarray(scale * rng.normal(size=leaf.shape), dtype), tree)


def random_params(module, *args, seed=0, scale=0.5, **kwargs):
    """Random float64 params of ``module`` with the shapes ``module.init`` would give.

    Uses ``jax.eval_shape`` so no initializer is compiled or run.
    """
    init = functools.partial(module.init, **kwargs)  # keyword options such as train stay static
    shapes = jax.eval_shape(init, jax.random.key(0), *args)["params"]
    return randomize(shapes, seed, scale)
