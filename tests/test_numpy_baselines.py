"""The NumPy baselines' hand-derived gradients against finite differences, jax.grad and dlcore.

Every check runs in float64 with a relative error bound of 1e-6: the norm of the difference
over the larger norm, per parameter array.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import dlcore
from benchmarks import jax_ref, numpy_ref

TOL = 1e-6
EPS = 1e-6  # central differences: truncation ~EPS^2, round-off ~1e-16 / EPS


def rel_err(a, b) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    scale = max(np.linalg.norm(a), np.linalg.norm(b))
    return float(np.linalg.norm(a - b) / scale) if scale > 0 else 0.0


def finite_difference_check(loss_fn, params: dict, grads: dict, rng, per_array: int = 6):
    """Compares ``grads`` with central differences of ``loss_fn(params)`` at a few coordinates."""
    assert set(grads) == set(params)
    for name, value in params.items():
        picks = rng.choice(value.size, size=min(per_array, value.size), replace=False)
        numeric, analytic = [], []
        for flat in picks:
            idx = np.unravel_index(flat, value.shape)
            shifted = []
            for sign in (1.0, -1.0):
                trial = dict(params)
                trial[name] = value.copy()
                trial[name][idx] += sign * EPS
                shifted.append(float(loss_fn(trial)))
            numeric.append((shifted[0] - shifted[1]) / (2 * EPS))
            analytic.append(grads[name][idx])
        assert rel_err(numeric, analytic) <= TOL, (name, numeric, analytic)


def one_hot(tokens, vocab, dtype=np.float64):
    return np.eye(vocab, dtype=dtype)[tokens]


def make_case(name: str, dtype=np.float64):
    """(numpy loss_and_grads, jax loss, params, batch) for a model at tiny shapes."""
    rng = np.random.default_rng(7)
    if name == "mlp":
        params = numpy_ref.mlp.init_params(rng, (6, 5, 4, 3), dtype)
        batch = (rng.standard_normal((4, 6)).astype(dtype), rng.integers(0, 3, 4))
        return numpy_ref.mlp.loss_and_grads, jax_ref.mlp.loss, params, batch
    if name == "lenet5":
        params = numpy_ref.conv.lenet5_init(rng, dtype)
        batch = (rng.standard_normal((2, 28, 28, 1)).astype(dtype), rng.integers(0, 10, 2))
        return numpy_ref.conv.lenet5_loss_and_grads, jax_ref.conv.lenet5_loss, params, batch
    if name == "resnet":
        params = numpy_ref.resnet.resnet_init(rng, 3, 4, dtype)
        # Non-trivial batch-norm scales and shifts so their gradient paths are exercised.
        for key in params:
            if key.endswith(("_g", "_b")) and not key.startswith("fc"):
                params[key] = (params[key] + 0.3 * rng.standard_normal(params[key].shape)).astype(
                    dtype
                )
        batch = (rng.standard_normal((2, 8, 8, 3)).astype(dtype), rng.integers(0, 4, 2))
        return numpy_ref.resnet.resnet_loss_and_grads, jax_ref.resnet.resnet_loss, params, batch
    if name in ("rnn", "lstm", "gru"):
        np_mod, jax_mod = getattr(numpy_ref, name), getattr(jax_ref, name)
        params = np_mod.init_params(rng, 5, 4, 5, dtype)
        # Nonzero biases so every bias gradient path is exercised.
        for key in params:
            if key.startswith("b"):
                params[key] = (params[key] + 0.3 * rng.standard_normal(params[key].shape)).astype(
                    dtype
                )
        tokens = rng.integers(0, 5, (3, 7))
        batch = (one_hot(tokens, 5, dtype), np.roll(tokens, -1, axis=1))
        return np_mod.loss_and_grads, jax_mod.loss, params, batch
    if name == "attention":
        params = numpy_ref.attention.init_params(rng, 4, 3, 5, dtype)
        params["b"] = 0.3 * rng.standard_normal(5).astype(dtype)
        q = rng.standard_normal((2, 3, 4)).astype(dtype)
        k = rng.standard_normal((2, 6, 3)).astype(dtype)
        v = rng.standard_normal((2, 6, 2)).astype(dtype)
        target = rng.standard_normal((2, 3, 2)).astype(dtype)
        return numpy_ref.attention.loss_and_grads, jax_ref.attention.loss, params, (q, k, v, target)
    raise AssertionError(name)


MODELS = ["mlp", "lenet5", "resnet", "rnn", "lstm", "gru", "attention"]


def test_every_numpy_model_is_checked():
    modules = {"mlp", "conv", "resnet", "rnn", "lstm", "gru", "attention"}
    assert modules <= set(numpy_ref.__all__)
    assert {"lenet5" if m == "conv" else m for m in modules} == set(MODELS)


@pytest.mark.parametrize("name", MODELS)
def test_gradients_match_finite_differences(name):
    np_loss_and_grads, _, params, batch = make_case(name)
    loss, grads = np_loss_and_grads(params, *batch)
    assert loss.dtype == np.float64
    finite_difference_check(
        lambda p: np_loss_and_grads(p, *batch)[0], params, grads, np.random.default_rng(0)
    )


@pytest.mark.parametrize("name", MODELS)
def test_gradients_match_pure_jax(name):
    np_loss_and_grads, jax_loss, params, batch = make_case(name)
    loss, grads = np_loss_and_grads(params, *batch)
    with jax.enable_x64(True):
        jax_value, jax_grads = jax.jit(jax.value_and_grad(jax_loss))(
            jax.tree.map(jnp.asarray, params), *map(jnp.asarray, batch)
        )
        assert jax_value.dtype == jnp.float64
    assert rel_err(loss, jax_value) <= TOL
    for key in params:
        assert rel_err(grads[key], jax_grads[key]) <= TOL, key


@pytest.mark.parametrize("name", MODELS)
def test_float32_stays_float32_and_close_to_float64(name):
    np_loss_and_grads, _, params64, batch64 = make_case(name, np.float64)
    np_loss_and_grads, _, params32, batch32 = make_case(name, np.float32)
    loss32, grads32 = np_loss_and_grads(params32, *batch32)
    loss64, grads64 = np_loss_and_grads(params64, *batch64)
    assert loss32.dtype == np.float32
    assert all(g.dtype == np.float32 for g in grads32.values())
    assert rel_err(loss32, loss64) <= 1e-5
    assert all(rel_err(grads32[k], grads64[k]) <= 1e-4 for k in grads64)


def test_conv2d_and_maxpool_alone_match_finite_differences():
    """Stride 2 with padding, and an overlapping 3x3/stride-1 pool (the add.at path)."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 7, 6, 3))
    params = {"W": rng.standard_normal((3, 3, 3, 4)), "b": rng.standard_normal(4)}
    g = rng.standard_normal((2, 2, 1, 4))  # upstream gradient after the pool

    def loss_and_grads(p, x_in):
        y, conv_cache = numpy_ref.conv.conv2d_forward(x_in, p["W"], p["b"], stride=2, pad=1)
        pooled, pool_cache = numpy_ref.conv.maxpool_forward(y, size=3, stride=1)
        dy = numpy_ref.conv.maxpool_backward(g, pool_cache)
        dx, dW, db = numpy_ref.conv.conv2d_backward(dy, conv_cache)
        return np.sum(pooled * g), {"W": dW, "b": db}, dx

    _, grads, dx = loss_and_grads(params, x)
    rng_pick = np.random.default_rng(1)
    finite_difference_check(lambda p: loss_and_grads(p, x)[0], params, grads, rng_pick)
    finite_difference_check(
        lambda p: loss_and_grads(params, p["x"])[0], {"x": x}, {"x": dx}, rng_pick, per_array=20
    )


