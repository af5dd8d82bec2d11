"""Stacked autoencoders: greedy staging moves only the current layer, exactly; a classifier
warm-starts from a pretraining run through [init]; bad configs are one-line errors."""

import importlib.util

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from dlcore.cli.main import main as cli_main
from dlcore.config.loading import load_raw, validate
from dlcore.experiment import build, run_experiment
from dlcore.experiment.restore import restore_run
from dlcore.tasks.corruption import make_corruption
from dlcore.tasks.greedy import greedy_update, layer_ids, mask_updates
from dlcore.tasks.stacked_autoencoder import StackedAutoencoderTask
from tests.helpers import REPO

S = 2  # steps per layer
LAYERS = {0: ("encoder/Dense_0", "decoder/Dense_0"), 1: ("encoder/Dense_1", "decoder/Dense_1")}


def _leaves(params, layer: int) -> dict:
    enc, dec = params["encoder"][f"Dense_{layer}"], params["decoder"][f"Dense_{layer}"]
    out = {f"encoder/{k}": np.asarray(v) for k, v in enc.items()}
    return out | {f"decoder/{k}": np.asarray(v) for k, v in dec.items()}


@pytest.fixture(scope="module")
def trajectory():
    """Five denoising steps (two stages of S = 2, then one more) with Adam's state carried
    across the stage switch (no restart), so layer 0 still has momentum in stage 1."""
    x = jax.random.normal(jax.random.PRNGKey(1), (16, 7))
    task = StackedAutoencoderTask(
        (5, 3),
        optax.adam(0.05),
        S,
        activation="tanh",
        corruption=make_corruption("gaussian", 0.1),
        restart_optimizer=False,
    )
    step = jax.jit(task.train_step)
    states = [task.init(jax.random.PRNGKey(0), {"x": x})]
    layers = []
    for _ in range(5):
        state, sums = step(states[-1], {"x": x})
        states.append(state)
        layers.append(float(sums["layer"] / sums["count"]))
    return task, x, states, layers


def test_the_stage_switches_after_steps_per_layer_and_the_top_layer_keeps_training(trajectory):
    _, _, _, layers = trajectory
    assert layers == [0.0, 0.0, 1.0, 1.0, 1.0]


