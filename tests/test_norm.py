"""Normalization layers vs NumPy, running stats in the train state, train-only preprocessing."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from dlcore.data.preprocess import (
    PREPROCESSORS,
    apply_channel_mean,
    apply_standardization,
    fit_channel_mean,
    fit_standardization,
)
from dlcore.gradcheck import gradcheck
from dlcore.layers import BatchNorm, LayerNorm, LocalResponseNorm, local_response_norm
from dlcore.models import MLP
from dlcore.tasks import classification

EPS = 1e-5


def normal(seed: int, shape) -> np.ndarray:
    """Standard-normal float32 test data from NumPy (no sampler compilation per shape)."""
    return np.random.default_rng(seed).normal(size=shape).astype(np.float32)


def np_lrn(a, n=5, k=2.0, alpha=1e-4, beta=0.75):
    """AlexNet's formula with an explicit loop over channels."""
    out = np.empty_like(a)
    channels = a.shape[-1]
    for i in range(channels):
        lo, hi = max(0, i - n // 2), min(channels - 1, i + n // 2)
        denom = (k + alpha * np.sum(a[..., lo : hi + 1] ** 2, axis=-1)) ** beta
        out[..., i] = a[..., i] / denom
    return out


@pytest.fixture(scope="module")
def images():
    return np.asarray(normal(0, (2, 3, 3, 7)), np.float64) * 30


@pytest.mark.parametrize(
    "constants", [{}, {"size": 3, "k": 1.0, "alpha": 1e-3, "beta": 0.5}], ids=["alexnet", "other"]
)
def test_lrn_matches_numpy_loop(images, constants):
    got = local_response_norm(jnp.asarray(images, jnp.float32), **constants)
    numpy_constants = {("n" if key == "size" else key): v for key, v in constants.items()}
    np.testing.assert_allclose(got, np_lrn(images, **numpy_constants), rtol=1e-5)
    module = LocalResponseNorm(**constants)
    np.testing.assert_allclose(module.apply({}, jnp.asarray(images, jnp.float32)), got)


def test_lrn_gradcheck_and_errors(images):
    cot = np.random.default_rng(0).normal(size=images.shape)
    gradcheck(
        lambda a, c: jnp.sum(c * local_response_norm(a, alpha=1e-3)), images[:1], cot[:1]
    ).assert_ok(1e-6)
    with pytest.raises(ValueError, match="LRN size must be odd"):
        local_response_norm(jnp.ones((1, 4)), size=4)


@pytest.fixture(scope="module")
def batch():
    return normal(1, (8, 3)) * 2 + 5


def test_batchnorm_train_eval_and_running_stats(batch):
    layer = BatchNorm(momentum=0.9)
    variables = layer.init(jax.random.PRNGKey(0), batch, train=False)
    y, updated = layer.apply(variables, batch, train=True, mutable=["batch_stats"])
    x = np.asarray(batch, np.float64)
    mu, var = x.mean(0), x.var(0)
    np.testing.assert_allclose(y, (x - mu) / np.sqrt(var + EPS), rtol=1e-4, atol=1e-5)
    stats = updated["batch_stats"]["BatchNorm_0"]
    np.testing.assert_allclose(stats["mean"], 0.1 * mu, rtol=1e-5)
    np.testing.assert_allclose(stats["var"], 0.9 * 1.0 + 0.1 * var, rtol=1e-5)
    # eval uses the running statistics, so each example is normalized independently
    new_vars = {"params": variables["params"], **updated}
    eval_all = layer.apply(new_vars, batch, train=False)
    eval_one = layer.apply(new_vars, batch[:1], train=False)
    np.testing.assert_allclose(eval_all[:1], eval_one, rtol=1e-6)
    expected = (x - 0.1 * mu) / np.sqrt(0.9 + 0.1 * var + EPS)
    np.testing.assert_allclose(eval_all, expected, rtol=1e-5)


def test_batch_stats_live_in_train_state_model_state(batch):
    task = classification(MLP(widths=(4,), out_features=2, norm="batch"), optax.sgd(0.1))
    data = {"x": batch, "y": jnp.array([0, 1] * 4)}
    state = jax.jit(task.init)(jax.random.PRNGKey(0), data)
    assert set(state.model_state) == {"batch_stats"}
    assert set(state.params["BatchNorm_0"]) == {"scale", "bias"}  # only trainable ones
    before = state.model_state["batch_stats"]["BatchNorm_0"]["mean"]
    new_state, _ = jax.jit(task.train_step)(state, data)
    after = new_state.model_state["batch_stats"]["BatchNorm_0"]["mean"]
    assert not np.allclose(before, after)  # train steps update the running mean
    metrics = jax.jit(task.eval_step)(new_state, data)
    assert np.isfinite(metrics["loss"])


def test_batchnorm_gradcheck(batch):
    layer = BatchNorm()
    variables = layer.init(jax.random.PRNGKey(0), batch, train=False)
    cot = normal(2, batch.shape)

    def objective(params, x):
        y, _ = layer.apply(
            {"params": params, **{k: v for k, v in variables.items() if k != "params"}},
            x,
            train=True,
            mutable=["batch_stats"],
        )
        return jnp.sum(cot * y)

    gradcheck(lambda px: objective(*px), (variables["params"], batch)).assert_ok(1e-6)


def test_layernorm_matches_numpy_and_gradcheck(batch):
    layer = LayerNorm()
    variables = layer.init(jax.random.PRNGKey(0), batch)
    x = np.asarray(batch, np.float64)
    expected = (x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True) + EPS)
    np.testing.assert_allclose(layer.apply(variables, batch), expected, rtol=1e-4, atol=1e-5)
    np.testing.assert_array_equal(
        layer.apply(variables, batch, train=True), layer.apply(variables, batch, train=False)
    )
    cot = normal(2, batch.shape)
    gradcheck(
        lambda px: jnp.sum(cot * layer.apply({"params": px[0]}, px[1])),
        (variables["params"], batch),
    ).assert_ok(1e-6)


