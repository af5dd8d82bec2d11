"""The NumPy baselines agree with dlcore: recurrent BPTT and the optimizer updates.

(The MLP, convolution/LeNet-5 and attention baselines are compared with dlcore in
test_numpy_baselines.py, test_conv.py and test_attention.py.)

dlcore's pure step functions and scans are driven with the baseline's own weights (the
LSTM's gate blocks reordered from the baseline's [i, f, o, g] to dlcore's [i, f, g, o]), and
losses and every gradient are compared in float64. The GRU baseline follows flax's
convention (reset gate after the recurrent matmul), which differs from dlcore's Cho et al.
GRU (reset before it), so it is compared with flax in test_numpy_baselines.py instead.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from benchmarks import numpy_ref
from dlcore.losses import reduce_loss, softmax_cross_entropy
from dlcore.recurrent import elman_step, lstm_scan_vjp, lstm_step, scan_cell

B, T, D, H, V = 3, 6, 5, 4, 7
LSTM_ORDER = np.array([0, 1, 3, 2])  # baseline [i, f, o, g] -> dlcore [i, f, g, o]


def gates_to_dlcore(w, hidden):
    blocks = np.split(w, 4, axis=-1)
    return jnp.concatenate([blocks[i] for i in LSTM_ORDER], axis=-1)


def dlcore_loss(params, x_BxTxD, targets_BxT, kind):
    hidden = params["Wh"].shape[0]
    wx, wh, b = params["Wx"], params["Wh"], params["b"]
    if kind != "rnn":
        wx, wh, b = (gates_to_dlcore(a, hidden) for a in (wx, wh, b))
    xp_TxBxG = jnp.swapaxes(x_BxTxD @ wx + b[None, None, :], 0, 1)  # one matmul, all steps
    zeros = jnp.zeros((x_BxTxD.shape[0], hidden), x_BxTxD.dtype)
    if kind == "rnn":
        _, h_TxBxH = scan_cell(elman_step, {"recurrent_kernel": wh}, {"h": zeros}, xp_TxBxG)
    elif kind == "lstm_scan":
        _, h_TxBxH = scan_cell(
            lstm_step, {"recurrent_kernel": wh}, {"c": zeros, "h": zeros}, xp_TxBxG
        )
    else:
        _, h_TxBxH = lstm_scan_vjp(wh, {"c": zeros, "h": zeros}, xp_TxBxG)
    logits = jnp.swapaxes(h_TxBxH, 0, 1) @ params["Wy"] + params["by"][None, None, :]
    return reduce_loss(
        softmax_cross_entropy(logits.reshape(-1, logits.shape[-1]), targets_BxT.reshape(-1))
    )


@pytest.mark.parametrize("kind", ["rnn", "lstm_scan", "lstm_custom_vjp"])
def test_numpy_bptt_matches_dlcore_recurrent(kind):
    module = numpy_ref.rnn if kind == "rnn" else numpy_ref.lstm
    rng = np.random.default_rng(0)
    params = module.init_params(rng, D, H, V, dtype=np.float64)
    params = {k: v + 0.1 * rng.standard_normal(v.shape) for k, v in params.items()}
    x = rng.standard_normal((B, T, D))
    targets = rng.integers(0, V, (B, T))
    loss_np, grads_np = module.loss_and_grads(params, x, targets)
    with jax.enable_x64(True):
        jparams = jax.tree.map(jnp.asarray, params)
        loss, grads = jax.jit(jax.value_and_grad(dlcore_loss), static_argnums=3)(
            jparams, jnp.asarray(x), jnp.asarray(targets), kind
        )
    np.testing.assert_allclose(float(loss), loss_np, rtol=1e-10)
    assert set(grads) == set(grads_np)
    for name, g_np in grads_np.items():
        np.testing.assert_allclose(
            np.asarray(grads[name]), g_np, rtol=1e-6, atol=1e-12, err_msg=name
        )


@pytest.mark.parametrize("name", ["sgd", "momentum", "adam"])
def test_numpy_optimizer_updates_match_dlcore_recipes(name):
    """Five steps of the NumPy SGD / momentum / Adam equal dlcore's configured chains."""
    from dlcore.config.loading import validate
    from dlcore.optim import build_optimizer

    rng = np.random.default_rng(1)
    params = {"w": rng.standard_normal((3, 2)), "b": rng.standard_normal(2)}
    grads_seq = [{k: rng.standard_normal(v.shape) for k, v in params.items()} for _ in range(5)]
    cfg = validate(
        {
            "data": {"name": "xor"},
            "model": {"name": "mlp"},
            "optimizer": {"name": name, "learning_rate": 0.05},
        },
        "t",
    ).optimizer
    with jax.enable_x64(True):
        chain = build_optimizer(cfg)
        p_dl = jax.tree.map(jnp.asarray, params)
        state = chain.init(p_dl)
        p_np = dict(params)
        np_state = {
            "momentum": numpy_ref.optim.momentum_init,
            "adam": numpy_ref.optim.adam_init,
            "sgd": lambda p: None,
        }[name](p_np)
        for grads in grads_seq:
            updates, state = chain.update(jax.tree.map(jnp.asarray, grads), state, p_dl)
            p_dl = jax.tree.map(lambda p, u: p + u, p_dl, updates)
            if name == "sgd":
                p_np = numpy_ref.optim.sgd(p_np, grads, 0.05)
            elif name == "momentum":
                p_np, np_state = numpy_ref.optim.momentum(p_np, grads, np_state, 0.05, 0.9)
            else:
                p_np, np_state = numpy_ref.optim.adam(p_np, grads, np_state, 0.05)
        for k in params:
            np.testing.assert_allclose(np.asarray(p_dl[k]), p_np[k], rtol=1e-6, atol=1e-12)
