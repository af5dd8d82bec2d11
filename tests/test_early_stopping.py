"""Early stopping on a validation metric, with the best state restored."""

import jax
import numpy as np
import pytest

from dlcore.config.loading import validate
from dlcore.engine.loop import fit
from dlcore.engine.selection import BestTracker
from dlcore.experiment import build
from dlcore.runs.run_dir import RunDir

# XOR reaches validation accuracy 1.0 within a few epochs and can then never strictly
# improve, so patience runs out long before the 40 epochs.
RAW = {
    "data": {"name": "xor", "n_samples": 200},
    "model": {"name": "mlp", "widths": [8], "activation": "tanh"},
    "optimizer": {"name": "adam", "learning_rate": 0.02},
    "train": {"epochs": 40, "batch_size": 10, "early_stopping_patience": 3},
}


@pytest.mark.parametrize("with_run_dir", [False, True])
def test_stops_after_patience_and_restores_the_best_state(tmp_path, with_run_dir):
    cfg = validate(RAW, "t")
    built = build(cfg)
    data, task = built.data, built.task
    run = RunDir.create(tmp_path / "run") if with_run_dir else None
    result = fit(task, data, cfg.train, cfg.seed, run=run)
    steps_per_epoch = len(data.train) // cfg.train.batch_size
    best_step = result.best["step"]
    assert result.status == "completed"
    assert result.early_stopping == {
        "early_stopped_at": best_step + 3 * steps_per_epoch,
        "restored_step": best_step,
    }
    assert result.early_stopping["early_stopped_at"] < 40 * steps_per_epoch
    assert int(result.state.step) == best_step  # the restored state is the best one
    assert result.final["val"]["accuracy"] == result.best["value"]
    if with_run_dir:
        vals = [r for r in run.read_metrics() if r["split"] == "val"]
        assert vals[-1]["step"] == result.early_stopping["early_stopped_at"]


def test_no_patience_trains_every_epoch():
    cfg = validate(
        {**RAW, "train": {**RAW["train"], "epochs": 6, "early_stopping_patience": None}}, "t"
    )
    built = build(cfg)
    data, task = built.data, built.task
    result = fit(task, data, cfg.train, cfg.seed)
    assert result.early_stopping is None
    assert int(result.state.step) == 6 * (len(data.train) // 10)


@pytest.mark.parametrize(
    "maximize, values, improved",
    [
        (True, [-3.0, -2.0, -2.5, -1.0], [True, True, False, True]),  # negative, maximized
        (False, [-1.0, -2.0, -2.0, -1.5], [True, True, False, False]),  # negative, minimized
        (False, [0.5, 0.4, 0.4, 0.3], [True, True, False, True]),
    ],
)
def test_tracker_handles_either_direction_and_sign(maximize, values, improved):
    tracker = BestTracker("m", maximize=maximize, patience=2)
    assert [tracker.observe(v, i) for i, v in enumerate(values)] == improved
    again = BestTracker("m", maximize=maximize, patience=2)
    again.load_meta(tracker.to_meta())
    assert again == tracker


def test_best_state_copy_survives_donation():
    cfg = validate({**RAW, "train": {**RAW["train"], "epochs": 12}}, "t")
    built = build(cfg)
    data, task = built.data, built.task
    result = fit(task, data, cfg.train, cfg.seed)
    leaves = jax.tree.leaves(result.state.params)
    assert all(np.all(np.isfinite(np.asarray(leaf))) for leaf in leaves)