def test_standardization_is_fitted_on_train_only():
    rng = np.random.default_rng(0)
    train = rng.normal(3.0, 2.0, size=(100, 4)).astype(np.float32)
    train[:, 3] = 7.0  # a constant feature must not divide by zero
    test = rng.normal(-1.0, 5.0, size=(50, 4)).astype(np.float32)
    fit, apply = PREPROCESSORS["standardize"]
    stats = fit(jnp.asarray(train))
    np.testing.assert_allclose(stats.mean, train.mean(0), rtol=1e-5)
    z_train = np.asarray(apply(jnp.asarray(train), stats))
    np.testing.assert_allclose(z_train[:, :3].mean(0), 0, atol=1e-5)
    np.testing.assert_allclose(z_train[:, :3].std(0), 1, rtol=1e-4)
    np.testing.assert_array_equal(z_train[:, 3], 0)
    # test inputs use the train statistics, not their own
    z_test = np.asarray(apply_standardization(jnp.asarray(test), stats))
    expected = (test[:, :3] - train[:, :3].mean(0)) / train[:, :3].std(0)
    np.testing.assert_allclose(z_test[:, :3], expected, rtol=1e-4)
    with pytest.raises(ValueError, match=r"x features \(3,\) do not match"):
        apply_standardization(jnp.ones((2, 3)), stats)
    with pytest.raises(ValueError, match="N >= 2 examples"):
        fit_standardization(jnp.ones((1, 3)))


def test_channel_mean_subtraction():
    rng = np.random.default_rng(1)
    train = rng.normal(size=(10, 4, 4, 3)).astype(np.float32) + np.array(
        [1.0, -2.0, 3.0], np.float32
    )
    stats = fit_channel_mean(jnp.asarray(train))
    np.testing.assert_allclose(stats.mean, train.mean((0, 1, 2)), rtol=1e-5)
    test = rng.normal(size=(2, 4, 4, 3)).astype(np.float32)
    expected = test - train.mean((0, 1, 2))
    np.testing.assert_allclose(
        apply_channel_mean(jnp.asarray(test), stats), expected, rtol=1e-5, atol=1e-6
    )
    with pytest.raises(ValueError, match=r"x has 2 channels but the fitted mean has 3"):
        apply_channel_mean(jnp.ones((1, 4, 4, 2)), stats)


@pytest.mark.parametrize("unbiased", [False, True], ids=["flax_biased", "pytorch_unbiased"])
def test_batchnorm_running_variance_conventions(unbiased):
    """Two train steps on conv-shaped batches against r <- m r + (1 - m) var(x, ddof)."""
    rng = np.random.default_rng(3)
    xs = [rng.normal(2.0, 3.0, size=(2, 3, 3, 4)) for _ in range(2)]  # n = 18 per channel
    layer = BatchNorm(momentum=0.8, unbiased_running_var=unbiased, param_dtype=jnp.float64)
    ddof = 1 if unbiased else 0
    with jax.enable_x64(True):
        variables = layer.init(jax.random.PRNGKey(0), xs[0], train=False)
        assert variables["params"]["BatchNorm_0"]["scale"].dtype == jnp.float64
        r_mean, r_var = np.zeros(4), np.ones(4)
        step = jax.jit(lambda v, x: layer.apply(v, x, train=True, mutable=["batch_stats"]))
        for x in xs:
            y, updated = step(variables, x)
            variables = {"params": variables["params"], **updated}
            mu, var_b = x.mean((0, 1, 2)), x.var((0, 1, 2))
            # the batch itself is always normalized with the biased variance
            np.testing.assert_allclose(y, (x - mu) / np.sqrt(var_b + EPS), rtol=1e-10)
            r_mean = 0.8 * r_mean + 0.2 * mu
            r_var = 0.8 * r_var + 0.2 * x.var((0, 1, 2), ddof=ddof)
            stats = updated["batch_stats"]["BatchNorm_0"]
            np.testing.assert_allclose(stats["mean"], r_mean, rtol=1e-6)
            np.testing.assert_allclose(stats["var"], r_var, rtol=1e-6)
        y_eval = np.asarray(layer.apply(variables, xs[0], train=False))
    np.testing.assert_allclose(y_eval, (xs[0] - r_mean) / np.sqrt(r_var + EPS), rtol=1e-6)


def test_unbiased_running_variance_needs_two_values_per_channel():
    layer = BatchNorm(unbiased_running_var=True)
    variables = layer.init(jax.random.PRNGKey(0), jnp.ones((1, 3)), train=False)
    with pytest.raises(ValueError) as info:
        layer.apply(variables, jnp.ones((1, 3)), train=True, mutable=["batch_stats"])
    assert str(info.value) == (
        "BatchNorm: the unbiased running variance n/(n - 1) var_B needs n > 1 values per "
        "channel; got input (1, 3)"
    )
