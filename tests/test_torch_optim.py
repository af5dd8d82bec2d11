"""PyTorch's optimizer conventions as dlcore options: trajectories against the committed
``tests/references/torch_optim.npz`` (made by ``scripts/torch_refs/optim.py``; torch is not
imported here), textbook formulas for the variants PyTorch lacks, one-line errors, and a
table showing that every default is unchanged."""

import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from dlcore.config.loading import ConfigError, validate
from dlcore.experiment.build import build
from dlcore.optim import (
    OPTIMIZERS,
    adagrad,
    adamw,
    build_optimizer,
    coupled_weight_decay,
    dampened_trace,
    decay_mask,
    momentum,
    param_paths,
    rmsprop,
)
from dlcore.optim.freezing import FreezePatternError
from dlcore.regularizers import weight_mask

REFS = np.load(pathlib.Path(__file__).parent / "references" / "torch_optim.npz")
ALL = {"decay_include": ["*"]}  # PyTorch decays every parameter of a group

SGD = {"learning_rate": 0.1}
RMS = {"name": "rmsprop", "learning_rate": 0.01, "eps": 0.1, "eps_in_sqrt": False}
ADAGRAD = {"name": "adagrad", "learning_rate": 0.1, "eps": 0.1, "eps_in_sqrt": False}
BETAS = {"learning_rate": 0.05, "b1": 0.8, "b2": 0.95}

# case of the reference file -> the dlcore [optimizer] table that reproduces it
TORCH = {
    "sgd": {"name": "sgd"} | SGD,
    "sgd_momentum": {"name": "momentum", "momentum": 0.9} | SGD,
    "sgd_dampening": {"name": "momentum", "dampening": 0.3} | SGD,
    "sgd_nesterov": {"name": "nesterov", "momentum": 0.8} | SGD,
    "sgd_weight_decay": {"name": "momentum", "coupled_weight_decay": 0.1} | SGD | ALL,
    "sgd_weight_decay_no_bias_decay": {"name": "momentum", "dampening": 0.3}
    | SGD
    | {"coupled_weight_decay": 0.2},
    "rmsprop": RMS,
    "rmsprop_default_eps": RMS | {"decay": 0.99, "eps": 1e-8},
    "rmsprop_centered": RMS | {"centered": True},
    "rmsprop_momentum": RMS | {"momentum": 0.5},
    "rmsprop_centered_momentum_weight_decay": RMS
    | {"centered": True, "momentum": 0.5, "coupled_weight_decay": 0.05}
    | ALL,
    "adagrad": ADAGRAD,
    "adagrad_initial_accumulator": ADAGRAD | {"eps": 1e-10, "initial_accumulator_value": 0.5},
    "adagrad_weight_decay": ADAGRAD | {"coupled_weight_decay": 0.1} | ALL,
    "adam": {"name": "adam", "eps": 0.1} | BETAS,
    "adam_weight_decay": {"name": "adam", "coupled_weight_decay": 0.1} | BETAS | ALL,
    "adamw": {"name": "adamw", "eps": 0.1, "weight_decay": 0.3} | BETAS | ALL,
    "adamw_no_bias_decay": {"name": "adamw", "weight_decay": 0.3} | BETAS,
}


def raw_config(optimizer: dict) -> dict:
    return {"data": {"name": "xor"}, "model": {"name": "mlp"}, "optimizer": optimizer}


def from_toml(fields: dict) -> optax.GradientTransformation:
    return build_optimizer(validate(raw_config(fields), "t.toml").optimizer)


def trajectory(opt: optax.GradientTransformation, steps: int = 5) -> dict[str, np.ndarray]:
    """The reference model's parameters after each step of ``opt``, in float64."""
    with jax.enable_x64(True):
        x, y = jnp.asarray(REFS["x"]), jnp.asarray(REFS["y"])
        params = {"Dense_0": {"kernel": REFS["kernel0"], "bias": REFS["bias0"]}}
        params = jax.tree.map(jnp.asarray, params)
        state, out = opt.init(params), {"kernel": [], "bias": []}
        for _ in range(steps):
            p = params["Dense_0"]
            r = x @ p["kernel"] + p["bias"][None, :] - y  # d mean(r^2) / d r = 2 r / r.size
            g = {"Dense_0": {"kernel": 2 * x.T @ r / r.size, "bias": 2 * r.sum(0) / r.size}}
            updates, state = opt.update(g, state, params)
            params = optax.apply_updates(params, updates)
            for name in out:
                out[name].append(np.asarray(params["Dense_0"][name]))
    return {name: np.stack(v) for name, v in out.items()}