def test_maxpool_gradient_goes_only_to_the_argmax():
    x = np.arange(16.0)[::-1].reshape(1, 4, 4, 1)  # maxima at the top-left of each window
    _, cache = numpy_ref.conv.maxpool_forward(x, size=2)
    dx = numpy_ref.conv.maxpool_backward(np.ones((1, 2, 2, 1)), cache)
    expected = np.zeros((4, 4))
    expected[0::2, 0::2] = 1.0
    np.testing.assert_array_equal(dx[0, :, :, 0], expected)


def test_lstm_lecture_step_matches_finite_differences():
    rng = np.random.default_rng(5)
    b, d, h = 3, 4, 5
    inputs = {
        "x": rng.standard_normal((b, d)),
        "prev_h": rng.standard_normal((b, h)),
        "prev_c": rng.standard_normal((b, h)),
        "Wx": rng.standard_normal((d, 4 * h)) / 2,
        "Wh": rng.standard_normal((h, 4 * h)) / 2,
        "b": rng.standard_normal(4 * h),
    }
    gh, gc = rng.standard_normal((b, h)), rng.standard_normal((b, h))

    def loss(p):
        next_h, next_c, _ = numpy_ref.lstm.step_forward(**p)
        return np.sum(next_h * gh) + np.sum(next_c * gc)

    _, _, cache = numpy_ref.lstm.step_forward(**inputs)
    dx, dh, dc, dWx, dWh, db = numpy_ref.lstm.step_backward(gh, gc, cache)
    grads = {"x": dx, "prev_h": dh, "prev_c": dc, "Wx": dWx, "Wh": dWh, "b": db}
    finite_difference_check(loss, inputs, grads, np.random.default_rng(2))


