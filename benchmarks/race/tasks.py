"""The race's three experiments and the command line each framework runs them with.

Every run is a separate process timed from start to exit, as a user would time
``time dlcore run experiments/digits_mlp.toml`` against ``time python train_torch_mlp.py``:

- ``dlcore``: ``dlcore run <toml> --quiet --run-dir <tmp>``;
- ``torch``: ``python benchmarks/race/scripts/train_torch_<task>.py`` (eager, CPU);
- ``keras``: ``python benchmarks/race/scripts/train_keras_<task>.py``, ``KERAS_BACKEND=jax``.
"""

import dataclasses
import os
import pathlib
import sys

from dlcore.checks import check_choice

HERE = pathlib.Path(__file__).parent
ROOT = HERE.parent.parent
FRAMEWORKS = ("dlcore", "torch", "keras")


@dataclasses.dataclass(frozen=True)
class RaceTask:
    """One experiment of the race.

    Attributes:
      name: the ``--tasks`` name, also the scripts' suffix (``train_torch_<name>.py``).
      experiment: the TOML that ``dlcore run`` trains, relative to the repository root.
      metric: the validation metric every framework reports after each epoch.
      target: the value to reach (the issue's target).
      higher_is_better: whether the target is a floor (accuracy) or a ceiling (bits/char).
      shrinkable: whether ``Shrink`` applies (the char-LM only).
    """

    name: str
    experiment: str
    metric: str
    target: float
    higher_is_better: bool
    shrinkable: bool = False

    def reached(self, value: float) -> bool:
        return value >= self.target if self.higher_is_better else value <= self.target


TASKS = {
    "mlp": RaceTask("mlp", "experiments/digits_mlp.toml", "accuracy", 0.97, True),
    "lenet": RaceTask("lenet", "experiments/digits_lenet5.toml", "accuracy", 0.985, True),
    "charlm": RaceTask(
        "charlm", "experiments/charlm_lstm.toml", "bits_per_char", 2.0, False, shrinkable=True
    ),
}


@dataclasses.dataclass(frozen=True)
class Shrink:
    """A smaller char-LM race: fewer epochs and/or only the first N training files.

    None keeps the experiment's own value. Held-out files never change; the vocabulary is
    built from the training files used, the same way in all three frameworks.
    """

    epochs: int | None = None
    train_files: int | None = None

    def __post_init__(self):
        for name in ("epochs", "train_files"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"--charlm-{name.replace('_', '-')} must be >= 1; got {value}")

    @property
    def active(self) -> bool:
        return self.epochs is not None or self.train_files is not None

    def dlcore_args(self) -> list[str]:
        args = []
        if self.epochs is not None:
            args += ["--set", f"train.epochs={self.epochs}"]
        if self.train_files is not None:
            args += ["--set", f"data.max_train_files={self.train_files}"]
        return args

    def script_args(self) -> list[str]:
        args = []
        if self.epochs is not None:
            args += ["--epochs", str(self.epochs)]
        if self.train_files is not None:
            args += ["--train-files", str(self.train_files)]
        return args


def parse_tasks(text: str) -> list[str]:
    """``"mlp,lenet"`` -> ``["mlp", "lenet"]``; ``all`` is every task. The error lists them."""
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise ValueError(f"--tasks needs at least one of {', '.join(TASKS)} (or all)")
    if "all" in names:
        return list(TASKS)
    for name in names:
        check_choice(name, [*TASKS, "all"], "race task")
    return list(dict.fromkeys(names))


def dlcore_command() -> list[str]:
    """The ``dlcore`` console script beside this interpreter, else ``python -m dlcore.cli``."""
    script = pathlib.Path(sys.executable).parent / "dlcore"
    return [str(script)] if script.is_file() else [sys.executable, "-m", "dlcore.cli"]


def command(
    task: RaceTask, framework: str, run_dir: pathlib.Path, shrink: Shrink, threads: int
) -> tuple[list[str], dict[str, str]]:
    """``(argv, environment)`` of one run, started in the repository root."""
    check_choice(framework, FRAMEWORKS, "race framework")
    env = dict(os.environ)
    extra = shrink.dlcore_args() if task.shrinkable else []
    if framework == "dlcore":
        argv = [*dlcore_command(), "run", task.experiment, "--quiet", "--run-dir", str(run_dir)]
        return argv + extra, env
    script = HERE / "scripts" / f"train_{framework}_{task.name}.py"
    env["RACE_THREADS"] = str(threads)
    if framework == "keras":
        env["KERAS_BACKEND"] = "jax"
    return [sys.executable, str(script), *(shrink.script_args() if task.shrinkable else [])], env
