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


def write_toml(path: pathlib.Path, data: dict) -> pathlib.Path:
    path.write_text(tomli_w.dumps(data))
    return path
