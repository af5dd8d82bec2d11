"""Run directories under faults: a second writer, a stale lock, paths that cannot be made,
resumes past the end or with an edited config, a damaged metrics.jsonl, strict JSON.

Real processes and real files. Two tiny runs are shared: ``ref`` trains 4 epochs without
stopping; ``half`` is the same config trained for 2 (with ``--no-tensorboard``). A copy of
``half`` whose summary is deleted and whose ``train.epochs`` is set back to 4 is a run
stopped at its epoch-2 checkpoint (the log window divides the epoch, so nothing is pending
there): resuming it must end exactly as ``ref`` did.
"""

import json
import math
import os
import pathlib
import shutil
import socket
import subprocess
import sys
import tomllib
import types

import pytest

from dlcore.cli.main import main
from dlcore.config.loading import load_config, set_path
from dlcore.engine.loop import fit
from dlcore.experiment import build
from dlcore.runs.errors import RunDirError
from dlcore.runs.lock import LOCK_NAME, RunLock
from dlcore.runs.run_dir import RunDir, config_changes, strict_json
from tests.helpers import metrics_scalars, run_cli, tensorboard_scalars, write_toml

STEPS_PER_EPOCH = 14  # 140 training examples of xor(200) in batches of 10
CONFIG = {
    "name": "faults",
    "seed": 1,
    "data": {"name": "xor", "n_samples": 200},
    "model": {"name": "mlp", "widths": [4]},
    "optimizer": {"name": "adam", "learning_rate": 0.01},
    "train": {"epochs": 4, "batch_size": 10, "log_every": 7},
}
HOST = socket.gethostname()


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("faults")
    cfg = write_toml(root / "faults.toml", CONFIG)
    cache = root / "xla-cache"
    for name, extra in (("ref", []), ("half", ["--set", "train.epochs=2", "--no-tensorboard"])):
        proc = run_cli(
            "run", str(cfg), "--run-dir", str(root / name), "--quiet", *extra, cache_dir=cache
        )
        assert proc.returncode == 0, proc.stderr
    return types.SimpleNamespace(
        root=root, cfg=cfg, cache=cache, ref=root / "ref", half=root / "half"
    )


def stopped_copy(src: pathlib.Path, dst: pathlib.Path, edits: dict) -> pathlib.Path:
    """A copy of a finished run made to look stopped (no summary), its config edited."""
    shutil.copytree(src, dst)
    (dst / "summary.json").unlink()
    raw = tomllib.loads((dst / "config.toml").read_text())
    for key, value in edits.items():
        set_path(raw, key.split("."), value, "test")
    write_toml(dst / "config.toml", raw)
    return dst


def resume(runs, run_dir) -> subprocess.CompletedProcess:
    return run_cli("resume", str(run_dir), "--quiet", cache_dir=runs.cache)


def warnings_of(proc) -> list[str]:
    return [line for line in proc.stderr.splitlines() if line.startswith("warning:")]


# -- one writer per run directory ---------------------------------------------------------


@pytest.mark.parametrize("command", ["resume", "run"])
def test_a_second_writer_is_refused_naming_the_holder(runs, tmp_path, command):
    run_dir = stopped_copy(runs.half, tmp_path / "busy", {"train.epochs": 4})
    before = (run_dir / "metrics.jsonl").read_bytes()
    with RunLock(run_dir):  # held by this process, as a running `dlcore resume` would
        if command == "resume":
            proc = resume(runs, run_dir)
        else:
            proc = run_cli(
                "run", str(runs.cfg), "--run-dir", str(run_dir), "--quiet", cache_dir=runs.cache
            )
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.splitlines() == [
        f"error: {run_dir}: another dlcore process (pid {os.getpid()} on host {HOST}) is "
        "writing this run directory"
    ]
    assert (run_dir / "metrics.jsonl").read_bytes() == before
    assert not (run_dir / "summary.json").exists() and not (run_dir / LOCK_NAME).exists()


def test_a_stale_lock_of_a_dead_process_is_taken_over_with_one_warning(runs, tmp_path):
    run_dir = stopped_copy(runs.half, tmp_path / "stale", {})
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()  # reaped: its pid names no process now
    (run_dir / LOCK_NAME).write_text(json.dumps({"pid": dead.pid, "host": HOST}))
    proc = resume(runs, run_dir)
    assert proc.returncode == 0, proc.stderr
    assert warnings_of(proc) == [
        f"warning: {run_dir}: taking over a stale lock left by pid {dead.pid} on host {HOST} "
        "(that process is gone)"
    ]
    assert not (run_dir / LOCK_NAME).exists()  # released when the resume finished


