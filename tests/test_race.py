"""The race (``python -m benchmarks race``) without racing: options, commands, the parsing of
what each process reports, the table and the JSON, and the race's NumPy data against dlcore's.

Nothing here starts a training process, and nothing needs torch or keras (CI has neither).
"""

import json
import math

import numpy as np
import pytest

from benchmarks import __main__ as bench_main
from benchmarks.race import measure, report
from benchmarks.race.scripts import plain_data
from benchmarks.race.tasks import TASKS, Shrink, command, parse_tasks
from dlcore.data import stdlib_text
from dlcore.data.digits import DigitsConfig, resize_matrix
from dlcore.data.iterator import BatchOrder
from dlcore.data.registry import load_dataset


def test_tasks_option_parses_lists_and_all_and_names_the_valid_ones():
    assert parse_tasks("lenet, mlp,lenet") == ["lenet", "mlp"]
    assert parse_tasks("all") == list(TASKS)
    with pytest.raises(ValueError, match="unknown race task 'cnn'; valid: all, charlm, lenet"):
        parse_tasks("mlp,cnn")


@pytest.mark.parametrize(
    "option, message",
    [
        (["--tasks", "gan"], "unknown race task 'gan'"),
        (["--charlm-epochs", "0"], "--charlm-epochs must be >= 1; got 0"),
    ],
)
def test_bad_race_options_exit_2_before_anything_runs(option, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        bench_main.main(["mlp", "race", *option])  # the mlp suite would run first
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_charlm_shrink_reaches_dlcore_and_the_scripts_but_not_other_tasks(tmp_path):
    shrink = Shrink(epochs=1, train_files=5)
    argv, _ = command(TASKS["charlm"], "dlcore", tmp_path / "run", shrink, threads=2)
    assert argv[-9:] == [
        "run",
        "experiments/charlm_lstm.toml",
        "--quiet",
        "--run-dir",
        str(tmp_path / "run"),
        "--set",
        "train.epochs=1",
        "--set",
        "data.max_train_files=5",
    ]
    argv, env = command(TASKS["charlm"], "keras", tmp_path, shrink, threads=2)
    assert argv[-5:] == [
        str(measure.ROOT / "benchmarks/race/scripts/train_keras_charlm.py"),
        "--epochs",
        "1",
        "--train-files",
        "5",
    ]
    assert env["KERAS_BACKEND"] == "jax"
    argv, env = command(TASKS["mlp"], "torch", tmp_path, shrink, threads=1)
    assert argv[-1].endswith("train_torch_mlp.py") and env["RACE_THREADS"] == "1"
    with pytest.raises(ValueError, match="--charlm-train-files must be >= 1"):
        Shrink(train_files=0)


def _proc(stderr: list[str], stdout: list[str] = (), code: int = 0) -> dict:
    return {
        "wall_s": 9.0,
        "returncode": code,
        "stderr": [(float(i + 1), line) for i, line in enumerate(stderr)],
        "stdout": [(8.0, line) for line in stdout],
    }


def test_dlcore_run_figures_come_from_its_val_lines_and_summary(tmp_path):
    lines = [
        "training: step 0 of 78",
        "val   step     39 (epoch 1) | accuracy 0.9600 | loss 0.2000 | zero_one 0.0400",
        "val   step     78 (epoch 2) | accuracy 0.9800 | loss 0.1000 | zero_one 0.0200",
    ]
    compile_s = {"train_scan": {"lower_s": 0.25, "compile_s": 0.25}, "eval_step": {}}
    summary = {
        "timing": {"wall_s": 5, "train_s": 2.0, "eval_s": 0.1, "compile": compile_s},
        "final": {"val": {"accuracy": 0.98}, "test": {"accuracy": 0.97}},
    }
    (tmp_path / "summary.json").write_text(json.dumps(summary))
    got = measure.read_dlcore(TASKS["mlp"], _proc(lines), tmp_path)
    assert got["ok"] and got["values"] == [0.96, 0.98] and got["target_epoch"] == 2
    assert got["wall_to_target_s"] == 3.0  # the second val line's arrival
    assert got["epoch_s"] == 1.0 and got["train_s"] == 2.5
    assert got["train_to_target_s"] == 0.5 + 2 * 1.0
    assert got["final"] == {"val": 0.98, "test": 0.97}
    failed = measure.read_dlcore(TASKS["mlp"], _proc(["Traceback", "boom"], code=1), tmp_path)
    assert not failed["ok"] and failed["stderr_tail"] == ["Traceback", "boom"]


def test_script_figures_come_from_its_epoch_lines_and_result_line():
    result = {"epoch_train_s": [3.0, 1.0, 2.0], "train_s": 6.0, "final": {"val": 2.1, "test": 2}}
    stdout = ["noise", plain_data.RESULT_PREFIX + json.dumps(result)]
    lines = ["epoch 1 | bits_per_char 2.5000", "warning", "epoch 2 | bits_per_char 1.9"]
    lines.append("epoch 3 | bits_per_char nan")
    got = measure.read_script(TASKS["charlm"], _proc(lines, stdout))
    assert got["ok"] and got["target_epoch"] == 2 and got["wall_to_target_s"] == 3.0
    assert got["train_to_target_s"] == 4.0 and got["epoch_s"] == 2.0
    assert got["first_epoch_s"] == 3.0 and math.isnan(got["values"][2])
    assert not measure.read_script(TASKS["charlm"], _proc(lines))["ok"]  # no result line


def _run(framework: str, wall: float, to_target: float | None, ok: bool = True) -> dict:
    if not ok:
        return {"task": "mlp", "framework": framework, "ok": False}
    return {
        "task": "mlp",
        "framework": framework,
        "ok": True,
        "wall_s": wall,
        "wall_to_target_s": to_target,
        "train_s": wall / 2,
        "train_to_target_s": None if to_target is None else to_target / 2,
        "epoch_s": 0.1,
        "first_epoch_s": 0.5,
        "target_epoch": None if to_target is None else 3,
        "final": {"val": 0.97, "test": float("nan")},
    }


def test_medians_speedups_table_and_json(tmp_path):
    runs = [
        _run("dlcore", 4.0, 2.0),
        _run("dlcore", 6.0, 3.0),
        _run("torch", 10.0, 5.0),
        _run("torch", 10.0, None),
        _run("keras", 6.0, None),
        _run("keras", 0, 0, ok=False),
    ]
    medians = report.aggregate(runs)
    assert medians["mlp"]["dlcore"]["wall_s"] == 5.0
    assert medians["mlp"]["torch"]["reached"] == 1 and medians["mlp"]["keras"]["failed"] == 1
    ratios = report.speedups(medians)
    assert ratios["mlp"]["torch"]["wall_to_target_s"] == 2.0  # 5.0 / median(2.0, 3.0)
    assert ratios["mlp"]["keras"]["wall_to_target_s"] is None
    results = {
        "date": "2026-12-05T00:00:00+00:00",
        "system": {
            "machine": {"cpu": "Test CPU", "cores": 2, "python": "3.11"},
            "versions": {"dlcore": "0.1", "jax": "0.10", "torch": "2.13", "keras": "3.15"},
        },
        "native": {"available": False, "reason": "no compiler"},
        "torch_threads": 2,
        "repeats": 2,
        "shrink": {},
        "runs": runs,
        "medians": medians,
        "speedups": ratios,
    }
    text = report.markdown(results)
    assert "| mlp | torch (>= 2.0x) | 2.00x | 2.00x |" in text and "| yes |" in text
    assert "| mlp | keras (>= 1.5x) | - | 1.20x |" in text and "| n/a |" in text
    assert "| 1/2 |" in text and "(1 failed)" in text and "unavailable (no compiler)" in text
    path, md = report.write(results, report.results_path(tmp_path / "out"))
    assert json.loads(path.read_text())["runs"][0]["final"]["test"] is None  # NaN -> null
    assert md.read_text() == text
    runs[0]["native"] = {"used": ["conv", "max_pool"]}
    assert report.native_kernels(runs) == ["mlp: conv, max_pool (1), none (1)"]


def test_race_data_lists_and_batch_orders_are_dlcore_s():
    assert plain_data.TRAIN_FILES == stdlib_text.TRAIN_FILES
    assert (plain_data.VAL_FILES, plain_data.TEST_FILES) == (
        stdlib_text.VAL_FILES,
        stdlib_text.TEST_FILES,
    )
    np.testing.assert_array_equal(plain_data.resize_matrix(8, 32), resize_matrix(8, 32))
    for epoch in (0, 3):
        np.testing.assert_array_equal(
            plain_data.epoch_batches(1257, 32, 0, epoch), BatchOrder(1257, 32, 0).indices(epoch)
        )
    np.testing.assert_array_equal(
        plain_data.stream_batches(1000, 32), BatchOrder(1000, 32, 0, "streams").indices(0)
    )


def test_race_char_windows_match_dlcore_s():
    ids = np.arange(12)
    for pad_last in (False, True):
        mine = plain_data._windows(ids, 5, pad_last)
        theirs = stdlib_text.windows(ids.astype(np.int32), 5, pad_last)
        np.testing.assert_array_equal(mine[0], theirs.x)
        np.testing.assert_array_equal(mine[1], theirs.y)


def test_race_digits_are_dlcore_s_split_resize_and_channel_mean():
    # LeNet's data: the split, the bilinear resize and the preprocessing all take part.
    ours = plain_data.digits_images(32)
    theirs = load_dataset(DigitsConfig(layout="image", image_size=32, preprocess="channel_mean"))
    for name in ("train", "val", "test"):
        split = theirs.split(name)
        np.testing.assert_allclose(ours[name][0], split.x, rtol=1e-4, atol=1e-5)
        np.testing.assert_array_equal(ours[name][1], split.y)
