"""The dlcore command in real processes: run, eval, runs, list."""

import json
import platform
import shutil

import pytest

from tests.helpers import REPO, metrics_scalars, read_events, run_cli, tensorboard_scalars


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    run_dir = root / "runs" / "xor"
    proc = run_cli(
        "run",
        str(REPO / "experiments" / "xor_mlp.toml"),
        "--run-dir",
        str(run_dir),
        "--set",
        "train.epochs=4",
        "--set",
        "train.mode=step",
        "--quiet",
        cache_dir=root / "cache",
    )
    assert proc.returncode == 0, proc.stderr
    return root, run_dir, proc


def test_run_writes_the_whole_run_directory(finished_run):
    _, run_dir, proc = finished_run
    for name in ("config.toml", "dataset.json", "metrics.jsonl", "summary.json", "curves.png"):
        assert (run_dir / name).is_file(), name
    assert any((run_dir / "checkpoints" / "latest").iterdir())
    assert any((run_dir / "checkpoints" / "best").iterdir())
    assert "train.epochs" not in (run_dir / "config.toml").read_text()
    assert "epochs = 4" in (run_dir / "config.toml").read_text()
    assert f"run directory: {run_dir}" in proc.stdout
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["traces"]["train_step"] == 1
    if platform.libc_ver()[0] == "glibc":  # per-step mode keeps freed host memory
        assert summary["platform"]["host_malloc"]["M_MMAP_MAX"] == 0
    assert summary["timing"]["steps_per_s"] > 0
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert {r["split"] for r in records} == {"train", "val"}
    assert [r["epoch"] for r in records if r["split"] == "val"] == [1, 2, 3, 4]
    assert f"test: accuracy {summary['final']['test']['accuracy']:.4f}" in proc.stdout


def test_run_writes_tensorboard_events_of_its_metrics_pngs_config_and_hparams(finished_run):
    _, run_dir, _ = finished_run
    # every finite metrics.jsonl value is a scalar at its step (train/loss, val/accuracy...)
    scalars = tensorboard_scalars(run_dir)
    assert scalars == metrics_scalars(run_dir) and ("val/accuracy", 4 * 17) in scalars
    values = {v.tag: v for e in read_events(run_dir) for v in e.summary.value}
    png = values["figures/curves"].image
    assert png.encoded_image_string == (run_dir / "curves.png").read_bytes() and png.width > 0
    text = values["config/text_summary"].tensor.string_val[0].decode()
    assert "epochs = 4" in text and "[optimizer]" in text
    plugins = {v.metadata.plugin_data.plugin_name for v in values.values()}
    assert "hparams" in plugins and "text" in plugins
    summary = json.loads((run_dir / "summary.json").read_text())
    best = values[f"hparams/best_val_{summary['best']['metric']}"].simple_value
    assert best == pytest.approx(summary["best"]["value"])


def test_quiet_logs_one_line_per_validation(finished_run):
    _, _, proc = finished_run
    assert sum(line.startswith("val ") for line in proc.stderr.splitlines()) == 4


@pytest.mark.parametrize("checkpoint", ["latest", "best"])
def test_eval_reproduces_the_recorded_metrics(finished_run, checkpoint):
    root, run_dir, _ = finished_run
    proc = run_cli(
        "eval", str(run_dir), "--split", "val", "--checkpoint", checkpoint, cache_dir=root / "cache"
    )
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout)
    summary = json.loads((run_dir / "summary.json").read_text())
    if checkpoint == "latest":
        assert got["accuracy"] == pytest.approx(summary["final"]["val"]["accuracy"])
        assert got["loss"] == pytest.approx(summary["final"]["val"]["loss"], rel=1e-5)
    else:
        assert got["accuracy"] == pytest.approx(summary["best"]["value"])


def test_runs_lists_the_run_with_its_metrics(finished_run):
    root, run_dir, _ = finished_run
    proc = run_cli("runs", "--root", str(run_dir.parent))
    assert proc.returncode == 0, proc.stderr
    assert "xor" in proc.stdout and "completed" in proc.stdout


def test_list_shows_experiments_and_registries():
    proc = run_cli("list")
    assert proc.returncode == 0, proc.stderr
    for name in ("digits_mlp.toml", "xor_mlp.toml", "mlp", "digits", "spirals", "adam"):
        assert name in proc.stdout


def test_eval_of_a_directory_that_is_not_a_run(tmp_path):
    proc = run_cli("eval", str(tmp_path))
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"error: {tmp_path}: not a dlcore run directory (no config.toml)"


def test_eval_refuses_data_that_differ_from_the_recorded_ones(finished_run, tmp_path):
    root, run_dir, _ = finished_run
    copy = tmp_path / "xor"
    shutil.copytree(run_dir, copy)
    record = json.loads((copy / "dataset.json").read_text())
    assert record["name"] == "xor" and len(record["sha256"]) == 64
    record["sha256"] = "0" * 64  # as if the data set had come out differently here
    (copy / "dataset.json").write_text(json.dumps(record))
    proc = run_cli("eval", str(copy), cache_dir=root / "cache")
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr
    assert lines[0].startswith(f"error: {copy}: the 'xor' data rebuilt here differ from the ones")
