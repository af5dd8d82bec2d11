"""Stops a tiny run on one device count and resumes it on another; prints the results (JSON).

Started by ``tests/test_resume_devices.py`` in a subprocess with 8 forced host CPU devices.
A case ``MODE:START:END`` (``step:8s:1``) trains the same 100 steps in ``MODE`` (``step``
or ``scan``): stopped on ``START`` devices, then resumed on ``END`` devices; an ``s`` after
a count means ``shard_params`` on that side (the run's ``config.toml`` is edited between
the two when only one side has it). Each mode also trains once uninterrupted on 1 device.
A case reports its training losses (from ``metrics.jsonl``) and the uninterrupted run's,
the final parameters' largest difference from the uninterrupted run's, and the parameters'
layout as orbax recorded it on disk in the checkpoint the resume started from
(``stopped``) and in the last one (``final``).

Usage: ``python tests/resume_devices_worker.py DIR CASE [CASE ...]``
"""

import json
import pathlib
import sys
import tomllib

import flax
import jax
import numpy as np
import orbax.checkpoint as ocp
import tomli_w

import dlcore.experiment.run as experiment_run
from dlcore.config.experiment import ExperimentConfig
from dlcore.config.loading import validate
from dlcore.experiment import resume_experiment, run_experiment
from dlcore.experiment.restore import restore_run

# Step mode stops at an epoch's end; scan mode (chunks of 5 steps, 10 steps an epoch) in
# the middle of an epoch, so the resume starts inside one.
STOP_AT = {"step": 40, "scan": 45}
TINY = {
    "name": "tiny",
    "data": {"name": "xor", "n_samples": 250, "noise": 0.2},
    "model": {"name": "mlp", "widths": [16], "dropout": 0.25, "norm": "batch"},
    "optimizer": {"name": "adam", "learning_rate": 0.01},
    "train": {"epochs": 10, "batch_size": 16, "log_every": 1, "scan_steps": 5},
}


class StopAt:
    """Stop flag and reporter at once: raised when the loop logs step ``at``."""

    signum = None

    def __init__(self, at: int):
        self.at, self.requested = at, False

    def start(self, total_steps, done_steps): ...
    def advance(self, step): ...
    def close(self): ...

    def log(self, record):
        self.requested = self.requested or record["step"] >= self.at


def side(text: str) -> tuple[int, bool]:
    """``"8s"`` -> (8, True): a device count and whether parameters are sharded."""
    return int(text.rstrip("s")), text.endswith("s")


def train_losses(run_dir: pathlib.Path) -> list[float]:
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return [r["loss"] for r in map(json.loads, lines) if r["split"] == "train"]


def final_params(run_dir: pathlib.Path) -> list[np.ndarray]:
    return [np.asarray(x) for x in jax.tree.leaves(restore_run(run_dir).state.params)]


def layout(step_dir: pathlib.Path) -> dict[str, dict]:
    """Each parameter's layout in a committed checkpoint, from orbax's own metadata: the
    mesh it was saved from, its partition spec, and the shape of the pieces written."""
    tree = ocp.StandardCheckpointHandler().metadata(step_dir / "state")
    out = {}
    for name, leaf in flax.traverse_util.flatten_dict(tree["params"], sep="/").items():
        sharding = leaf.sharding  # NamedShardingMetadata on a mesh; single-device otherwise
        out[name] = {
            "shape": list(leaf.shape),
            "mesh": [int(n) for n in getattr(sharding, "shape", [1])],
            "spec": list(getattr(sharding, "partition_spec", ())),
            "write_shape": list(leaf.storage.write_shape),
        }
    return out


def config(mode: str, devices: int, shard_params: bool) -> ExperimentConfig:
    train = {**TINY["train"], "mode": mode, "devices": devices, "shard_params": shard_params}
    return validate({**TINY, "train": train}, "t")


def resumed_run(root: pathlib.Path, case: str) -> tuple[pathlib.Path, dict]:
    """Runs ``case``; returns its directory and the layouts of its two checkpoints."""
    mode, start, end = case.split(":")
    (n_start, shard_start), (n_end, shard_end) = side(start), side(end)
    path = root / case.replace(":", "-")
    stop = StopAt(STOP_AT[mode])
    first = run_experiment(config(mode, n_start, shard_start), path, stop=stop, reporter=stop)
    assert first["status"] == "interrupted" and first["step"] == stop.at, first["step"]
    stopped = layout(path / "checkpoints" / "latest" / str(stop.at))  # read now: 3 are kept
    if shard_end != shard_start:  # a config edit a resume applies (no change of structure)
        edited = tomllib.loads((path / "config.toml").read_text())
        edited["train"]["shard_params"] = shard_end
        (path / "config.toml").write_text(tomli_w.dumps(edited))
    resumed = resume_experiment(path, devices=n_end)
    assert resumed["status"] == "completed"
    legs = [(p["mode"], p["devices"]) for p in resumed["processes"]]
    assert legs == [(mode, n_start), (mode, n_end)], legs
    final = layout(path / "checkpoints" / "latest" / str(resumed["step"]))
    return path, {"stopped": stopped, "final": final}


def main() -> None:
    root = pathlib.Path(sys.argv[1])
    # Legs recompile the same programs (the first legs of step:8s:1 and step:8s:4, say);
    # XLA's disk cache, as `dlcore run` uses it, compiles each once. It returns the
    # executables a compile gives, so the results do not change.
    jax.config.update("jax_compilation_cache_dir", str(root / "xla_cache"))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    # Nothing here looks at the runs' PNG curves, which take 0.4 s a run to draw.
    experiment_run.plot_curves = lambda *args, **kwargs: None
    cases = sys.argv[2:]
    bases = {}
    for mode in sorted({case.split(":")[0] for case in cases}):
        path = root / f"{mode}-base"
        run_experiment(config(mode, 1, False), path)
        bases[mode] = train_losses(path), final_params(path)
    report = {}
    for case in cases:
        mode = case.split(":")[0]
        path, disk = resumed_run(root, case)
        base_losses, base_params = bases[mode]
        params = final_params(path)
        report[case] = {
            "stopped_at": STOP_AT[mode],
            "losses": train_losses(path),
            "base_losses": base_losses,
            "param_max_abs_diff": max(
                float(np.max(np.abs(a - b))) for a, b in zip(params, base_params, strict=True)
            ),
            "disk": disk,
        }
    json.dump(report, sys.stdout)


if __name__ == "__main__":
    main()
