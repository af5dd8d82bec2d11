"""Optimizers: the first steps on a quadratic against textbook update rules in NumPy,
clipping, freezing by path pattern, and every optimizer name selectable from a config."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from dlcore.config.loading import ConfigError, validate
from dlcore.optim import (
    OPTIMIZERS,
    AdamConfig,
    SGDConfig,
    build_optimizer,
    check_freeze_patterns,
    freeze_labels,
    param_paths,
)

# f(p) = 1/2 p^T A p - b^T p, gradient A p - b; A is symmetric positive definite.
A = np.array([[3.0, 0.5, 0.2], [0.5, 2.0, 0.3], [0.2, 0.3, 1.0]])
B = np.array([1.0, -2.0, 0.5])
P0 = np.array([0.5, -1.0, 2.0])
STEPS = 5


def grad(p):
    return A @ p - B


def run_chain(cfg, steps=STEPS):
    """Params after each of ``steps`` updates of the built chain, in float64."""
    with jax.enable_x64(True):
        opt = build_optimizer(cfg)
        params = {"p": jnp.asarray(P0)}
        state = opt.init(params)
        out = []
        for _ in range(steps):
            g = {"p": jnp.asarray(A) @ params["p"] - jnp.asarray(B)}
            updates, state = opt.update(g, state, params)
            params = optax.apply_updates(params, updates)
            assert params["p"].dtype == jnp.float64
            out.append(np.asarray(params["p"]))
    return np.stack(out)


# Textbook rules, one NumPy function each: (hyper-parameters) -> trajectory [STEPS, 3].
def ref_sgd(lr):
    p, out = P0.copy(), []
    for _ in range(STEPS):
        p = p - lr * grad(p)
        out.append(p)
    return np.stack(out)


def ref_momentum(lr_at, mu):
    """Lecture form: v = mu v - eps_t g; p += v (the rate is inside the velocity)."""
    p, v, out = P0.copy(), np.zeros(3), []
    for t in range(STEPS):
        v = mu * v - lr_at(t) * grad(p)
        p = p + v
        out.append(p)
    return np.stack(out)


def ref_nesterov(lr, mu):
    """Goodfellow et al. Alg. 8.3: gradient at the look-ahead theta + mu v. The chain's
    parameters are that look-ahead point, so the trajectory reported is theta + mu v."""
    theta, v, out = P0.copy(), np.zeros(3), []
    for _ in range(STEPS):
        v = mu * v - lr * grad(theta + mu * v)
        theta = theta + v
        out.append(theta + mu * v)
    return np.stack(out)


def ref_adagrad(lr, eps):
    p, r, out = P0.copy(), np.zeros(3), []
    for _ in range(STEPS):
        g = grad(p)
        r = r + g * g
        p = p - lr * g / np.sqrt(r + eps)
        out.append(p)
    return np.stack(out)


def ref_adadelta(lr, rho, eps):
    """Zeiler (2012), Alg. 1; the rate scales the step, E[dx^2] keeps the unscaled one."""
    p, eg, ex, out = P0.copy(), np.zeros(3), np.zeros(3), []
    for _ in range(STEPS):
        g = grad(p)
        eg = rho * eg + (1 - rho) * g * g
        dx = -np.sqrt(ex + eps) / np.sqrt(eg + eps) * g
        ex = rho * ex + (1 - rho) * dx * dx
        p = p + lr * dx
        out.append(p)
    return np.stack(out)


def ref_rmsprop(lr, decay, eps):
    p, r, out = P0.copy(), np.zeros(3), []
    for _ in range(STEPS):
        g = grad(p)
        r = decay * r + (1 - decay) * g * g
        p = p - lr * g / np.sqrt(r + eps)
        out.append(p)
    return np.stack(out)


def ref_adam(lr, b1, b2, eps, wd=0.0):
    """Kingma & Ba, Alg. 1; with wd > 0 the decoupled decay of Loshchilov & Hutter."""
    p, m, v, out = P0.copy(), np.zeros(3), np.zeros(3), []
    for t in range(1, STEPS + 1):
        g = grad(p)
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        m_hat, v_hat = m / (1 - b1**t), v / (1 - b2**t)
        p = p - lr * (m_hat / (np.sqrt(v_hat) + eps) + wd * p)
        out.append(p)
    return np.stack(out)


# (name, config fields, reference). A large eps makes "inside vs outside the square root"
# and a schedule makes "rate inside vs outside the velocity" visible at this tolerance.
CASES = [
    ("sgd", {"learning_rate": 0.1}, lambda: ref_sgd(0.1)),
    (
        "momentum",
        {"learning_rate": 0.1, "momentum": 0.9, "schedule": {"name": "step", "every": 2}},
        lambda: ref_momentum(lambda t: 0.1 / 10.0 ** (t // 2), 0.9),
    ),
    ("nesterov", {"learning_rate": 0.1, "momentum": 0.8}, lambda: ref_nesterov(0.1, 0.8)),
    ("adagrad", {"learning_rate": 0.5, "eps": 0.1}, lambda: ref_adagrad(0.5, 0.1)),
    (
        "adadelta",
        {"learning_rate": 0.5, "rho": 0.9, "eps": 1e-2},
        lambda: ref_adadelta(0.5, 0.9, 1e-2),
    ),
    (
        "rmsprop",
        {"learning_rate": 0.05, "decay": 0.8, "eps": 0.1},
        lambda: ref_rmsprop(0.05, 0.8, 0.1),
    ),
    (
        "adam",
        {"learning_rate": 0.1, "b1": 0.8, "b2": 0.95, "eps": 0.1},
        lambda: ref_adam(0.1, 0.8, 0.95, 0.1),
    ),
    (
        "adamw",
        {"learning_rate": 0.1, "b1": 0.8, "b2": 0.95, "eps": 0.1, "weight_decay": 0.3},
        lambda: ref_adam(0.1, 0.8, 0.95, 0.1, wd=0.3),
    ),
]


def config(name, **fields):
    return OPTIMIZERS[name].config.model_validate({"name": name, **fields})


def test_every_optimizer_has_a_textbook_case():
    assert sorted(name for name, _, _ in CASES) == sorted(OPTIMIZERS)


@pytest.mark.parametrize("name, fields, reference", CASES, ids=[c[0] for c in CASES])
def test_first_steps_match_textbook_rule(name, fields, reference):
    got = run_chain(config(name, **fields))
    want = reference()
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)
    assert not np.allclose(want[-1], P0)  # the steps really move


def test_momentum_rate_is_inside_the_velocity():
    # The trace form v = mu v + g; p -= eps_t v differs once eps_t changes; we are not it.
    cfg = config("momentum", learning_rate=0.1, schedule={"name": "step", "every": 2})
    got = run_chain(cfg)
    p, v, trace_form = P0.copy(), np.zeros(3), []
    for t in range(STEPS):
        v = 0.9 * v + grad(p)
        p = p - 0.1 / 10.0 ** (t // 2) * v
        trace_form.append(p)
    assert np.abs(got - np.stack(trace_form)).max() > 1e-3


def ref_clipped_sgd(lr, clip):
    p, out, clipped = P0.copy(), [], 0
    for _ in range(STEPS):
        g = clip(grad(p))
        clipped += not np.allclose(g, grad(p))
        p = p - lr * g
        out.append(p)
    assert clipped > 0, "the test must exercise clipping"
    return np.stack(out)


CLIPS = [
    ({"clip_norm": 1.0}, lambda g: g * min(1.0, 1.0 / np.linalg.norm(g))),
    ({"clip_value": 0.5}, lambda g: np.clip(g, -0.5, 0.5)),
    (
        {"clip_value": 0.8, "clip_norm": 1.0},
        lambda g: (c := np.clip(g, -0.8, 0.8)) * min(1.0, 1.0 / np.linalg.norm(c)),
    ),
]


@pytest.mark.parametrize("fields, clip", CLIPS, ids=["norm", "value", "value+norm"])
def test_clipping_precedes_the_update(fields, clip):
    got = run_chain(config("sgd", learning_rate=0.2, **fields))
    np.testing.assert_allclose(got, ref_clipped_sgd(0.2, clip), rtol=0, atol=1e-6)


# Freezing by path pattern.
def mlp_params():
    keys = jax.random.split(jax.random.PRNGKey(1), 4)
    return {
        "Dense_0": {
            "kernel": jax.random.normal(keys[0], (3, 4)),
            "bias": jax.random.normal(keys[1], (4,)),
        },
        "Dense_1": {
            "kernel": jax.random.normal(keys[2], (4, 2)),
            "bias": jax.random.normal(keys[3], (2,)),
        },
    }


def test_param_paths_are_slash_joined():
    assert param_paths(mlp_params()) == [
        "Dense_0/bias",
        "Dense_0/kernel",
        "Dense_1/bias",
        "Dense_1/kernel",
    ]


@pytest.mark.parametrize(
    "patterns, frozen",
    [
        (["Dense_0/*"], {"Dense_0/bias", "Dense_0/kernel"}),
        (["Dense_0"], {"Dense_0/bias", "Dense_0/kernel"}),
        (["*/bias"], {"Dense_0/bias", "Dense_1/bias"}),
        (["Dense_?/kernel", "Dense_1/bias"], {"Dense_0/kernel", "Dense_1/kernel", "Dense_1/bias"}),
    ],
)
def test_freeze_labels_follow_glob_patterns(patterns, frozen):
    params = mlp_params()
    labels = jax.tree.leaves(freeze_labels(patterns, params))
    got = {
        path for path, label in zip(param_paths(params), labels, strict=True) if label == "frozen"
    }
    assert got == frozen


def train(opt, params, steps=3):
    """``steps`` jitted updates with fixed pseudo-random gradients; returns (params, state)."""
    state = opt.init(params)
    update = jax.jit(opt.update)
    for i in range(steps):
        key = jax.random.PRNGKey(i)
        grads = jax.tree.map(lambda x, k=key: jax.random.normal(k, x.shape) * 3.0, params)
        updates, state = update(grads, state, params)
        params = optax.apply_updates(params, updates)
    return params, state


def test_frozen_params_are_bit_identical_and_keep_no_state():
    params = mlp_params()
    cfg = AdamConfig(learning_rate=0.1, clip_norm=0.5, freeze=("Dense_0/*",))
    trained, state = train(build_optimizer(cfg), params)
    for name in ("kernel", "bias"):
        before, after = params["Dense_0"][name], trained["Dense_0"][name]
        assert after.dtype == before.dtype and np.array_equal(after, before)
        assert not np.allclose(trained["Dense_1"][name], params["Dense_1"][name])
    # Adam's two moments exist for Dense_1 only (besides the scalar step count).
    state_sizes = [x.size for x in jax.tree.leaves(state) if x.ndim > 0]
    assert sum(state_sizes) == 2 * (4 * 2 + 2)


def test_frozen_leaves_do_not_change_how_the_others_train():
    # The global-norm clip must see the trainable gradients only.
    params = mlp_params()
    cfg = AdamConfig(learning_rate=0.1, clip_norm=0.5)
    frozen, _ = train(build_optimizer(cfg.model_copy(update={"freeze": ("Dense_0",)})), params)
    alone, _ = train(build_optimizer(cfg), {"Dense_1": params["Dense_1"]})
    for name in ("kernel", "bias"):
        np.testing.assert_array_equal(frozen["Dense_1"][name], alone["Dense_1"][name])


def test_unknown_freeze_pattern_names_it_and_lists_paths():
    params = mlp_params()
    with pytest.raises(ValueError) as info:
        check_freeze_patterns(["Dense_0/*", "Dense_9/*"], params)
    message = str(info.value)
    assert "\n" not in message
    assert "'Dense_9/*' matches no parameter" in message
    assert "Dense_0/bias, Dense_0/kernel" in message
    # The chain's init runs the same check, so a bad pattern never trains silently.
    opt = build_optimizer(SGDConfig(freeze=("dense_0/*",)))
    with pytest.raises(ValueError, match="'dense_0/\\*' matches no parameter"):
        opt.init(params)


# Config: every name is selectable from TOML; errors are one line.
def raw_config(optimizer: dict) -> dict:
    return {"data": {"name": "xor"}, "model": {"name": "mlp"}, "optimizer": optimizer}


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_every_optimizer_validates_from_toml_and_builds(name):
    cfg = validate(raw_config({"name": name, "clip_value": 1.0, "freeze": ["*/bias"]}), "t.toml")
    assert cfg.optimizer.name == name and cfg.optimizer.freeze == ("*/bias",)
    params = mlp_params()
    trained, _ = train(build_optimizer(cfg.optimizer), params, steps=1)
    assert np.array_equal(trained["Dense_1"]["bias"], params["Dense_1"]["bias"])
    assert not np.array_equal(trained["Dense_1"]["kernel"], params["Dense_1"]["kernel"])


def test_unknown_optimizer_lists_every_valid_name():
    with pytest.raises(ConfigError) as info:
        validate(raw_config({"name": "adamax"}), "t.toml")
    (line,) = info.value.lines()
    valid = ", ".join(sorted(OPTIMIZERS))
    assert line == f"t.toml: optimizer.name: unknown optimizer 'adamax'; valid: {valid}"
