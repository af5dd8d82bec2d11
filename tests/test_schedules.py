"""Learning-rate schedules against closed forms, the plateau factor, and schedule configs."""

import math
import re
import tomllib

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from dlcore.config.loading import ConfigError, load_config, save_config, validate
from dlcore.optim import (
    OPTIMIZERS,
    SCHEDULES,
    PlateauState,
    SGDConfig,
    build_optimizer,
    build_schedule,
    find_plateau,
    plateau_observe,
    plateau_scale,
    scale_by_plateau,
)
from tests.helpers import REPO

STEPS = [0, 1, 2, 5, 9, 10, 11, 29, 30, 31, 50, 99, 100, 101, 150]
LR = 0.3


def cosine(t, lr, decay_steps, alpha):
    return lr * (
        alpha + (1 - alpha) * 0.5 * (1 + math.cos(math.pi * min(t, decay_steps) / decay_steps))
    )


# (schedule table, closed form t -> rate)
CLOSED_FORMS = [
    ({"name": "constant"}, lambda t: LR),
    ({"name": "step", "every": 30, "factor": 10.0}, lambda t: LR / 10.0 ** (t // 30)),
    ({"name": "step", "every": 10, "factor": 2.0}, lambda t: LR / 2.0 ** (t // 10)),
    (
        {"name": "exponential", "decay_rate": 0.5, "transition_steps": 20},
        lambda t: LR * 0.5 ** (t / 20),
    ),
    (
        {"name": "exponential", "decay_rate": 0.9, "transition_steps": 10, "staircase": True},
        lambda t: LR * 0.9 ** (t // 10),
    ),
    ({"name": "inverse_time", "decay": 0.05}, lambda t: LR / (1 + 0.05 * t)),
    ({"name": "cosine", "decay_steps": 100}, lambda t: cosine(t, LR, 100, 0.0)),
    ({"name": "cosine", "decay_steps": 50, "alpha": 0.1}, lambda t: cosine(t, LR, 50, 0.1)),
    ({"name": "warmup", "warmup_steps": 10}, lambda t: LR * min(t / 10, 1.0)),
    (
        {
            "name": "warmup",
            "warmup_steps": 10,
            "start": 0.2,
            "then": {"name": "cosine", "decay_steps": 90},
        },
        lambda t: LR * (0.2 + 0.8 * t / 10) if t < 10 else cosine(t - 10, LR, 90, 0.0),
    ),
    (
        {"name": "warmup", "warmup_steps": 5, "then": {"name": "step", "every": 30, "factor": 4.0}},
        lambda t: LR * t / 5 if t < 5 else LR / 4.0 ** ((t - 5) // 30),
    ),
    ({"name": "plateau", "mode": "min"}, lambda t: LR),
]


def schedule_config(table: dict):
    return SGDConfig.model_validate({"learning_rate": LR, "schedule": table}).schedule


def test_every_schedule_has_a_closed_form_case():
    assert {table["name"] for table, _ in CLOSED_FORMS} == set(SCHEDULES)


@pytest.mark.parametrize(
    "table, closed_form",
    CLOSED_FORMS,
    ids=[f"{i}-{t['name']}" for i, (t, _) in enumerate(CLOSED_FORMS)],
)
def test_schedule_values_match_closed_form(table, closed_form):
    # In float64 (an int64 count) so that the formula, not float32 rounding, is compared.
    rate = build_schedule(schedule_config(table), LR)
    with jax.enable_x64(True):
        got = [float(rate(jnp.asarray(t)) if callable(rate) else rate) for t in STEPS]
    np.testing.assert_allclose(got, [closed_form(t) for t in STEPS], rtol=1e-12, atol=1e-15)


def test_scheduled_rate_drives_the_update_from_count_zero():
    """Warm-up then cosine in SGD: p_{t+1} = p_t - lr_t g(p_t) with t = 0, 1, ...

    The chain's update count is int32, so the rate itself is float32 (hence 1e-6); using
    lr_{t+1} instead of lr_t would be off by more than 0.05."""
    table = {"name": "warmup", "warmup_steps": 2, "then": {"name": "cosine", "decay_steps": 3}}
    a_diag, b = np.array([2.0, 0.5]), np.array([1.0, -1.0])
    with jax.enable_x64(True):
        opt = build_optimizer(SGDConfig(learning_rate=0.4, schedule=table))
        p = jnp.asarray([1.0, 2.0])
        state = opt.init(p)
        want = np.asarray(p)
        for t in range(6):
            updates, state = opt.update(jnp.asarray(a_diag) * p - jnp.asarray(b), state, p)
            p = p + updates
            lr_t = 0.4 * t / 2 if t < 2 else cosine(t - 2, 0.4, 3, 0.0)
            want = want - lr_t * (a_diag * want - b)
            np.testing.assert_allclose(np.asarray(p), want, rtol=0, atol=1e-6)


# The plateau factor.
def plateau_opt(mode, factor=2.0, patience=1, min_delta=0.0, **fields):
    table = {
        "name": "plateau",
        "mode": mode,
        "factor": factor,
        "patience": patience,
        "min_delta": min_delta,
    }
    return build_optimizer(SGDConfig(learning_rate=0.1, schedule=table, **fields))


PARAMS = {"Dense_0": {"kernel": jnp.ones((2, 3))}, "Dense_1": {"kernel": jnp.ones((3,))}}


def scales_after(opt, values):
    state = opt.init(PARAMS)
    out = []
    for value in values:
        state = plateau_observe(state, value)
        out.append(plateau_scale(state))
    return out


# (mode, factor, patience, min_delta, observed values, plateau factor after each), by hand.
PLATEAUS = [
    # A loss: divide by 10 after two passes without a new minimum; then again.
    ("min", 10.0, 2, 0.0, [5.0, 4.0, 4.5, 4.2, 3.9, 3.95, 3.99], [1, 1, 1, 0.1, 0.1, 0.1, 0.01]),
    # A negative reward to maximize; a tie is not an improvement.
    ("max", 2.0, 1, 0.0, [-10.0, -8.0, -9.0, -8.0, -7.0, -7.5], [1, 1, 0.5, 0.25, 0.25, 0.125]),
    # A negative log-likelihood that goes below zero, to minimize.
    (
        "min",
        4.0,
        2,
        0.0,
        [-1.0, -2.0, -1.5, -1.9, -2.5, -2.4, -2.45],
        [1, 1, 1, 0.25, 0.25, 0.25, 1 / 16],
    ),
    # Accuracy with min_delta: +0.005 is not enough, +0.02 over the best is.
    ("max", 2.0, 1, 0.01, [0.5, 0.505, 0.52, 0.525], [1, 0.5, 0.5, 0.25]),
    # A long plateau: the count restarts after each division, so one per `patience` passes.
    ("min", 2.0, 2, 0.0, [1.0, 2.0, 2.0, 2.0, 2.0, 2.0], [1, 1, 0.5, 0.5, 0.25, 0.25]),
    # A NaN never counts as an improvement.
    ("min", 2.0, 1, 0.0, [1.0, float("nan"), 0.5], [1, 0.5, 0.5]),
]


@pytest.mark.parametrize("mode, factor, patience, min_delta, values, want", PLATEAUS)
def test_plateau_divides_after_patience_bad_observations(
    mode, factor, patience, min_delta, values, want
):
    got = scales_after(plateau_opt(mode, factor, patience, min_delta), values)
    np.testing.assert_allclose(got, want, rtol=1e-6)


@pytest.mark.parametrize(
    "mode, values",
    [
        ("max", np.linspace(-5.0, 5.0, 12)),  # accuracy-like and negative rewards, rising
        ("min", np.linspace(5.0, -5.0, 12)),  # losses and negative NLLs, falling
        ("max", -np.geomspace(100.0, 0.01, 12)),  # negative, approaching 0 from below
        ("min", np.geomspace(100.0, 0.01, 12)),  # positive, approaching 0 from above
    ],
)
def test_plateau_never_divides_while_improving(mode, values):
    assert scales_after(plateau_opt(mode, factor=3.0, patience=1), values) == [1.0] * len(values)


def test_plateau_factor_scales_the_update_exactly():
    opt = plateau_opt("min", factor=8.0, patience=1)
    state = opt.init(PARAMS)
    grads = jax.tree.map(lambda x: 2.0 * x, PARAMS)
    before, _ = opt.update(grads, state, PARAMS)
    state = plateau_observe(plateau_observe(state, 1.0), 2.0)
    after, state = opt.update(grads, state, PARAMS)
    for b, a in zip(jax.tree.leaves(before), jax.tree.leaves(after), strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b) / 8.0, rtol=1e-6)
        np.testing.assert_allclose(np.asarray(b), -0.1 * 2.0, rtol=1e-6)


def test_plateau_state_is_found_inside_nested_chains_and_jit():
    # Warm-up then plateau, with clipping and a frozen layer (multi_transform) around it.
    table = {"name": "warmup", "warmup_steps": 3, "then": {"name": "plateau", "mode": "max"}}
    cfg = SGDConfig(schedule=table, clip_norm=1.0, freeze=("Dense_0",))
    assert find_plateau(cfg.schedule).mode == "max"
    state = build_optimizer(cfg).init(PARAMS)
    observe = jax.jit(plateau_observe)
    new = observe(observe(state, 0.9), 0.8)
    assert plateau_scale(new) == 0.5
    assert jax.tree.structure(new) == jax.tree.structure(state)
    for old_leaf, new_leaf in zip(jax.tree.leaves(state), jax.tree.leaves(new), strict=True):
        assert old_leaf.dtype == new_leaf.dtype and old_leaf.shape == new_leaf.shape
    found = [n for n in jax.tree.leaves(new, is_leaf=lambda n: isinstance(n, PlateauState))]
    assert sum(isinstance(n, PlateauState) for n in found) == 1


def test_plateau_observe_leaves_other_states_unchanged():
    state = build_optimizer(SGDConfig(schedule={"name": "cosine", "decay_steps": 5})).init(PARAMS)
    new = plateau_observe(state, 1.0)
    assert all(a is b for a, b in zip(jax.tree.leaves(state), jax.tree.leaves(new), strict=True))
    assert plateau_scale(new) == 1.0


def test_plateau_rejects_bad_arguments():
    with pytest.raises(ValueError, match="scalar metric; got shape \\(2,\\)"):
        plateau_observe(plateau_opt("min").init(PARAMS), jnp.ones(2))
    with pytest.raises(ValueError, match="factor must be > 1"):
        scale_by_plateau(0.5, 1, "min")
    with pytest.raises(ValueError, match="mode must be 'max' or 'min'; got 'up'"):
        scale_by_plateau(2.0, 1, "up")


def test_constant_schedule_keeps_no_step_count():
    state = build_optimizer(SGDConfig()).init(PARAMS)
    assert not any(
        isinstance(s, optax.ScaleByScheduleState)
        for s in jax.tree.leaves(state, is_leaf=lambda n: isinstance(n, optax.ScaleByScheduleState))
    )


# Config round trip: every schedule selectable from TOML, one-line errors.
REQUIRED = {
    "constant": {},
    "step": {"every": 10},
    "exponential": {"decay_rate": 0.5},
    "inverse_time": {"decay": 1e-6},
    "cosine": {"decay_steps": 100},
    "warmup": {"warmup_steps": 10, "then": {"name": "cosine", "decay_steps": 90}},
    "plateau": {"mode": "max", "factor": 10.0, "patience": 3, "metric": "accuracy"},
}


def raw_config(optimizer: dict) -> dict:
    return {"data": {"name": "xor"}, "model": {"name": "mlp"}, "optimizer": optimizer}


@pytest.mark.parametrize("name", sorted(SCHEDULES))
def test_every_schedule_validates_and_round_trips_through_toml(name, tmp_path):
    raw = raw_config({"name": "momentum", "schedule": {"name": name, **REQUIRED[name]}})
    cfg = validate(raw, "t.toml")
    assert cfg.optimizer.schedule.name == name
    path = tmp_path / "c.toml"
    save_config(cfg, path)
    assert load_config(path) == cfg


def test_required_fields_cover_every_schedule():
    assert set(REQUIRED) == set(SCHEDULES)


@pytest.mark.parametrize(
    "schedule, line",
    [
        (
            {"name": "cosin"},
            "t.toml: optimizer.schedule: unknown schedule 'cosin'; valid: "
            + ", ".join(sorted(SCHEDULES)),
        ),
        (
            {"name": "warmup", "warmup_steps": 3, "then": {"name": "warmup"}},
            "t.toml: optimizer.schedule.then: unknown schedule 'warmup'; valid: "
            + ", ".join(sorted(set(SCHEDULES) - {"warmup"})),
        ),
        (
            {"name": "cosine", "decay_steps": 5, "decay_step": 3},
            "t.toml: optimizer.schedule.decay_step: unknown key; did you mean 'decay_steps'?",
        ),
        (
            {"name": "step", "every": 5, "factor": 0.1},
            "t.toml: optimizer.schedule.factor: Input should be greater than 1 (got 0.1)",
        ),
        (
            {"name": "plateau"},
            "t.toml: optimizer.schedule.mode: missing required field",
        ),
    ],
)
def test_bad_schedule_gives_one_line(schedule, line):
    with pytest.raises(ConfigError) as info:
        validate(raw_config({"name": "adam", "schedule": schedule}), "t.toml")
    assert info.value.lines() == [line]


def test_every_optimizer_accepts_a_schedule():
    for name in OPTIMIZERS:
        cfg = validate(raw_config({"name": name, "schedule": {"name": "step", "every": 2}}), "t")
        assert cfg.optimizer.schedule.every == 2


def test_readme_optimizer_example_validates():
    text = (REPO / "README.md").read_text()
    section = text.split("### Optimizers and schedules", 1)[1]
    block = re.search(r"```toml\n(.*?)```", section, re.S).group(1)
    raw = {"data": {"name": "xor"}, "model": {"name": "mlp"}, **tomllib.loads(block)}
    optimizer = validate(raw, "README.md").optimizer
    assert optimizer.schedule.then.name == "cosine" and optimizer.freeze == ("Dense_0/*",)


def test_update_compiles_once_across_steps_and_plateau_observations():
    table = {"name": "warmup", "warmup_steps": 2, "then": {"name": "plateau", "mode": "min"}}
    opt = build_optimizer(SGDConfig(schedule=table, freeze=("Dense_0",)))
    traces = []

    @jax.jit
    def update(grads, state, params):
        traces.append(1)  # runs only while tracing
        return opt.update(grads, state, params)

    state = opt.init(PARAMS)
    observe = jax.jit(plateau_observe)
    for value in (3.0, 4.0, 5.0):
        _, state = update(PARAMS, state, PARAMS)
        state = observe(state, value)
    assert len(traces) == 1 and plateau_scale(state) == 0.25


def test_a_bare_schedule_name_is_shorthand_for_a_table():
    cfg = validate(raw_config({"name": "sgd", "schedule": "constant"}), "t.toml")
    assert cfg.optimizer.schedule.name == "constant"
