"""The classic framework snippets, as shipped experiments, do what the originals did."""

import jax
import numpy as np
import pytest

from dlcore.config.loading import load_config
from dlcore.engine.loop import fit
from dlcore.experiment import build
from tests.helpers import REPO


def train(stem):
    cfg = load_config(REPO / "experiments" / f"{stem}.toml")
    built = build(cfg)
    data, task = built.data, built.task
    return cfg, fit(task, data, cfg.train, cfg.seed)


def test_tensorflow_linear_regression_recovers_w_and_b():
    _, result = train("tf_linear_regression")
    dense = result.state.params["Dense_0"]
    assert float(dense["kernel"][0, 0]) == pytest.approx(0.1, abs=1e-3)
    assert float(dense["bias"][0]) == pytest.approx(0.3, abs=1e-3)


def test_keras_mlp_has_the_snippets_architecture_and_trains():
    cfg, result = train("keras_mlp")
    shapes = jax.tree.map(np.shape, result.state.params)
    assert shapes == {
        "Dense_0": {"kernel": (20, 64), "bias": (64,)},
        "Dense_1": {"kernel": (64, 64), "bias": (64,)},
        "Dense_2": {"kernel": (64, 10), "bias": (10,)},
    }
    assert cfg.optimizer.name == "nesterov" and cfg.model.dropout == 0.5
    # deck 003's SGD(lr=0.1, decay=1e-6, momentum=0.9, nesterov=True), init='uniform'
    assert (cfg.optimizer.learning_rate, cfg.optimizer.momentum) == (0.1, 0.9)
    assert (cfg.optimizer.schedule.name, cfg.optimizer.schedule.decay) == ("inverse_time", 1e-6)
    assert cfg.model.kernel_init == "uniform" and cfg.train.batch_size == 16
    assert np.isfinite(result.final["test"]["loss"])
    assert int(result.state.step) == 20 * (700 // 16)


def test_theano_logistic_regression_memorizes_its_training_set():
    cfg, result = train("theano_logreg")
    assert cfg.task.penalty == "l2" and cfg.task.penalty_strength == 0.01
    assert result.final["train"]["accuracy"] == 1.0
    assert result.state.params["Dense_0"]["kernel"].shape == (784, 1)
