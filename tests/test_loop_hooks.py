"""The loop's optimizer hooks: plateau schedule fed by validation, freeze-pattern checks."""

import pytest

from dlcore.config.loading import ConfigError, validate
from dlcore.engine.loop import fit
from dlcore.experiment import build, validation_hook
from dlcore.optim import plateau_scale

# XOR reaches validation accuracy 1.0 early and then cannot improve, so a plateau schedule
# with patience 1 must divide the learning rate once per stale pass after that.
RAW = {
    "data": {"name": "xor", "n_samples": 200},
    "model": {"name": "mlp", "widths": [8], "activation": "tanh"},
    "optimizer": {
        "name": "adam",
        "learning_rate": 0.02,
        "schedule": {"name": "plateau", "mode": "max", "patience": 1, "factor": 2.0},
    },
    "train": {"epochs": 12, "batch_size": 10},
}


def test_plateau_divides_the_rate_after_stale_validation_passes():
    cfg = validate(RAW, "t")
    built = build(cfg)
    data, task = built.data, built.task
    result = fit(task, data, cfg.train, cfg.seed, on_validation=validation_hook(cfg, task))
    steps_per_epoch = len(data.train) // 10
    stale_passes = 12 - result.best["step"] // steps_per_epoch
    assert stale_passes >= 2
    assert plateau_scale(result.state.opt_state) == pytest.approx(0.5**stale_passes)


def test_no_hook_without_a_plateau_schedule():
    cfg = validate({**RAW, "optimizer": {"name": "adam"}}, "t")
    assert validation_hook(cfg, build(cfg).task) is None


@pytest.mark.parametrize(
    "optimizer, field, phrase",
    [
        (
            {"name": "sgd", "freeze": ["Dense_7/*"]},
            "optimizer.freeze",
            "freeze pattern 'Dense_7/*' matches no parameter",
        ),
        (
            {"name": "sgd", "schedule": {"name": "plateau", "mode": "min"}},
            "optimizer.schedule.mode",
            "accuracy is better larger; set mode = 'max'",
        ),
        (
            {"name": "sgd", "schedule": {"name": "plateau", "mode": "max", "metric": "f1"}},
            "optimizer.schedule.metric",
            "unknown metric 'f1'",
        ),
    ],
)
def test_optimizer_settings_checked_against_the_model_and_task(optimizer, field, phrase):
    cfg = validate({**RAW, "optimizer": optimizer}, "t.toml")
    with pytest.raises(ConfigError) as info:
        build(cfg, "t.toml")
    (line,) = info.value.lines()
    assert line.startswith(f"t.toml: {field}: ") and phrase in line
