"""Runs one race process and reads what it reports.

The process is timed from ``Popen`` to exit (the wall time a user's ``time`` shows, imports
and all). Its stderr is read line by line as it arrives, each line stamped with the seconds
since the start: the first evaluation line that meets the target gives the wall time to
target. The training time comes from each framework's own account:

- dlcore: ``summary.json`` of the run directory: ``timing.train_s`` (the training steps,
  without compile, evaluation and checkpoints) and the compile time of the training
  function; the epochs' metrics are the ``val`` lines of ``--quiet``. dlcore records no
  per-epoch clock, so an epoch is ``train_s / epochs`` and training to target at epoch k
  is ``compile + k * train_s / epochs``;
- the scripts: their ``RACE_RESULT {json}`` line (``plain_data.EpochLog``): training
  seconds per epoch (Keras's first epoch includes its compile), the validation values.
"""

import json
import pathlib
import re
import statistics
import subprocess
import threading
import time

from benchmarks.race.scripts.plain_data import RESULT_PREFIX
from benchmarks.race.tasks import ROOT, RaceTask

# `dlcore run --quiet`: "val   step     39 (epoch 1) | accuracy 0.8593 | loss 0.4926 | ..."
DLCORE_VAL = re.compile(r"^val\s+step\s+\d+ \(epoch (\d+)\) \| (.*)$")
# The scripts (plain_data.EpochLog): "epoch 3 | accuracy 0.9741"
SCRIPT_EPOCH = re.compile(r"^epoch (\d+) \| (\w+) ([-+.\deE]+|nan|inf)$")


def _pump(stream, lines: list, t0: float) -> None:
    for line in stream:
        lines.append((time.perf_counter() - t0, line.rstrip("\n")))


def timed_process(argv: list[str], env: dict, timeout_s: float | None = None) -> dict:
    """Runs ``argv`` in the repository root: ``{"wall_s", "returncode", "stdout",
    "stderr"}``, the outputs as ``[(seconds since start, line)]``."""
    out: list = []
    err: list = []
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        argv, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    readers = [
        threading.Thread(target=_pump, args=(proc.stdout, out, t0), daemon=True),
        threading.Thread(target=_pump, args=(proc.stderr, err, t0), daemon=True),
    ]
    for reader in readers:
        reader.start()
    try:
        code = proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        code = proc.wait()
    wall = time.perf_counter() - t0
    for reader in readers:
        reader.join()
    return {"wall_s": wall, "returncode": code, "stdout": out, "stderr": err}


def dlcore_epochs(stderr: list, metric: str) -> list[tuple[float, float]]:
    """``[(seconds, value)]`` of the validation lines of ``dlcore run --quiet``, in order."""
    found = []
    for t, line in stderr:
        match = DLCORE_VAL.match(line)
        if match:
            pairs = dict(p.rsplit(" ", 1) for p in match.group(2).split(" | "))
            found.append((t, float(pairs[metric])))
    return found


def script_epochs(stderr: list) -> list[tuple[float, float]]:
    """``[(seconds, value)]`` of a script's ``epoch E | metric V`` lines."""
    return [(t, float(m.group(3))) for t, line in stderr if (m := SCRIPT_EPOCH.match(line))]


def script_result(stdout: list) -> dict | None:
    """The ``RACE_RESULT`` JSON a script prints last, or None."""
    for _, line in reversed(stdout):
        if line.startswith(RESULT_PREFIX):
            return json.loads(line[len(RESULT_PREFIX) :])
    return None


def _first_hit(task: RaceTask, epochs: list[tuple[float, float]]) -> int | None:
    return next((i for i, (_, v) in enumerate(epochs) if task.reached(v)), None)


def _failure(proc: dict, why: str) -> dict:
    tail = [line for _, line in proc["stderr"][-5:]]
    return {"ok": False, "wall_s": proc["wall_s"], "error": why, "stderr_tail": tail}


def read_dlcore(task: RaceTask, proc: dict, run_dir: pathlib.Path) -> dict:
    """One dlcore run's figures (see the module docstring)."""
    summary_path = run_dir / "summary.json"
    if proc["returncode"] != 0 or not summary_path.exists():
        return _failure(proc, f"exit {proc['returncode']}, summary.json missing or not written")
    summary = json.loads(summary_path.read_text())
    timing = summary["timing"]
    epochs = dlcore_epochs(proc["stderr"], task.metric)
    if not epochs:
        return _failure(proc, "no validation lines on stderr")
    compile_s = sum(
        t["lower_s"] + t["compile_s"] for n, t in timing["compile"].items() if n != "eval_step"
    )
    epoch_s = timing["train_s"] / len(epochs)
    hit = _first_hit(task, epochs)
    return {
        "ok": True,
        "wall_s": proc["wall_s"],
        "train_s": compile_s + timing["train_s"],
        "epoch_s": epoch_s,
        "first_epoch_s": compile_s + epoch_s,
        "values": [v for _, v in epochs],
        "target_epoch": None if hit is None else hit + 1,
        "wall_to_target_s": None if hit is None else epochs[hit][0],
        "train_to_target_s": None if hit is None else compile_s + (hit + 1) * epoch_s,
        "final": {s: summary["final"][s][task.metric] for s in ("val", "test")},
        "dlcore_timing": {
            k: timing[k] for k in ("wall_s", "train_s", "eval_s", "checkpoint_s") if k in timing
        }
        | {"train_compile_s": compile_s},
        "native": summary.get("platform", {}).get("native"),
    }


def read_script(task: RaceTask, proc: dict) -> dict:
    """One PyTorch or Keras script's figures (see the module docstring)."""
    result = script_result(proc["stdout"])
    epochs = script_epochs(proc["stderr"])
    if proc["returncode"] != 0 or result is None or not epochs:
        return _failure(proc, f"exit {proc['returncode']}, no RACE_RESULT or epoch lines")
    hit = _first_hit(task, epochs)
    per_epoch = result["epoch_train_s"]
    return {
        "ok": True,
        "wall_s": proc["wall_s"],
        "train_s": result["train_s"],
        # The median skips a first epoch that compiles (Keras) or warms up (torch).
        "epoch_s": statistics.median(per_epoch),
        "first_epoch_s": per_epoch[0],
        "values": [v for _, v in epochs],
        "target_epoch": None if hit is None else hit + 1,
        "wall_to_target_s": None if hit is None else epochs[hit][0],
        "train_to_target_s": None if hit is None else sum(per_epoch[: hit + 1]),
        "final": result["final"],
        "script": {k: v for k, v in result.items() if k not in ("values", "epoch_train_s")},
    }