def torch_reference(case: str) -> dict[str, np.ndarray]:
    return {name: REFS[f"{case}/{name}"] for name in ("kernel", "bias")}


def max_error(got: dict, want: dict) -> float:
    return max(float(np.abs(got[k] - want[k]).max()) for k in want)


def test_every_reference_case_has_dlcore_options():
    cases = {key.split("/")[0] for key in REFS.files if "/" in key}
    assert cases == set(TORCH)


@pytest.mark.parametrize("case", sorted(TORCH))
def test_toml_options_reproduce_torch_trajectory(case):
    want = torch_reference(case)
    assert max_error(trajectory(from_toml(TORCH[case])), want) < 1e-10
    assert not np.allclose(want["kernel"][-1], REFS["kernel0"])  # the steps really move


# The same through the Python API: recipe functions chained by hand.
PYTHON_API = {
    "sgd_dampening": lambda: momentum(0.1, 0.9, dampening=0.3),
    "sgd_weight_decay_no_bias_decay": lambda: optax.chain(
        coupled_weight_decay(0.2), momentum(0.1, 0.9, dampening=0.3)
    ),
    "rmsprop_centered_momentum_weight_decay": lambda: optax.chain(
        coupled_weight_decay(0.05, decay_mask(["*"])),
        rmsprop(0.01, 0.9, 0.1, eps_in_sqrt=False, centered=True, momentum=0.5),
    ),
    "adagrad_initial_accumulator": lambda: adagrad(
        0.1, 1e-10, eps_in_sqrt=False, initial_accumulator_value=0.5
    ),
    "adamw": lambda: adamw(0.05, 0.8, 0.95, 0.1, 0.3, decay_mask=decay_mask(["*"])),
}


@pytest.mark.parametrize("case", sorted(PYTHON_API))
def test_python_api_reproduces_torch_trajectory(case):
    assert max_error(trajectory(PYTHON_API[case]()), torch_reference(case)) < 1e-10


# Without the option the trajectory is not PyTorch's: each option is what makes the match.
OPTION_MATTERS = [
    ("rmsprop", "eps_in_sqrt"),
    ("rmsprop_centered", "centered"),
    ("rmsprop_momentum", "momentum"),
    ("adagrad", "eps_in_sqrt"),
    ("adagrad_initial_accumulator", "initial_accumulator_value"),
    ("sgd_dampening", "dampening"),
    ("sgd_weight_decay", "decay_include"),  # the default mask spares the bias
    ("adam_weight_decay", "coupled_weight_decay"),
]


@pytest.mark.parametrize("case, option", OPTION_MATTERS)
def test_dropping_the_option_leaves_torch_trajectory(case, option):
    fields = {k: v for k, v in TORCH[case].items() if k != option}
    if option == "coupled_weight_decay":
        fields.pop("decay_include")
    assert max_error(trajectory(from_toml(fields)), torch_reference(case)) > 1e-6


# Variants PyTorch lacks (eps under the root with the new options), against the formula.
def numpy_steps(update, steps=5):
    """Runs ``update(p, g, t) -> p`` on the reference model; ``t`` counts from 1."""
    x, y = REFS["x"], REFS["y"]
    p, out = {"kernel": REFS["kernel0"].copy(), "bias": REFS["bias0"].copy()}, []
    for t in range(1, steps + 1):
        r = x @ p["kernel"] + p["bias"] - y
        g = {"kernel": 2 * x.T @ r / r.size, "bias": 2 * r.sum(0) / r.size}
        p = {k: update(k, p[k], g[k], t) for k in p}
        out.append(p)
    return {k: np.stack([o[k] for o in out]) for k in ("kernel", "bias")}


def rmsprop_centered_in_sqrt(lr=0.01, rho=0.9, eps=0.1, mu=0.5):
    """r <- rho r + (1-rho) g^2; m <- rho m + (1-rho) g; v <- mu v - lr g/sqrt(r - m^2 + eps)."""
    state = {}

    def update(k, p, g, t):
        r, m, v = state.get(k, (0.0, 0.0, 0.0))
        r, m = rho * r + (1 - rho) * g * g, rho * m + (1 - rho) * g
        v = mu * v - lr * g / np.sqrt(r - m * m + eps)
        state[k] = (r, m, v)
        return p + v

    return numpy_steps(update)


def adagrad_in_sqrt(lr=0.1, eps=0.1, r0=0.5):
    """r <- r + g^2 (r_0 given); p <- p - lr g / sqrt(r + eps)."""
    sums = {}

    def update(k, p, g, t):
        sums[k] = sums.get(k, r0) + g * g
        return p - lr * g / np.sqrt(sums[k] + eps)

    return numpy_steps(update)


