"""``dlcore check CONFIG --overfit N``: can the model drive the loss to ~0 on N examples?

Deck 003's debugging advice: take a small subset of the training set (e.g. 50 examples),
watch the training loss on it, and make sure the network can overfit it; if it cannot,
look for units saturated from the first iterations or a learning rate that makes the
loss bounce. :func:`check_overfit` builds the experiment as ``dlcore run`` would, keeps
its first N training examples (they are also the split evaluated at the end), turns off
what is meant to prevent fitting, and trains full-batch (one batch of all N examples per
step) for a bounded number of steps with the config's own optimizer. Nothing is written
to disk: no run directory, no checkpoint.

It passes when the final loss on the N examples, evaluated as at test time, is at most
``threshold`` (default :data:`LOSS_THRESHOLD`), or, for a task that reports ``accuracy``,
when every one of the N examples is classified right (accuracy 1.0). The CLI's exit
status is 0 for a pass and :data:`dlcore.runs.errors.EXIT_NOT_FITTED` (5) for a failure.
"""

import copy
import dataclasses
import math
from typing import Any

from dlcore.config.errors import ConfigError
from dlcore.config.experiment import ExperimentConfig
from dlcore.config.loading import validate
from dlcore.data.augment import AugmentSection
from dlcore.data.dataset import Split
from dlcore.engine.loop import fit
from dlcore.experiment.build import build

__all__ = ["LOSS_THRESHOLD", "OVERFIT_TASKS", "OverfitReport", "check_overfit", "unregularized"]

LOSS_THRESHOLD = 1e-2
# Tasks whose loss is a fit to given targets, so ~0 on a few examples is reachable.
OVERFIT_TASKS = (
    "classification",
    "binary_classification",
    "regression",
    "multitask",
    "segmentation",
    "tagging",
)
_TASK_REGULARIZERS = {  # task field -> the value that turns it off
    "penalty": "none",
    "penalty_strength": 0.0,
    "penalty_layers": {},
    "label_smoothing": None,
}
_OPTIMIZER_REGULARIZERS = ("coupled_weight_decay", "weight_decay")
_DECAY_MASKS = ("decay_include", "decay_exclude")  # only valid while a decay is on


@dataclasses.dataclass
class OverfitReport:
    """What :func:`check_overfit` found.

    Attributes:
      passed: the final loss is at most ``threshold`` (or the accuracy is 1.0).
      examples: N, the examples trained and evaluated on.
      steps: training steps taken (full batch: one step is one epoch of the N).
      curve: ``(step, training loss)`` of every logged window (train mode).
      final: the task's metrics on the N examples after training (eval mode).
      turned_off: ``field: old -> new`` for every regulariser that was switched off.
      threshold: the loss threshold.
    """

    passed: bool
    examples: int
    steps: int
    curve: list[tuple[int, float]]
    final: dict[str, float]
    turned_off: list[str]
    threshold: float


def _zero_dropout(section: dict[str, Any], where: str, changes: list[str]) -> None:
    for key, value in section.items():
        if "dropout" in key and isinstance(value, float) and value > 0.0:
            section[key] = 0.0
            changes.append(f"{where}.{key}: {value} -> 0.0")


