"""Hyper-parameter search: grid and random trials as run directories, ranked on val."""

import json

import numpy as np
import pytest

from dlcore.config.loading import ConfigError, validate
from dlcore.config.sweep_space import Distribution
from dlcore.experiment.sweep import run_sweep, trial_configs
from tests.helpers import run_cli, write_toml

BASE = {
    "name": "sw",
    "data": {"name": "xor", "n_samples": 120},
    "model": {"name": "mlp", "widths": [4], "activation": "tanh"},
    "train": {"epochs": 2, "batch_size": 16, "log_every": 5},
}


def with_sweep(**sweep):
    return {**BASE, "sweep": sweep}


def test_grid_is_the_cartesian_product_in_order():
    raw = with_sweep(
        method="grid",
        space={
            "optimizer.learning_rate": {"choices": [0.1, 0.01]},
            "model.widths": {"choices": [[2], [3, 3], [4]]},
        },
    )
    trials = trial_configs(raw, "s.toml")
    assert len(trials) == 6
    assert [a["model.widths"] for a, _ in trials[:3]] == [[2], [3, 3], [4]]
    assert trials[4][1].optimizer.learning_rate == 0.01 and trials[4][1].model.widths == [3, 3]
    assert trials[0][1].name == "sw-trial-000"


def test_random_search_is_seeded_and_respects_bounds():
    space = {
        "optimizer.learning_rate": {"log_uniform": [1e-4, 1e-1]},
        "model.dropout": {"uniform": [0.0, 0.5]},
        "optimizer.name": {"choices": ["sgd", "adam"]},
    }
    a = [x for x, _ in trial_configs(with_sweep(method="random", trials=20, space=space), "s")]
    b = [x for x, _ in trial_configs(with_sweep(method="random", trials=20, space=space), "s")]
    assert a == b
    lrs = np.array([t["optimizer.learning_rate"] for t in a])
    assert np.all((lrs >= 1e-4) & (lrs <= 1e-1)) and lrs.min() < 1e-3 < lrs.max()
    assert all(0.0 <= t["model.dropout"] <= 0.5 for t in a)
    assert {t["optimizer.name"] for t in a} == {"sgd", "adam"}


def test_log_uniform_samples_are_uniform_in_log_space():
    rng = np.random.default_rng(0)
    d = Distribution(log_uniform=(1e-4, 1.0))
    logs = np.log10([d.sample(rng) for _ in range(4000)])
    assert abs(np.mean(logs < -2) - 0.5) < 0.03


@pytest.mark.parametrize(
    "space, phrase",
    [
        ({"model.widths": {"uniform": [1, 2]}}, "grid search needs `choices`"),
        ({"model.dropout": {"choices": [0.1], "uniform": [0, 1]}}, "exactly one of"),
        ({"model.dropout": {"uniform": [0.5, 0.1]}}, "low < high"),
    ],
)
def test_bad_search_spaces_are_config_errors(space, phrase):
    with pytest.raises(ConfigError, match=phrase):
        validate(with_sweep(method="grid", space=space), "s.toml")


def test_a_trial_value_outside_its_field_range_names_the_trial():
    raw = with_sweep(space={"model.dropout": {"choices": [0.1, 1.5]}})
    with pytest.raises(ConfigError) as info:
        trial_configs(raw, "s.toml")
    (line,) = info.value.lines()
    assert line.startswith("s.toml (sweep trial 1: {'model.dropout': 1.5}): model.dropout:")


def test_sweep_without_a_space_is_refused():
    with pytest.raises(ConfigError, match="sweep: missing"):
        trial_configs(BASE, "s.toml")


@pytest.fixture(scope="module")
def finished_sweep(tmp_path_factory):
    root = tmp_path_factory.mktemp("sweep")
    path = write_toml(
        root / "sw.toml",
        with_sweep(method="grid", space={"optimizer.learning_rate": {"choices": [1e-4, 0.05]}}),
    )
    return root, path, run_sweep(path, sweep_dir=root / "out")


def test_each_trial_is_a_run_directory_and_ranking_uses_validation(finished_sweep):
    root, _, result = finished_sweep
    assert result["status"] == "completed" and result["metric"] == "accuracy"
    assert sorted(r["trial"] for r in result["trials"]) == [0, 1]
    for row in result["trials"]:
        summary = json.loads(
            (root / "out" / f"trial-{row['trial']:03d}" / "summary.json").read_text()
        )
        assert summary["best"] == row["best"] and summary["final"]["test"] == row["test"]
        assert list((root / "out" / f"trial-{row['trial']:03d}").glob("events.out.tfevents.*"))
    values = [r["best"]["value"] for r in result["trials"]]
    assert values == sorted(values, reverse=True)
    assert json.loads((root / "out" / "sweep.json").read_text()) == result


def test_rerunning_a_finished_sweep_trains_nothing_again(finished_sweep):
    root, path, result = finished_sweep
    metrics = root / "out" / "trial-000" / "metrics.jsonl"
    before = metrics.stat().st_mtime_ns
    again = run_sweep(path, sweep_dir=root / "out")
    assert metrics.stat().st_mtime_ns == before
    assert again["trials"] == result["trials"]


def test_cli_sweep_prints_the_ranked_table(tmp_path):
    path = write_toml(
        tmp_path / "sw.toml", with_sweep(method="grid", space={"seed": {"choices": [0, 1]}})
    )
    proc = run_cli(
        "sweep",
        str(path),
        "--sweep-dir",
        str(tmp_path / "out"),
        "--quiet",
        "--set",
        "train.epochs=1",
        "--no-tensorboard",
    )
    assert proc.returncode == 0, proc.stderr
    assert "ranked by val accuracy" in proc.stdout and "2 of 2 trials" in proc.stdout
    assert not list((tmp_path / "out").rglob("events.out.tfevents.*"))
    assert len(list((tmp_path / "out").glob("trial-*/metrics.jsonl"))) == 2