def test_mlp_matches_dlcore_mlp():
    """Same weights in numpy_ref.mlp and dlcore.MLP (flax Dense kernels are [in, out])."""
    np_loss_and_grads, _, params, (x, y) = make_case("mlp")
    loss, grads = np_loss_and_grads(params, x, y)
    logits_np, _ = numpy_ref.mlp.forward(params, x)
    model = dlcore.MLP(widths=(5, 4), out_features=3)

    def to_flax(p):
        return {f"Dense_{i}": {"kernel": p[f"W{i}"], "bias": p[f"b{i}"]} for i in range(3)}

    with jax.enable_x64(True):
        flax_params = jax.tree.map(jnp.asarray, to_flax(params))
        variables = model.init(jax.random.key(0), jnp.asarray(x), train=False)
        assert jax.tree.map(jnp.shape, variables["params"]) == jax.tree.map(jnp.shape, flax_params)

        def objective(p):
            logits = model.apply({"params": p}, jnp.asarray(x), train=False)
            return jnp.mean(dlcore.softmax_cross_entropy(logits, jnp.asarray(y))), logits

        (value, logits), flax_grads = jax.jit(jax.value_and_grad(objective, has_aux=True))(
            flax_params
        )
    assert rel_err(logits, logits_np) <= TOL
    assert rel_err(value, loss) <= TOL
    for key, expected in to_flax(grads).items():
        for leaf in ("kernel", "bias"):
            assert rel_err(flax_grads[key][leaf], expected[leaf]) <= TOL, (key, leaf)


def _numpy_sgd(params, grads_seq, lr):
    for g in grads_seq:
        params = numpy_ref.optim.sgd(params, g, lr)
    return params


def _numpy_momentum(params, grads_seq, lr, mu=0.9):
    v = numpy_ref.optim.momentum_init(params)
    for g in grads_seq:
        params, v = numpy_ref.optim.momentum(params, g, v, lr, mu)
    return params


def _numpy_adam(params, grads_seq, lr):
    state = numpy_ref.optim.adam_init(params)
    for g in grads_seq:
        params, state = numpy_ref.optim.adam(params, g, state, lr)
    return params


