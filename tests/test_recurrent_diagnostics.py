"""‖∂L/∂h_t‖ per step: known geometric decay/growth, and a NumPy backward recursion."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from recurrent_reference import random_params

from dlcore.recurrent import RNN, ElmanCell, LSTMCell, hidden_grad_norms

B, T, D, H = 2, 8, 3, 4


@pytest.mark.parametrize("scale", [0.5, 1.5])
def test_linear_rnn_gradients_shrink_or_grow_geometrically(scale):
    """h_t = W x_t + b + s·h_{t-1}, L = w·h_T  ⇒  ‖∂L/∂h_t‖ = ‖w‖ s^{T-1-t}."""
    rnn = RNN(ElmanCell(H, activation="identity"))
    with jax.enable_x64(True):
        x = jnp.asarray(np.random.default_rng(0).normal(size=(B, T, D)))
        params = random_params(rnn, x)
        params["cell"]["recurrent_kernel"] = scale * jnp.eye(H)
        w = jnp.asarray(np.random.default_rng(1).normal(size=(B, H)))
        norms = hidden_grad_norms(rnn, {"params": params}, x, lambda y: jnp.sum(y[:, -1] * w))
    want = np.linalg.norm(np.asarray(w)) * scale ** np.arange(T - 1, -1, -1)
    np.testing.assert_allclose(norms, want, rtol=1e-12)


def test_tanh_rnn_matches_numpy_backward_recursion():
    """g_t = ∂L/∂y_t + (g_{t+1} ⊙ (1 − h_{t+1}²)) Uᵀ, for L = Σ_t w_t·h_t."""
    rnn = RNN(ElmanCell(H))
    with jax.enable_x64(True):
        x = jnp.asarray(np.random.default_rng(2).normal(size=(B, T, D)))
        params = random_params(rnn, x, seed=3, scale=0.8)
        w = np.random.default_rng(4).normal(size=(B, T, H))
        norms = hidden_grad_norms(
            rnn, {"params": params}, x, lambda y: jnp.sum(y * w), per_example=True
        )
        h = np.asarray(rnn.apply({"params": params}, x))
    u = np.asarray(params["cell"]["recurrent_kernel"])
    g = np.zeros((B, T, H))
    g[:, -1] = w[:, -1]
    for t in range(T - 2, -1, -1):
        g[:, t] = w[:, t] + (g[:, t + 1] * (1.0 - h[:, t + 1] ** 2)) @ u.T
    np.testing.assert_allclose(norms, np.linalg.norm(g, axis=-1), rtol=1e-10)


def test_lstm_norms_are_zero_on_padding_and_positive_elsewhere():
    rnn = RNN(LSTMCell(H))
    x = jnp.ones((B, T, D))
    variables = {"params": random_params(rnn, x)}
    lengths = jnp.array([T, 3])
    norms = hidden_grad_norms(
        rnn, variables, x, lambda y: jnp.sum(y**2), lengths=lengths, per_example=True
    )
    assert norms.shape == (B, T)
    np.testing.assert_array_equal(norms[1, 3:], 0.0)
    assert np.all(np.asarray(norms[0]) > 0) and np.all(np.asarray(norms[1, :3]) > 0)
