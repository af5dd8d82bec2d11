"""The reset-after GRU (``GRUCell(reset_after=True)``) against its formula, in float64.

    z = σ(W_z x + b_z + U_z h),   r = σ(W_r x + b_r + U_r h)
    n = tanh(W_n x + b_n + r ⊙ (U_n h + b_hn)),   h' = z ⊙ h + (1 − z) ⊙ n

The NumPy reference below is written gate by gate from these equations.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from recurrent_reference import random_params, sigmoid

from dlcore.config.loading import load_config
from dlcore.gradcheck import gradcheck
from dlcore.recurrent import RNN, GRUCell, gru_reset_after_step
from tests.helpers import REPO

B, T, D, H = 3, 5, 3, 4
LENGTHS = np.array([5, 3, 1])


def np_reset_after_step(p, h, x, h_keep=None):
    """One step from the equations; ``h_keep`` multiplies h only inside the matmuls."""
    w, b, u = (
        np.asarray(a) for a in (p["input"]["kernel"], p["input"]["bias"], p["recurrent_kernel"])
    )
    b_hn = np.asarray(p["recurrent_bias"])
    h_in = h if h_keep is None else h * h_keep
    w_z, w_r, w_n = np.split(w, 3, axis=1)
    b_z, b_r, b_n = np.split(b, 3)
    u_z, u_r, u_n = np.split(u, 3, axis=1)
    z = sigmoid(x @ w_z + b_z + h_in @ u_z)
    r = sigmoid(x @ w_r + b_r + h_in @ u_r)
    n = np.tanh(x @ w_n + b_n + r * (h_in @ u_n + b_hn))
    return z * h + (1.0 - z) * n


@pytest.fixture(scope="module")
def cell_and_params():
    cell = GRUCell(H, reset_after=True)
    with jax.enable_x64(True):
        params = random_params(cell, cell.zero_carry(B, jnp.float64), jnp.zeros((B, D)), seed=7)
    return cell, params


def test_default_is_reset_before_and_has_no_hidden_bias():
    cell = GRUCell(H)
    assert cell.reset_after is False
    shapes = jax.eval_shape(cell.init, jax.random.key(0), cell.zero_carry(1), jnp.zeros((1, D)))
    assert "recurrent_bias" not in shapes["params"]


def test_step_matches_formula_with_and_without_recurrent_dropout(cell_and_params):
    cell, params = cell_and_params
    rng = np.random.default_rng(1)
    h, x, keep = rng.normal(size=(B, H)), rng.normal(size=(B, D)), rng.uniform(0.5, 2, (B, H))
    with jax.enable_x64(True):
        carry, y = cell.apply({"params": params}, {"h": jnp.asarray(h)}, jnp.asarray(x))
        rec = {
            "recurrent_kernel": params["recurrent_kernel"],
            "recurrent_bias": params["recurrent_bias"],
        }
        xp = x @ np.asarray(params["input"]["kernel"]) + np.asarray(params["input"]["bias"])
        _, y_keep = gru_reset_after_step(
            rec, {"h": jnp.asarray(h)}, jnp.asarray(xp), jnp.asarray(keep)
        )
    np.testing.assert_allclose(y, np_reset_after_step(params, h, x), rtol=1e-12, atol=1e-14)
    np.testing.assert_array_equal(carry["h"], y)
    np.testing.assert_allclose(
        y_keep, np_reset_after_step(params, h, x, keep), rtol=1e-12, atol=1e-14
    )
    # The reset-before cell with the same W, b, U (b_hn aside) computes something else.
    before = {k: v for k, v in params.items() if k != "recurrent_bias"}
    with jax.enable_x64(True):
        _, y_before = GRUCell(H).apply({"params": before}, {"h": jnp.asarray(h)}, jnp.asarray(x))
    assert np.max(np.abs(np.asarray(y_before) - np.asarray(y))) > 1e-3


def test_padded_sequence_matches_formula_and_compiles_once(cell_and_params):
    cell, params = cell_and_params
    traces = []

    def run(params, x, lengths):
        traces.append(1)  # runs only while tracing
        return RNN(cell, return_carry=True).apply({"params": {"cell": params}}, x, lengths=lengths)

    run = jax.jit(run)
    rng = np.random.default_rng(2)
    with jax.enable_x64(True):
        for _ in range(2):  # new values, same shapes: no second trace
            x = rng.normal(size=(B, T, D))
            final, y = run(params, jnp.asarray(x), jnp.asarray(LENGTHS))
            for b, n in enumerate(LENGTHS):
                h = np.zeros((1, H))
                for t in range(n):
                    h = np_reset_after_step(params, h, x[b, t : t + 1])
                    np.testing.assert_allclose(y[b, t], h[0], rtol=1e-11, atol=1e-13)
                np.testing.assert_array_equal(y[b, n:], 0.0)
                np.testing.assert_allclose(final["h"][b], h[0], rtol=1e-11, atol=1e-13)
    assert len(traces) == 1


def test_gradients_match_finite_differences(cell_and_params):
    cell, params = cell_and_params
    x = np.random.default_rng(3).normal(size=(B, T, D))
    rnn = RNN(cell)

    def loss(p, x):
        y = rnn.apply({"params": {"cell": p}}, x, lengths=jnp.asarray(LENGTHS))
        return jnp.sum(jnp.sin(y))

    result = gradcheck(loss, params, x)
    assert "['recurrent_bias']" in result.rel_err
    result.assert_ok(1e-6)


def test_toml_selects_reset_after():
    overrides = ["model.reset_after=true", "model.features=4", "data.n_samples=10"]
    cfg = load_config(REPO / "experiments" / "adding_gru.toml", overrides)
    model = cfg.model.make(out_features=1)
    x = jnp.zeros((1, 3, 2))
    shapes = jax.eval_shape(lambda: model.init(jax.random.key(0), x, train=False))
    cell = shapes["params"]["StackedRNN_0"]["layer0"]["cell"]
    assert cell["recurrent_bias"].shape == (4,)
