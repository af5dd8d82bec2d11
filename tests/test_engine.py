"""The generic loop: scan mode equals step mode, one compile per function, masks, BN state."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.test_util import check_grads

import dlcore
from dlcore.config.loading import validate
from dlcore.engine.compiled import CompiledTask, eval_chunks
from dlcore.engine.loop import evaluate, fit, scan_chunk
from dlcore.experiment import build

SMALL = {
    "data": {"name": "xor", "n_samples": 120},
    "model": {"name": "mlp", "widths": [8], "dropout": 0.25, "norm": "batch"},
    "train": {"epochs": 3, "batch_size": 16, "log_every": 4},
}


def small(**train):
    raw = {**SMALL, "train": {**SMALL["train"], **train}}
    return validate(raw, "test")


def train(cfg):
    built = build(cfg)
    data, task = built.data, built.task
    return fit(task, data, cfg.train, cfg.seed)


@pytest.fixture(scope="module")
def both_modes():
    return {mode: train(small(mode=mode)) for mode in ("step", "scan")}


def test_epoch_scan_equals_per_step_mode(both_modes):
    step, scan = both_modes["step"].state, both_modes["scan"].state
    leaves = jax.tree.leaves_with_path(step)
    assert len(leaves) == len(jax.tree.leaves(scan))
    for (path, a), b in zip(leaves, jax.tree.leaves(scan), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7, err_msg=jax.tree_util.keystr(path))
    assert both_modes["step"].final["test"] == pytest.approx(
        both_modes["scan"].final["test"], rel=1e-6
    )


def test_each_function_is_traced_once(both_modes):
    assert both_modes["step"].traces == {"train_step": 1, "eval_step": 1}
    assert both_modes["scan"].traces == {"train_scan": 1, "eval_step": 1}


def test_scan_chunks_cut_an_epoch_into_equal_pieces():
    # (steps per epoch, scan_steps) -> steps per compiled call
    cases = {(100, 64): 50, (101, 64): 51, (7, 64): 7, (64, 64): 64, (65, 64): 33, (5, 1): 1}
    assert {k: scan_chunk(*k) for k in cases} == cases


def test_scan_in_chunks_equals_whole_epoch_scan_with_one_compile_per_length(both_modes):
    # 5 steps per epoch in chunks of 2, 2 and 1: two scan lengths, so two compiles.
    chunked = train(small(mode="scan", scan_steps=2))
    assert chunked.traces == {"train_scan": 2, "eval_step": 1}
    whole = both_modes["scan"]
    for a, b in zip(jax.tree.leaves(chunked.state), jax.tree.leaves(whole.state), strict=True):
        np.testing.assert_array_equal(a, b)
    assert chunked.final == whole.final


class _StopAtFirstReport:
    """A stop flag raised by the first progress report: the loop must then stop at the end
    of the chunk it is in, however long the epoch."""

    requested = False
    signum = None

    def start(self, total_steps, done_steps): ...
    def log(self, record): ...
    def close(self): ...

    def advance(self, step):
        self.requested = True


@pytest.mark.parametrize("mode", ["scan", "step"])
def test_a_stop_is_honoured_within_one_chunk_and_resumes_exactly(tmp_path, mode, both_modes):
    from dlcore.runs.run_dir import RunDir

    cfg = small(mode=mode, scan_steps=2, log_every=1)
    built = build(cfg)
    run = RunDir.create(tmp_path / "run")
    flag = _StopAtFirstReport()
    stopped = fit(built.task, built.data, cfg.train, cfg.seed, run=run, stop=flag, reporter=flag)
    assert stopped.status == "interrupted"
    assert int(stopped.state.step) == (2 if mode == "scan" else 1)
    resumed = fit(built.task, built.data, cfg.train, cfg.seed, run=run, resume=True)
    assert resumed.status == "completed"
    reference = train(cfg)
    for a, b in zip(jax.tree.leaves(resumed.state), jax.tree.leaves(reference.state), strict=True):
        np.testing.assert_array_equal(a, b)
    assert resumed.final == reference.final


def test_scan_mode_saves_every_checkpoint_every_steps(tmp_path):
    from dlcore.runs.run_dir import RunDir

    cfg = small(mode="scan", scan_steps=2, checkpoint_every=4, keep_checkpoints=20, eval_every=3)
    built = build(cfg)
    run = RunDir.create(tmp_path / "run")
    fit(built.task, built.data, cfg.train, cfg.seed, run=run)
    steps = sorted(int(p.name) for p in run.latest.iterdir() if p.name.isdigit())
    # chunks end at 2, 4, 5 | 7, 9, 10 | 12, 14, 15: a save at the end of the chunk that
    # reaches each multiple of 4 (4, 9 for 8, 12) and at the validation pass (15, the end)
    assert steps == [4, 9, 12, 15]


def test_batch_norm_running_stats_live_in_the_state(both_modes):
    stats = both_modes["step"].state.model_state["batch_stats"]
    (mean,) = [v for k, v in stats["BatchNorm_0"].items() if k == "mean"]
    assert np.any(np.asarray(mean) != 0.0), "running mean never updated"


def test_compiled_step_refuses_other_shapes_instead_of_recompiling():
    cfg = small()
    built = build(cfg)
    data, task = built.data, built.task
    compiled = CompiledTask(task)
    batch = {"x": data.train.x[:16], "y": data.train.y[:16]}
    state = task.init(jax.random.PRNGKey(0), batch)
    state, _, _ = compiled.train_step(state, batch)
    state, _, _ = compiled.train_step(state, {"x": data.train.x[16:32], "y": data.train.y[16:32]})
    with pytest.raises(ValueError, match="never recompiles"):
        compiled.train_step(state, {"x": data.train.x[:8], "y": data.train.y[:8]})
    assert compiled.traces["train_step"] == 1


@jax.default_matmul_precision("highest")  # GPUs otherwise use TF32, which varies with shape
def test_padded_eval_batches_do_not_change_the_metrics():
    cfg = small()
    built = build(cfg)
    data, task = built.data, built.task
    state = task.init(jax.random.PRNGKey(1), {"x": data.val.x[:4], "y": data.val.y[:4]})
    compiled = CompiledTask(task)
    whole = evaluate(compiled, state, eval_chunks(data.val.fields, len(data.val)))
    padded = evaluate(CompiledTask(task), state, eval_chunks(data.val.fields, 7))
    assert whole == pytest.approx(padded, rel=1e-6)
    logits = task.model.apply(
        {"params": state.params, **state.model_state}, data.val.x, train=False
    )
    acc = float(np.mean(np.argmax(logits, -1) == data.val.y))
    assert whole["accuracy"] == pytest.approx(acc)


def test_training_is_deterministic_for_a_seed_and_differs_across_seeds():
    results = [train(c) for c in (small(), small(), validate({**SMALL, "seed": 1}, "t"))]
    p = [r.state.params["Dense_0"]["kernel"] for r in results]
    np.testing.assert_array_equal(p[0], p[1])
    assert not np.array_equal(p[0], p[2])


def test_mlp_loss_gradients_match_finite_differences():
    model = dlcore.MLP(widths=(5, 4), out_features=3, activation="tanh")
    with jax.enable_x64(True):
        x = jax.random.normal(jax.random.PRNGKey(0), (6, 4), jnp.float64)
        y = jnp.array([0, 1, 2, 0, 1, 2])
        params = model.init(jax.random.PRNGKey(1), x, train=False)["params"]
        params = jax.tree.map(lambda p: p.astype(jnp.float64), params)

        def loss(params):
            logits = model.apply({"params": params}, x, train=False)
            return dlcore.reduce_loss(dlcore.softmax_cross_entropy(logits, y))

        check_grads(
            jax.jit(loss), (params,), order=1, modes=["rev"], eps=1e-6, atol=1e-7, rtol=1e-7
        )


def test_dropout_only_in_training_and_keyed_by_step():
    model = dlcore.MLP(widths=(64,), out_features=2, dropout=0.5)
    task = dlcore.classification(model, optax.sgd(0.0))
    batch = {"x": jnp.ones((4, 3)), "y": jnp.zeros(4, jnp.int32)}
    state = task.init(jax.random.PRNGKey(0), batch)
    eval_step, train_step = jax.jit(task.eval_step), jax.jit(task.train_step)
    ev1, ev2 = eval_step(state, batch), eval_step(state, batch)
    assert ev1["loss"] == ev2["loss"]
    _, m0 = train_step(state, batch)
    _, m1 = train_step(state.replace(step=state.step + 1), batch)
    assert m0["loss"] != m1["loss"], "dropout mask should change with the step"


def test_regression_task_fits_a_line():
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (64, 1)).astype(np.float32)
    y = (0.1 * x + 0.3).astype(np.float32)
    task = dlcore.regression(dlcore.MLP(widths=(), out_features=1), optax.sgd(0.5))
    state = task.init(jax.random.PRNGKey(0), {"x": x, "y": y})
    step = jax.jit(task.train_step)
    for _ in range(200):
        state, metrics = step(state, {"x": x, "y": y})
    w = state.params["Dense_0"]
    assert float(w["kernel"][0, 0]) == pytest.approx(0.1, abs=1e-3)
    assert float(w["bias"][0]) == pytest.approx(0.3, abs=1e-3)
    assert float(metrics["mse"] / metrics["count"]) < 1e-6
