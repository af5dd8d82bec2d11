"""The ``[sweep]`` section: which config fields to search over, and how to sample them.

    [sweep]
    method = "random"          # or "grid"
    trials = 8                 # random search only
    [sweep.space]
    "optimizer.learning_rate" = { log_uniform = [1e-4, 1e-1] }
    "model.dropout" = { uniform = [0.0, 0.5] }
    "model.widths" = { choices = [[64], [128, 64]] }

Keys are dotted config fields (anything ``--set`` accepts). Grid search takes the
Cartesian product of ``choices``; random search draws every field independently.
"""

import itertools
import math
from typing import Any, Literal

import numpy as np
from pydantic import Field, PositiveInt, model_validator

from dlcore.config.section import Section, Seed


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

    method: Literal["grid", "random"] = "grid"
    trials: PositiveInt = Field(8, description="number of random-search trials")
    seed: Seed = Field(0, description="seed of the random-search sampler")
    metric: str | None = Field(None, description="validation metric (default: the task's)")
    space: dict[str, Distribution] = Field(min_length=1)

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
        """One {dotted field: value} dict per trial, in a fixed order."""
        keys = list(self.space)
        if self.method == "grid":
            grids = [self.space[k].choices for k in keys]
            return [dict(zip(keys, values, strict=True)) for values in itertools.product(*grids)]
        rng = np.random.default_rng(self.seed)
        return [{k: self.space[k].sample(rng) for k in keys} for _ in range(self.trials)]
