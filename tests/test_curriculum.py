"""The curriculum: every shipped experiment has an entry, the table renders and merges, and one
hard-shrunk experiment goes through the runner in a real ``dlcore`` process."""

import json

import pytest

from curriculum import plan as plans
from curriculum import runner, table
from curriculum.__main__ import main


def test_every_shipped_experiment_has_an_entry():
    plan = plans.load_plan()
    assert plans.coverage(plan) == []
    for entry in plan.values():  # the wiring reads runs that run first
        assert all(list(plan).index(n) < list(plan).index(entry.name) for n in entry.needs)


def test_a_new_experiment_without_an_entry_is_reported(tmp_path):
    (tmp_path / "brand_new.toml").write_text('name = "brand_new"\n')
    plan = {"gone": plans.Entry("gone", "CNNs", "final.test.accuracy")}
    assert plans.coverage(plan, tmp_path) == [
        "experiments/brand_new.toml has no entry in the curriculum",
        "curriculum entry 'gone' has no experiments/gone.toml",
    ]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ('topic = "poetry"\nmetric = "m"', "topic must be one of"),
        ('topic = "CNNs"\nmetric = "m"\nneeds = ["b"]', "needs 'b', which must be listed before"),
        ('topic = "CNNs"\nmetric = "m"\nepochs = 3', "unknown field 'epochs'"),
        ('topic = "CNNs"\nmetric = "m"\nshrink = ["train.epochs"]', "must read KEY=VALUE"),
    ],
)
def test_bad_entries_are_named(tmp_path, body, message):
    path = tmp_path / "c.toml"
    path.write_text(f"[experiments.a]\n{body}\n")
    with pytest.raises(ValueError, match=message):
        plans.load_plan(path)


def _row(name, topic, value, commit, shrink=()):
    return {
        "experiment": name,
        "topic": topic,
        "metric": "final.test.accuracy",
        "value": value,
        "wall_s": 2.0,
        "cpu_s": 3.0,
        "load1": 1.5,
        "shrink": list(shrink),
        "commit": commit,
        "date": "2026-01-0" + commit[-1],
        "status": "ok" if value is not None else "failed: exit 3: diverged",
    }


def test_merge_keeps_other_rows_and_table_renders_between_markers(tmp_path):
    plan = {
        n: plans.Entry(n, t, "m") for n, t in [("b", "CNNs"), ("a", "perceptron"), ("c", "RNNs")]
    }
    old = [_row("a", "perceptron", 0.5, "old1"), _row("b", "CNNs", 0.25, "old1")]
    new = [
        _row("b", "CNNs", float("nan"), "new2", ["train.epochs=1"]),
        _row("c", "RNNs", None, "new2"),
    ]
    rows = table.merge(old, new, plan)
    assert [(r["experiment"], r["commit"]) for r in rows] == [
        ("b", "new2"),
        ("a", "old1"),
        ("c", "new2"),
    ]
    table.save_rows(rows, tmp_path / "results.json")
    assert "NaN" not in (tmp_path / "results.json").read_text()  # strict JSON
    assert table.load_rows(tmp_path / "results.json")[0]["value"] is None

    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{table.BEGIN}\nstale\n{table.END}\nafter\n")
    plan["d"] = plans.Entry("d", "CNNs", "final.test.accuracy")  # never measured
    table.update_readme(table.with_unmeasured(rows, plan), readme)
    text = readme.read_text()
    assert "stale" not in text and text.startswith("intro\n") and text.endswith("after\n")
    lines = [line for line in text.splitlines() if line.startswith("| `")]
    # Lecture order (perceptron, CNNs, RNNs); a failed row shows why; the shrunk one is marked.
    assert [line.split("|")[1].strip() for line in lines] == ["`a`", "`b`", "`d`", "`c`"]
    assert "old1" in lines[0]
    assert "[1]" in lines[1] and "- [1] b: `train.epochs=1`" in text
    assert "failed: exit 3: diverged" in lines[3] and "not measured yet" in lines[2]
    assert "| 0.5 | 2.0 | 3.0 | 1.5 |" in lines[0]
    assert "4 experiments, 0.1 minutes of wall time and 0.1 CPU-minutes" in text
    assert "2 not completed: c, d." in text

    readme.write_text("no markers here\n")
    with pytest.raises(ValueError, match="must contain one"):
        table.update_readme(rows, readme)


def test_lookup_follows_dicts_and_lists():
    doc = {"trials": [{"best": {"value": 0.9}}], "final": {"test": {"accuracy": 1.0}}}
    assert runner.lookup(doc, "trials.0.best.value") == 0.9
    assert runner.lookup(doc, "final.test.accuracy") == 1.0
    with pytest.raises(KeyError):
        runner.lookup(doc, "final.val.accuracy")


def test_one_shrunk_experiment_through_the_runner(tmp_path):
    entry = plans.Entry(
        "perceptron_blobs", "perceptron", "final.test.accuracy", shrink=("train.epochs=1",)
    )
    needy = plans.Entry("perceptron_xor", "perceptron", "final.test.accuracy", needs=("nothing",))
    rows = runner.run_all([entry, needy], tmp_path / "runs", timeout_s=900)  # a hang guard only
    assert rows[0]["status"] == "ok", (tmp_path / "runs" / "perceptron_blobs.log").read_text()
    assert 0.5 <= rows[0]["value"] <= 1.0 and rows[0]["wall_s"] > 0
    summary = json.loads((tmp_path / "runs" / "perceptron_blobs" / "summary.json").read_text())
    assert summary["step"] == 1  # one full-batch epoch, as shrunk (20 as shipped)
    assert rows[1]["status"].startswith("not run: needs a completed")  # no process started


def test_cli_rejects_unknown_only_names(capsys):
    assert main(["--only", "no_such_experiment", "--no-readme"]) == 2
    assert "unknown experiment 'no_such_experiment'" in capsys.readouterr().err


def test_a_run_killed_after_its_summary_keeps_its_value_and_the_failure(tmp_path):
    (tmp_path / "summary.json").write_text(
        '{"status": "completed", "final": {"test": {"mse": 0.5}}}'
    )
    entry = plans.Entry("e", "RNNs", "final.test.mse")
    killed = {"exit": None, "status": "failed: timeout after 600 s"}
    row = runner.read_value(entry, killed, tmp_path)
    assert (row["value"], row["status"]) == (0.5, "completed, then failed: timeout after 600 s")
    assert runner.read_value(entry, row, tmp_path)["status"] == row["status"]  # read again
    ok = {"exit": 0, "status": "ok"}
    missing = runner.read_value(plans.Entry("e", "RNNs", "final.val.mse"), ok, tmp_path)
    assert (missing["value"], missing["status"]) == (
        None,
        "failed: no final.val.mse in summary.json",
    )
