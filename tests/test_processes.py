"""Multi-process runs with real processes: ``dlcore run ... --processes 2`` starts 2 local
processes of 4 forced host CPU devices each, joined by ``jax.distributed`` over the
loopback address, and must equal 1 process of 8 devices.

The runs (a tiny MLP with dropout and batch norm, 50 steps) are made once for the module:
- ``ref``: 1 process, 8 devices, step mode;
- ``two``: 2 processes x 4 devices, step mode; ``scan``: the same in epoch-scan mode;
- ``stopped``: 2 processes x 4 devices stopped by a SIGTERM to the launcher, then resumed
  by 1 process of 8 devices.

Tolerance: as in ``tests/test_data_parallel.py``, 1e-5 relative on each logged loss. The
processes hold the same 8 devices, but the cross-process all-reduce (gloo) adds the
partial sums in another order than the in-process one, so results agree to float32
rounding, not bit for bit (measured: 3e-7 relative).
"""

import json
import pathlib
import signal

import numpy as np
import pytest

from tests.helpers import (
    committed_steps,
    metrics_scalars,
    run_cli,
    start_and_interrupt,
    tensorboard_scalars,
    write_toml,
)

RTOL = 1e-5
TINY = {
    "name": "tiny",
    "seed": 0,
    "data": {"name": "xor", "n_samples": 250, "noise": 0.2},
    "model": {"name": "mlp", "widths": [16], "dropout": 0.25, "norm": "batch"},
    "optimizer": {"name": "adam", "learning_rate": 0.01},
    # Step mode unless a run sets scan (the default is scan). 5 epochs of 10 steps: each
    # step of a 2-process run waits on a cross-process all-reduce (~0.1 s on a loaded CPU),
    # and every logged step is compared: a layout that changes the sums shows from step 1.
    "train": {"epochs": 5, "batch_size": 16, "log_every": 1, "mode": "step"},
}
EIGHT = {"XLA_FLAGS": "--xla_force_host_platform_device_count=8"}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("processes")
    config = write_toml(root / "tiny.toml", TINY)
    cache = root / "xla-cache"  # the runs of one layout compile the same programs
    made = {}

    def run(name, *args, env=None):
        done = run_cli(
            "run",
            str(config),
            "--run-dir",
            str(root / name),
            "--quiet",
            *args,
            env=env,
            cache_dir=cache,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        made[name] = done

    run("ref", "--devices", "8", env=EIGHT)
    run("two", "--devices", "8", "--processes", "2")
    run("scan", "--devices", "8", "--processes", "2", "--set", "train.mode=scan")
    code, err = start_and_interrupt(
        config,
        root / "stopped",
        cache,
        signal.SIGTERM,
        ready=lambda d: any(step >= 20 for step in committed_steps(d)),
        extra_args=("--devices", "8", "--processes", "2"),
    )
    stopped = json.loads((root / "stopped" / "summary.json").read_text())
    made["stopped"] = (code, err, stopped, committed_steps(root / "stopped"))
    resumed = run_cli("resume", str(root / "stopped"), "--quiet", env=EIGHT, cache_dir=cache)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    return root, config, made


def records(run_dir: pathlib.Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def assert_same_training(run_dir: pathlib.Path, ref_dir: pathlib.Path) -> None:
    got, want = records(run_dir), records(ref_dir)
    assert [(r["step"], r["split"]) for r in got] == [(r["step"], r["split"]) for r in want]
    np.testing.assert_allclose([r["loss"] for r in got], [r["loss"] for r in want], rtol=RTOL)
    final = json.loads((run_dir / "summary.json").read_text())["final"]
    ref_final = json.loads((ref_dir / "summary.json").read_text())["final"]
    for split, metrics in ref_final.items():
        for name, value in metrics.items():
            np.testing.assert_allclose(final[split][name], value, rtol=RTOL, err_msg=name)


@pytest.mark.parametrize("name", ["two", "scan"])
def test_two_processes_of_four_devices_equal_one_process_of_eight(runs, name):
    root, _, _ = runs
    assert_same_training(root / name, root / "ref")
    summary = json.loads((root / name / "summary.json").read_text())
    assert summary["timing"]["processes"] == 2 and summary["timing"]["devices"] == 8
    assert summary["timing"]["mode"] == ("scan" if name == "scan" else "step")
    ref = json.loads((root / "ref" / "summary.json").read_text())["timing"]
    assert ref["processes"] == 1 and ref["devices"] == 8


def test_only_process_zero_writes_the_run_directory(runs):
    root, _, made = runs
    two, ref = root / "two", root / "ref"

    def files(run_dir):  # down to the checkpoint steps; their insides are orbax's
        paths = [p.relative_to(run_dir) for p in run_dir.rglob("*")]
        # an event file's name holds its start time and host: compare the kind of file
        named = ["events.out.tfevents" if p.name.startswith("events.") else str(p) for p in paths]
        return sorted(name for name, p in zip(named, paths, strict=True) if len(p.parts) <= 3)

    assert files(two) == files(ref)
    # one TensorBoard event file, process 0's, holding every record once
    assert len(list(two.glob("events.out.tfevents.*"))) == 1
    assert tensorboard_scalars(two) == metrics_scalars(two)
    # Every record once: a second writer would have appended each line twice.
    assert (
        len(records(two))
        == len(records(ref))
        == len({(r["step"], r["split"]) for r in records(two)})
    )
    assert "process=1" not in (two / "checkpoints" / "orbax.log").read_text()
    # Process 1's output went nowhere; process 0 printed the run's lines once.
    assert made["two"].stdout.count("run directory:") == 1
    assert "[Gloo]" not in made["two"].stdout  # gloo's connection lines are dropped
    # orbax wrote each process's shards into the one checkpoint
    step = max(committed_steps(two))
    shards = sorted(
        p.name
        for p in (two / "checkpoints" / "latest" / str(step) / "state").glob("ocdbt.process_*")
    )
    assert shards == ["ocdbt.process_0", "ocdbt.process_1"]


def test_a_sigterm_stops_both_processes_at_one_committed_step_and_one_process_resumes(runs):
    root, _, made = runs
    code, err, summary, committed = made["stopped"]
    assert code == 143, err[-3000:]
    assert summary["status"] == "interrupted" and summary["step"] in committed
    assert "dlcore resume" in err
    # resumed by one process of 8 devices: the uninterrupted run's results
    assert_same_training(root / "stopped", root / "ref")
    processes = json.loads((root / "stopped" / "summary.json").read_text())["processes"]
    assert [p["processes"] for p in processes] == [2, 1]


@pytest.mark.parametrize(
    "args, says",
    [
        (("--processes", "2"), "train.devices: --processes 2 splits the run's devices"),
        (("--processes", "3", "--devices", "8"), "give --devices a multiple of 3"),
        (("--processes", "2", "--devices", "all"), "(asked: all)"),
    ],
)
def test_a_device_count_that_does_not_split_exits_2_before_any_process(runs, args, says, capsys):
    # In-process: the launcher refuses before it starts anything (a real process of this
    # check costs ~3 s of imports; the real processes above run the launcher itself).
    from dlcore.cli.main import main

    root, config, _ = runs
    bad = root / "bad"
    code = main(["--no-compile-cache", "run", str(config), "--run-dir", str(bad), *args])
    assert code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {config}: ") and says in lines[0]
    assert not bad.exists()


def test_a_process_without_its_place_exits_2(runs, tmp_path):
    _, config, _ = runs
    env = {"DLCORE_NUM_PROCESSES": "2", "DLCORE_PROCESS_ID": "5"}
    done = run_cli("run", str(config), "--run-dir", str(tmp_path / "x"), env=env)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "error: DLCORE_COORDINATOR_ADDRESS must name process 0's host:port"
    ]
    env["DLCORE_COORDINATOR_ADDRESS"] = "127.0.0.1:1"
    done = run_cli("run", str(config), "--run-dir", str(tmp_path / "x"), env=env)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "error: DLCORE_PROCESS_ID='5': expected 0 to 1 (DLCORE_NUM_PROCESSES=2)"
    ]
    done = run_cli("run", str(config), "--run-dir", str(tmp_path / "x"), "--distributed")
    assert done.returncode == 2
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("error: --distributed: no SLURM, Open MPI, Cloud TPU or Kubernetes")
    assert not (tmp_path / "x").exists()


def test_each_process_reads_only_the_rows_of_its_own_devices(monkeypatch):
    """The arithmetic behind "each process reads its own shard": with 2 processes of 4
    devices, process 1 gathers the second half of every batch's rows, and nothing else
    (the equality tests above show those are the right rows)."""
    import types

    import jax

    from dlcore.engine import sharding

    devices = [types.SimpleNamespace(process_index=p) for p in (0, 0, 0, 0, 1, 1, 1, 1)]
    mesh = types.SimpleNamespace(devices=np.array(devices, dtype=object), size=8)
    where = sharding.DataParallel(mesh)
    rows = np.arange(16) * 3
    monkeypatch.setattr(jax, "process_count", lambda: 2)
    for process, half in ((0, rows[:8]), (1, rows[8:])):
        monkeypatch.setattr(sharding, "_me", lambda p=process: p)
        np.testing.assert_array_equal(where.local_rows(rows), half)
    monkeypatch.setattr(jax, "process_count", lambda: 1)
    np.testing.assert_array_equal(where.local_rows(rows), rows)  # one process reads all
