"""`dlcore runs compare RUN [RUN ...]`: several runs' train and val curves in one PNG."""

import contextlib
import json

import pytest

from dlcore.cli.main import main
from dlcore.runs.compare import read_curve

PNG = b"\x89PNG\r\n\x1a\n"


def fake_run(directory, losses, val_loss=None):
    directory.mkdir(parents=True)
    lines = [{"step": 10 * (i + 1), "split": "train", "loss": v} for i, v in enumerate(losses)]
    lines.append({"step": 30, "epoch": 1, "split": "val", "loss": val_loss, "accuracy": 0.5})
    (directory / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    return directory


def test_compare_draws_train_and_val_of_every_run_in_one_png(tmp_path, capsys, monkeypatch):
    a = fake_run(tmp_path / "a" / "trial-000", [2.0, 1.0, 0.5], val_loss=0.7)
    b = fake_run(tmp_path / "b" / "trial-000", [2.0, 1.5, 1.2], val_loss=None)  # NaN: null
    drawn = []  # (label, xs, ys, colour) of every line, panel by panel
    import matplotlib.axes

    plot = matplotlib.axes.Axes.plot

    def spy(ax, xs, ys, *args, **kwargs):
        drawn.append((kwargs["label"], list(xs), list(ys), kwargs["color"]))
        return plot(ax, xs, ys, *args, **kwargs)

    monkeypatch.setattr(matplotlib.axes.Axes, "plot", spy)
    out = tmp_path / "cmp.png"
    argv = ["runs", "compare", str(a), str(b), "--metric", "loss", "--metric", "accuracy"]
    assert main([*argv, "--out", str(out)]) == 0
    assert out.read_bytes()[:8] == PNG and capsys.readouterr().out == f"wrote {out}\n"
    # two runs of one name are told apart by their paths; one colour per run
    loss = {label: (xs, ys, colour) for label, xs, ys, colour in drawn[:4]}
    assert [label for label, *_ in drawn[4:]] == [f"{a} val", f"{b} val"]  # accuracy: val only
    assert loss[f"{a} train"][:2] == ([10, 20, 30], [2.0, 1.0, 0.5])
    assert loss[f"{a} val"][:2] == ([30], [0.7])
    assert loss[f"{b} val"][0] == [30] and loss[f"{b} val"][1][0] != loss[f"{b} val"][1][0]
    assert loss[f"{a} train"][2] == loss[f"{a} val"][2] != loss[f"{b} train"][2]
    assert read_curve(a, "accuracy", "val") == ([30], [0.5])


@pytest.mark.parametrize(
    "case",
    ["unknown metric", "not a run", "bad split"],
)
def test_a_bad_run_or_metric_is_one_line_and_exit_2(tmp_path, capsys, case):
    run = fake_run(tmp_path / "run", [1.0])
    out = tmp_path / "x.png"
    argv = {
        "unknown metric": [str(run), "--metric", "iou"],
        "not a run": [str(run), str(tmp_path / "nope")],
        "bad split": [str(run), "--split", "test"],
    }[case]
    with pytest.raises(SystemExit) if case == "bad split" else contextlib.nullcontext():
        assert main(["runs", "compare", *argv, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    expected = {
        "unknown metric": f"error: {run / 'metrics.jsonl'}: no train or val records of 'iou'; "
        "it has accuracy, loss",
        "not a run": f"error: {tmp_path / 'nope'}: no metrics.jsonl (is it a run directory?)",
        "bad split": "dlcore runs compare: error: argument --split: invalid choice: 'test' "
        "(choose from 'train', 'val')",
    }[case]
    assert err[-1] == expected and not out.exists()