def masked_coupled_sgd(lr=0.1, wd=0.5, decayed=("bias",)):
    """p <- p - lr (g + wd p) for the decayed leaves, p - lr g for the others."""
    return numpy_steps(lambda k, p, g, t: p - lr * (g + (wd * p if k in decayed else 0.0)))


FORMULAS = [
    (
        {"name": "rmsprop", "learning_rate": 0.01, "eps": 0.1, "centered": True, "momentum": 0.5},
        rmsprop_centered_in_sqrt,
    ),
    (
        {"name": "adagrad", "learning_rate": 0.1, "eps": 0.1, "initial_accumulator_value": 0.5},
        adagrad_in_sqrt,
    ),
    (
        {
            "name": "sgd",
            "learning_rate": 0.1,
            "coupled_weight_decay": 0.5,
            "decay_exclude": ["*/kernel"],
        },
        masked_coupled_sgd,
    ),
]


@pytest.mark.parametrize("fields, formula", FORMULAS, ids=["rmsprop", "adagrad", "mask"])
def test_options_without_a_torch_twin_match_their_formula(fields, formula):
    assert max_error(trajectory(from_toml(fields)), formula()) < 1e-10


def test_dampened_trace_leaves_the_first_step_alone():
    tx = dampened_trace(0.5, 0.25)
    state = tx.init(jnp.zeros(1))
    got = []
    for u in (4.0, 4.0, 8.0):
        v, state = tx.update(jnp.full(1, u), state)
        got.append(float(v[0]))
    assert got == [4.0, 0.5 * 4.0 + 0.75 * 4.0, 0.5 * 5.0 + 0.75 * 8.0]


MLP = {
    "Dense_0": {"kernel": jnp.ones((2, 2)), "bias": jnp.ones(2)},
    "Dense_1": {"kernel": jnp.ones((2, 1)), "bias": jnp.ones(1)},
    "LayerNorm_0": {"scale": jnp.ones(2)},
}


@pytest.mark.parametrize(
    "include, exclude, decayed",
    [
        ((), (), {"Dense_0/kernel", "Dense_1/kernel"}),  # the name heuristic
        (["*"], (), set(param_paths(MLP))),
        ((), ["*/bias"], {"Dense_0/kernel", "Dense_1/kernel", "LayerNorm_0/scale"}),
        (["Dense_*"], ["Dense_1", "*/bias"], {"Dense_0/kernel"}),
    ],
)
def test_decay_mask_follows_globs(include, exclude, decayed):
    flags = jax.tree.leaves(decay_mask(include, exclude)(MLP))
    assert {p for p, on in zip(param_paths(MLP), flags, strict=True) if on} == decayed


def test_decay_globs_see_frozen_parameters_and_mask_the_rest():
    # The globs are checked on every parameter (Dense_0 is frozen but may be named);
    # the mask then applies inside the freezing split, under jit.
    opt = from_toml(
        {
            "name": "sgd",
            "learning_rate": 0.1,
            "coupled_weight_decay": 0.5,
            "decay_include": ["Dense_0", "Dense_1/kernel"],
            "freeze": ["Dense_0"],
        }
    )
    zeros = jax.tree.map(jnp.zeros_like, MLP)
    updates, _ = jax.jit(opt.update)(zeros, opt.init(MLP), MLP)
    leaves = jax.tree.leaves(updates)
    moved = {p: float(jnp.abs(u).max()) for p, u in zip(param_paths(MLP), leaves, strict=True)}
    assert moved == pytest.approx(
        {p: 0.05 if p == "Dense_1/kernel" else 0.0 for p in param_paths(MLP)}
    )


# Bad settings: one line naming the field.
BAD = [
    ({"name": "momentum", "dampening": 1.0}, "optimizer.dampening", "less than 1"),
    ({"name": "momentum", "dampening": -0.1}, "optimizer.dampening", "greater than or equal"),
    ({"name": "nesterov", "dampening": 0.1}, "optimizer", "dampening: Nesterov momentum"),
    ({"name": "rmsprop", "momentum": 1.0}, "optimizer.momentum", "less than 1"),
    (
        {"name": "adagrad", "initial_accumulator_value": -1.0},
        "optimizer.initial_accumulator_value",
        "greater than or equal to 0",
    ),
    ({"name": "adam", "coupled_weight_decay": -1.0}, "optimizer.coupled_weight_decay", "0"),
    ({"name": "sgd", "decay_include": ["*"]}, "optimizer", "decay_include: there is no"),
    ({"name": "adamw", "weight_decay": 0.0, "decay_exclude": ["*"]}, "optimizer", "or weight_d"),
    ({"name": "rmsprop", "eps_in_sqrt": "maybe"}, "optimizer.eps_in_sqrt", "valid boolean"),
]


