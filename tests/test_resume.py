"""Stop and resume with real processes: SIGKILL and SIGTERM mid-training, then
`dlcore resume`, must end bit-identical to a run that was never interrupted."""

import json
import signal

import jax
import numpy as np
import pytest

from dlcore.config.loading import load_config
from dlcore.experiment import build, run_experiment
from dlcore.runs.checkpoint import CheckpointStore
from dlcore.runs.run_dir import RunDir
from tests import helpers
from tests.helpers import (
    committed_steps,
    metrics_scalars,
    run_cli,
    run_main,
    tensorboard_scalars,
    write_toml,
)

# Step mode with dropout and batch norm, so the RNG stream, the BN running statistics and
# Adam's moments must all come back exactly. 1050 steps (175 an epoch) leave time to
# interrupt: a --quiet run prints a line per epoch, and the signals below go out at the
# line of epoch 2 or 3, with at least 3 epochs to go.
CONFIG = {
    "name": "resume",
    "seed": 3,
    "data": {"name": "xor", "n_samples": 2000},
    "model": {"name": "mlp", "widths": [16], "dropout": 0.2, "norm": "batch"},
    "optimizer": {"name": "adam", "learning_rate": 0.01},
    "train": {
        "epochs": 6,
        "batch_size": 8,
        "mode": "step",
        "log_every": 10,
        "checkpoint_every": 100,
        "keep_checkpoints": 2,
    },
}


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("resume")
    cfg_path = write_toml(root / "resume.toml", CONFIG)
    # The uninterrupted runs are made in this process (~3 s less than a process each); the
    # runs that are stopped and resumed are real processes.
    run_experiment(load_config(cfg_path), root / "ref")
    return root, cfg_path, root / "xla-cache"


def logged_steps(run_dir):
    return RunDir(run_dir).read_metrics()


def start_and_interrupt(root, cfg_path, cache, name, sig, ready):
    """Starts a run in ``root / name`` and signals it once ``ready`` (tests.helpers)."""
    run_dir = root / name
    code, printed = helpers.start_and_interrupt(cfg_path, run_dir, cache, sig, ready)
    return run_dir, code, printed


def final_state(run_dir, cfg_path):
    cfg = load_config(cfg_path)
    built = build(cfg)
    data, task = built.data, built.task
    template = task.init(jax.random.PRNGKey(0), {"x": data.train.x[:8], "y": data.train.y[:8]})
    store = CheckpointStore(run_dir / "checkpoints" / "latest", keep=2)
    state, _ = store.restore(template)
    store.close()
    return state


def assert_identical_runs(run_dir, ref_dir, cfg_path, processes):
    a, b = final_state(run_dir, cfg_path), final_state(ref_dir, cfg_path)
    leaves_a, leaves_b = jax.tree.leaves_with_path(a), jax.tree.leaves(b)
    assert len(leaves_a) == len(leaves_b)
    for (path, x), y in zip(leaves_a, leaves_b, strict=True):
        assert np.array_equal(np.asarray(x), np.asarray(y)), jax.tree_util.keystr(path)
    assert RunDir(run_dir).read_metrics() == RunDir(ref_dir).read_metrics()
    # TensorBoard goes on in a new event file that purges what the resume logs again:
    # no step is shown twice, none is missing
    assert tensorboard_scalars(run_dir) == metrics_scalars(run_dir) == metrics_scalars(ref_dir)
    assert len(list(run_dir.glob("events.out.tfevents.*"))) == 2  # before and after
    summary = json.loads((run_dir / "summary.json").read_text())
    reference = json.loads((ref_dir / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["step"] == reference["step"]
    assert summary["final"] == reference["final"] and summary["best"] == reference["best"]
    # a SIGKILLed process cannot record itself; a SIGTERMed one does
    assert len(summary["processes"]) == processes


def test_sigkill_then_resume_is_bit_identical(setup):
    root, cfg_path, cache = setup
    run_dir, code, _ = start_and_interrupt(
        root,
        cfg_path,
        cache,
        "killed",
        signal.SIGKILL,
        ready=lambda d: any(s >= 400 for s in committed_steps(d)),
    )
    assert code == -signal.SIGKILL
    assert not (run_dir / "summary.json").exists()
    resumed = run_cli("resume", str(run_dir), "--quiet", cache_dir=cache)
    assert resumed.returncode == 0, resumed.stderr
    assert_identical_runs(run_dir, root / "ref", cfg_path, processes=1)


def test_sigterm_checkpoints_exits_143_and_resumes_bit_identically(setup):
    root, cfg_path, cache = setup
    run_dir, code, err = start_and_interrupt(
        root,
        cfg_path,
        cache,
        "terminated",
        signal.SIGTERM,
        ready=lambda d: any(r["step"] >= 230 for r in logged_steps(d)),
    )
    assert code == 143, err
    assert "dlcore resume" in err
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "interrupted"
    # the stop checkpoint is at the step where the signal arrived
    assert summary["step"] in committed_steps(run_dir)
    resumed = run_cli("resume", str(run_dir), "--quiet", cache_dir=cache)
    assert resumed.returncode == 0, resumed.stderr
    assert_identical_runs(run_dir, root / "ref", cfg_path, processes=2)


def test_resume_of_a_finished_run_changes_nothing(setup):
    root, _, cache = setup
    before = (root / "ref" / "metrics.jsonl").read_text()
    again = run_cli("resume", str(root / "ref"), "--quiet", cache_dir=cache)
    assert again.returncode == 0, again.stderr
    assert (root / "ref" / "metrics.jsonl").read_text() == before


def test_run_into_an_existing_run_dir_is_refused(setup):
    root, cfg_path, _ = setup
    proc = run_main("run", str(cfg_path), "--run-dir", str(root / "ref"))
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"error: {root / 'ref'}: run directory already exists and is not empty; continue it "
        f"with `dlcore resume {root / 'ref'}` or pick another --run-dir"
    ]


def test_scan_mode_sigterm_stops_at_the_next_chunk_and_resumes_bit_identically(setup):
    # The same run in scan mode, 25 steps per compiled call: a SIGTERM is noticed at the
    # end of the chunk it arrives in, the stop is checkpointed there, and resume is exact.
    root, _, cache = setup
    train = {**CONFIG["train"], "mode": "scan", "scan_steps": 25}
    cfg_path = write_toml(root / "scan.toml", {**CONFIG, "name": "scan", "train": train})
    run_experiment(load_config(cfg_path), root / "scan-ref")
    run_dir, code, err = start_and_interrupt(
        root,
        cfg_path,
        cache,
        "scan-terminated",
        signal.SIGTERM,
        ready=lambda d: any(r["step"] >= 230 for r in logged_steps(d)),
    )
    assert code == 143, err
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "interrupted" and summary["step"] % 25 == 0
    assert summary["step"] in committed_steps(run_dir)
    resumed = run_cli("resume", str(run_dir), "--quiet", cache_dir=cache)
    assert resumed.returncode == 0, resumed.stderr
    assert_identical_runs(run_dir, root / "scan-ref", cfg_path, processes=2)
