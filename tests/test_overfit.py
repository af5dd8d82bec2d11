"""`dlcore check CONFIG --overfit N` (deck 003: make sure you can overfit a tiny subset)."""

import pytest

from dlcore.cli.main import main
from dlcore.config.loading import validate
from dlcore.experiment.overfit import unregularized
from dlcore.runs.errors import EXIT_NOT_FITTED
from tests.helpers import REPO

XOR = str(REPO / "experiments" / "xor_mlp.toml")


def check(tmp_path, monkeypatch, *args: str) -> int:
    monkeypatch.chdir(tmp_path)  # where a run directory would go: it must stay empty
    code = main(["--no-compile-cache", "check", *args])
    assert list(tmp_path.iterdir()) == []
    return code


def test_a_small_mlp_overfits_16_examples(tmp_path, monkeypatch, capsys):
    assert check(tmp_path, monkeypatch, XOR, "--overfit", "16", "--steps", "200") == 0
    out = capsys.readouterr().out.splitlines()
    losses = [float(line.split()[1]) for line in out if line[:4].strip().isdigit()]
    assert len(losses) == 20 and losses[-1] < losses[0] / 10  # the curve, every 10 steps
    assert out[-1].startswith("PASS: loss ") and "accuracy 1," in out[-2]


def test_a_crippled_learning_rate_fails_with_its_exit_status(tmp_path, monkeypatch, capsys):
    args = [XOR, "--overfit", "16", "--steps", "20", "--set", "optimizer.learning_rate=1e-9"]
    assert check(tmp_path, monkeypatch, *args) == EXIT_NOT_FITTED == 5
    verdict = capsys.readouterr().out.splitlines()[-1]
    assert verdict.startswith("FAIL: loss ") and "> 0.01 and accuracy" in verdict


def test_a_task_it_cannot_handle_is_one_line_and_exit_2(tmp_path, monkeypatch, capsys):
    config = str(REPO / "experiments" / "digits_autoencoder.toml")
    assert check(tmp_path, monkeypatch, config, "--overfit", "8") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "check --overfit handles tasks that fit given targets" in err[0]
    assert "got 'autoencoder'" in err[0]


def test_regularisers_are_turned_off_and_named():
    cfg = validate(
        {
            "data": {"name": "digits"},
            "model": {"name": "mlp", "widths": [8], "dropout": 0.3},
            "task": {
                "name": "classification",
                "penalty": "l2",
                "penalty_strength": 1e-3,
                "label_smoothing": 0.1,
                "augment": {"hflip": True},
            },
            "optimizer": {"name": "adamw", "weight_decay": 0.01, "coupled_weight_decay": 1e-4},
            "train": {"early_stopping_patience": 3},
        },
        "test",
    )
    off, changes = unregularized(cfg)
    assert changes == [
        "model.dropout: 0.3 -> 0.0",
        "task.penalty: l2 -> none",
        "task.penalty_strength: 0.001 -> 0.0",
        "task.label_smoothing: 0.1 -> None",
        "task.augment: on -> off",
        "optimizer.coupled_weight_decay: 0.0001 -> 0.0",
        "optimizer.weight_decay: 0.01 -> 0.0",
        "train.early_stopping_patience: 3 -> None",
    ]
    assert off.model.dropout == 0.0 and off.task.penalty == "none" and not off.task.augment.hflip
    assert off.optimizer.weight_decay == 0.0 and off.train.early_stopping_patience is None
    assert unregularized(off)[1] == []


@pytest.mark.parametrize("n", ["0", "-3"])
def test_n_below_one_is_one_line_and_exit_2(tmp_path, monkeypatch, capsys, n):
    assert check(tmp_path, monkeypatch, XOR, "--overfit", n) == 2
    assert (
        capsys.readouterr()
        .err.strip()
        .splitlines()[-1]
        .endswith(f"--overfit: N and --steps must be >= 1; got {n} and 500")
    )
