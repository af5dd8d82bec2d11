"""The optuna side of a Bayesian sweep: samplers, pruners, the study in SQLite.

:mod:`dlcore.experiment.optuna_sweep` trains the trials; this module turns the
``[sweep]`` section into optuna objects, asks each ``[sweep.space]`` field's value and
reports validation passes. The samplers are seeded per trial,
:math:`s_n = \\mathrm{SeedSequence}(seed, n)`, so a sweep that was stopped and continued
asks the same trials as one that never stopped.
"""

import json
import pathlib
import warnings
from typing import Any

import numpy as np
import optuna
from optuna.trial import TrialState

from dlcore.config.errors import ConfigError
from dlcore.config.experiment import ExperimentConfig
from dlcore.config.sweep_space import Distribution, SweepConfig


def trial_seed(seed: int, number: int) -> int:
    """The sampler seed of trial ``number``: independent of how many processes ran before."""
    return int(np.random.SeedSequence([seed, number]).generate_state(1)[0])


def _startup(sweep: SweepConfig) -> dict[str, int]:
    return {} if sweep.startup_trials is None else {"n_startup_trials": sweep.startup_trials}


def _qmc(sweep: SweepConfig, number: int) -> optuna.samplers.BaseSampler:
    # One scrambled Sobol sequence for the whole sweep (its position is in the study), so
    # the seed is the sweep's, not the trial's. QMCSampler is marked experimental.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.samplers.QMCSampler(
            scramble=True, seed=sweep.seed, warn_independent_sampling=False
        )


# name -> (sweep, trial number) -> sampler; the names are sweep_space.OPTUNA_METHODS.
SAMPLERS = {
    "tpe": lambda sweep, n: optuna.samplers.TPESampler(
        seed=trial_seed(sweep.seed, n), **_startup(sweep)
    ),
    "cmaes": lambda sweep, n: optuna.samplers.CmaEsSampler(
        seed=trial_seed(sweep.seed, n), warn_independent_sampling=False, **_startup(sweep)
    ),
    "qmc": _qmc,
}


def _or(value, default):
    return default if value is None else value


# name -> (sweep, epochs or "auto") -> pruner; the names are sweep_space.PRUNER_OPTIONS.
# Trials report at step = epoch (1, 2, ...): "never pruned in the first w epochs" is
# optuna's n_warmup_steps = w + 1.
PRUNERS = {
    "median": lambda s, epochs: optuna.pruners.MedianPruner(
        n_startup_trials=_or(s.pruner_startup, 5), n_warmup_steps=_or(s.pruner_warmup, 0) + 1
    ),
    "percentile": lambda s, epochs: optuna.pruners.PercentilePruner(
        _or(s.pruner_percentile, 25.0),
        n_startup_trials=_or(s.pruner_startup, 5),
        n_warmup_steps=_or(s.pruner_warmup, 0) + 1,
    ),
    "hyperband": lambda s, epochs: optuna.pruners.HyperbandPruner(
        min_resource=_or(s.pruner_min_epochs, 1),
        max_resource=epochs,
        reduction_factor=_or(s.pruner_reduction, 3),
    ),
    "successive_halving": lambda s, epochs: optuna.pruners.SuccessiveHalvingPruner(
        min_resource=_or(s.pruner_min_epochs, 1), reduction_factor=_or(s.pruner_reduction, 4)
    ),
    "none": lambda s, epochs: optuna.pruners.NopPruner(),
}


def _plain(value: Any) -> bool:
    return value is None or isinstance(value, bool | int | float | str)


def suggest(trial: optuna.trial.Trial, key: str, dist: Distribution) -> Any:
    """The trial's value of one ``[sweep.space]`` field, asked from optuna.

    ``choices`` are categorical; ``uniform`` [a, b] is a float in [a, b]; ``log_uniform``
    is a float whose logarithm is uniform. Choices that optuna cannot store (lists such
    as ``model.widths``) are searched by their index.
    """
    if dist.choices is not None:
        if all(_plain(c) for c in dist.choices):
            return trial.suggest_categorical(key, dist.choices)
        return dist.choices[trial.suggest_categorical(key, list(range(len(dist.choices))))]
    if dist.uniform is not None:
        return trial.suggest_float(key, *dist.uniform)
    return trial.suggest_float(key, *dist.log_uniform, log=True)


