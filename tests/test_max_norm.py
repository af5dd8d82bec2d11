"""Max-norm constraints: after every step each unit's incoming weights have norm <= c; units
under the bound, biases and frozen leaves are untouched; the projection matches NumPy."""

import jax
import numpy as np
import optax
import pytest

from dlcore.config.loading import ConfigError, validate
from dlcore.optim import SGDConfig, build_optimizer, max_norm, max_norm_project

C = 1.5


def numpy_project(w: np.ndarray, c: float) -> np.ndarray:
    """Each unit (last axis) scaled by min(1, c / ||incoming weights||)."""
    norms = np.sqrt((w.reshape(-1, w.shape[-1]) ** 2).sum(axis=0))
    return w * np.minimum(1.0, c / norms)


def unit_norms(w) -> np.ndarray:
    w = np.asarray(w, np.float64)
    return np.sqrt((w.reshape(-1, w.shape[-1]) ** 2).sum(axis=0))


def draw(rng, shape) -> np.ndarray:
    """Normal draws whose even units are small (norm well under C) and odd units large."""
    return rng.normal(size=shape) * np.where(np.arange(shape[-1]) % 2, 1.0, 0.02)


@pytest.fixture(scope="module")
def params():
    rng = np.random.default_rng(0)
    return {
        "Dense_0": {"kernel": draw(rng, (5, 6)), "bias": rng.normal(size=6)},
        "Conv_0": {"kernel": draw(rng, (3, 3, 2, 4))},  # HWIO
        "PReLU_0": {"negative_slope": rng.normal(size=3)},  # rank 1: no incoming vector
    }


def test_projection_matches_numpy_on_dense_and_hwio_conv_kernels(params):
    with jax.enable_x64(True):
        rng = np.random.default_rng(1)
        updates = jax.tree.map(lambda p: draw(rng, p.shape), params)
        tx = max_norm(C)
        got, _ = tx.update(updates, tx.init(params), params)
        got = jax.device_get(got)
    for layer in ("Dense_0", "Conv_0"):
        p, u = params[layer]["kernel"], updates[layer]["kernel"]
        want = numpy_project(p + u, C) - p
        np.testing.assert_allclose(got[layer]["kernel"], want, rtol=1e-12, atol=1e-12)
        under = unit_norms(p + u) <= C  # units within the bound keep their update exactly
        assert under.any() and not under.all()  # both cases occur in this draw
        np.testing.assert_array_equal(got[layer]["kernel"][..., under], u[..., under])
    for leaf in (("Dense_0", "bias"), ("PReLU_0", "negative_slope")):
        np.testing.assert_array_equal(got[leaf[0]][leaf[1]], updates[leaf[0]][leaf[1]])


def test_the_constraint_holds_after_every_step_of_a_configured_chain(params):
    cfg = SGDConfig(learning_rate=0.7, max_norm=C, clip_value=10.0, freeze=("PReLU_0",))
    opt = build_optimizer(cfg)
    p = jax.tree.map(np.float32, params)
    state = opt.init(p)
    rng = np.random.default_rng(2)
    step = jax.jit(opt.update)
    for _ in range(5):
        grads = jax.tree.map(lambda a: rng.normal(size=a.shape).astype(np.float32), p)
        updates, state = step(grads, state, p)
        before, p = p, jax.device_get(optax.apply_updates(p, updates))
        for layer in ("Dense_0", "Conv_0"):
            assert unit_norms(p[layer]["kernel"]).max() <= C * (1 + 1e-6)
        # biases follow plain SGD; the frozen leaf does not move
        np.testing.assert_allclose(
            p["Dense_0"]["bias"], before["Dense_0"]["bias"] - 0.7 * grads["Dense_0"]["bias"], 1e-6
        )
        np.testing.assert_array_equal(
            p["PReLU_0"]["negative_slope"], params["PReLU_0"]["negative_slope"].astype(np.float32)
        )


def test_max_norm_project_leaves_small_units_bit_exact():
    w = np.array([[0.3, 3.0], [0.4, 4.0]], np.float32)
    out = np.asarray(max_norm_project(w, 1.0))
    np.testing.assert_array_equal(out[:, 0], w[:, 0])
    np.testing.assert_allclose(out[:, 1], [0.6, 0.8], rtol=1e-6)


def test_max_norm_config_and_call_errors():
    with pytest.raises(ConfigError, match=r"t.toml: optimizer.max_norm: Input should be greater"):
        validate(
            {
                "data": {"name": "xor"},
                "model": {"name": "mlp"},
                "optimizer": {"name": "sgd", "max_norm": 0.0},
            },
            "t.toml",
        )
    with pytest.raises(ValueError, match="max_norm needs the parameters"):
        tx = max_norm(1.0)
        tx.update({"w": np.ones((2, 2))}, tx.init(None))
    with pytest.raises(ValueError, match="max_norm must be > 0; got -1"):
        max_norm(-1)


def test_a_traced_bound_gives_each_member_its_own_projection(params):
    # populations (dlcore sweep --vmap) build the transform with a traced c
    kernel = {"Dense_0": {"kernel": params["Dense_0"]["kernel"].astype(np.float32)}}
    updates = jax.tree.map(np.ones_like, kernel)

    def project(c):
        tx = max_norm(c)
        return tx.update(updates, tx.init(kernel), kernel)[0]["Dense_0"]["kernel"]

    cs = np.array([0.5, 2.0], np.float32)
    batched = jax.vmap(project)(cs)
    for i, c in enumerate(cs):
        np.testing.assert_allclose(batched[i], project(float(c)), rtol=1e-6)
