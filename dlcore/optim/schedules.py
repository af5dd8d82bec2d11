"""Learning-rate schedules from config: ``[optimizer.schedule] name = "..."``.

A schedule maps the optimizer's update count ``t`` (0 for the first update) to a learning
rate; ``lr`` below is the section's ``learning_rate``. ``factor`` always means *divide by*:

- ``constant``: ``lr``.
- ``step``: ``lr / factor ** floor(t / every)``.
- ``exponential``: ``lr * decay_rate ** (t / transition_steps)`` (``floor`` of the exponent
  when ``staircase``).
- ``inverse_time``: ``lr / (1 + decay * t)`` (Keras 1's SGD ``decay``; ``t`` counts updates
  from 0, so the first update uses ``lr`` itself).
- ``cosine``: ``lr * (alpha + (1 - alpha) * (1 + cos(pi * min(t, T) / T)) / 2)`` with
  ``T = decay_steps``.
- ``warmup``: ``lr * (start + (1 - start) * t / warmup_steps)`` for ``t < warmup_steps``, then
  the nested ``then`` schedule at ``t - warmup_steps`` (constant by default).
- ``plateau``: ``lr`` divided by ``factor`` each time the validation metric has not improved
  for ``patience`` validation passes; not a function of ``t`` but a factor held in the
  optimizer state (see :mod:`dlcore.optim.plateau`).

Example::

    [optimizer.schedule]
    name = "warmup"
    warmup_steps = 100
    [optimizer.schedule.then]
    name = "cosine"
    decay_steps = 900
"""

from collections.abc import Callable
from typing import Annotated, Literal, NamedTuple, Union

import jax.numpy as jnp
import optax
from pydantic import BeforeValidator, Field, PositiveInt

from dlcore.config.section import Section


class ConstantSchedule(Section):
    """The learning rate never changes."""

    name: Literal["constant"] = "constant"


class StepSchedule(Section):
    """Step decay: divide the learning rate by ``factor`` every ``every`` updates."""

    name: Literal["step"] = "step"
    every: PositiveInt = Field(description="updates between two divisions")
    factor: float = Field(10.0, gt=1.0, description="divide the learning rate by this (> 1)")


class ExponentialSchedule(Section):
    """Exponential decay: multiply by ``decay_rate`` every ``transition_steps`` updates."""

    name: Literal["exponential"] = "exponential"
    decay_rate: float = Field(gt=0.0, lt=1.0)
    transition_steps: PositiveInt = 1
    staircase: bool = Field(False, description="decay in whole steps of transition_steps")


class InverseTimeSchedule(Section):
    """Inverse-time decay, ``lr / (1 + decay * t)``: Keras 1's ``SGD(decay=...)``."""

    name: Literal["inverse_time"] = "inverse_time"
    decay: float = Field(gt=0.0, description="lr_t = lr / (1 + decay * t), t = updates so far")


class CosineSchedule(Section):
    """Cosine decay from ``lr`` to ``alpha * lr`` over ``decay_steps``, then flat."""

    name: Literal["cosine"] = "cosine"
    decay_steps: PositiveInt
    alpha: float = Field(0.0, ge=0.0, le=1.0, description="final fraction of the rate")


class PlateauSchedule(Section):
    """Divide the learning rate by ``factor`` when the validation metric stops improving.

    The training loop reports each validation value with
    :func:`dlcore.optim.plateau.plateau_observe`; ``mode`` says whether larger (``max``,
    e.g. accuracy or a reward) or smaller (``min``, e.g. a loss or a negative
    log-likelihood) is better, whatever the sign of the values.
    """

    name: Literal["plateau"] = "plateau"
    mode: Literal["max", "min"] = Field(description="whether larger or smaller is better")
    factor: float = Field(2.0, gt=1.0, description="divide the learning rate by this (> 1)")
    patience: PositiveInt = Field(1, description="non-improving validation passes tolerated")
    min_delta: float = Field(0.0, ge=0.0, description="smallest change that counts as better")
    metric: str | None = Field(
        None, description="validation metric watched (default: the run's best_metric)"
    )


class ScheduleEntry(NamedTuple):
    config: type[Section]
    build: Callable[..., float | optax.Schedule]  # (config, learning_rate) -> t -> rate


def _constant(cfg: Section, lr: float) -> float:
    return lr  # a float, not a function: the chain then keeps no update count


