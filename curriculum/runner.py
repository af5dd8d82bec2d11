"""Runs curriculum entries, each in its own ``dlcore`` process, and turns them into rows.

A process of its own per experiment isolates them: a crash, a divergence or a timeout of one
is recorded as that row's status and the rest still run. The wall time of a row is the
whole command's (start-up, data, compilation, training, evaluation and report).
"""

import datetime
import json
import os
import pathlib
import resource
import shutil
import subprocess
import sys
import time

from curriculum.plan import REPO, Entry

RUNS_ROOT = REPO / "runs" / "curriculum"
OUTPUT = {"run": "summary.json", "sweep": "sweep.json", "vmap": "sweep.json"}


def command(entry: Entry, runs: pathlib.Path) -> list[str]:
    """The ``dlcore`` command line of one entry, run from the repository root.

    Example: ``command(Entry("xor_mlp", "MLP and backprop", "final.test.accuracy"), root)``
    is ``[python, -m, dlcore.cli, run, experiments/xor_mlp.toml, --run-dir, root/xor_mlp,
    --quiet]``.
    """
    config = f"experiments/{entry.name}.toml"
    out = str(runs / entry.name)
    if entry.command == "run":
        args = ["run", config, "--run-dir", out]
    else:
        args = [
            "sweep",
            config,
            "--sweep-dir",
            out,
            *(["--vmap"] if entry.command == "vmap" else []),
        ]
    sets = [a for s in entry.overrides(runs) for a in ("--set", s)]
    return [sys.executable, "-m", "dlcore.cli", *args, "--quiet", *sets]


def lookup(document, path: str):
    """The value at a dotted ``path`` (integer parts index lists), or ``KeyError``."""
    value = document
    for part in path.split("."):
        if isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        elif isinstance(value, dict) and part in value:
            value = value[part]
        else:
            raise KeyError(path)
    return value


def git_commit() -> str:
    """The checkout's short commit, with ``*`` when tracked files differ from it."""

    def git(*args):
        return subprocess.run(
            ["git", *args], cwd=REPO, capture_output=True, text=True, check=False
        ).stdout.strip()

    commit = git("rev-parse", "--short", "HEAD") or "unknown"
    return commit + ("*" if git("status", "--porcelain", "--untracked-files=no") else "")


def _children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def completed(entry_dir: pathlib.Path) -> bool:
    """Whether ``entry_dir`` holds a run or sweep whose output says ``completed``."""
    for name in set(OUTPUT.values()):
        path = entry_dir / name
        if path.exists():
            return json.loads(path.read_text()).get("status") == "completed"
    return False


def run_entry(entry: Entry, runs: pathlib.Path, timeout_s: float, commit: str) -> dict:
    """Trains one entry in a fresh directory ``runs/<name>`` and returns its table row.

    The row's ``status`` is ``ok``, or says why it failed: a need without a completed
    run, the exit status (the log's last line), a timeout, or a metric missing from the
    output; ``value`` is then ``None``.
    """
    row = {
        "experiment": entry.name,
        "topic": entry.topic,
        "metric": entry.label or entry.metric,
        "value": None,
        "wall_s": None,
        "shrink": list(entry.shrink),
        "commit": commit,
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d"),
        "status": "ok",
    }
    missing = [n for n in entry.needs if not completed(runs / n)]
    if missing:
        row["status"] = f"not run: needs a completed {runs / missing[0]}"
        return row
    out = runs / entry.name
    if out.exists():  # a rerun starts over (a sweep directory would otherwise be continued)
        shutil.rmtree(out)
    log = runs / f"{entry.name}.log"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
    }
    start, cpu = time.perf_counter(), _children_cpu_s()
    with open(log, "w") as sink:
        try:
            proc = subprocess.run(
                command(entry, runs),
                cwd=REPO,
                env=env,
                stdout=sink,
                stderr=subprocess.STDOUT,
                timeout=timeout_s,
                check=False,
            )
            code = proc.returncode
        except subprocess.TimeoutExpired:
            code = None
    row["wall_s"] = time.perf_counter() - start
    # CPU seconds say what the wall time would be on a quiet machine; the load says how
    # busy this one was (1-minute average at the end).
    row["cpu_s"] = _children_cpu_s() - cpu
    row["load1"] = os.getloadavg()[0]
    row["exit"] = code
    if code is None:
        row["status"] = f"failed: timeout after {timeout_s:.0f} s"
    elif code != 0:
        lines = log.read_text(errors="replace").strip().splitlines() or [""]
        row["status"] = f"failed: exit {code}: {lines[-1][:200]}"
    # A run killed after it wrote a completed summary (a timeout while exiting) still
    # measured its value; the row keeps the failure in its status.
    return read_value(entry, row, out) if code == 0 or completed(out) else row


def read_value(entry: Entry, row: dict, out: pathlib.Path) -> dict:
    """``row`` with the value of ``entry.metric`` read from the finished run in ``out``.

    Also used on its own (``--reread``) after a metric path in the curriculum file changed,
    so fixing the path costs no training.
    """
    prior = row["status"].removeprefix("completed, then ")
    done = "ok" if row.get("exit") == 0 else f"completed, then {prior}"
    row = {**row, "metric": entry.label or entry.metric, "value": None, "status": done}
    try:
        document = json.loads((out / OUTPUT[entry.command]).read_text())
        value = lookup(document, entry.metric)
    except (OSError, ValueError, KeyError):
        row["status"] = f"failed: no {entry.metric} in {OUTPUT[entry.command]}"
        return row
    if not isinstance(value, int | float) or isinstance(value, bool):
        row["status"] = f"failed: {entry.metric} is {value!r}, not a number"
        return row
    row["value"] = value
    return row


def run_all(entries: list[Entry], runs: pathlib.Path, timeout_s: float, on_row=None) -> list[dict]:
    """Runs ``entries`` in order; ``on_row(row)`` is called after each (to save progress)."""
    runs.mkdir(parents=True, exist_ok=True)
    commit = git_commit()
    rows = []
    for i, entry in enumerate(entries, 1):
        print(f"[{i}/{len(entries)}] {entry.name} ...", end=" ", flush=True)
        row = run_entry(entry, runs, timeout_s, commit)
        wall = "-" if row["wall_s"] is None else f"{row['wall_s']:.1f} s"
        print(f"{row['status']} {row['value']} ({wall})", flush=True)
        rows.append(row)
        if on_row is not None:
            on_row(row)
    return rows
