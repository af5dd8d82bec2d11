"""Regularizers: masks keep biases and norm parameters out; penalties and decay match formulas."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from dlcore.gradcheck import gradcheck
from dlcore.models import MLP
from dlcore.regularizers import (
    REGULARIZERS,
    decoupled_weight_decay,
    elastic_net_penalty,
    l1_penalty,
    l2_penalty,
    make_penalty,
    weight_mask,
)


class NormNet(nn.Module):
    @nn.compact
    def __call__(self, x, *, train: bool):
        h = nn.Dense(4)(x)
        h = nn.LayerNorm()(h)
        h = nn.Dense(3, use_bias=False)(h)
        return nn.BatchNorm(use_running_average=not train)(h)


@pytest.fixture(scope="module")
def params():
    x = jnp.ones((2, 5))

    def init(key):
        mlp = MLP(widths=(4,), out_features=3, norm="batch").init(key, x, train=False)
        return {"mlp": mlp["params"], "norm_net": NormNet().init(key, x, train=False)["params"]}

    return jax.device_get(jax.jit(init)(jax.random.PRNGKey(0)))


def kernels(params):
    """The NumPy list of every leaf named 'kernel' (the only weights in these models)."""
    flat = jax.tree_util.tree_leaves_with_path(params)
    return [np.asarray(v) for path, v in flat if path[-1].key == "kernel"]


def test_mask_keeps_only_kernels(params):
    mask = weight_mask(params)
    for path, keep in jax.tree_util.tree_leaves_with_path(mask):
        assert keep == (path[-1].key == "kernel"), jax.tree_util.keystr(path)
    # the MLP's batch-norm scale and the LayerNorm's bias/scale are among the excluded leaves
    assert mask["mlp"]["BatchNorm_0"]["scale"] is False
    assert mask["norm_net"]["LayerNorm_0"]["scale"] is False


def test_mask_excludes_whole_norm_modules_by_name():
    params = {"BatchNorm_2": {"kernel": jnp.ones(2)}, "MyBatchNormish": {"kernel": jnp.ones(2)}}
    assert weight_mask(params) == {
        "BatchNorm_2": {"kernel": False},
        "MyBatchNormish": {"kernel": True},
    }
    assert weight_mask({"Dense_0": {"bias": jnp.ones(2)}}, exclude=()) == {
        "Dense_0": {"bias": True}
    }


def test_penalties_match_formulas_over_weights_only(params):
    ws = kernels(params)
    l2 = sum((w.astype(np.float64) ** 2).sum() for w in ws)
    l1 = sum(np.abs(w.astype(np.float64)).sum() for w in ws)
    penalties = jax.jit(
        lambda p: (
            l2_penalty(p),
            l1_penalty(p),
            elastic_net_penalty(p, beta=0.3),
            make_penalty("l2", 0.01)(p),
            make_penalty("elastic_net", 0.1, beta=2.0)(p),
        )
    )(params)
    expected = (l2, l1, 0.3 * l2 + l1, 0.01 * l2, 0.1 * (2 * l2 + l1))
    np.testing.assert_allclose(penalties, expected, rtol=1e-6)


@pytest.mark.parametrize("name", sorted(REGULARIZERS))
def test_penalty_gradient_skips_biases_and_gradchecks(name, params):
    penalty = make_penalty(name, 0.5)
    grads = jax.jit(jax.grad(penalty))(params)
    mask = weight_mask(params)
    for g, keep in zip(jax.tree.leaves(grads), jax.tree.leaves(mask), strict=True):
        assert (np.abs(g).sum() > 0) == keep
    gradcheck(lambda p: penalty(p), params["mlp"]).assert_ok(1e-6)


def test_decoupled_weight_decay_in_a_chain(params):
    lr, rate = 0.1, 0.01
    tx = optax.chain(decoupled_weight_decay(rate), optax.sgd(lr))
    grads = jax.tree.map(lambda p: jnp.full_like(p, 0.5), params)
    new = jax.jit(lambda p: optax.apply_updates(p, tx.update(grads, tx.init(p), p)[0]))(params)
    mask = weight_mask(params)
    for w, w_new, keep in zip(
        jax.tree.leaves(params), jax.tree.leaves(new), jax.tree.leaves(mask), strict=True
    ):
        expected = w - lr * (0.5 + (rate * w if keep else 0.0))
        np.testing.assert_allclose(w_new, expected, rtol=1e-6, atol=1e-7)


def test_boundary_errors():
    with pytest.raises(ValueError, match=r"unknown regularizer 'l3'; valid: elastic_net, l1, l2"):
        make_penalty("l3", 0.1)
    with pytest.raises(ValueError, match="regularizer strength must be >= 0; got -1"):
        make_penalty("l2", -1)
    with pytest.raises(ValueError, match="weight decay rate must be >= 0"):
        decoupled_weight_decay(-0.1)
