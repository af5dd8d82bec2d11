"""Initializers: variances vs their formulas, structure of the special ones, depth diagnostics."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from dlcore.init_diagnostics import deep_net_activation_stats, mlp_activation_stats
from dlcore.initializers import INITIALIZERS, forget_gate_bias, get_initializer
from dlcore.models import MLP

SHAPE = (3, 3, 64, 96)  # a conv kernel: receptive field 9, so fan_in = 576, fan_out = 864
FAN_IN, FAN_OUT = 9 * 64, 9 * 96
N = int(np.prod(SHAPE))

VARIANCE = {
    "small_normal": 1e-6,
    "uniform": 0.05**2 / 3,  # Keras 1's init='uniform': U(-0.05, 0.05) whatever the fans
    "glorot_uniform": 2 / (FAN_IN + FAN_OUT),
    "glorot_normal": 2 / (FAN_IN + FAN_OUT),
    "he_uniform": 2 / FAN_IN,
    "he_normal": 2 / FAN_IN,
    "lecun_uniform": 1 / FAN_IN,
    "lecun_normal": 1 / FAN_IN,
}


def normal(seed: int, shape) -> np.ndarray:
    """Standard-normal float32 test data from NumPy (no sampler compilation per shape)."""
    return np.random.default_rng(seed).normal(size=shape).astype(np.float32)


def test_registry_names():
    assert set(INITIALIZERS) == set(VARIANCE) | {
        "zeros",
        "ones",
        "orthogonal",
        "identity",
        "forget_gate_bias",
    }
    with pytest.raises(ValueError, match=r"unknown initializer 'he'; valid: .*he_normal"):
        get_initializer("he")


@pytest.mark.parametrize("name", sorted(VARIANCE))
def test_variance_matches_formula(name):
    w = np.asarray(get_initializer(name)(jax.random.PRNGKey(0), SHAPE), np.float64)
    var = VARIANCE[name]
    # the sample variance has standard error <= sqrt(2 / N) * var for these (kurtosis <= 3)
    assert abs(w.var() / var - 1) < 5 * np.sqrt(2 / N)
    assert abs(w.mean()) < 5 * np.sqrt(var / N)
    if name.endswith("uniform"):
        limit = np.sqrt(3 * var)
        assert np.abs(w).max() <= limit and np.abs(w).max() > 0.99 * limit


def test_zeros_orthogonal_identity():
    key = jax.random.PRNGKey(0)
    assert not np.any(get_initializer("zeros")(key, (4, 5)))
    q = np.asarray(get_initializer("orthogonal")(key, (64, 32)))
    np.testing.assert_allclose(q.T @ q, np.eye(32), atol=1e-5)
    np.testing.assert_array_equal(get_initializer("identity")(key, (3, 5)), np.eye(3, 5))
    # a 'same' convolution with the identity kernel copies its input
    x = normal(0, (1, 5, 5, 4))
    conv = nn.Conv(4, (3, 3), kernel_init=get_initializer("identity"), padding="SAME")
    np.testing.assert_allclose(conv.apply(conv.init(key, x), x), x, atol=1e-6)


def test_forget_gate_bias():
    np.testing.assert_array_equal(get_initializer("forget_gate_bias")(None, (3,)), np.ones(3))
    fused = forget_gate_bias(2.0, num_gates=4, gate_index=2)(None, (8,))
    np.testing.assert_array_equal(fused, [0, 0, 0, 0, 2, 2, 0, 0])
    with pytest.raises(ValueError, match="multiple of num_gates=4; got shape"):
        forget_gate_bias(num_gates=4)(None, (6,))


def test_mlp_default_init_is_unchanged():
    # kernel_init="lecun_normal" must reproduce nn.Dense's own default initialization
    x = jnp.ones((2, 5))
    ours = MLP(widths=(7,), out_features=3).init(jax.random.PRNGKey(0), x, train=False)

    class Reference(nn.Module):
        @nn.compact
        def __call__(self, x, train):
            h = jax.nn.relu(nn.Dense(7)(x))
            return nn.Dense(3)(h)

    ref = Reference().init(jax.random.PRNGKey(0), x, train=False)
    jax.tree.map(np.testing.assert_array_equal, ours, ref)


def test_mlp_accepts_init_names():
    params = MLP(widths=(4,), out_features=2, kernel_init="zeros", bias_init="ones").init(
        jax.random.PRNGKey(0), jnp.ones((1, 3)), train=False
    )["params"]
    assert not np.any(params["Dense_0"]["kernel"]) and np.all(params["Dense_1"]["bias"] == 1)
    with pytest.raises(ValueError, match="unknown initializer 'glorot'"):
        MLP(widths=(4,), out_features=2, kernel_init="glorot").init(
            jax.random.PRNGKey(0), jnp.ones((1, 3)), train=False
        )


def test_he_keeps_relu_alive_over_20_layers_and_small_gaussian_collapses():
    key = jax.random.PRNGKey(0)
    he = deep_net_activation_stats(key, "he_normal", activation="relu", depth=20, width=256)
    small = deep_net_activation_stats(key, "small_normal", activation="relu", depth=20, width=256)
    assert len(he.layers) == 20
    # He: the spread stays within a small factor of the first layer's all the way down
    assert 0.3 < he.stds[-1] / he.stds[0] < 3.0
    # small Gaussian: each layer multiplies the spread by ~0.001 * sqrt(256 / 2) ~ 0.011
    ratios = small.stds[1:6] / small.stds[:5]
    np.testing.assert_allclose(ratios, 0.001 * np.sqrt(256 / 2), rtol=0.2)
    assert small.stds[-1] < 1e-30
    assert "unit spread" in str(he) and len(str(he).splitlines()) == 21


def test_zero_init_is_symmetric_and_stays_symmetric():
    model = MLP(widths=(6, 6), out_features=3, activation="sigmoid", kernel_init="zeros")
    x = normal(0, (16, 4))
    y = jnp.asarray(np.random.default_rng(1).integers(0, 3, size=16))
    params = model.init(jax.random.PRNGKey(2), x, train=False)["params"]
    report = mlp_activation_stats(model, {"params": params}, x)
    assert all(layer.unit_spread == 0.0 for layer in report.layers)

    def loss(p):
        logits = model.apply({"params": p}, x, train=False)
        return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

    sgd_step = jax.jit(lambda p: jax.tree.map(lambda w, g: w - 0.5 * g, p, jax.grad(loss)(p)))
    for _ in range(3):
        params = sgd_step(params)
    # gradient descent moved the weights but every hidden unit still has the same ones
    for layer in ("Dense_0", "Dense_1"):
        kernel = np.asarray(params[layer]["kernel"])
        np.testing.assert_array_equal(kernel, np.broadcast_to(kernel[:, :1], kernel.shape))
    assert np.abs(params["Dense_2"]["kernel"]).sum() > 0
    report = mlp_activation_stats(model, {"params": params}, x)
    assert all(layer.unit_spread < 1e-6 for layer in report.layers)
