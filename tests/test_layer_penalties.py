"""Per-layer penalty strengths: the penalty is the hand sum over layers with their lambdas,
its gradient checks numerically, and a glob that matches no weight is one config line."""

import jax
import numpy as np
import pytest
from jax.test_util import check_grads

from dlcore.cli.main import main
from dlcore.config.loading import ConfigError, validate
from dlcore.experiment import build
from dlcore.regularizers import LayerPenalty
from tests.helpers import write_toml

STRENGTHS = {"Dense_0": 1e-2, "Dense_2": 0.0, "Dense_*": 0.5}  # the first matching glob wins
DEFAULT = 0.1
BETA = 0.7
ELEMENTWISE = {
    "l2": lambda w: (w**2).sum(),
    "l1": lambda w: np.abs(w).sum(),
    "elastic_net": lambda w: BETA * (w**2).sum() + np.abs(w).sum(),
}
# lambda of each kernel by hand: Dense_0 and Dense_2 by name, Dense_1 by the glob, the
# head (not a Dense_*) by the default; biases and the LayerNorm are never penalized
LAMBDAS = {"Dense_0": 1e-2, "Dense_1": 0.5, "Dense_2": 0.0, "head": DEFAULT}


@pytest.fixture(scope="module")
def params():
    rng = np.random.default_rng(0)
    tree = {
        name: {"kernel": rng.normal(size=(3, 4)), "bias": rng.normal(size=4)} for name in LAMBDAS
    }
    tree["LayerNorm_0"] = {"scale": rng.normal(size=4), "bias": rng.normal(size=4)}
    return tree


@pytest.mark.parametrize("name", sorted(ELEMENTWISE))
def test_penalty_is_the_hand_sum_over_layers_and_its_gradient_checks(name, params):
    penalty = LayerPenalty(name, STRENGTHS, DEFAULT, BETA)
    want = sum(lam * ELEMENTWISE[name](params[layer]["kernel"]) for layer, lam in LAMBDAS.items())
    with jax.enable_x64(True):
        np.testing.assert_allclose(float(penalty(params)), want, rtol=1e-12)
        check_grads(penalty, (params,), order=1, modes=("rev",), eps=1e-6)


def raw_config(layers: dict) -> dict:
    return {
        "name": "layer_penalties",
        "data": {"name": "xor", "n_samples": 60},
        "model": {"name": "mlp", "widths": [4, 4]},
        "task": {
            "name": "classification",
            "penalty": "l2",
            "penalty_strength": 1e-3,
            "penalty_layers": layers,
        },
        "train": {"epochs": 1, "batch_size": 8},
    }


def test_a_pattern_matching_no_weight_is_one_line_and_exit_2(tmp_path, capsys):
    with pytest.raises(ConfigError) as err:
        build(validate(raw_config({"Dense_0": 0.1, "Dense_9": 0.1}), "p.toml"), "p.toml")
    assert err.value.lines() == [
        "p.toml: task.penalty_layers: pattern 'Dense_9' matches no penalized weight; weights "
        "are: Dense_0/kernel, Dense_1/kernel, Dense_2/kernel"
    ]
    path = write_toml(tmp_path / "p.toml", raw_config({"*/bias": 1.0}))  # biases are no weights
    run_dir = tmp_path / "run"
    assert main(["run", str(path), "--run-dir", str(run_dir), "--quiet"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "task.penalty_layers: pattern '*/bias' matches no" in lines[0]
    assert not run_dir.exists()


def test_penalty_layers_need_a_penalty_and_built_strengths_follow_the_globs():
    raw = raw_config({"Dense_0": 0.1})
    raw["task"] = {"name": "classification", "penalty_layers": {"Dense_0": 0.1}}
    with pytest.raises(ConfigError, match="penalty_layers is set but penalty = 'none'"):
        validate(raw, "p.toml")
    task = build(validate(raw_config({"Dense_0": 0.25, "Dense_2": 0.0}), "p.toml")).task
    assert [task.penalty.strength(f"Dense_{i}/kernel") for i in range(3)] == [0.25, 1e-3, 0.0]


def test_traced_strengths_give_each_member_its_own_penalty(params):
    # populations (dlcore sweep --vmap) build the penalty with traced strengths, zero included
    p32 = jax.tree.map(np.float32, params)

    def penalty(lam):
        return LayerPenalty("l2", {"Dense_0": lam, "Dense_2": 0.0}, DEFAULT)(p32)

    lams = np.array([0.0, 0.3], np.float32)
    np.testing.assert_allclose(jax.vmap(penalty)(lams), [penalty(0.0), penalty(0.3)], rtol=1e-6)
