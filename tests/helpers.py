"""Shared test helpers: running the real CLI in a subprocess, writing small configs."""

import os
import pathlib
import subprocess
import sys

import tomli_w

REPO = pathlib.Path(__file__).resolve().parent.parent


def cli_env(cache_dir: pathlib.Path | None = None) -> dict[str, str]:
    env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONPATH=str(REPO))
    env["DLCORE_COMPILE_CACHE"] = str(cache_dir) if cache_dir else ""
    return env


def cli_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "dlcore.cli", *args]


def run_cli(
    *args: str, cwd=None, cache_dir=None, timeout=300, env=None
) -> subprocess.CompletedProcess:
    return subprocess.run(
        cli_command(*args),
        cwd=cwd or REPO,
        env={**cli_env(cache_dir), **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def run_main(*args: str) -> subprocess.CompletedProcess:
    """``dlcore *args`` through ``dlcore.cli.main.main`` in this process, for the checks that
    refuse bad input before anything runs: the exit status and what the command printed,
    as ``run_cli`` returns them, without a process's ~3 s of imports. The persistent compile
    cache stays off (turning it on would change it for the whole test process).
    ``tests/test_bad_inputs.py`` runs one case of each kind of check as a real process."""
    import contextlib
    import io

    from dlcore.cli.main import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["--no-compile-cache", *args])
    return subprocess.CompletedProcess(["dlcore", *args], code, out.getvalue(), err.getvalue())


def run_on_8_devices(script: str, *args: str) -> dict:
    """The JSON that ``tests/<script> *args`` prints, run in a subprocess with 8 forced
    host CPU devices (the device count is fixed when jax starts)."""
    import json

    env = dict(
        os.environ,
        JAX_PLATFORMS="cpu",
        XLA_FLAGS="--xla_force_host_platform_device_count=8",
        PYTHONPATH=str(REPO),
    )
    done = subprocess.run(
        [sys.executable, str(REPO / "tests" / script), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        cwd=REPO,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout)


def write_toml(path: pathlib.Path, data: dict) -> pathlib.Path:
    path.write_text(tomli_w.dumps(data))
    return path


def committed_steps(run_dir: pathlib.Path) -> list[int]:
    """Steps committed in ``run_dir/checkpoints/latest`` (orbax renames a finished step's
    temporary directory to the bare step number)."""
    latest = run_dir / "checkpoints" / "latest"
    return [int(p.name) for p in latest.iterdir() if p.name.isdigit()] if latest.exists() else []


def start_and_interrupt(config, run_dir, cache, sig, ready, extra_args=()):
    """Runs ``dlcore run config --run-dir run_dir --quiet *extra_args`` and sends it ``sig``
    as soon as ``ready(run_dir)`` holds; returns (exit status, what it printed).

    ``ready`` is checked after every line the run logs, read with blocking reads, so no
    clock is involved: orbax commits a checkpoint by renaming its directory, and a log
    line printed after the rename sees it. The timer only ends a hung run.
    """
    import threading

    import pytest

    proc = subprocess.Popen(
        cli_command("run", str(config), "--run-dir", str(run_dir), "--quiet", *extra_args),
        env=cli_env(cache),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    hang_guard = threading.Timer(600, proc.kill)
    hang_guard.start()
    try:
        lines = []
        for line in proc.stderr:
            lines.append(line)
            if ready(run_dir):
                proc.send_signal(sig)
                break
        else:
            pytest.fail(f"run ended before the signal: {''.join(lines)}")
        _, err = proc.communicate(timeout=120)
    finally:
        hang_guard.cancel()
    return proc.returncode, "".join(lines) + err


class StopAfter:
    """A stop request for ``fit(..., stop=)`` that fires once the loop has polled it ``n``
    times: stops a run at a chosen point with no clock and no signal involved."""

    def __init__(self, n: int):
        self.n, self.calls = n, 0

    @property
    def requested(self) -> bool:
        self.calls += 1
        return self.calls > self.n


def computed_once(tmp_path_factory, name: str, compute) -> dict:
    """``compute()`` (a JSON-able dict) once per test session, even when pytest-xdist runs
    the tests that need it in several workers: the first worker computes it under a file
    lock in the session's shared temporary directory, the others read it."""
    import fcntl
    import json

    shared = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        shared = shared.parent  # the session's directory, above each worker's own
    path = shared / f"{name}.json"
    with open(shared / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not path.exists():
            path.write_text(json.dumps(compute()))
    return json.loads(path.read_text())


def read_events(run_dir: pathlib.Path) -> list:
    """The TensorBoard events of a run directory as TensorBoard sees them: every event file
    in name order, parsed as TFRecords (8-byte length, 4-byte CRC, data, 4-byte CRC; a
    record cut short by a kill ends its file), with each file's ``SessionLog.START`` at
    step s dropping the earlier events at steps >= s (tensorboardX's ``purge_step``)."""
    import struct

    sys.modules.setdefault("torch", None)  # tensorboardX's optional torch import: skip it
    try:
        from tensorboardX.proto.event_pb2 import Event, SessionLog
    finally:
        if sys.modules.get("torch", 0) is None:
            del sys.modules["torch"]
    kept = []
    for path in sorted(pathlib.Path(run_dir).glob("events.out.tfevents.*")):
        data, i = path.read_bytes(), 0
        while i + 12 <= len(data):
            (n,) = struct.unpack("<Q", data[i : i + 8])
            if i + 12 + n + 4 > len(data):
                break
            event = Event.FromString(data[i + 12 : i + 12 + n])
            i += 12 + n + 4
            if event.session_log.status == SessionLog.START:
                kept = [e for e in kept if e.step < event.step]
            kept.append(event)
    return kept


def tensorboard_scalars(run_dir: pathlib.Path, prefix: tuple = ("train/", "val/")) -> dict:
    """``{(tag, step): value}`` of the scalar events whose tag starts with ``prefix``."""
    return {
        (v.tag, e.step): v.simple_value
        for e in read_events(run_dir)
        for v in e.summary.value
        if v.WhichOneof("value") == "simple_value" and v.tag.startswith(prefix)
    }


def metrics_scalars(run_dir: pathlib.Path) -> dict:
    """``{(split/metric, step): value}`` of metrics.jsonl's finite numbers (what
    :func:`tensorboard_scalars` should hold), each rounded to float32 as events store it."""
    import json
    import math

    import numpy as np

    out = {}
    for line in (pathlib.Path(run_dir) / "metrics.jsonl").read_text().splitlines():
        record = json.loads(line)
        for key, value in record.items():
            if key not in ("step", "epoch", "split") and isinstance(value, float | int):
                if math.isfinite(value):
                    out[(f"{record['split']}/{key}", record["step"])] = float(np.float32(value))
    return out
