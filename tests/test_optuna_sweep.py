"""Bayesian sweeps with optuna: samplers, pruning from val curves, SQLite resume, outputs."""

import json
import signal
import subprocess

import optuna
import pytest

from dlcore.cli.main import main
from dlcore.config.loading import ConfigError, validate
from dlcore.config.sweep_space import OPTUNA_METHODS, PRUNER_OPTIONS, SweepConfig
from dlcore.experiment.optuna_study import PRUNERS, SAMPLERS, next_trial, open_study, suggest
from dlcore.experiment.sweep import run_sweep
from dlcore.runs.sweep_history import best_so_far
from tests.helpers import REPO, cli_command, cli_env, committed_steps, write_toml

BASE = {
    "name": "ob",
    "data": {"name": "xor", "n_samples": 120},
    "model": {"name": "mlp", "widths": [8, 8], "activation": "tanh"},
    "train": {"epochs": 2, "batch_size": 16, "log_every": 5},
}
SPACE = {
    "optimizer.learning_rate": {"log_uniform": [1e-4, 0.5]},
    "model.dropout": {"uniform": [0.0, 0.3]},
    "model.widths": {"choices": [[4], [8, 8]]},
    "optimizer.name": {"choices": ["sgd", "adam"]},
}


def with_sweep(**sweep):
    return {**BASE, "sweep": {"method": "tpe", **sweep}}


def strict_load(path):
    def refuse(name):
        raise ValueError(f"non-strict JSON constant {name}")

    return json.loads(path.read_text(), parse_constant=refuse)


