"""Checkpoints move between device counts: a run stopped on 8 devices (parameters sharded
8 ways) resumes on 1 or on 4, and one stopped on 1 resumes on 4, with the results of the
uninterrupted 1-device run.

The runs happen in one subprocess (``tests/resume_devices_worker.py``) with 8 forced host
CPU devices. The tolerance is the one of ``tests/test_data_parallel.py`` and for the same
reason: on another device count a batch's sums are added in another order, so the runs
agree to float32 rounding (measured: 4.6e-7 relative on the losses, 2.4e-7 on the
parameters), not bit for bit. Resuming on the same device count is bit-identical
(``tests/test_resume.py``).
"""

import json
import os
import subprocess
import sys

import pytest

from tests.helpers import REPO, computed_once, run_cli

RTOL_LOSS, ATOL_PARAMS = 1e-5, 1e-5
CASES = ("8:1", "8:4", "1:4")


@pytest.fixture(scope="module")
def resumed(tmp_path_factory):
    env = dict(
        os.environ,
        JAX_PLATFORMS="cpu",
        XLA_FLAGS="--xla_force_host_platform_device_count=8",
        PYTHONPATH=str(REPO),
    )
    root = tmp_path_factory.mktemp("resume_devices")

    def resume_all() -> dict:
        done = subprocess.run(
            [sys.executable, str(REPO / "tests" / "resume_devices_worker.py"), str(root), *CASES],
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
            cwd=REPO,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        return json.loads(done.stdout)

    return computed_once(tmp_path_factory, "resume_devices", resume_all)


@pytest.mark.parametrize("case", CASES)
def test_a_run_resumed_on_another_device_count_equals_the_uninterrupted_run(resumed, case):
    start, end = case.split(":")
    result = resumed[case]
    assert len(result["losses"]) == len(result["base_losses"]) == 100
    for step, (a, b) in enumerate(zip(result["base_losses"], result["losses"], strict=True), 1):
        where = f"step {step} ({'before' if step <= 40 else 'after'} the move {start} -> {end})"
        assert b == pytest.approx(a, rel=RTOL_LOSS), where
    assert result["param_max_abs_diff"] <= ATOL_PARAMS


def test_resume_on_more_devices_than_there_are_is_one_line(tmp_path):
    cfg = REPO / "experiments" / "xor_mlp.toml"
    run = tmp_path / "run"
    done = run_cli("run", str(cfg), "--set", "train.epochs=1", "--run-dir", str(run), "--quiet")
    assert done.returncode == 0, done.stderr
    (run / "summary.json").unlink()  # as if it had stopped: resume then rebuilds it
    done = run_cli("resume", str(run), "--devices", "64", "--quiet", env={"XLA_FLAGS": ""})
    assert done.returncode == 2
    (line,) = done.stderr.strip().splitlines()
    assert "train.devices: 64 devices asked for but 1 available" in line