@pytest.mark.parametrize("fields, field, words", BAD, ids=[str(b[0]) for b in BAD])
def test_bad_settings_are_one_line_naming_the_field(fields, field, words):
    with pytest.raises(ConfigError) as info:
        validate(raw_config(fields), "t.toml")
    (line,) = info.value.lines()
    assert line.startswith(f"t.toml: {field}: ") and words in line


def test_glob_matching_no_parameter_is_an_error_naming_the_field():
    opt = from_toml({"name": "sgd", "coupled_weight_decay": 0.1, "decay_exclude": ["conv*"]})
    with pytest.raises(FreezePatternError) as info:
        opt.init(MLP)
    assert info.value.field == "decay_exclude" and "'conv*' matches no parameter" in str(info.value)
    # Building the experiment checks it before training: a config error on the field.
    raw = raw_config({"name": "adamw", "decay_include": ["Dense_9"]})
    raw["model"]["widths"] = [4]
    with pytest.raises(ConfigError) as info:
        build(validate(raw, "t.toml"), "t.toml")
    (line,) = info.value.lines()
    assert line.startswith("t.toml: optimizer.decay_include: decay_include pattern 'Dense_9'")


# Defaults are unchanged: every field of every optimizer, and the chain each one builds.
COMMON = {
    "learning_rate": 1e-3,
    "schedule": {"name": "constant"},
    "clip_norm": None,
    "clip_value": None,
    "freeze": (),
    "train_only": (),
    "coupled_weight_decay": 0.0,
    "decay_include": (),
    "decay_exclude": (),
    "max_norm": None,
}
ADAM = {"b1": 0.9, "b2": 0.999, "eps": 1e-8}
DEFAULTS = {
    "sgd": {},
    "momentum": {"momentum": 0.9, "dampening": 0.0},
    "nesterov": {"momentum": 0.9, "dampening": 0.0},
    "adagrad": {
        "learning_rate": 1e-2,
        "eps": 1e-8,
        "eps_in_sqrt": True,
        "initial_accumulator_value": 0.0,
    },
    "adadelta": {"learning_rate": 1.0, "rho": 0.95, "eps": 1e-6},
    "rmsprop": {"decay": 0.9, "eps": 1e-8, "eps_in_sqrt": True, "centered": False, "momentum": 0.0},
    "adam": ADAM,
    "adamw": ADAM | {"weight_decay": 1e-4},
}
lr = optax.scale_by_learning_rate
OLD_CHAINS = {  # what each default built before these options existed
    "sgd": lambda: lr(1e-3),
    "momentum": lambda: optax.chain(lr(1e-3), optax.trace(0.9)),
    "nesterov": lambda: optax.chain(lr(1e-3), optax.trace(0.9, nesterov=True)),
    "adagrad": lambda: optax.chain(optax.scale_by_rss(0.0, 1e-8), lr(1e-2)),
    "adadelta": lambda: optax.chain(optax.scale_by_adadelta(0.95, 1e-6), lr(1.0)),
    "rmsprop": lambda: optax.chain(optax.scale_by_rms(0.9, 1e-8, 0.0), lr(1e-3)),
    "adam": lambda: optax.chain(optax.scale_by_adam(), lr(1e-3)),
    "adamw": lambda: optax.chain(
        optax.scale_by_adam(), optax.add_decayed_weights(1e-4, weight_mask), lr(1e-3)
    ),
}


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_defaults_are_unchanged(name):
    cfg = OPTIMIZERS[name].config(name=name)
    assert cfg.model_dump() == {"name": name, **COMMON, **DEFAULTS[name]}
    new, old = build_optimizer(cfg), optax.chain(OLD_CHAINS[name]())  # chain(*clips, rule)
    assert jax.tree.structure(new.init(MLP)) == jax.tree.structure(old.init(MLP))
    grads = jax.tree.map(lambda p: jnp.linspace(-1.0, 2.0, p.size).reshape(p.shape), MLP)
    got = trajectory_of(new, grads)
    want = trajectory_of(old, grads)
    assert all(np.array_equal(a, b) for a, b in zip(got, want, strict=True))


def trajectory_of(opt, grads, steps=3):
    params, state, out = MLP, opt.init(MLP), []
    for _ in range(steps):
        updates, state = opt.update(grads, state, params)
        params = optax.apply_updates(params, updates)
        out.extend(jax.tree.leaves(params))
    return out