class PruningHook:
    """The loop's ``on_validation``: reports the val metric at the pass's epoch and asks
    the pruner. ``pruned`` turns true when it says stop; :class:`TrialStop` passes that on.

    Args:
      trial: the optuna trial.
      metric: the validation metric the sweep optimises.
      spe: training steps per epoch (the pass's epoch is ``state.step / spe``).
      reported: epochs already reported (a resumed trial repeats the passes after its
        checkpoint; optuna keeps the first value of a step).
    """

    def __init__(self, trial, metric: str, spe: int, reported=()):
        self.trial, self.metric, self.spe = trial, metric, spe
        self.reported = set(reported)
        self.pruned = False

    def __call__(self, state, val: dict[str, Any]):
        epoch = int(np.asarray(state.step)) // self.spe
        if epoch not in self.reported:
            self.trial.report(float(val[self.metric]), epoch)
            self.reported.add(epoch)
        self.pruned = self.pruned or self.trial.should_prune()
        return state


class TrialStop:
    """The stop a trial's loop polls: the sweep's own (a signal) or the pruner's."""

    def __init__(self, outer, hook: PruningHook):
        self.outer, self.hook = outer, hook

    @property
    def requested(self) -> bool:
        return self.outer.requested or self.hook.pruned

    signum = property(lambda self: self.outer.signum)
    exit_code = property(lambda self: self.outer.exit_code)


def _space_text(sweep: SweepConfig) -> str:
    return json.dumps(sweep.model_dump(mode="json")["space"], sort_keys=True)


def open_study(
    root: pathlib.Path, base: ExperimentConfig, metric: str, maximize: bool, source: str
):
    """Creates or loads the study in ``root/optuna.db``; refuses one searching another
    space or metric (its trials would not be comparable).

    Raises:
      ConfigError: the sweep directory's study was started with another space or metric.
    """
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # the CLI prints its own lines
    sweep = base.sweep
    epochs = "auto" if "train.epochs" in sweep.space else base.train.epochs
    study = optuna.create_study(
        storage=f"sqlite:///{(root / 'optuna.db').resolve()}",
        study_name=base.name,
        sampler=SAMPLERS[sweep.method](sweep, 0),
        pruner=PRUNERS[sweep.pruner_name](sweep, epochs),
        direction="maximize" if maximize else "minimize",
        load_if_exists=True,
    )
    recorded = study.user_attrs
    if not recorded:
        study.set_user_attr("space", _space_text(sweep))
        study.set_user_attr("metric", metric)
    for field, now in (("space", _space_text(sweep)), ("metric", metric)):
        if recorded and recorded.get(field) != now:
            raise ConfigError(
                source,
                [
                    (
                        f"sweep.{field}",
                        f"{root} holds a study of another {field}; continue it unchanged "
                        "or pick another --sweep-dir",
                    )
                ],
            )
    return study


def next_trial(study, sweep: SweepConfig):
    """(trial, epochs it reported) to work on next, or None when ``trials`` are done."""
    trials = study.get_trials(deepcopy=False)
    running = [t for t in trials if t.state == TrialState.RUNNING]
    if not running and len(trials) >= sweep.trials:
        return None
    number = running[0].number if running else len(trials)
    study.sampler = SAMPLERS[sweep.method](sweep, number)
    if running:  # stopped or killed mid-run: the same trial (and parameters) goes on
        frozen = running[0]
        # optuna re-opens no trial publicly; Trial(study, id) is what study.ask() returns
        return optuna.trial.Trial(study, frozen._trial_id), frozen.intermediate_values
    return study.ask(), {}
