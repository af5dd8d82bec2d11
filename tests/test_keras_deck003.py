"""Deck 003's Keras snippet, exactly: Keras 1's SGD(lr, decay, momentum, nesterov=True) and
init='uniform', written out in NumPy, against dlcore's chain and initializer."""

import jax
import numpy as np
import pytest

from dlcore.config.loading import load_config
from dlcore.optim import build_optimizer
from tests.helpers import REPO

KERAS_MLP = REPO / "experiments" / "keras_mlp.toml"
SHAPES = {"Dense_0": {"kernel": (20, 64), "bias": (64,)}, "Dense_1": {"kernel": (64, 10)}}


def keras1_sgd(params, grads_per_step, lr, decay, momentum):
    """Keras 1.2's ``SGD.get_updates`` with ``nesterov=True``, one call per update::

    lr_t = lr * 1 / (1 + decay * iterations)       # iterations: updates so far
    v = momentum * m - lr_t * g;  m = v
    p = p + momentum * v - lr_t * g
    iterations += 1
    """
    p = {k: dict(v) for k, v in params.items()}
    m = {k: {n: np.zeros_like(a) for n, a in v.items()} for k, v in params.items()}
    iterations = 0
    for grads in grads_per_step:
        lr_t = lr * (1.0 / (1.0 + decay * iterations))
        for layer in p:
            for name in p[layer]:
                g = grads[layer][name]
                v = momentum * m[layer][name] - lr_t * g
                m[layer][name] = v
                p[layer][name] = p[layer][name] + momentum * v - lr_t * g
        iterations += 1
    return p


@pytest.mark.parametrize("decay", [None, 0.5])  # None: the shipped 1e-6; 0.5 shows t's origin
def test_dlcore_chain_is_keras1_nesterov_sgd_with_decay(decay):
    sets = [] if decay is None else [f"optimizer.schedule.decay={decay}"]
    cfg = load_config(KERAS_MLP, sets).optimizer
    rng = np.random.default_rng(0)
    params = jax.tree.map(
        lambda s: rng.normal(size=s), SHAPES, is_leaf=lambda s: isinstance(s, tuple)
    )
    grads = [jax.tree.map(lambda a: rng.normal(size=a.shape), params) for _ in range(6)]
    want = keras1_sgd(params, grads, cfg.learning_rate, cfg.schedule.decay, cfg.momentum)
    with jax.enable_x64(True):
        opt = build_optimizer(cfg)
        p, state = params, opt.init(params)
        for g in grads:
            updates, state = opt.update(g, state, p)
            p = jax.tree.map(lambda a, u: a + u, p, updates)
        got = jax.device_get(p)
    for layer in want:
        for name in want[layer]:
            np.testing.assert_allclose(got[layer][name], want[layer][name], rtol=1e-12, atol=1e-13)


def test_uniform_init_is_keras1_u_minus_005_005_with_zero_biases():
    model = load_config(KERAS_MLP).model.make(10)
    init = jax.jit(lambda key: model.init(key, np.zeros((1, 20), np.float32), train=False))
    variables = init(jax.random.key(0))
    params = jax.device_get(variables["params"])
    kernels = np.concatenate([params[f"Dense_{i}"]["kernel"].ravel() for i in range(3)])
    assert kernels.size == 20 * 64 + 64 * 64 + 64 * 10
    assert kernels.min() >= -0.05 and kernels.max() < 0.05
    # uniform, not a truncated normal: each tenth of [-0.05, 0.05) holds ~1/10 of the weights
    counts, _ = np.histogram(kernels, bins=10, range=(-0.05, 0.05))
    expected = kernels.size / 10
    assert np.all(np.abs(counts - expected) < 5 * np.sqrt(expected))
    assert all(not np.any(params[f"Dense_{i}"]["bias"]) for i in range(3))
