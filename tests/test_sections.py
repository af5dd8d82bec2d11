"""Config sections derived from the registries: a bad name in any section, a task or model
that does not fit the data, and sections a task does not use are all one-line errors
raised before anything is written to disk."""

import pytest

from dlcore.config.experiment import NAMED_SECTIONS, SECTIONS
from dlcore.config.loading import ConfigError, validate
from dlcore.experiment import build
from dlcore.optim import SCHEDULES
from tests.helpers import run_main, write_toml

BASE = {
    "name": "t",
    "data": {"name": "xor", "n_samples": 60},
    "model": {"name": "mlp", "widths": [4]},
    "train": {"epochs": 1, "batch_size": 8},
}


def one_line(raw: dict, *, built: bool = False) -> str:
    with pytest.raises(ConfigError) as info:
        cfg = validate(raw, "t.toml")
        if built:
            build(cfg, "t.toml")
    lines = info.value.lines()
    assert len(lines) == 1, lines
    return lines[0]


@pytest.mark.parametrize("section", sorted(SECTIONS))
def test_an_unknown_name_in_every_union_section_is_one_line(section):
    what, registry, _ = SECTIONS[section]
    raw = {**BASE, section: {"name": "nope"}}
    assert one_line(raw) == (
        f"t.toml: {section}.name: unknown {what} 'nope'; valid: {', '.join(sorted(registry))}"
    )


@pytest.mark.parametrize("table", sorted(NAMED_SECTIONS))
def test_an_unknown_name_in_a_named_section_is_one_line(table):
    what, registry, _ = SECTIONS[NAMED_SECTIONS[table]]
    raw = {**BASE, table: {"critic": {"name": "nope"}}}
    assert one_line(raw) == (
        f"t.toml: {table}.critic.name: unknown {what} 'nope'; valid: {', '.join(sorted(registry))}"
    )


def test_a_bad_field_inside_a_named_section_names_it_with_a_hint():
    raw = {**BASE, "models": {"critic": {"name": "mlp", "widht": [3]}}}
    assert one_line(raw) == "t.toml: models.critic.widht: unknown key; did you mean 'widths'?"


def test_an_unknown_schedule_is_one_line():
    raw = {**BASE, "optimizer": {"name": "sgd", "schedule": {"name": "nope"}}}
    line = one_line(raw)
    assert line.startswith("t.toml: optimizer.schedule")
    assert all(name in line for name in SCHEDULES)


# (data, model, task, expected phrases): the mismatches a new user runs into
MISFITS = {
    "lenet5 on xor": (
        {"name": "xor", "n_samples": 60},
        {"name": "lenet5"},
        {"name": "classification"},
        ["model: lenet5 reads flat inputs as 28x28 images", "xor has x features [2] (use mlp)"],
    ),
    "regression on digits": (
        {"name": "digits"},
        {"name": "mlp"},
        {"name": "regression"},
        ["task.name: regression needs y as real-valued targets", "digits has y labels []"],
    ),
    "mlp on character streams": (
        {"name": "stdlib_chars", "seq_len": 8, "eval_len": 64, "max_train_files": 2},
        {"name": "mlp"},
        {"name": "tagging"},
        ["model.name: mlp needs x as real-valued features", "tokens [8]", "fit: rnn"],
    ),
    "classification on unlabelled regression targets": (
        {"name": "line", "n_samples": 60},
        {"name": "mlp"},
        {"name": "classification"},
        ["task.name: classification needs y as integer class labels", "fit: regression"],
    ),
    "binary on ten classes": (
        {"name": "digits"},
        {"name": "linear"},
        {"name": "binary_classification"},
        ["task: digits has 10 classes; binary_classification needs 2"],
    ),
}


@pytest.mark.parametrize("label", sorted(MISFITS))
def test_tasks_and_models_check_the_data_they_need(label):
    data, model, task, phrases = MISFITS[label]
    line = one_line({**BASE, "data": data, "model": model, "task": task}, built=True)
    assert line.startswith("t.toml: ")
    for phrase in phrases:
        assert phrase in line, line


SECTION_MISUSE = {
    "perceptron with a [model]": (
        {"task": {"name": "perceptron"}},
        "t.toml: model: the perceptron task has its own model; remove the [model] section",
    ),
    "classification without a [model]": (
        {"model": None},
        "t.toml: model: missing; the classification task needs a [model] section",
    ),
    "a named model nobody uses": (
        {"models": {"critic": {"name": "mlp"}}},
        "t.toml: models.critic: the classification task has no model 'critic'; it uses [model]",
    ),
    "a named chain for a one-chain task": (
        {"optimizers": {"critic": {"name": "sgd"}}},
        "t.toml: optimizers.critic: the classification task has no chain 'critic'; "
        "it has one chain: use [optimizer]",
    ),
}


@pytest.mark.parametrize("label", sorted(SECTION_MISUSE))
def test_sections_a_task_does_not_use_are_refused(label):
    change, expected = SECTION_MISUSE[label]
    raw = {**BASE, **change}
    raw = {k: v for k, v in raw.items() if v is not None}
    assert one_line(raw, built=True) == expected


def test_cli_misfit_exits_2_with_one_line_and_leaves_no_run_directory(tmp_path):
    raw = {**BASE, "model": {"name": "lenet5"}}
    path = write_toml(tmp_path / "t.toml", raw)
    proc = run_main("run", str(path), "--run-dir", str(tmp_path / "run"))
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert (
        len(lines) == 1
        and lines[0].startswith("error: ")
        and "lenet5 reads flat inputs" in lines[0]
    )
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "run").exists()
