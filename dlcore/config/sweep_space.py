"""The ``[sweep]`` section: which config fields to search over, and how to sample them.

    [sweep]
    method = "random"          # or "grid", or optuna's "tpe", "cmaes", "qmc"
    trials = 8                 # not for grid search
    pruner = "median"          # optuna methods only (dlcore.experiment.optuna_sweep)
    [sweep.space]
    "optimizer.learning_rate" = { log_uniform = [1e-4, 1e-1] }
    "model.dropout" = { uniform = [0.0, 0.5] }
    "model.widths" = { choices = [[64], [128, 64]] }

Keys are dotted config fields (anything ``--set`` accepts). Grid search takes the
Cartesian product of ``choices``; random search draws every field independently; the
optuna methods pick each trial from the results so far and may prune a trial whose
validation curve falls behind the others'.
"""

import itertools
import math
from typing import Any

import numpy as np
from pydantic import Field, NonNegativeInt, PositiveInt, model_validator

from dlcore.config.section import Section, Seed, one_of

# Optuna's samplers (dlcore.experiment.optuna_study.SAMPLERS builds them). Named here, in
# the config, which must not import optuna; a test keeps the two in step.
OPTUNA_METHODS = ("tpe", "cmaes", "qmc")
METHODS = ("grid", "random", *OPTUNA_METHODS)
# Every pruner and the [sweep] options it reads (optuna_study.PRUNERS builds them).
PRUNER_OPTIONS = {
    "median": ("pruner_startup", "pruner_warmup"),
    "percentile": ("pruner_startup", "pruner_warmup", "pruner_percentile"),
    "hyperband": ("pruner_min_epochs", "pruner_reduction"),
    "successive_halving": ("pruner_min_epochs", "pruner_reduction"),
    "none": (),
}
PRUNER_FIELDS = tuple(sorted({f for fields in PRUNER_OPTIONS.values() for f in fields}))


class Distribution(Section):
    """Exactly one of: ``choices`` (a list), ``uniform`` [low, high], ``log_uniform``."""

    choices: list[Any] | None = Field(None, min_length=1)
    uniform: tuple[float, float] | None = None
    log_uniform: tuple[float, float] | None = None

    @model_validator(mode="after")
    def _exactly_one(self):
        given = [k for k in ("choices", "uniform", "log_uniform") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("set exactly one of choices, uniform, log_uniform")
        for kind in ("uniform", "log_uniform"):
            bounds = getattr(self, kind)
            if bounds is not None and not bounds[0] < bounds[1]:
                raise ValueError(f"{kind} needs [low, high] with low < high; got {list(bounds)}")
        if self.log_uniform is not None and self.log_uniform[0] <= 0:
            raise ValueError("log_uniform bounds must be > 0")
        return self

    def sample(self, rng: np.random.Generator) -> Any:
        if self.choices is not None:
            return self.choices[int(rng.integers(len(self.choices)))]
        if self.uniform is not None:
            return float(rng.uniform(*self.uniform))
        low, high = self.log_uniform
        return float(math.exp(rng.uniform(math.log(low), math.log(high))))


class SweepConfig(Section):
    """Hyper-parameter search over any config fields (see module docstring)."""

    method: one_of(METHODS, "sweep method") = Field(
        "grid", description="grid, random, or an optuna sampler: tpe, cmaes, qmc"
    )
    trials: PositiveInt = Field(8, description="number of trials (random search and optuna)")
    seed: Seed = Field(0, description="seed of the sampler (random search and optuna)")
    metric: str | None = Field(None, description="validation metric (default: the task's)")
    space: dict[str, Distribution] = Field(
        min_length=1, description="dotted config field -> its choices or range"
    )
    startup_trials: NonNegativeInt | None = Field(
        None, description="tpe, cmaes: random trials before the model (optuna: tpe 10, cmaes 1)"
    )
    pruner: one_of(PRUNER_OPTIONS, "sweep pruner") | None = Field(
        None, description="optuna methods: stop trials whose val curve lags (default median)"
    )
    pruner_startup: NonNegativeInt | None = Field(
        None, description="median, percentile: finished trials before any is pruned (5)"
    )
    pruner_warmup: NonNegativeInt | None = Field(
        None, description="median, percentile: epochs of a trial that are never pruned (0)"
    )
    pruner_percentile: float | None = Field(
        None, ge=0, le=100, description="percentile: keep the top p percent at each epoch (25)"
    )
    pruner_min_epochs: PositiveInt | None = Field(
        None, description="hyperband, successive_halving: epochs every trial trains (1)"
    )
    pruner_reduction: int | None = Field(
        None, ge=2, description="hyperband, successive_halving: reduction factor (3, 4)"
    )

    @property
    def pruner_name(self) -> str:
        """The pruner in effect: ``median`` unless set, ``none`` for grid and random."""
        if self.method not in OPTUNA_METHODS:
            return "none"
        return self.pruner or "median"

    @model_validator(mode="after")
    def _options_fit_the_method(self):
        if self.method not in OPTUNA_METHODS:
            optuna_only = ("pruner", "startup_trials", *PRUNER_FIELDS)
            for name in optuna_only:
                if getattr(self, name) is not None:
                    raise ValueError(
                        f"{name} is for the optuna methods ({', '.join(OPTUNA_METHODS)}); "
                        f"method = {self.method!r} does not read it"
                    )
            return self
        if self.method == "qmc" and self.startup_trials is not None:
            raise ValueError("startup_trials: qmc has no random start (remove it)")
        if self.method in ("cmaes", "qmc") and all(
            d.choices is not None for d in self.space.values()
        ):
            raise ValueError(
                f"method = {self.method!r} searches ranges; every field of [sweep.space] "
                'is `choices` (use method = "tpe")'
            )
        for name in PRUNER_FIELDS:
            if getattr(self, name) is not None and name not in PRUNER_OPTIONS[self.pruner_name]:
                raise ValueError(
                    f"{name} is not an option of pruner = {self.pruner_name!r} "
                    f"(it takes: {', '.join(PRUNER_OPTIONS[self.pruner_name]) or 'none'})"
                )
        return self

    @model_validator(mode="after")
    def _grid_needs_choices(self):
        if self.method == "grid":
            for key, dist in self.space.items():
                if dist.choices is None:
                    raise ValueError(
                        f"grid search needs `choices` for every field; {key!r} "
                        'has a range (use method = "random")'
                    )
        return self

    def assignments(self) -> list[dict[str, Any]]:
        """One {dotted field: value} dict per trial, in a fixed order (grid and random;
        the optuna methods choose each trial from the ones before it)."""
        if self.method in OPTUNA_METHODS:
            raise ValueError(f"method = {self.method!r} has no trial list fixed in advance")
        keys = list(self.space)
        if self.method == "grid":
            grids = [self.space[k].choices for k in keys]
            return [dict(zip(keys, values, strict=True)) for values in itertools.product(*grids)]
        rng = np.random.default_rng(self.seed)
        return [{k: self.space[k].sample(rng) for k in keys} for _ in range(self.trials)]
