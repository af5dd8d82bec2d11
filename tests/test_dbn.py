"""Deep belief nets: greedy staging moves only the current RBM (weights, biases and its
persistent chains), layer l trains exactly as a lone RBM on the mean-field activations
below it, and a sigmoid MLP warm-starts from a DBN run through [init], end to end."""

import importlib.util
import json

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from dlcore.config.loading import load_raw, validate
from dlcore.energy import hidden_probs
from dlcore.experiment import build, run_experiment
from dlcore.experiment.restore import restore_run
from dlcore.tasks.rbm import RBMTask
from tests.helpers import REPO

S = 2  # steps per layer


def _x(n: int = 12, d: int = 7) -> jax.Array:
    return (jax.random.uniform(jax.random.PRNGKey(1), (n, d)) < 0.4).astype(jnp.float32)


def _layer(state, layer: int) -> dict:
    name = f"Dense_{layer}"
    dense = state.params["encoder"][name]
    out = {"kernel": dense["kernel"], "bias": dense["bias"]}
    out["visible_bias"] = state.params["visible_bias"][name]
    out["chains"] = state.model_state["chains"][name]
    return {k: np.asarray(v) for k, v in out.items()}


@pytest.fixture(scope="module")
def trajectory():
    """Five PCD steps of a two-layer DBN (two stages of S = 2, then one more) with momentum
    carried across the stage switch (no restart), so layer 0 still has velocity in stage 1."""
    x = _x()
    task = RBMTask(
        (5, 3),
        optax.sgd(0.5, momentum=0.9),
        method="pcd",
        chains=4,
        init_scale=0.3,
        steps_per_layer=S,
        restart_optimizer=False,
    )
    step = jax.jit(task.train_step)
    states, layers = [task.init(jax.random.PRNGKey(0), {"x": x})], []
    for _ in range(5):
        state, sums = step(states[-1], {"x": x})
        states.append(state)
        layers.append(float(sums["layer"] / sums["count"]))
    return task, x, states, layers


def test_the_stage_switches_after_steps_per_layer_and_the_top_layer_keeps_training(trajectory):
    assert trajectory[3] == [0.0, 0.0, 1.0, 1.0, 1.0]


@pytest.mark.parametrize("t", range(5))
def test_only_the_current_rbm_and_its_chains_change_exactly(trajectory, t):
    _, _, states, _ = trajectory
    active = min(t // S, 1)
    before, after = states[t], states[t + 1]
    for name, value in _layer(after, 1 - active).items():
        np.testing.assert_array_equal(value, _layer(before, 1 - active)[name], err_msg=name)
    for name in ("kernel", "bias", "visible_bias"):
        assert np.any(_layer(after, active)[name] != _layer(before, active)[name]), name


def test_layer_one_trains_as_a_lone_rbm_on_the_mean_field_activations_of_layer_zero(trajectory):
    task, x, states, _ = trajectory
    state = states[S]  # the first update of stage 1
    lone = RBMTask((3,), optax.sgd(0.5, momentum=0.9), method="pcd", chains=4)
    v1 = hidden_probs(task.rbm(state.params, 0), x)
    name = "Dense_1"
    params = {
        "encoder": {"Dense_0": state.params["encoder"][name]},
        "visible_bias": {"Dense_0": state.params["visible_bias"][name]},
    }
    opt_state = (state.opt_state[0]._replace(trace=_only(state.opt_state[0].trace, name)),)
    opt_state += tuple(state.opt_state[1:])
    lone_state = state.replace(
        params=params,
        model_state={"chains": {"Dense_0": state.model_state["chains"][name]}},
        opt_state=opt_state,
    )
    got, _ = jax.jit(lone.train_step)(lone_state, {"x": v1})
    after = states[S + 1]
    for leaf in ("kernel", "bias"):
        np.testing.assert_allclose(
            got.params["encoder"]["Dense_0"][leaf],
            after.params["encoder"][name][leaf],
            rtol=1e-5,
            atol=1e-6,
        )
    np.testing.assert_array_equal(
        got.model_state["chains"]["Dense_0"], after.model_state["chains"][name]
    )


def _only(tree: dict, name: str) -> dict:
    """A params-shaped optimizer slot of the stack, cut down to layer ``name`` as Dense_0."""
    return {
        "encoder": {"Dense_0": tree["encoder"][name]},
        "visible_bias": {"Dense_0": tree["visible_bias"][name]},
    }


PRETRAIN = {
    "name": "dbn",
    "data": {"name": "digits", "preprocess": "none", "binarize": True},
    "task": {"name": "dbn", "widths": [6, 4], "steps_per_layer": 3, "method": "pcd"},
    "train": {"epochs": 2, "batch_size": 256, "mode": "step", "log_every": 8},
}


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    root = tmp_path_factory.mktemp("dbn")
    summary = run_experiment(validate(PRETRAIN, "t"), root / "pretrain")
    return root, summary


def _table():
    spec = importlib.util.spec_from_file_location(
        "table", REPO / "examples" / "pretraining_table.py"
    )
    table = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(table)
    return table


def test_a_dbn_run_reports_finite_figures_and_its_pngs(pretrained):
    root, summary = pretrained
    assert summary["status"] == "completed" and summary["step"] == 8
    assert summary["final"]["test"]["layer"] == 1.0  # both stages ran (2 x S = 6 <= 8)
    report = summary["report"]
    assert set(report) == {"test_pll", "test_pll_one_bit", "test_recon_mse", "test_free_energy"}
    assert all(np.isfinite(v) for v in report.values()) and report["test_pll"] < 0
    json.dumps(report, allow_nan=False)
    for png in ("filters.png", "samples.png"):
        assert (root / "pretrain" / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_sigmoid_mlp_fine_tunes_from_the_dbn_end_to_end(pretrained):
    root, _ = pretrained
    source = restore_run(root / "pretrain", "latest").state.params
    # The shipped fine-tuning experiment, shrunk to the DBN's widths, with the [init]
    # overrides examples/pretraining_table.py passes (map = {"" = "encoder"}, a new head).
    overrides = ["model.widths=[6, 4]", "train.epochs=3", "train.eval_every=1"]
    overrides += _table().warm_start(root / "pretrain", 2)
    path = REPO / "experiments" / "digits_dbn_finetune.toml"
    raw, applied = load_raw(path, overrides)
    cfg = validate(raw, "t", applied)
    built = build(cfg, "t")
    state = built.task.init(jax.random.PRNGKey(0), built.data.train.rows(slice(0, 8)))
    for layer in ("Dense_0", "Dense_1"):
        for leaf in ("kernel", "bias"):
            np.testing.assert_array_equal(
                state.params[layer][leaf], source["encoder"][layer][leaf], err_msg=layer
            )
    assert state.params["Dense_2"]["kernel"].shape == (4, 10)  # a fresh head
    summary = run_experiment(built, root / "finetune")
    assert summary["status"] == "completed" and summary["step"] == 3
    assert 0.0 <= summary["final"]["test"]["accuracy"] <= 1.0