def test_the_lock_is_released_on_an_exception_and_excludes_a_second_holder(tmp_path):
    with pytest.raises(RuntimeError), RunLock(tmp_path):
        with pytest.raises(RunDirError, match=f"pid {os.getpid()} on host"):
            RunLock(tmp_path).acquire()
        raise RuntimeError("training failed")
    assert not (tmp_path / LOCK_NAME).exists()
    with RunLock(tmp_path):  # free again; no stale warning: the file was removed
        assert json.loads((tmp_path / LOCK_NAME).read_text())["pid"] == os.getpid()


# -- making the run directory -------------------------------------------------------------


def chattr(path: pathlib.Path, flag: str) -> None:
    if subprocess.run(["chattr", flag, str(path)], capture_output=True).returncode != 0:
        pytest.skip("chattr +i is not available here (root ignores chmod, so no fault)")


def taken_file(tmp):
    (tmp / "taken").write_text("not a directory")
    return tmp / "taken", "a file of that name exists"


def file_component(tmp):
    (tmp / "taken").write_text("not a directory")
    return tmp / "taken" / "run", "Not a directory"


def name_too_long(tmp):
    return tmp / "new" / ("n" * 256), "File name too long"


def immutable_parent(tmp):
    (tmp / "frozen").mkdir()
    chattr(tmp / "frozen", "+i")
    return tmp / "frozen" / "run" / "deeper", f"Operation not permitted ({tmp}/frozen/run)"


def immutable_run_dir(tmp):
    (tmp / "frozen").mkdir()
    chattr(tmp / "frozen", "+i")
    return tmp / "frozen", None  # it exists, but nothing can be written in it


FAULTS = [taken_file, file_component, name_too_long, immutable_parent, immutable_run_dir]


@pytest.mark.parametrize("fault", FAULTS, ids=lambda f: f.__name__)
def test_a_run_dir_that_cannot_be_made_is_one_line_and_leaves_nothing(
    runs, tmp_path, capsys, fault
):
    try:
        run_dir, reason = fault(tmp_path)
        before = sorted(tmp_path.rglob("*"))
        code = main(["--no-compile-cache", "run", str(runs.cfg), "--run-dir", str(run_dir)])
        after = sorted(tmp_path.rglob("*"))
    finally:
        subprocess.run(["chattr", "-i", str(tmp_path / "frozen")], capture_output=True)
    err = capsys.readouterr().err
    expected = (
        f"error: {run_dir}: cannot create the run directory: {reason}"
        if reason
        else f"error: {run_dir}: cannot write the run directory: Operation not permitted"
    )
    assert (code, err.splitlines()) == (2, [expected])
    assert after == before


def test_the_cli_reports_a_run_dir_fault_in_one_line_and_exit_status_2(runs, tmp_path):
    run_dir, reason = file_component(tmp_path)
    proc = run_cli("run", str(runs.cfg), "--run-dir", str(run_dir), cache_dir=runs.cache)
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [
        f"error: {run_dir}: cannot create the run directory: {reason}"
    ]


# -- resume edge cases --------------------------------------------------------------------


def test_resume_past_the_configured_end_finishes_without_training(runs, tmp_path):
    run_dir = stopped_copy(runs.ref, tmp_path / "past", {"train.epochs": 2})
    metrics = (run_dir / "metrics.jsonl").read_text()
    proc = resume(runs, run_dir)
    assert proc.returncode == 0, proc.stderr
    end, step = 2 * STEPS_PER_EPOCH, 4 * STEPS_PER_EPOCH
    assert (
        f"{run_dir}: already at step {step}, past the configured end ({end} steps); "
        "nothing to train" in proc.stderr.splitlines()
    )
    assert warnings_of(proc) == [
        f"warning: {run_dir}/config.toml: edited since the run last trained; applying "
        "train.epochs: 4 -> 2"
    ]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["step"] == step
    assert set(summary["final"]) >= {"val", "test"}
    assert (run_dir / "metrics.jsonl").read_text() == metrics
    again = resume(runs, run_dir)  # finished now: nothing to do, no warning
    assert again.returncode == 0 and warnings_of(again) == []