@pytest.mark.parametrize("t", range(5))
def test_only_the_current_layers_parameters_change_exactly(trajectory, t):
    _, _, states, _ = trajectory
    active = min(t // S, 1)
    before, after = states[t].params, states[t + 1].params
    for name, value in _leaves(after, 1 - active).items():
        np.testing.assert_array_equal(value, _leaves(before, 1 - active)[name], err_msg=name)
    for name, value in _leaves(after, active).items():
        assert np.any(value != _leaves(before, active)[name]), name


def test_masking_is_what_stops_adam_momentum_moving_a_frozen_layer(trajectory):
    # In stage 1 layer 0's gradient is zero, but its first moment is not: an unmasked
    # Adam update would move it. The task's step must have masked exactly that update.
    task, x, states, _ = trajectory
    state = states[S]  # first step of stage 1
    mu = state.opt_state[0].mu  # optax.adam: (ScaleByAdamState, scale)
    assert np.abs(np.asarray(mu["encoder"]["Dense_0"]["kernel"])).max() > 0
    zero = jax.tree.map(jnp.zeros_like, state.params)
    updates, _ = jax.jit(task.optimizer.update)(zero, state.opt_state, state.params)
    assert np.abs(np.asarray(updates["encoder"]["Dense_0"]["kernel"])).max() > 0
    ids = layer_ids(state.params, task.layers)
    masked = mask_updates(updates, ids, jnp.int32(1))
    assert not np.any(np.asarray(masked["encoder"]["Dense_0"]["kernel"]))
    np.testing.assert_array_equal(
        masked["encoder"]["Dense_1"]["kernel"], updates["encoder"]["Dense_1"]["kernel"]
    )


@pytest.mark.parametrize("restart, counts", [(True, [1, 2, 1, 2, 3]), (False, [1, 2, 3, 4, 5])])
def test_the_optimizer_state_restarts_at_each_stage_start_only(restart, counts):
    # Adam's step count (its bias correction) restarts at t = S, not at t = 2 S = L S.
    params = {"a": {"w": jnp.ones(2)}, "b": {"w": jnp.ones(2)}}
    ids = layer_ids(params, [["a"], ["b"]])
    optimizer = optax.adam(0.1)

    @jax.jit
    def step(params, opt_state, t):
        grads = jax.tree.map(jnp.ones_like, params)
        return greedy_update(optimizer, grads, opt_state, params, ids, t, S, 2, restart)

    opt_state, seen = optimizer.init(params), []
    for t in range(5):
        params, opt_state = step(params, opt_state, jnp.int32(t))
        seen.append(int(opt_state[0].count))
    assert seen == counts


@pytest.mark.parametrize("tied", [False, True])
def test_layer_errors_and_the_stack_reconstruction_follow_their_formulas(tied):
    x = np.random.default_rng(0).normal(size=(6, 5))
    x32 = jnp.asarray(x, jnp.float32)
    task = StackedAutoencoderTask((4, 3), optax.sgd(0.1), S, activation="tanh", tied=tied)
    params = task.init(jax.random.PRNGKey(0), {"x": x32}).params
    p = jax.tree.map(lambda a: np.asarray(a, np.float64), params)
    enc, dec = p["encoder"], p["decoder"]
    assert ("kernel" in dec["Dense_0"]) != tied  # tied: V = W^T, only the bias is learned
    v = [enc[f"Dense_{i}"]["kernel"].T if tied else dec[f"Dense_{i}"]["kernel"] for i in (0, 1)]
    h1 = np.tanh(x @ enc["Dense_0"]["kernel"] + enc["Dense_0"]["bias"])
    h2 = np.tanh(h1 @ enc["Dense_1"]["kernel"] + enc["Dense_1"]["bias"])
    r1 = h2 @ v[1] + dec["Dense_1"]["bias"]  # layer 1 rebuilds h1 from h2
    r0 = h1 @ v[0] + dec["Dense_0"]["bias"]  # layer 0 rebuilds x from h1
    want = {0: ((r0 - x) ** 2).mean(1), 1: ((r1 - h1) ** 2).mean(1)}
    for layer, errors in want.items():
        got = task.layer_errors(params, x32, layer, None)
        np.testing.assert_allclose(got, errors, rtol=1e-5, atol=1e-6)
    stack = r1 @ v[0] + dec["Dense_0"]["bias"]  # x rebuilt top-down through both decoders
    np.testing.assert_allclose(task.reconstruct(params, x32), stack, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "layers, message",
    [
        ([["encoder/Dense_0"]], "'encoder/Dense_1/bias' belongs to no layer"),
        ([["encoder/*"], ["encoder/Dense_1"]], "belongs to layers [0, 1]"),
        ([["encoder/Dense_0"], ["encoder/Dense_1"], ["decoder"]], "'decoder' matches no"),
    ],
)
def test_layer_ids_refuse_a_leaf_in_no_layer_or_two_and_a_pattern_matching_nothing(layers, message):
    one = {"kernel": jnp.ones((2, 2)), "bias": jnp.ones(2)}
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        layer_ids({"encoder": {"Dense_0": one, "Dense_1": one}}, layers)


PRETRAIN = {
    "name": "pretrain",
    "data": {"name": "digits"},
    "task": {"name": "stacked_autoencoder", "widths": [6, 4], "steps_per_layer": 3},
    "train": {"epochs": 2, "batch_size": 256, "mode": "step", "log_every": 4},
}


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("stacked") / "pretrain"
    summary = run_experiment(validate(PRETRAIN, "t"), run_dir)
    return run_dir, summary


def test_a_classifier_warm_starts_from_the_pretrained_encoder(pretrained):
    run_dir, summary = pretrained
    assert summary["status"] == "completed" and summary["step"] == 8
    assert set(summary["report"]) == {"test_mse_layer_0", "test_mse_layer_1", "test_stack_mse"}
    assert summary["final"]["test"]["layer"] == 1.0  # both stages ran (2 x S = 6 <= 8 steps)
    source = restore_run(run_dir, "latest").state.params
    # The shipped fine-tuning experiment, shrunk to the stack's widths, with the [init]
    # overrides examples/pretraining_table.py passes (map = {"" = "encoder"}, new head).
    spec = importlib.util.spec_from_file_location(
        "table", REPO / "examples" / "pretraining_table.py"
    )
    table = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(table)
    overrides = ["model.widths=[6, 4]", *table.warm_start(run_dir, 2)]
    raw, applied = load_raw(REPO / "experiments" / "digits_pretrained_mlp.toml", overrides)
    built = build(validate(raw, "t", applied), "t")
    state = built.task.init(jax.random.PRNGKey(0), built.data.train.rows(slice(0, 8)))
    for layer in ("Dense_0", "Dense_1"):
        for leaf in ("kernel", "bias"):
            np.testing.assert_array_equal(
                state.params[layer][leaf], source["encoder"][layer][leaf], err_msg=layer
            )
    assert state.params["Dense_2"]["kernel"].shape == (4, 10)  # a fresh head


@pytest.mark.parametrize(
    "task, field",
    [
        ({"steps_per_layer": 0}, "task.steps_per_layer"),
        ({"widths": []}, "task.widths"),
        ({"steps_per_layer": 100}, "task.steps_per_layer"),  # 2 x 100 > 8 updates
        ({"corruption": "masking", "corruption_level": 1.0}, "task"),
    ],
)
def test_a_bad_stack_config_is_one_line_naming_the_field_exit_2_no_run_dir(
    tmp_path, capsys, task, field
):
    import tomli_w

    config = tmp_path / "bad.toml"
    config.write_text(tomli_w.dumps({**PRETRAIN, "task": {**PRETRAIN["task"], **task}}))
    status = cli_main(["run", str(config), "--run-dir", str(tmp_path / "run")])
    lines = capsys.readouterr().err.strip().splitlines()
    assert status == 2
    assert len(lines) == 1 and lines[0].startswith(f"error: {config}: {field}"), lines
    assert not (tmp_path / "run").exists()
