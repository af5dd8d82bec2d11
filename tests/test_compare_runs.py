"""examples/compare_runs.py overlays one metric of several runs and says what is missing."""

import importlib.util
import json

import pytest

from tests.helpers import REPO


@pytest.fixture(scope="module")
def compare():
    spec = importlib.util.spec_from_file_location(
        "compare_runs", REPO / "examples" / "compare_runs.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def fake_run(directory, losses):
    directory.mkdir()
    lines = [{"step": 10 * (i + 1), "split": "train", "loss": v} for i, v in enumerate(losses)]
    lines.append({"step": 30, "split": "val", "loss": 9.0, "accuracy": 0.5})
    (directory / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    return directory


def test_reads_the_chosen_split_and_draws_one_png(compare, tmp_path):
    a = fake_run(tmp_path / "resnet", [2.0, 1.0, 0.5])
    b = fake_run(tmp_path / "plain", [2.0, 1.5, 1.2])
    assert compare.read_curve(a, "loss", "train") == ([10, 20, 30], [2.0, 1.0, 0.5])
    assert compare.read_curve(b, "loss", "val") == ([30], [9.0])
    out = tmp_path / "cmp.png"
    assert compare.main([str(a), str(b), "--log-y", "--out", str(out)]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_missing_metric_or_run_is_one_line(compare, tmp_path, capsys):
    run = fake_run(tmp_path / "run", [1.0])
    assert compare.main([str(run), "--metric", "iou", "--out", str(tmp_path / "x.png")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        f"error: {run / 'metrics.jsonl'}: no train records of 'iou'; it has accuracy, loss"
    ]
    assert compare.main([str(tmp_path / "nope")]) == 2
    assert "no metrics.jsonl (is it a run directory?)" in capsys.readouterr().err
    assert not (tmp_path / "x.png").exists()