def test_a_config_edit_that_keeps_the_structure_is_applied_and_named(runs, tmp_path):
    edits = {"optimizer.learning_rate": 0.001, "train.epochs": 4}
    run_dir = stopped_copy(runs.half, tmp_path / "edited", edits)
    # As an older dlcore recorded it: without fields added since, which resolve to their
    # defaults now and are not edits.
    for name in ("config.toml", "config.resolved.json"):
        path = run_dir / name
        raw = (
            json.loads(path.read_text())
            if name.endswith("json")
            else tomllib.loads(path.read_text())
        )
        for section, field in (("train", "devices"), ("train", "shard_params")):
            del raw[section][field]
        raw["optimizer"].pop("coupled_weight_decay", None)
        path.write_text(json.dumps(raw)) if name.endswith("json") else write_toml(path, raw)
    proc = resume(runs, run_dir)
    assert proc.returncode == 0, proc.stderr
    assert warnings_of(proc) == [
        f"warning: {run_dir}/config.toml: edited since the run last trained; applying "
        "optimizer.learning_rate: 0.01 -> 0.001; train.epochs: 2 -> 4"
    ]
    resolved = json.loads((run_dir / "config.resolved.json").read_text())
    assert resolved["optimizer"]["learning_rate"] == 0.001
    # The resumed run trained with the new rate: it matches the same resume done here in
    # this process from a config that says 0.001, and not the 0.01 reference.
    twin = stopped_copy(runs.half, tmp_path / "twin", edits)
    cfg = load_config(twin / "config.toml")
    experiment = build(cfg)
    fit(experiment.task, experiment.data, cfg.train, cfg.seed, run=RunDir(twin), resume=True)
    resumed = RunDir(run_dir).read_metrics()
    assert resumed == RunDir(twin).read_metrics()
    assert resumed != RunDir(runs.ref).read_metrics()
    assert resumed[-1]["step"] == 4 * STEPS_PER_EPOCH
    # `half` ran with --no-tensorboard and wrote no events; this resume (without the flag)
    # wrote the steps it trained, and the in-process fit (no EventLog attached) none
    assert not list(runs.half.glob("events.out.tfevents.*"))
    assert not list(twin.glob("events.out.tfevents.*"))
    after = {k: v for k, v in metrics_scalars(run_dir).items() if k[1] > 2 * STEPS_PER_EPOCH}
    assert tensorboard_scalars(run_dir) == after and after


def test_a_corrupt_metrics_line_is_reported_and_the_resume_matches_an_unbroken_run(runs, tmp_path):
    run_dir = stopped_copy(runs.half, tmp_path / "corrupt", {"train.epochs": 4})
    lines = (run_dir / "metrics.jsonl").read_text().splitlines(keepends=True)
    lines.insert(3, '{"step": 21, "split": "tr\x00\n')  # damaged in the middle: line 4
    (run_dir / "metrics.jsonl").write_text("".join(lines))
    proc = resume(runs, run_dir)
    assert proc.returncode == 0, proc.stderr
    assert f"warning: {run_dir}/metrics.jsonl: skipped 1 unreadable line (line 4)" in (
        warnings_of(proc)
    )
    assert (run_dir / "metrics.jsonl").read_text() == (runs.ref / "metrics.jsonl").read_text()


def test_truncate_keeps_every_readable_record_up_to_the_step(tmp_path, capsys):
    run = RunDir(tmp_path)
    good = [{"step": s, "split": "train", "loss": 1.0 / s} for s in (5, 10, 15, 20, 25)]
    text = [json.dumps(r) + "\n" for r in good]
    text.insert(2, "garbage\n")
    text.insert(4, '["not", "a record"]\n')
    run.metrics.write_text("".join(text) + '{"step": 30, "spl')  # a torn last line
    assert run.truncate_metrics(20) == [3, 5, 8]
    assert capsys.readouterr().err.splitlines() == [
        f"warning: {run.metrics}: skipped 3 unreadable lines (lines 3, 5, 8)"
    ]
    assert run.metrics.read_text() == "".join(json.dumps(r) + "\n" for r in good[:4])


# -- strict JSON --------------------------------------------------------------------------


def test_strict_json_writes_non_finite_floats_as_null():
    value = {"a": math.nan, "b": [math.inf, -math.inf, 1.5], "c": {"d": (math.nan,)}, "e": 2}
    assert json.loads(strict_json(value)) == {
        "a": None,
        "b": [None, None, 1.5],
        "c": {"d": [None]},
        "e": 2,
    }


def refuse_constant(name):
    raise ValueError(f"non-standard JSON constant {name}")


def test_every_json_file_of_a_run_is_strict_json(runs):
    files = [*runs.ref.rglob("*.json"), *runs.ref.rglob("*.jsonl")]
    names = {f.name for f in files}
    assert {"summary.json", "dataset.json", "config.resolved.json", "metrics.jsonl"} <= names
    for path in files:
        for line in [path.read_text()] if path.suffix == ".json" else path.read_text().splitlines():
            json.loads(line, parse_constant=refuse_constant)
    assert not (runs.ref / LOCK_NAME).exists()


def test_config_changes_name_dotted_fields_with_old_and_new_values():
    old = {"model": {"widths": [4], "activation": "relu"}, "seed": 0}
    new = {"model": {"widths": [4], "activation": "tanh", "dropout": 0.1}, "seed": 0}
    assert config_changes(old, new) == [
        'model.activation: "relu" -> "tanh"',
        "model.dropout: (unset) -> 0.1",
    ]