def val_records(run):
    lines = (run / "metrics.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if r["split"] == "val"]


def test_every_method_and_pruner_the_config_names_has_a_builder():
    assert set(SAMPLERS) == set(OPTUNA_METHODS) and set(PRUNERS) == set(PRUNER_OPTIONS)
    for name in PRUNERS:  # built without a warning (they are errors here)
        sweep = SweepConfig(method="tpe", pruner=name, space=SPACE)
        assert isinstance(PRUNERS[name](sweep, 10), optuna.pruners.BasePruner)


@pytest.mark.parametrize("method", OPTUNA_METHODS)
def test_samplers_ask_every_kind_of_field_within_its_bounds(method):
    sweep = SweepConfig(method=method, trials=6, startup_trials=None, space=SPACE)
    study = optuna.create_study()
    asked = []
    while (nxt := next_trial(study, sweep)) is not None:
        trial, _ = nxt
        values = {k: suggest(trial, k, d) for k, d in sweep.space.items()}
        study.tell(trial, values["optimizer.learning_rate"])
        asked.append(values)
    assert len(asked) == 6
    for v in asked:
        assert 1e-4 <= v["optimizer.learning_rate"] <= 0.5 and 0 <= v["model.dropout"] <= 0.3
        assert v["model.widths"] in ([4], [8, 8]) and v["optimizer.name"] in ("sgd", "adam")
    assert len({v["optimizer.learning_rate"] for v in asked}) == 6


def _ask_and_tell(study, sweep, n):
    params = []
    for _ in range(n):
        trial, _ = next_trial(study, sweep)
        values = {k: suggest(trial, k, d) for k, d in sweep.space.items()}
        study.tell(trial, (values["optimizer.learning_rate"] - 0.01) ** 2)
        params.append(values)
    return params


def test_a_continued_study_asks_the_trials_an_uninterrupted_one_asks(tmp_path):
    raw = with_sweep(trials=4, startup_trials=2, space=SPACE)
    base = validate(raw, "s.toml")
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
    straight = _ask_and_tell(open_study(tmp_path / "a", base, "loss", False, "s"), base.sweep, 4)
    first = _ask_and_tell(open_study(tmp_path / "b", base, "loss", False, "s"), base.sweep, 2)
    # a new process: a new study object and sampler on the same SQLite file
    then = _ask_and_tell(open_study(tmp_path / "b", base, "loss", False, "s"), base.sweep, 2)
    assert first + then == straight
    assert len({p["optimizer.learning_rate"] for p in straight}) == 4


def test_a_sweep_directory_refuses_another_space(tmp_path):
    first = validate(with_sweep(space=SPACE), "s.toml")
    open_study(tmp_path, first, "loss", False, "s.toml")
    other = validate(with_sweep(space={**SPACE, "seed": {"choices": [0, 1]}}), "s.toml")
    with pytest.raises(ConfigError) as info:
        open_study(tmp_path, other, "loss", False, "s.toml")
    (line,) = info.value.lines()
    assert line.startswith("s.toml: sweep.space:") and "another space" in line
    with pytest.raises(ConfigError, match="sweep.metric"):
        open_study(tmp_path, first, "accuracy", True, "s.toml")


def test_best_so_far_is_the_running_best():
    assert best_so_far([3.0, 1.0, 2.0, 0.5], maximize=False) == [3.0, 1.0, 1.0, 0.5]
    assert best_so_far([0.5, 0.7, 0.6], maximize=True) == [0.5, 0.7, 0.7]


# Sweep seed 5 asks learning rates 0.3, then 1e-6 (TPE's random start). After one finished
# trial, the median pruner stops the 1e-6 trial at its first validation pass: its val loss
# has hardly moved while the first trial's has fallen.
PRUNED_SWEEP = with_sweep(
    trials=2,
    seed=5,
    metric="loss",
    pruner="median",
    pruner_startup=1,
    space={"optimizer.learning_rate": {"choices": [0.3, 1e-6]}},
)


@pytest.fixture(scope="module")
def tpe_sweep(tmp_path_factory):
    root = tmp_path_factory.mktemp("tpe")
    path = write_toml(root / "ob.toml", PRUNED_SWEEP)
    return root, path, run_sweep(path, sweep_dir=root / "out", tensorboard=False)


def test_a_bad_trial_is_pruned_from_its_validation_curve(tpe_sweep):
    root, _, result = tpe_sweep
    by_trial = {r["trial"]: r for r in result["trials"]}
    assert sorted(by_trial) == [0, 1] and result["total_trials"] == 2
    pruned = [r for r in result["trials"] if r["status"] == "pruned"]
    assert pruned, "the pruner never pruned"
    for row in result["trials"]:
        slow = row["assignment"]["optimizer.learning_rate"] == 1e-6
        assert row["status"] == ("pruned" if slow else "completed")
        assert row["state"] == ("pruned" if slow else "complete")
    for row in pruned:  # stopped cleanly after its first pass, with a checkpoint there
        run = root / "out" / f"trial-{row['trial']:03d}"
        summary = json.loads((run / "summary.json").read_text())
        first_pass = val_records(run)[0]
        assert summary["status"] == "pruned" and summary["step"] == first_pass["step"]
        assert summary["step"] < 2 * first_pass["step"]  # 2 epochs, one pass each
        assert committed_steps(run) == [summary["step"]]
        assert list(row["intermediate"]) == ["1"]


def test_trials_are_ranked_on_val_and_everything_is_written(tpe_sweep):
    root, _, result = tpe_sweep
    assert result["method"] == "tpe" and result["sampler"] == "TPESampler"
    assert result["pruner"] == "median" and result["metric"] == "loss"
    statuses = [r["status"] for r in result["trials"]]
    assert statuses == sorted(statuses)  # completed first, then pruned
    done = [r["best"]["value"] for r in result["trials"] if r["status"] == "completed"]
    assert done == sorted(done)  # lower loss is better
    assert strict_load(root / "out" / "sweep.json") == result
    assert (root / "out" / "history.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    study = optuna.load_study(study_name="ob", storage=f"sqlite:///{root / 'out' / 'optuna.db'}")
    states = {t.number: t.state.name.lower() for t in study.trials}
    assert states == {r["trial"]: r["state"] for r in result["trials"]}


def test_rerunning_a_finished_tpe_sweep_trains_nothing(tpe_sweep, capsys):
    root, path, result = tpe_sweep
    metrics = root / "out" / "trial-000" / "metrics.jsonl"
    before = metrics.stat().st_mtime_ns
    code = main(["--no-compile-cache", "sweep", str(path), "--sweep-dir", str(root / "out")])
    out = " ".join(capsys.readouterr().out.split())  # the table wraps its title
    assert code == 0 and metrics.stat().st_mtime_ns == before
    assert "tpe, median pruning, ranked by val loss" in out and "pruned" in out
    assert "2 of 2 trials" in out and "optimisation history:" in out
    assert strict_load(root / "out" / "sweep.json")["trials"] == result["trials"]


@pytest.mark.parametrize(
    "sweep, field",
    [
        ({"method": "bayes"}, "sweep.method"),
        ({"pruner": "mean"}, "sweep.pruner"),
        ({"method": "grid", "pruner": "median"}, "pruner is for the optuna methods"),
        ({"pruner": "hyperband", "pruner_warmup": 1}, "pruner_warmup is not an option"),
        ({"method": "qmc", "startup_trials": 3}, "startup_trials"),
        ({"method": "cmaes", "space": {"seed": {"choices": [0, 1]}}}, "searches ranges"),
        ({"metric": "f1"}, "unknown metric 'f1'"),
        ({"space": {"model.dropout": {"choices": [0.1, 1.5]}}}, "model.dropout = 1.5"),
        ({"space": {}}, "sweep.space"),
    ],
)
def test_bad_input_is_one_line_and_leaves_no_sweep_dir(tmp_path, capsys, sweep, field):
    raw = with_sweep(**{"space": {"model.dropout": {"uniform": [0.0, 0.5]}}, **sweep})
    path = write_toml(tmp_path / "bad.toml", raw)
    args = ["--no-compile-cache", "sweep", str(path), "--sweep-dir", str(tmp_path / "out")]
    assert main(args) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert field in line and str(path) in line
    assert not (tmp_path / "out").exists()


def test_vmap_refuses_an_optuna_method(tmp_path, capsys):
    path = write_toml(tmp_path / "v.toml", with_sweep(space={"seed": {"choices": [0, 1]}}))
    args = ["--no-compile-cache", "sweep", str(path), "--vmap", "--sweep-dir", str(tmp_path / "o")]
    assert main(args) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert "sweep.method" in line and not (tmp_path / "o").exists()


def test_a_diverged_trial_fails_and_the_search_goes_on(tmp_path, monkeypatch, capsys):
    from dlcore.experiment import optuna_sweep
    from dlcore.runs.errors import DivergedError

    def diverge(experiment, run_dir, **kwargs):  # what run_experiment raises on NaN
        raise DivergedError(f"{run_dir}: loss is nan at step 3")

    monkeypatch.setattr(optuna_sweep, "run_experiment", diverge)
    path = write_toml(tmp_path / "d.toml", with_sweep(trials=2, space=SPACE))
    result = run_sweep(path, sweep_dir=tmp_path / "out")
    assert result["status"] == "completed"
    assert [(r["trial"], r["state"]) for r in result["trials"]] == [(0, "fail"), (1, "fail")]
    assert capsys.readouterr().err.count("loss is nan at step 3") == 2


def _signal_after_a_line(metrics, proc, sig) -> str:
    """Sends ``sig`` once ``metrics`` holds a line, checked after every line the sweep logs
    (blocking reads: no clock involved); returns what the sweep printed."""
    lines = []
    for line in proc.stderr:
        lines.append(line)
        if metrics.exists() and metrics.read_text().strip():
            proc.send_signal(sig)
            break
    else:
        pytest.fail(f"the sweep ended before it logged a line: {''.join(lines)}")
    return "".join(lines) + proc.communicate()[1]


def test_a_stopped_sweep_continues_its_trial_from_the_checkpoint(tmp_path, capsys):
    # 40 epochs (4 validation passes) per trial: SIGTERM, sent once the first metrics line
    # is written, lands mid-trial.
    raw = with_sweep(trials=1, pruner="none", space={"seed": {"choices": [0, 1, 2]}})
    raw["train"] = {**raw["train"], "epochs": 40, "eval_every": 10}
    path = write_toml(tmp_path / "long.toml", raw)
    out = tmp_path / "out"
    args = ["sweep", str(path), "--sweep-dir", str(out), "--quiet", "--no-tensorboard"]
    proc = subprocess.Popen(
        cli_command(*args),
        cwd=REPO,
        env=cli_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    printed = _signal_after_a_line(out / "trial-000" / "metrics.jsonl", proc, signal.SIGTERM)
    assert proc.returncode == 128 + signal.SIGTERM, printed
    stopped = strict_load(out / "sweep.json")
    assert stopped["status"] == "interrupted"
    assert [(r["trial"], r["state"]) for r in stopped["trials"]] == [(0, "running")]
    first = json.loads((out / "trial-000" / "summary.json").read_text())
    assert first["status"] == "interrupted" and committed_steps(out / "trial-000")
    config = (out / "trial-000" / "config.toml").read_text()

    assert main(["--no-compile-cache", *args]) == 0
    capsys.readouterr()
    done = strict_load(out / "sweep.json")
    assert done["status"] == "completed" and done["total_trials"] == 1
    assert [(r["trial"], r["status"]) for r in done["trials"]] == [(0, "completed")]
    study = optuna.load_study(study_name="ob", storage=f"sqlite:///{out / 'optuna.db'}")
    assert [t.number for t in study.trials] == [0]  # continued, not asked again
    assert (out / "trial-000" / "config.toml").read_text() == config  # same parameters
    summary = json.loads((out / "trial-000" / "summary.json").read_text())
    total = 4 * val_records(out / "trial-000")[0]["step"]  # a pass every 10 of 40 epochs
    steps = [p["steps_run"] for p in summary["processes"]]
    assert 0 < first["step"] < total and summary["step"] == total
    assert steps == [first["step"], total - first["step"]]  # continued, not restarted
    val_steps = [r["step"] for r in val_records(out / "trial-000")]
    assert val_steps == sorted(set(val_steps)) and len(val_steps) == 4
