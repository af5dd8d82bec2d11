"""`sweep --vmap` over any shape-keeping hyper-parameter: each member equals its trial.

One population of three members differing in seed, dropout rate, coupled weight decay,
momentum, penalty strength, a warm-up's start, a plateau factor and the early-stopping
patience is trained once (one compile); every member is compared with its trial trained
alone as `dlcore run` trains it.
"""

import numpy as np
import pytest

from dlcore.cli.main import main
from dlcore.config.loading import ConfigError
from dlcore.engine.loop import fit
from dlcore.experiment import build
from dlcore.experiment.run import validation_hook
from dlcore.experiment.sweep import run_population_sweep, trial_configs
from dlcore.optim import plateau_scale
from tests.helpers import write_toml

RAW = {
    "name": "hyper",
    "data": {"name": "xor", "n_samples": 120},
    "model": {"name": "mlp", "widths": [6], "activation": "tanh"},
    "optimizer": {
        "name": "momentum",
        "learning_rate": 0.1,
        "schedule": {
            "name": "warmup",
            "warmup_steps": 8,
            "then": {"name": "plateau", "mode": "min", "metric": "loss"},
        },
    },
    "task": {"name": "classification", "penalty": "l2"},
    "train": {"epochs": 7, "batch_size": 16},
    "sweep": {
        "method": "random",
        "trials": 3,
        "seed": 16,  # three members that differ in every key (zeros included)
        "space": {
            "seed": {"choices": [0, 1, 2]},
            "model.dropout": {"choices": [0.0, 0.2]},
            "optimizer.coupled_weight_decay": {"choices": [0.0, 1e-2]},
            "optimizer.momentum": {"choices": [0.5, 0.9]},
            "task.penalty_strength": {"choices": [0.0, 1e-2]},
            "optimizer.schedule.start": {"choices": [0.1, 0.5]},
            "optimizer.schedule.then.factor": {"choices": [2.0, 4.0]},
            "train.early_stopping_patience": {"choices": [1, 9]},
        },
    },
}
# float32 programs that differ only in vmap's batching of the same operations: the
# measured difference is ~1e-7 relative (most metrics are bit-identical).
RTOL = 1e-6


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("hyper")
    path = write_toml(root / "hyper.toml", RAW)
    result = run_population_sweep(path, sweep_dir=root / "out")
    trials = []
    for _, cfg in trial_configs(RAW, str(path)):
        built = build(cfg)
        hook, factors = validation_hook(cfg, built.task), []

        def record(state, val, hook=hook, factors=factors):
            state = hook(state, val)
            factors.append(plateau_scale(state.opt_state))
            return state

        trials.append(
            (fit(built.task, built.data, cfg.train, cfg.seed, on_validation=record), factors)
        )
    return {row["trial"]: row for row in result["trials"]}, trials, result


def test_each_member_equals_its_trial(runs):
    rows, trials, _ = runs
    for i, (trial, _) in enumerate(trials):
        for split in ("val", "test"):
            for k, v in trial.final[split].items():
                np.testing.assert_allclose(rows[i][split][k], v, rtol=RTOL, err_msg=f"{i} {k}")
        assert rows[i]["best"]["step"] == trial.best["step"]
        np.testing.assert_allclose(rows[i]["best"]["value"], trial.best["value"], rtol=RTOL)


def test_members_stop_early_on_their_own(runs):
    rows, trials, _ = runs
    stops = [rows[i]["early_stopping"] for i in range(len(trials))]
    assert stops == [trial.early_stopping for trial, _ in trials]
    assert None in stops and any(stops), "the population should hold stopped and running members"


def test_each_member_keeps_its_own_plateau(runs):
    rows, trials, _ = runs
    for i, (_, factors) in enumerate(trials):
        assert rows[i]["plateau_factors"] == pytest.approx(factors, rel=0)
    assert min(min(f) for _, f in trials) < 1.0, "some member should have hit a plateau"


def test_one_compile_for_the_population(runs):
    _, _, result = runs
    assert result["traces"] == {"train_scan": 1, "eval_step": 1}


@pytest.mark.parametrize(
    "key, choices",
    [
        ("model.widths", [[4], [8]]),  # a shape
        ("train.batch_size", [8, 16]),  # the loop's
        ("model.activation", ["tanh", "relu"]),  # a string: the program's structure
        ("optimizer.schedule.warmup_steps", [4, 8]),  # traced, but optax branches on it
    ],
)
def test_keys_that_change_the_program_are_refused(tmp_path, key, choices):
    raw = {**RAW, "sweep": {"space": {"seed": {"choices": [0, 1]}, key: {"choices": choices}}}}
    path = write_toml(tmp_path / "p.toml", raw)
    with pytest.raises(ConfigError) as info:
        run_population_sweep(path, sweep_dir=tmp_path / "out")
    (line,) = info.value.lines()
    assert line.startswith(f"{path}: sweep.space: {key!r} changes shapes or the program")
    assert not (tmp_path / "out").exists()


def test_cli_refusal_is_one_line_and_exit_2(tmp_path, capsys):
    raw = {**RAW, "sweep": {"space": {"model.widths": {"choices": [[4], [8]]}}}}
    path = write_toml(tmp_path / "p.toml", raw)
    assert main(["sweep", str(path), "--vmap", "--sweep-dir", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "'model.widths'" in err[0]
