"""Activations: textbook formulas, sparsemax properties and derivatives, PReLU and Maxout."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from dlcore.activations import ACTIVATIONS, get_activation, leaky_relu, softmax
from dlcore.gradcheck import gradcheck
from dlcore.layers import Maxout, PReLU, maxout
from dlcore.sparsemax import sparsemax

X = np.linspace(-3.0, 3.0, 13, dtype=np.float32) + 0.05  # avoids the kink at exactly 0

ELEMENTWISE = {
    "identity": lambda x: x,
    "sigmoid": lambda x: 1 / (1 + np.exp(-x)),
    "tanh": lambda x: (np.exp(x) - np.exp(-x)) / (np.exp(x) + np.exp(-x)),
    "relu": lambda x: np.maximum(0, x),
    "leaky_relu": lambda x: np.where(x > 0, x, 0.01 * x),
    "abs": np.abs,
}


def normal(seed: int, shape) -> np.ndarray:
    """Standard-normal float32 test data from NumPy (no sampler compilation per shape)."""
    return np.random.default_rng(seed).normal(size=shape).astype(np.float32)


def numpy_sparsemax(z: np.ndarray) -> np.ndarray:
    """Projection onto the simplex via bisection on tau in sum(max(z - tau, 0)) = 1."""
    lo, hi = z.max() - 1.0, z.max()
    for _ in range(200):
        tau = 0.5 * (lo + hi)
        if np.maximum(z - tau, 0).sum() > 1:
            lo = tau
        else:
            hi = tau
    return np.maximum(z - 0.5 * (lo + hi), 0)


def test_registry_names():
    assert set(ACTIVATIONS) >= {
        "identity",
        "sigmoid",
        "tanh",
        "relu",
        "leaky_relu",
        "abs",
        "softmax",
        "sparsemax",
    }


def test_unknown_activation_lists_valid_names():
    with pytest.raises(ValueError, match=r"unknown activation 'rleu'; valid: .*relu.*sparsemax"):
        get_activation("rleu")


@pytest.mark.parametrize("name", sorted(ELEMENTWISE))
def test_elementwise_matches_formula(name):
    np.testing.assert_allclose(get_activation(name)(jnp.asarray(X)), ELEMENTWISE[name](X), 1e-6)


def test_every_registered_activation_gradchecks():
    # one check over the whole registry, one leaf per activation: a failure names it, and a
    # newly registered activation is checked without touching this test
    x_4x13 = np.stack([X, -0.7 * X, 1.3 * X[::-1], X**2 - 1])  # rows for softmax/sparsemax
    inputs = {name: x_4x13 for name in ACTIVATIONS}
    weights = np.random.default_rng(1).normal(size=x_4x13.shape)

    def objective(xs, w):
        return sum(jnp.sum(w * get_activation(name)(x)) for name, x in xs.items())

    result = gradcheck(objective, inputs, weights)
    assert set(result.rel_err) == {f"['{name}']" for name in ACTIVATIONS}
    result.assert_ok(1e-6)


def test_leaky_relu_alpha():
    np.testing.assert_allclose(leaky_relu(jnp.asarray(X), alpha=0.2), np.where(X > 0, X, 0.2 * X))


def test_relu_derivative_at_zero_is_zero():
    assert jax.grad(get_activation("relu"))(0.0) == 0.0


def test_softmax_matches_formula_and_is_stable():
    z = np.array([[1.0, 2.0, -1.0], [1e4, -1e4, 5e3]], np.float32)
    p = np.asarray(jax.jit(softmax)(z))
    expected = np.exp(z[0]) / np.exp(z[0]).sum()
    np.testing.assert_allclose(p[0], expected, rtol=1e-6)
    np.testing.assert_allclose(p[1], [1.0, 0.0, 0.0])
    assert np.all(np.isfinite(jax.jit(jax.jacobian(lambda z: softmax(z)[1]))(z)))


@pytest.fixture(scope="module")
def scores():
    return np.asarray(normal(3, (64, 10))) * 2.0


def test_sparsemax_matches_simplex_projection(scores):
    p = np.asarray(sparsemax(jnp.asarray(scores)))
    for z_row, p_row in zip(scores[:16], p[:16], strict=True):
        np.testing.assert_allclose(p_row, numpy_sparsemax(z_row.astype(np.float64)), atol=1e-5)


def test_sparsemax_is_a_sparse_distribution(scores):
    p = np.asarray(sparsemax(jnp.asarray(scores)))
    np.testing.assert_allclose(p.sum(-1), 1.0, rtol=1e-6)
    assert p.min() >= 0.0
    # scores with std 2 are spread out: most classes must get exactly zero probability
    assert (p == 0).mean() > 0.5
    assert np.all((p > 0).sum(-1) >= 1)


def test_sparsemax_axis_argument(scores):
    z = jnp.asarray(scores)
    np.testing.assert_allclose(sparsemax(z.T, axis=0), sparsemax(z).T, atol=1e-7)


def test_sparsemax_limits():
    z = np.array([0.3, -1.2, 2.0, 0.1], np.float32)
    # low temperature: a one-hot arg max; high temperature: uniform (softmax's limits)
    np.testing.assert_allclose(sparsemax(z / 1e-3), np.eye(4)[2])
    np.testing.assert_allclose(sparsemax(z / 1e6), np.full(4, 0.25), atol=1e-5)
    # once every class is in the support, p = 1/K + (z - mean z) / T exactly
    np.testing.assert_allclose(sparsemax(z / 1e3), 0.25 + (z - z.mean()) / 1e3, atol=1e-6)
    np.testing.assert_allclose(sparsemax(0 * z), jax.jit(softmax)(0 * z))
    # in two dimensions sparsemax is the "hard sigmoid" clip((t + 1) / 2, 0, 1)
    t = np.linspace(-2.0, 2.0, 21, dtype=np.float32)
    p_two = sparsemax(np.stack([t, 0 * t], axis=-1))[:, 0]
    np.testing.assert_allclose(p_two, np.clip((t + 1) / 2, 0, 1), atol=1e-6)


def test_sparsemax_shift_invariant_and_stable_at_1e4():
    z = np.array([[1e4, 1e4 - 0.5, -1e4, 0.0]], np.float32)
    p = sparsemax(z)
    np.testing.assert_allclose(p, [[0.75, 0.25, 0.0, 0.0]], atol=1e-6)
    jac = jax.jit(jax.jacobian(lambda z: sparsemax(z)[0]))(z)
    assert np.all(np.isfinite(jac))


def test_sparsemax_jacobian_closed_form(scores):
    z = jnp.asarray(scores[0])
    p = np.asarray(sparsemax(z))
    s = (p > 0).astype(np.float32)
    expected = np.diag(s) - np.outer(s, s) / s.sum()
    np.testing.assert_allclose(jax.jacfwd(sparsemax)(z), expected, atol=1e-6)
    np.testing.assert_allclose(jax.jacrev(sparsemax)(z), expected, atol=1e-6)


def test_sparsemax_custom_jvp_matches_finite_differences(scores):
    with jax.enable_x64(True):
        z = jnp.asarray(scores[:4], jnp.float64)
        check_grads(sparsemax, (z,), order=1, modes=["fwd", "rev"], eps=1e-6)
        weights = jnp.asarray(np.random.default_rng(0).normal(size=z.shape))
        gradcheck(lambda z, w: jnp.sum(w * sparsemax(z)), z, weights).assert_ok(1e-6)


@pytest.mark.parametrize("per_channel", [False, True])
def test_prelu_forward_and_gradcheck(per_channel):
    x = normal(0, (5, 3)) + 0.05
    layer = PReLU(per_channel=per_channel, alpha_init=0.3)
    variables = layer.init(jax.random.PRNGKey(1), x)
    np.testing.assert_allclose(layer.apply(variables, x), np.where(x > 0, x, 0.3 * x), 1e-6)
    assert variables["params"]["alpha"].shape == ((3,) if per_channel else ())
    weights = normal(2, x.shape)

    def objective(params, x, w):
        return jnp.sum(w * layer.apply({"params": params}, x))

    # parameters and inputs in one check: leaves [0]['alpha'] and [1]
    result = gradcheck(lambda px, w: objective(*px, w), (variables["params"], x), weights)
    result.assert_ok(1e-6)
    assert result.grad_norm["[0]['alpha']"] > 0  # the slope is really learned


def test_maxout_is_max_of_pieces_and_gradcheck():
    x = normal(0, (6, 5))
    layer = Maxout(features=4, num_pieces=3)
    variables = layer.init(jax.random.PRNGKey(1), x)
    dense = variables["params"]["Dense_0"]
    z = np.asarray(x) @ np.asarray(dense["kernel"]) + np.asarray(dense["bias"])
    np.testing.assert_allclose(layer.apply(variables, x), z.reshape(6, 4, 3).max(-1), rtol=1e-5)
    weights = normal(2, (6, 4))

    def objective(params, x, w):
        return jnp.sum(w * layer.apply({"params": params}, x))

    gradcheck(lambda px, w: objective(*px, w), (variables["params"], x), weights).assert_ok(1e-6)


def test_maxout_with_two_pieces_can_be_relu_and_abs():
    x = jnp.linspace(-2.0, 2.0, 9)[:, None]
    # pieces (x, 0) give relu; pieces (x, -x) give |x|
    np.testing.assert_allclose(
        maxout(jnp.concatenate([x, 0 * x], -1), 2)[:, 0], jax.nn.relu(x[:, 0])
    )
    np.testing.assert_allclose(maxout(jnp.concatenate([x, -x], -1), 2)[:, 0], jnp.abs(x[:, 0]))


def test_maxout_rejects_bad_width():
    with pytest.raises(ValueError, match="multiple of num_pieces=3"):
        maxout(jnp.ones((2, 5)), 3)
