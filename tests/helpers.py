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
