"""Runs one tiny experiment on 1 and on 8 devices and prints what the tests compare (JSON).

Started by ``tests/test_data_parallel.py`` in a subprocess with
``XLA_FLAGS=--xla_force_host_platform_device_count=8 JAX_PLATFORMS=cpu`` (the flag must be
set before jax starts, which a running pytest process has done long ago). For each
training mode it trains the same 100 steps on 1 device, on 8 devices with replicated
parameters and on 8 devices with ``shard_params``, and reports every step's training loss,
the final parameters' largest difference from the 1-device run, and where the parameters
ended up. One process does every comparison, so jax starts once. With the argument
``populations`` it trains a population of 8 members on 1 device and spread over 8 instead.
"""

import json
import sys

import jax
import numpy as np
import optax

from dlcore.config.loading import validate
from dlcore.engine.loop import fit
from dlcore.engine.population import PopulationTask, member_scale
from dlcore.experiment import build
from dlcore.optim import build_optimizer

# 250 examples: 166 train (10 steps of 16 per epoch, 6 dropped), 42 val and 42 test, so
# eval batches need padding to a multiple of 8. Dropout and batch norm are on: their keys
# and their batch statistics must not depend on how the batch is split.
TINY = {
    "data": {"name": "xor", "n_samples": 250, "noise": 0.2},
    "model": {"name": "mlp", "widths": [16], "dropout": 0.25, "norm": "batch"},
    "optimizer": {"name": "adam", "learning_rate": 0.01},
    "train": {"epochs": 10, "batch_size": 16, "log_every": 1},
}


class TrainLosses:
    """A reporter that keeps the mean training loss of every logged step."""

    def __init__(self):
        self.losses: list[float] = []

    def start(self, total_steps, done_steps): ...
    def advance(self, step): ...
    def close(self): ...

    def log(self, record):
        if record["split"] == "train":
            self.losses.append(record["loss"])


def train(**settings):
    cfg = validate({**TINY, "train": {**TINY["train"], **settings}}, "tiny")
    built = build(cfg)
    losses = TrainLosses()
    result = fit(built.task, built.data, cfg.train, cfg.seed, reporter=losses)
    return result, losses.losses


def train_population(**settings):
    """8 members (seeds 0..7, learning rates 0.002..0.016) of the tiny run, trained at once
    (their own batch orders: the batches carry a member axis ``[8, 16, ...]``)."""
    cfg = validate({**TINY, "train": {**TINY["train"], **settings}}, "tiny")

    def unit_rate_chain(section):  # as `dlcore sweep --vmap` builds them
        return optax.chain(
            build_optimizer(section.model_copy(update={"learning_rate": 1.0})), member_scale()
        )

    built = build(cfg, make_optimizer=unit_rate_chain)
    rates = tuple(0.002 * (m + 1) for m in range(8))
    population = PopulationTask(built.task, tuple(range(8)), rates)
    return fit(population, built.data, cfg.train, 0)


def max_abs_diff(a, b) -> float:
    pairs = zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True)
    return max(float(np.max(np.abs(np.asarray(x) - np.asarray(y)))) for x, y in pairs)


def where(leaf: jax.Array) -> dict:
    spec = getattr(leaf.sharding, "spec", None)
    return {
        "devices": len(leaf.sharding.device_set),
        "spec": [] if spec is None else [str(s) for s in spec],
        "shape": list(leaf.shape),
    }


def main() -> None:
    report = {"device_count": jax.device_count(), "runs": {}, "populations": {}}
    for mode in ("step", "scan"):
        if sys.argv[1:] == ["populations"]:
            one = train_population(mode=mode, epochs=2)
            spread = train_population(mode=mode, epochs=2, devices=8)
            report["populations"][mode] = {
                "val_loss": [one.final["val"]["loss"], spread.final["val"]["loss"]],
                "param_max_abs_diff": max_abs_diff(one.state.params, spread.state.params),
                "params": [where(leaf) for leaf in jax.tree.leaves(spread.state.params)],
                "traces": [one.traces, spread.traces],
            }
            continue
        base, base_losses = train(mode=mode)
        for name, settings in {
            "one": {},
            "replicated": {"devices": 8},
            "sharded": {"devices": 8, "shard_params": True},
        }.items():
            result, losses = (base, base_losses) if not settings else train(mode=mode, **settings)
            report["runs"][f"{mode}/{name}"] = {
                "losses": losses,
                "param_max_abs_diff": max_abs_diff(result.state.params, base.state.params),
                "params": {
                    jax.tree_util.keystr(path): where(leaf)
                    for path, leaf in jax.tree.leaves_with_path(result.state.params)
                },
                "test": result.final["test"],
                "traces": result.traces,
                "timing_devices": result.timing["devices"],
            }
    json.dump(report, sys.stdout)


if __name__ == "__main__":
    main()