# optax's momentum keeps v = mu v + g and steps p -= lr v; with a constant lr that is the
# lecture's v = mu v - lr g, p += v scaled by -lr, so the parameters agree step for step.
OPTIMIZERS = {
    "sgd": (_numpy_sgd, lambda lr: optax.sgd(lr)),
    "momentum": (_numpy_momentum, lambda lr: optax.sgd(lr, momentum=0.9)),
    "adam": (_numpy_adam, lambda lr: optax.adam(lr)),
}


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_optimizer_matches_optax_for_five_steps(name):
    numpy_run, make_optax = OPTIMIZERS[name]
    rng = np.random.default_rng(11)
    params = {"w": rng.standard_normal((3, 4)), "b": rng.standard_normal(4)}
    grads_seq = [{k: rng.standard_normal(v.shape) for k, v in params.items()} for _ in range(5)]
    lr = 0.1
    expected = numpy_run(params, grads_seq, lr)
    moved = max(rel_err(expected[k], params[k]) for k in params)
    assert moved > 1e-3  # the steps really changed the parameters
    with jax.enable_x64(True):
        opt = make_optax(lr)
        p = jax.tree.map(jnp.asarray, params)
        state = opt.init(p)
        for g in grads_seq:
            updates, state = opt.update(jax.tree.map(jnp.asarray, g), state, p)
            p = optax.apply_updates(p, updates)
        assert p["w"].dtype == jnp.float64
    for k in params:
        assert rel_err(p[k], expected[k]) <= TOL, k


def _lstm_to_flax(p: dict, hidden: int) -> dict:
    # numpy_ref packs the gates [i | f | o | g]; flax names them ii/hi, if/hf, io/ho, ig/hg and
    # puts the bias on the hidden projection.
    out = {}
    for idx, gate in enumerate("ifog"):
        cols = slice(idx * hidden, (idx + 1) * hidden)
        out[f"i{gate}"] = {"kernel": p["Wx"][:, cols]}
        out[f"h{gate}"] = {"kernel": p["Wh"][:, cols], "bias": p["b"][cols]}
    return out


def _gru_to_flax(p: dict, hidden: int) -> dict:
    out = {}
    for idx, gate in enumerate("rzn"):
        cols = slice(idx * hidden, (idx + 1) * hidden)
        out[f"i{gate}"] = {"kernel": p["Wx"][:, cols], "bias": p["bx"][cols]}
        out[f"h{gate}"] = {"kernel": p["Wh"][:, cols]}
    out["hn"]["bias"] = p["bh_n"]
    return out


FLAX_CELLS = {
    "lstm": (lambda h: nn.LSTMCell(h, param_dtype=np.float64), _lstm_to_flax),
    "gru": (lambda h: nn.GRUCell(h, param_dtype=np.float64), _gru_to_flax),
}


@pytest.mark.parametrize("name", sorted(FLAX_CELLS))
def test_recurrent_cell_matches_flax_linen_convention(name):
    """Same weights in numpy_ref and flax.linen's cell: equal states and equal gradients."""
    make_cell, to_flax = FLAX_CELLS[name]
    _, _, params, (x, _) = make_case(name)
    hidden = params["Wh"].shape[0]
    upstream = np.random.default_rng(4).standard_normal(x.shape[:2] + (hidden,))
    np_mod = getattr(numpy_ref, name)
    h_np, cache = np_mod.forward(params, x)
    grads, _, _ = np_mod.backward(upstream, cache, params)
    rnn = nn.RNN(make_cell(hidden))
    with jax.enable_x64(True):
        cell_params = jax.tree.map(jnp.asarray, to_flax(params, hidden))
        shapes = jax.tree.map(jnp.shape, rnn.init(jax.random.key(0), jnp.asarray(x))["params"])
        assert shapes == {"cell": jax.tree.map(jnp.shape, cell_params)}

        def objective(p):
            h = rnn.apply({"params": {"cell": p}}, jnp.asarray(x))
            return jnp.sum(h * upstream), h

        (_, h_flax), flax_grads = jax.jit(jax.value_and_grad(objective, has_aux=True))(cell_params)
    assert rel_err(h_flax, h_np) <= TOL
    expected = to_flax({k: grads.get(k, params[k]) for k in params}, hidden)
    for path, leaf in jax.tree_util.tree_leaves_with_path(expected):
        got = flax_grads
        for key in path:
            got = got[key.key]
        assert rel_err(got, leaf) <= TOL, path
