"""Stops a tiny run on one device count and resumes it on another; prints the results (JSON).

Started by ``tests/test_resume_devices.py`` in a subprocess with 8 forced host CPU devices.
Every case trains the same 100 steps (step mode, ``shard_params`` on, so a checkpoint
written on 8 devices holds arrays split 8 ways): uninterrupted on 1 device, and stopped
at step 40 on ``start`` devices, then resumed on ``end`` devices. It reports each run's
training losses (from ``metrics.jsonl``) and the final parameters' largest difference
from the uninterrupted run's.

Usage: ``python tests/resume_devices_worker.py DIR START:END [START:END ...]``
"""

import json
import pathlib
import sys

import jax
import numpy as np

from dlcore.config.loading import validate
from dlcore.experiment import resume_experiment, run_experiment
from dlcore.experiment.restore import restore_run

STOP_AT = 40
TINY = {
    "name": "tiny",
    "data": {"name": "xor", "n_samples": 250, "noise": 0.2},
    "model": {"name": "mlp", "widths": [16], "dropout": 0.25, "norm": "batch"},
    "optimizer": {"name": "adam", "learning_rate": 0.01},
    "train": {"epochs": 10, "batch_size": 16, "log_every": 1, "mode": "step"},
}


class StopAt:
    """Stop flag and reporter at once: raised when the loop logs step ``STOP_AT``."""

    requested = False
    signum = None

    def start(self, total_steps, done_steps): ...
    def advance(self, step): ...
    def close(self): ...

    def log(self, record):
        self.requested = self.requested or record["step"] >= STOP_AT


def train_losses(run_dir: pathlib.Path) -> list[float]:
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return [r["loss"] for r in map(json.loads, lines) if r["split"] == "train"]


def final_params(run_dir: pathlib.Path) -> list[np.ndarray]:
    return [np.asarray(x) for x in jax.tree.leaves(restore_run(run_dir).state.params)]


def run(root: pathlib.Path, start: int, end: int | None) -> pathlib.Path:
    """A run on ``start`` devices; stopped and resumed on ``end`` unless ``end`` is None."""
    path = root / f"{start}-{end}"
    cfg = validate(
        {**TINY, "train": {**TINY["train"], "devices": start, "shard_params": True}}, "t"
    )
    if end is None:
        run_experiment(cfg, path)
        return path
    stop = StopAt()
    first = run_experiment(cfg, path, stop=stop, reporter=stop)
    assert first["status"] == "interrupted" and first["step"] == STOP_AT, first["step"]
    resumed = resume_experiment(path, devices=end)
    assert resumed["status"] == "completed"
    assert [p["devices"] for p in resumed["processes"]] == [start, end]
    return path


def main() -> None:
    root = pathlib.Path(sys.argv[1])
    base = run(root, 1, None)
    base_losses, base_params = train_losses(base), final_params(base)
    report = {}
    for case in sys.argv[2:]:
        start, end = map(int, case.split(":"))
        path = run(root, start, end)
        params = final_params(path)
        report[case] = {
            "losses": train_losses(path),
            "base_losses": base_losses,
            "param_max_abs_diff": max(
                float(np.max(np.abs(a - b))) for a, b in zip(params, base_params, strict=True)
            ),
        }
    json.dump(report, sys.stdout)


if __name__ == "__main__":
    main()
