"""vmap population training: every member equals its sequential trial; one compile."""

import jax.numpy as jnp
import numpy as np
import optax
import pytest

from dlcore.config.loading import ConfigError
from dlcore.engine.loop import fit
from dlcore.engine.population import member_scale, set_member_factors
from dlcore.experiment import build
from dlcore.experiment.sweep import run_population_sweep, trial_configs
from tests.helpers import write_toml

RAW = {
    "name": "pop",
    "data": {"name": "xor", "n_samples": 120},
    "model": {"name": "mlp", "widths": [6], "activation": "tanh", "dropout": 0.1},
    "optimizer": {"name": "momentum", "learning_rate": 0.05, "clip_norm": 1.0},
    "train": {"epochs": 3, "batch_size": 16},
    "sweep": {
        "space": {"seed": {"choices": [0, 5]}, "optimizer.learning_rate": {"choices": [0.05, 0.2]}}
    },
}


@pytest.fixture(scope="module")
def population(tmp_path_factory):
    root = tmp_path_factory.mktemp("pop")
    path = write_toml(root / "pop.toml", RAW)
    return path, run_population_sweep(path, sweep_dir=root / "out")


def test_each_member_matches_its_sequential_trial(population):
    path, result = population
    by_trial = {row["trial"]: row for row in result["trials"]}
    for i, (assignment, cfg) in enumerate(trial_configs(RAW, str(path))):
        built = build(cfg)
        data, task = built.data, built.task
        seq = fit(task, data, cfg.train, cfg.seed)
        row = by_trial[i]
        assert (row["seed"], row["learning_rate"]) == (
            assignment["seed"],
            assignment["optimizer.learning_rate"],
        )
        for split in ("val", "test"):
            for k, v in seq.final[split].items():
                np.testing.assert_allclose(row[split][k], v, rtol=2e-5, atol=1e-6)
        assert row["best"]["step"] == seq.best["step"]


def test_population_compiles_once_and_ranks_on_validation(population):
    _, result = population
    assert result["traces"] == {"train_scan": 1, "eval_step": 1}
    values = [row["best"]["value"] for row in result["trials"]]
    assert values == sorted(values, reverse=True)
    assert len({row["val"]["loss"] for row in result["trials"]}) == 4  # members differ


@pytest.mark.parametrize(
    "change, field",
    [
        ({"sweep": {"space": {"model.widths": {"choices": [[4], [8]]}}}}, "sweep.space"),
        ({"sweep": {"space": {"train.batch_size": {"choices": [8, 16]}}}}, "sweep.space"),
    ],
)
def test_vmap_refuses_what_it_cannot_batch(tmp_path, change, field):
    path = write_toml(tmp_path / "p.toml", {**RAW, **change})
    with pytest.raises(ConfigError) as info:
        run_population_sweep(path, sweep_dir=tmp_path / "out")
    assert info.value.lines()[0].startswith(f"{path}: {field}: ")


def test_member_scale_is_the_learning_rate():
    params = {"w": jnp.ones(3)}
    grads = {"w": jnp.array([1.0, -2.0, 0.5])}
    chain = optax.chain(optax.adam(1.0), member_scale())
    state = set_member_factors(chain.init(params), jnp.float32(0.01))
    scaled, _ = chain.update(grads, state, params)
    direct, _ = optax.adam(0.01).update(grads, optax.adam(0.01).init(params), params)
    np.testing.assert_array_equal(np.asarray(scaled["w"]), np.asarray(direct["w"]))
