"""One device count of the scaling suite: trains every configuration it is given, prints JSON.

Started by :mod:`benchmarks.suite_scaling` in a subprocess per device count, because the
number of forced host devices (``XLA_FLAGS=--xla_force_host_platform_device_count=N``) is
fixed when jax starts. Every run takes dlcore's public path, the one ``dlcore run`` takes:
an experiment dict validated like a TOML file, ``dlcore.experiment.build`` and
``dlcore.engine.loop.fit`` with ``[train] devices``, ``shard_params`` and ``mode``.

Timing: the loop logs a training window every ``log_every`` steps, and logging pulls the
window's metrics to the host, which waits for the window's last step; so the time between
two train log records is the wall time of a whole window of training, the host's batch
feeding and the collectives included. Validation is pushed past the last window
(``eval_every``), so no window holds an eval pass. The first window holds the compilation
and is dropped, as are the next ``warmup`` windows; the compile times are ``fit``'s own
(``timing["compile"]``), reported apart.

Usage (what the suite runs; the spec is :func:`benchmarks.suite_scaling.worker_spec`'s):
  XLA_FLAGS=--xla_force_host_platform_device_count=8 JAX_PLATFORMS=cpu \\
    python -m benchmarks.scaling_worker '{"devices": 8, "runs": [...], ...}'
"""

import json
import os
import sys
import time

import jax

from dlcore.config.loading import validate
from dlcore.engine import distributed
from dlcore.engine.loop import fit
from dlcore.experiment import build


class WindowClock:
    """A reporter that notes the wall time of ``start`` and of every train log record."""

    def __init__(self):
        self.marks: list[float] = []

    def start(self, total_steps, done_steps):
        self.marks = [time.perf_counter()]

    def advance(self, step): ...
    def close(self): ...

    def log(self, record):
        if record["split"] == "train":
            self.marks.append(time.perf_counter())


def measure(run: dict, spec: dict) -> dict:
    """Trains one configuration; returns its seconds per step in each timed window.

    Args:
      run: ``{"experiment": {data, model, optimizer sections}, "mode", "shard_params",
        "window_epochs"}``.
      spec: ``{"devices", "batch", "warmup", "repeats"}``: windows dropped after the
        compiling one, and windows timed.
    """
    windows = 1 + spec["warmup"] + spec["repeats"]
    epochs = run["window_epochs"] * windows
    train = {
        "epochs": epochs,
        "batch_size": spec["batch"],
        "mode": run["mode"],
        "eval_every": epochs + 1,  # only the final evaluation, after the last window
        "eval_batch_size": 512,
        "devices": spec["devices"],
        "shard_params": run["shard_params"],
    }
    cfg = validate({**run["experiment"], "train": train}, "scaling")
    built = build(cfg)
    window_steps = run["window_epochs"] * (len(built.data.train) // spec["batch"])
    clock = WindowClock()
    train_cfg = cfg.train.model_copy(update={"log_every": window_steps})
    result = fit(built.task, built.data, train_cfg, cfg.seed, reporter=clock)
    marks = clock.marks
    timed = [b - a for a, b in zip(marks[:-1], marks[1:], strict=True)][1 + spec["warmup"] :]
    if result.status != "completed" or len(timed) != spec["repeats"]:
        raise RuntimeError(f"{result.status} run, {len(marks) - 1} windows of {windows}")
    compiles = [t for name, t in result.timing["compile"].items() if name != "eval_step"]
    return {
        "window_steps": window_steps,
        "samples_s": [w / window_steps for w in timed],  # seconds per step
        "lower_s": sum(t["lower_s"] for t in compiles),
        "compile_s": sum(t["compile_s"] for t in compiles),
        # fit's own figure over all windows (the first one's compile taken out by fit).
        "fit_steps_per_s": result.timing["steps_per_s"],
        "traces": result.traces,
        "val_accuracy": result.final["val"].get("accuracy"),
    }


def main(spec: dict) -> dict:
    """Every run of ``spec`` on ``spec["devices"]`` devices, and what this process saw."""
    # The layouts run one after another, not interleaved: other processes' load at the
    # time (recorded here) tilts one layout's figures against another's.
    load = os.getloadavg()[0]
    return {
        "load_avg_1": load,
        "jax_device_count": jax.device_count(),
        "process_count": jax.process_count(),
        "backend": jax.default_backend(),
        "device_kind": jax.devices()[0].device_kind,
        "cores": os.cpu_count(),
        "xla_flags": os.environ.get("XLA_FLAGS", ""),
        "runs": [measure(run, spec) for run in spec["runs"]],
    }


if __name__ == "__main__":
    # One of several processes when the suite set DLCORE_* (a no-op otherwise); the
    # processes train together and process 0 reports.
    distributed.initialize()
    report = main(json.loads(sys.argv[1]))
    if distributed.is_writer():
        json.dump(report, sys.stdout)