def _step(cfg: StepSchedule, lr: float) -> optax.Schedule:
    def schedule(count):
        return lr * (1.0 / cfg.factor) ** jnp.floor_divide(count, cfg.every)

    return schedule


def _exponential(cfg: ExponentialSchedule, lr: float) -> optax.Schedule:
    return optax.exponential_decay(
        lr, cfg.transition_steps, cfg.decay_rate, staircase=cfg.staircase
    )


def _inverse_time(cfg: InverseTimeSchedule, lr: float) -> optax.Schedule:
    def schedule(count):
        return lr / (1.0 + cfg.decay * count)

    return schedule


def _cosine(cfg: CosineSchedule, lr: float) -> optax.Schedule:
    return optax.cosine_decay_schedule(lr, cfg.decay_steps, alpha=cfg.alpha)


# Schedules that can follow a warm-up (everything except warm-up itself).
AFTER_WARMUP: dict[str, ScheduleEntry] = {
    "constant": ScheduleEntry(ConstantSchedule, _constant),
    "step": ScheduleEntry(StepSchedule, _step),
    "exponential": ScheduleEntry(ExponentialSchedule, _exponential),
    "inverse_time": ScheduleEntry(InverseTimeSchedule, _inverse_time),
    "cosine": ScheduleEntry(CosineSchedule, _cosine),
    "plateau": ScheduleEntry(PlateauSchedule, _constant),  # the plateau factor is state
}


def _named_union(registry: dict[str, ScheduleEntry]) -> object:
    """A discriminated union over ``registry`` whose unknown names list the valid ones.

    The name is checked before pydantic's own tag check so the error is one line saying
    "unknown schedule 'x'; valid: ..."; a bare string is shorthand for ``{name = "..."}``.
    """
    valid = ", ".join(sorted(registry))

    def check_name(value):
        if isinstance(value, str):
            value = {"name": value}
        if isinstance(value, dict):
            if "name" not in value:
                raise ValueError(f"missing schedule name; one of: {valid}")
            if not isinstance(value["name"], str) or value["name"] not in registry:
                raise ValueError(f"unknown schedule {value['name']!r}; valid: {valid}")
        return value

    members = tuple(entry.config for entry in registry.values())
    union = Annotated[Union[members], Field(discriminator="name")]  # noqa: UP007
    return Annotated[union, BeforeValidator(check_name)]


class WarmupSchedule(Section):
    """Linear warm-up from ``start * lr`` to ``lr`` over ``warmup_steps``, then ``then``."""

    name: Literal["warmup"] = "warmup"
    warmup_steps: PositiveInt
    start: float = Field(0.0, ge=0.0, le=1.0, description="first rate as a fraction of lr")
    then: _named_union(AFTER_WARMUP) = Field(  # type: ignore[valid-type]
        default_factory=ConstantSchedule, description="schedule after the warm-up"
    )


def _warmup(cfg: WarmupSchedule, lr: float) -> optax.Schedule:
    ramp = optax.linear_schedule(cfg.start * lr, lr, cfg.warmup_steps)
    after = SCHEDULES[cfg.then.name].build(cfg.then, lr)
    if not callable(after):
        after = optax.constant_schedule(after)
    return optax.join_schedules([ramp, after], [cfg.warmup_steps])


SCHEDULES: dict[str, ScheduleEntry] = {
    **AFTER_WARMUP,
    "warmup": ScheduleEntry(WarmupSchedule, _warmup),
}

ScheduleConfig = _named_union(SCHEDULES)


def build_schedule(cfg: Section, learning_rate: float) -> float | optax.Schedule:
    """The step function ``t -> rate`` of a validated schedule section.

    Constant and plateau schedules give the float ``learning_rate`` itself, so that the
    chain keeps no update count for them.

    Example:
      >>> from dlcore.optim.schedules import CosineSchedule, build_schedule
      >>> float(build_schedule(CosineSchedule(decay_steps=10), 0.1)(10))
      0.0
    """
    return SCHEDULES[cfg.name].build(cfg, learning_rate)


def find_plateau(cfg: Section) -> PlateauSchedule | None:
    """The plateau section of a schedule (possibly nested after a warm-up), else None."""
    if isinstance(cfg, WarmupSchedule):
        return find_plateau(cfg.then)
    return cfg if isinstance(cfg, PlateauSchedule) else None
