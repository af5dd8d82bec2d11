"""Divergence halts: a non-finite loss, gradient or parameter is caught by the compiled
step's health report, never committed, never "best", and ends the run with exit status 3
(or is skipped, under ``on_nonfinite = "skip"``)."""

import json
import math

import jax
import numpy as np
import optax
import pytest

import dlcore
from dlcore.config.loading import validate
from dlcore.data import Dataset, Split
from dlcore.engine.health import track_gradients
from dlcore.engine.loop import fit
from dlcore.engine.selection import BestTracker
from dlcore.experiment import restore_run
from tests.helpers import run_cli, write_toml

DIVERGING = {
    "name": "diverging",
    "data": {"name": "xor", "n_samples": 200},
    "model": {"name": "mlp", "widths": [8]},
    "optimizer": {"name": "sgd", "learning_rate": 1e30},
    "train": {"epochs": 6, "batch_size": 8, "mode": "step", "log_every": 5},
}


def strict_json(text: str):
    def refuse(constant):
        raise ValueError(f"non-strict JSON constant {constant}")

    return json.loads(text, parse_constant=refuse)


@pytest.fixture(scope="module")
def diverged(tmp_path_factory):
    root = tmp_path_factory.mktemp("diverged")
    path = write_toml(root / "diverging.toml", DIVERGING)
    proc = run_cli("run", str(path), "--run-dir", str(root / "run"), "--quiet")
    return root / "run", proc


def test_divergence_exits_3_with_one_line_naming_step_loss_and_gradient(diverged):
    run, proc = diverged
    assert proc.returncode == 3, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "Traceback" not in proc.stderr, proc.stderr
    line = errors[0]
    assert "training diverged at step " in line and "gradient norm" in line
    assert "nothing non-finite was saved" in line


def test_a_diverged_run_writes_strict_json_and_no_non_finite_checkpoint(diverged):
    run, _ = diverged
    summary = strict_json((run / "summary.json").read_text())
    assert summary["status"] == "diverged"
    first = summary["health"]["first_nonfinite"]["step"]
    metrics = run / "metrics.jsonl"
    for line in metrics.read_text().splitlines() if metrics.exists() else []:
        record = strict_json(line)
        assert record["step"] < first  # the window with the bad step is never logged
    if summary["health"]["last_checkpoint"] is not None:
        state = restore_run(run, "latest").state
        assert all(np.all(np.isfinite(np.asarray(x))) for x in jax.tree.leaves(state.params))
    best = summary["best"]
    assert best is None or math.isfinite(best["value"])


def test_a_non_finite_validation_value_is_never_best():
    tracker = BestTracker("loss", maximize=False)
    assert tracker.observe(1.0, 1)
    assert not tracker.observe(float("nan"), 2)
    assert not tracker.observe(float("-inf"), 3)
    assert tracker.best == {"metric": "loss", "value": 1.0, "step": 1} and tracker.stale == 2


def _poisoned_regression(poison_rows: int):
    """A line-fit data set whose first ``poison_rows`` training inputs are NaN."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 1)).astype(np.float32)
    y = (2.0 * x + 1.0).astype(np.float32)
    x_train = x.copy()
    x_train[:poison_rows] = np.nan
    split = Split(x[:16], y[:16])
    return Dataset("poisoned", Split(x_train, y), split, split, None)


def _train(policy: str, max_skips: int, poison_rows: int = 1, epochs: int = 4):
    data = _poisoned_regression(poison_rows)
    chain = optax.chain(track_gradients(), optax.sgd(0.05))
    task = dlcore.regression(dlcore.MLP(widths=(), out_features=1), chain)
    raw = {
        "data": {"name": "line"},
        "model": {"name": "linear"},
        "task": {"name": "regression"},
        "train": {
            "epochs": epochs,
            "batch_size": 16,
            "mode": "step",
            "log_every": 1,
            "on_nonfinite": policy,
            "max_skips": max_skips,
        },
    }
    cfg = validate(raw, "t").train
    return fit(task, data, cfg, seed=0)


def test_skip_keeps_the_previous_state_and_training_goes_on():
    # One poisoned row: exactly one batch per epoch is non-finite, 40 epochs -> 40 skips.
    result = _train("skip", max_skips=100, epochs=40)
    assert result.status == "completed"
    assert result.health["skipped_steps"] == 40
    assert all(np.all(np.isfinite(np.asarray(x))) for x in jax.tree.leaves(result.state.params))
    w = float(result.state.params["Dense_0"]["kernel"][0, 0])
    assert w == pytest.approx(2.0, abs=0.1)  # still learned the line from the clean batches


def test_skip_halts_after_max_skips():
    result = _train("skip", max_skips=2)
    assert result.status == "diverged"
    assert "more than train.max_skips = 2" in result.health["halted"]


def test_halt_stops_at_the_first_bad_step():
    result = _train("halt", max_skips=10)
    assert result.status == "diverged" and result.final == {}
    bad = result.health["first_nonfinite"]
    assert result.health["halted"].startswith(f"training diverged at step {bad['step']}: loss")
    assert math.isnan(bad["loss"]) and math.isnan(bad["grad_norm"])
