"""``python -m benchmarks race``: every task, framework and repeat, then the table and files.

The repeats are interleaved (dlcore, torch, keras for task 1, then task 2, ..., then the next
repeat) so that a burst of load from other processes falls on all frameworks alike rather
than on one. Each run writes its run directory (dlcore) into a temporary folder that is
removed afterwards.
"""

import datetime
import os
import pathlib
import subprocess
import sys
import tempfile

from benchmarks import system
from benchmarks.race import measure, report
from benchmarks.race.tasks import FRAMEWORKS, TASKS, Shrink, command

PACKAGES = (*system.PACKAGES, "keras")
RUN_TIMEOUT_S = 3600.0  # a hung run fails instead of blocking the race


def _native_status() -> dict:
    from dlcore import native

    return native.status()


def one_run(task_name: str, framework: str, shrink: Shrink, threads: int) -> dict:
    """Runs one process and returns its figures (``ok`` False with the reason on failure)."""
    task = TASKS[task_name]
    if framework == "dlcore":
        # The others edit dlcore's C++ meanwhile: a changed source rebuilds the library
        # here, untimed, rather than inside the timed run.
        subprocess.run([sys.executable, "-m", "dlcore.native", "build"], capture_output=True)
    load = os.getloadavg()[0]  # other processes' load, for judging this run's figures
    with tempfile.TemporaryDirectory(prefix="race_") as tmp:
        run_dir = pathlib.Path(tmp) / "run"
        argv, env = command(task, framework, run_dir, shrink, threads)
        proc = measure.timed_process(argv, env, RUN_TIMEOUT_S)
        if framework == "dlcore":
            figures = measure.read_dlcore(task, proc, run_dir)
        else:
            figures = measure.read_script(task, proc)
    return {"task": task_name, "framework": framework, "argv": argv, "load_1": load, **figures}


def _line(run: dict) -> str:
    if not run["ok"]:
        return f"  {run['framework']:6s} FAILED ({run['error']}): {run['stderr_tail'][-1:]}"
    hit = run["wall_to_target_s"]
    to_target = "not reached" if hit is None else f"target at epoch {run['target_epoch']}"
    return (
        f"  {run['framework']:6s} wall {run['wall_s']:.1f} s, train {run['train_s']:.2f} s, "
        f"epoch {run['epoch_s']:.3f} s, load {run['load_1']:.1f}, {to_target}"
        + ("" if hit is None else f" (wall {hit:.1f} s, train {run['train_to_target_s']:.2f} s)")
    )


def run(
    task_names: list[str],
    repeats: int,
    out_dir: pathlib.Path,
    shrink: Shrink | None = None,
    threads: int | None = None,
    frameworks: tuple[str, ...] = FRAMEWORKS,
) -> tuple[dict, pathlib.Path]:
    """Races dlcore against the PyTorch and Keras scripts and writes JSON and markdown.

    Args:
      task_names: names in ``TASKS``.
      repeats: processes per task and framework (medians are reported).
      out_dir: where ``race_<time>.json`` and ``.md`` go.
      shrink: a smaller char-LM (fewer epochs, fewer training files); None: none.
      threads: intra-op threads of the PyTorch scripts (default: every core).
      frameworks: which frameworks run (all three by default).

    Returns:
      ``(results, json_path)``.

    Raises:
      ValueError: for repeats < 1.
    """
    if repeats < 1:
        raise ValueError(f"--repeats must be >= 1; got {repeats}")
    threads = threads or os.cpu_count() or 1
    shrink = shrink or Shrink()
    results = {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "system": {
            "machine": system.machine(),
            "versions": system.versions(PACKAGES),
            "load_avg_1_5_15": list(os.getloadavg()),
        },
        # Also builds the native library if it is not cached, before any run is timed.
        "native": _native_status(),
        "torch_threads": threads,
        "repeats": repeats,
        "tasks": task_names,
        "shrink": {"epochs": shrink.epochs, "train_files": shrink.train_files}
        if "charlm" in task_names
        else {},
        "runs": [],
    }
    path = report.results_path(out_dir)
    for repeat in range(repeats):
        for name in task_names:
            print(f"race {name}, repeat {repeat + 1} of {repeats}", flush=True)
            for framework in frameworks:
                one = one_run(name, framework, shrink, threads) | {"repeat": repeat}
                results["runs"].append(one)
                report.write(results, path)
                print(_line(one), flush=True)
    results["load_avg_after"] = list(os.getloadavg())
    path, md = report.write(results, path)
    print(report.markdown(results))
    print(f"wrote {path} and {md}")
    return results, path