def unregularized(cfg: ExperimentConfig, source: str = "config") -> tuple[ExperimentConfig, list]:
    """``cfg`` without what prevents fitting a few examples, and the fields changed.

    Turned off: every dropout rate of the model(s) (``dropout``, ``recurrent_dropout``,
    ``output_dropout``, any float field whose name holds ``dropout``); the task's weight
    penalty (``penalty``, ``penalty_strength``, ``penalty_layers``), its label smoothing
    and its image augmentation (``[task.augment]``); the optimizers' weight decay
    (``coupled_weight_decay``, adamw's ``weight_decay``, and their masks); early stopping.
    Everything else (model size, initialisation, optimizer, learning rate and schedule,
    normalisation, gradient clipping, constraints) is kept: those are what the check is
    about.

    Raises:
      ConfigError: if the changed config no longer validates (it names the field).
    """
    raw = cfg.model_dump(mode="json")
    changes: list[str] = []
    if raw.get("model"):
        _zero_dropout(raw["model"], "model", changes)
    for name, section in raw.get("models", {}).items():
        _zero_dropout(section, f"models.{name}", changes)
    task = raw["task"]
    for key, off in _TASK_REGULARIZERS.items():
        if key in task and task[key] not in (off, None):
            changes.append(f"task.{key}: {task[key]} -> {off}")
            task[key] = off
    if "augment" in task and task["augment"] != AugmentSection().model_dump(mode="json"):
        changes.append("task.augment: on -> off")
        del task["augment"]  # the default: every transform off
    optimizers = [("optimizer", raw["optimizer"])]
    optimizers += [(f"optimizers.{k}", v) for k, v in raw.get("optimizers", {}).items()]
    for where, section in optimizers:
        for key in _OPTIMIZER_REGULARIZERS:
            if section.get(key):
                changes.append(f"{where}.{key}: {section[key]} -> 0.0")
                section[key] = 0.0
        for key in _DECAY_MASKS:
            section.pop(key, None)  # back to the default mask
    patience = raw["train"].get("early_stopping_patience")
    if patience is not None:
        changes.append(f"train.early_stopping_patience: {patience} -> None")
        raw["train"]["early_stopping_patience"] = None
    raw.pop("sweep", None)
    return validate(copy.deepcopy(raw), f"{source} (check --overfit)"), changes


def check_overfit(
    cfg: ExperimentConfig,
    examples: int,
    steps: int = 500,
    threshold: float = LOSS_THRESHOLD,
    source: str = "config",
) -> OverfitReport:
    """Trains ``cfg``'s model on its first ``examples`` training examples; see the module
    docstring.

    Args:
      cfg: a validated experiment config.
      examples: N >= 1, at most the training split's size.
      steps: full-batch training steps (>= 1).
      threshold: the final loss that counts as ~0.
      source: the file errors name.

    Returns:
      The :class:`OverfitReport`.

    Raises:
      ConfigError: a task this check cannot handle, N or steps out of range, or a config
        that does not build.
    """
    if cfg.task.name not in OVERFIT_TASKS:
        raise ConfigError(
            source,
            [
                (
                    "task.name",
                    f"check --overfit handles tasks that fit given targets "
                    f"({', '.join(OVERFIT_TASKS)}); got {cfg.task.name!r}",
                )
            ],
        )
    if examples < 1 or steps < 1:
        raise ConfigError(
            source, [("--overfit", f"N and --steps must be >= 1; got {examples} and {steps}")]
        )
    if not threshold >= 0.0 or math.isinf(threshold):
        raise ConfigError(source, [("--threshold", f"must be finite and >= 0; got {threshold}")])
    cfg, turned_off = unregularized(cfg, source)
    # Full batch, evaluated once at the end, on one device, no bucketing.
    train = cfg.train.model_copy(
        update={
            "epochs": steps,
            "batch_size": examples,
            "log_every": max(1, steps // 20),
            "eval_every": steps,
            "checkpoint_every": None,
            "devices": 1,
            "bucket_by": None,
        }
    )
    cfg = cfg.model_copy(update={"train": train})
    experiment = build(cfg, source)  # checks batch_size (= N) against the training split
    subset = Split(**experiment.data.train.rows(slice(0, examples)))
    data = dataclasses.replace(experiment.data, train=subset, val=subset, test=subset)
    curve: list[tuple[int, float]] = []
    result = fit(experiment.task, data, train, cfg.seed, reporter=_Curve(curve))
    final = {k: float(v) for k, v in result.final.get("val", {}).items()}
    loss = final.get("loss", math.inf)
    passed = result.status == "completed" and (
        loss <= threshold or final.get("accuracy", 0.0) >= 1.0
    )
    return OverfitReport(passed, examples, steps, curve, final, turned_off, threshold)


class _Curve:
    """A reporter that keeps the training windows' loss."""

    def __init__(self, curve: list):
        self.curve = curve

    def start(self, total_steps: int, done_steps: int) -> None: ...
    def advance(self, step: int) -> None: ...
    def close(self) -> None: ...

    def log(self, record: dict[str, Any]) -> None:
        if record["split"] == "train" and "loss" in record:
            self.curve.append((record["step"], float(record["loss"])))
