"""Dropout family: expectation-preserving statistics, eval modes, explicit keys, gradients."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dlcore.gradcheck import gradcheck
from dlcore.layers import DropConnectDense, Dropout, GaussianWeightNoiseDense, dropout

RATE = 0.3
N = 200_000


def normal(seed: int, shape) -> np.ndarray:
    """Standard-normal float32 test data from NumPy (no sampler compilation per shape)."""
    return np.random.default_rng(seed).normal(size=shape).astype(np.float32)


@pytest.fixture(scope="module")
def x_big():
    return jnp.asarray(np.random.default_rng(0).uniform(0.5, 1.5, size=N), jnp.float32)


def test_inverted_dropout_keeps_the_expectation(x_big):
    y = np.asarray(dropout(jax.random.PRNGKey(0), x_big, RATE, train=True))
    x = np.asarray(x_big)
    kept = y != 0
    # drop fraction ~ Binomial(N, RATE) / N, kept entries scaled by exactly 1/(1 - RATE)
    assert abs((~kept).mean() - RATE) < 5 * np.sqrt(RATE * (1 - RATE) / N)
    np.testing.assert_allclose(y[kept], x[kept] / (1 - RATE), rtol=1e-6)
    # E[y] = x: the mean ratio sits within a few sampling standard errors of 1
    ratio = y / x
    assert abs(ratio.mean() - 1) < 5 * ratio.std() / np.sqrt(N)
    np.testing.assert_array_equal(dropout(None, x_big, RATE, train=False), x_big)


def test_classic_dropout_scales_at_test_time(x_big):
    y = np.asarray(dropout(jax.random.PRNGKey(1), x_big, RATE, train=True, mode="classic"))
    x = np.asarray(x_big)
    kept = y != 0
    np.testing.assert_array_equal(y[kept], x[kept])  # no scaling while training
    eval_y = np.asarray(dropout(None, x_big, RATE, train=False, mode="classic"))
    np.testing.assert_allclose(eval_y, (1 - RATE) * x, rtol=1e-6)
    ratio = y / eval_y  # E[train output] = test output
    assert abs(ratio.mean() - 1) < 5 * ratio.std() / np.sqrt(N)


def test_dropout_module_uses_the_dropout_stream():
    layer = Dropout(0.5)
    x = jnp.ones((4, 16))
    np.testing.assert_array_equal(layer.apply({}, x, train=False), x)  # no key needed in eval
    a = layer.apply({}, x, train=True, rngs={"dropout": jax.random.PRNGKey(0)})
    b = layer.apply({}, x, train=True, rngs={"dropout": jax.random.PRNGKey(0)})
    c = layer.apply({}, x, train=True, rngs={"dropout": jax.random.PRNGKey(1)})
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    classic = Dropout(0.5, mode="classic").apply({}, x, train=False)
    np.testing.assert_allclose(classic, 0.5 * x)


def test_dropout_boundary_errors():
    with pytest.raises(ValueError, match=r"dropout rate must be in \[0, 1\); got 1.0"):
        dropout(None, jnp.ones(3), 1.0, train=False)
    with pytest.raises(
        ValueError, match=r"unknown dropout mode 'inverse'; valid: classic, inverted"
    ):
        dropout(None, jnp.ones(3), 0.5, train=False, mode="inverse")


@pytest.fixture(scope="module")
def dense_input():
    return normal(5, (3, 6))


@pytest.mark.parametrize(
    "layer", [DropConnectDense(4, rate=RATE), GaussianWeightNoiseDense(4, stddev=0.2)]
)
def test_weight_noise_layers_are_plain_dense_in_eval(layer, dense_input):
    variables = layer.init(jax.random.PRNGKey(0), dense_input, train=False)
    p = variables["params"]
    expected = np.asarray(dense_input) @ np.asarray(p["kernel"]) + np.asarray(p["bias"])
    np.testing.assert_allclose(layer.apply(variables, dense_input, train=False), expected, 1e-5)


def _sample_outputs(layer, variables, x, n=4000):
    keys = jax.random.split(jax.random.PRNGKey(7), n)
    apply = jax.jit(jax.vmap(lambda k: layer.apply(variables, x, train=True, rngs={"dropout": k})))
    return np.asarray(apply(keys), np.float64)  # [n, B, F]


def test_dropconnect_statistics(dense_input):
    layer = DropConnectDense(4, rate=RATE)
    variables = layer.init(jax.random.PRNGKey(0), dense_input, train=False)
    samples = _sample_outputs(layer, variables, dense_input)
    clean = np.asarray(layer.apply(variables, dense_input, train=False), np.float64)
    w = np.asarray(variables["params"]["kernel"], np.float64)
    x = np.asarray(dense_input, np.float64)
    # each weight survives w.p. q and is scaled by 1/q: Var(y_bf) = (1-q)/q sum_d x_bd^2 w_df^2
    q = 1 - RATE
    var = (1 - q) / q * (x**2) @ (w**2)
    stderr = np.sqrt(var / len(samples))
    assert np.all(np.abs(samples.mean(0) - clean) < 5 * stderr)
    np.testing.assert_allclose(samples.var(0), var, rtol=0.15)


def test_gaussian_weight_noise_statistics(dense_input):
    sigma = 0.2
    layer = GaussianWeightNoiseDense(4, stddev=sigma)
    variables = layer.init(jax.random.PRNGKey(0), dense_input, train=False)
    samples = _sample_outputs(layer, variables, dense_input)
    clean = np.asarray(layer.apply(variables, dense_input, train=False), np.float64)
    # y_bf - clean_bf = sigma sum_d x_bd E_df  ->  variance sigma^2 ||x_b||^2 for every f
    var = sigma**2 * (np.asarray(dense_input, np.float64) ** 2).sum(-1, keepdims=True)
    var = np.broadcast_to(var, clean.shape)
    assert np.all(np.abs(samples.mean(0) - clean) < 5 * np.sqrt(var / len(samples)))
    np.testing.assert_allclose(samples.var(0), var, rtol=0.15)


@pytest.mark.parametrize(
    "layer",
    [
        Dropout(RATE),
        Dropout(RATE, mode="classic"),
        DropConnectDense(4, RATE),
        GaussianWeightNoiseDense(4, 0.2),
    ],
    ids=["inverted", "classic", "dropconnect", "weight_noise"],
)
def test_gradcheck_with_a_fixed_key(layer, dense_input):
    variables = layer.init(jax.random.PRNGKey(0), dense_input, train=False)
    rngs = {"dropout": jax.random.PRNGKey(3)}
    cot = normal(4, layer.apply(variables, dense_input, train=False).shape)

    def objective(params, x):
        out = layer.apply({"params": params}, x, train=True, rngs=rngs)
        return jnp.sum(cot * out)

    params = variables.get("params", {})
    gradcheck(lambda px: objective(*px), (params, dense_input)).assert_ok(1e-6)
