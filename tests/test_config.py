"""Experiment configs: validation, overrides, and one-line errors naming file and field."""

import pytest

from dlcore.config.loading import ConfigError, load_config, parse_override, save_config
from dlcore.data.registry import DATASETS
from dlcore.experiment import build
from dlcore.models.registry import MODELS
from dlcore.optim import OPTIMIZERS
from tests.helpers import run_main

GOOD = """
name = "t"
[data]
name = "xor"
[model]
name = "mlp"
widths = [8]
[train]
epochs = 2
"""


def write(tmp_path, text, name="exp.toml"):
    path = tmp_path / name
    path.write_text(text)
    return path


# (config text, extra --set overrides, dotted field expected in the message, phrase expected)
MALFORMED = [
    ("sed = 1\n" + GOOD, [], "sed", "did you mean 'seed'"),
    (GOOD + "epcohs = 3\n", [], "train.epcohs", "did you mean 'epochs'"),
    (GOOD.replace("epochs = 2", 'epochs = "ten"'), [], "train.epochs", "valid integer"),
    (
        GOOD + "[optimizer]\nname = 'adam'\nlearning_rate = -0.1\n",
        [],
        "optimizer.learning_rate",
        "greater than 0",
    ),
    (GOOD.replace('[data]\nname = "xor"\n', ""), [], "data", "missing required field"),
    (
        GOOD.replace('name = "mlp"', 'name = "resnet50"'),
        [],
        "model.name",
        f"unknown model 'resnet50'; valid: {', '.join(sorted(MODELS))}",
    ),
    (
        GOOD.replace(
            'name = "mlp"\nwidths = [8]', 'name = "text_cnn"\n[[model.layers]]\nkernal = 3'
        ),
        [],
        "model.layers[0].kernal",
        "did you mean 'kernel'",
    ),
    (
        GOOD.replace('name = "xor"', 'name = "mnist"'),
        [],
        "data.name",
        f"unknown data set 'mnist'; valid: {', '.join(sorted(DATASETS))}",
    ),
    (
        GOOD + "[optimizer]\nname = 'adma'\n",
        [],
        "optimizer.name",
        f"unknown optimizer 'adma'; valid: {', '.join(sorted(OPTIMIZERS))}",
    ),
    (
        GOOD.replace("widths = [8]", 'widths = [8]\nactivation = "rleu"'),
        [],
        "model.activation",
        "unknown activation 'rleu'; valid:",
    ),
    (
        GOOD.replace("widths = [8]", "widths = [8]\ndropout = 1.5"),
        [],
        "model.dropout",
        "less than 1",
    ),
    (GOOD, ["train.batch_size=abc"], "train.batch_size", "--set train.batch_size=abc"),
    (GOOD, ["data.noise=-1"], "data.noise", "greater than or equal to 0"),
    (GOOD.replace("[train]", "[train]\nmode = 'fast'"), [], "train.mode", "'step' or 'scan'"),
]


@pytest.mark.parametrize("text, overrides, field, phrase", MALFORMED)
def test_malformed_config_gives_one_line_naming_file_and_field(
    tmp_path, text, overrides, field, phrase
):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path, overrides)
    lines = info.value.lines()
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"{path}: {field}: "), lines[0]
    assert phrase in lines[0]


def test_invalid_toml_syntax_names_the_file_and_line(tmp_path):
    path = write(tmp_path, GOOD + "[train\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    (line,) = info.value.lines()
    assert line.startswith(f"{path}: invalid TOML") and "line" in line


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="no such file"):
        load_config(tmp_path / "nope.toml")


def test_batch_larger_than_training_split_is_a_config_error(tmp_path):
    cfg = load_config(write(tmp_path, GOOD), ["train.batch_size=100000"])
    with pytest.raises(ConfigError) as info:
        build(cfg, "exp.toml")
    (line,) = info.value.lines()
    assert line.startswith("exp.toml: train.batch_size: 100000 is larger than the training")


def test_a_task_that_needs_a_model_says_so(tmp_path):
    cfg = load_config(write(tmp_path, GOOD.replace('[model]\nname = "mlp"\nwidths = [8]\n', "")))
    with pytest.raises(ConfigError) as info:
        build(cfg, "exp.toml")
    assert info.value.lines() == [
        "exp.toml: model: missing; the classification task needs a [model] section"
    ]


def test_best_metric_must_be_reported_by_the_task(tmp_path):
    cfg = load_config(write(tmp_path, GOOD), ["train.best_metric=f1"])
    with pytest.raises(
        ConfigError,
        match="train.best_metric: unknown metric 'f1'; classification reports: accuracy, loss",
    ):
        build(cfg, "exp.toml")


def test_overrides_set_any_field_and_parse_toml_values(tmp_path):
    cfg = load_config(
        write(tmp_path, GOOD),
        [
            "train.epochs=7",
            "model.widths=[4, 5]",
            "model.activation=tanh",
            "optimizer.name=sgd",
            "seed=3",
        ],
    )
    assert cfg.train.epochs == 7 and cfg.model.widths == [4, 5] and cfg.seed == 3
    assert cfg.model.activation == "tanh" and cfg.optimizer.name == "sgd"
    assert parse_override("a.b= 'x=y'") == (["a", "b"], "x=y")


def test_override_without_equals_sign(tmp_path):
    with pytest.raises(ConfigError, match="expected KEY=VALUE"):
        load_config(write(tmp_path, GOOD), ["train.epochs"])


def test_resolved_config_round_trips(tmp_path):
    cfg = load_config(write(tmp_path, GOOD), ["optimizer.clip_norm=1.0"])
    save_config(cfg, tmp_path / "resolved.toml")
    again = load_config(tmp_path / "resolved.toml")
    assert again == cfg
    assert "learning_rate = 0.001" in (tmp_path / "resolved.toml").read_text()


def test_name_defaults_to_file_stem(tmp_path):
    cfg = load_config(write(tmp_path, GOOD.replace('name = "t"\n', ""), "my_exp.toml"))
    assert cfg.name == "my_exp"


@pytest.mark.parametrize(
    "args",
    [
        ["run", "{bad}"],
        ["run", "{good}", "--set", "train.epochs=0"],
        ["run", "{good}", "--set", "train.batch_size=5000"],
    ],
)
def test_cli_config_errors_exit_2_with_one_line_and_no_traceback(tmp_path, args):
    bad = write(tmp_path, GOOD + "epcohs = 3\n", "bad.toml")
    good = write(tmp_path, GOOD, "good.toml")
    argv = [a.format(bad=bad, good=good) for a in args]
    proc = run_main(*argv, "--run-dir", str(tmp_path / "run"))
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "run").exists(), "a failed config must not leave a run directory"
