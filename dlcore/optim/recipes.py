"""Optimizers from config: each is an ``optax.chain`` of small transforms.

A config section names a recipe; the recipe is a thin function returning the chain, so the
same chains are available to research code without any config. With ``g`` the gradient,
``lr`` the (scheduled) learning rate and all operations elementwise:

- ``sgd``:      ``p <- p - lr g``
- ``momentum``: ``v <- mu v - lr g;  p <- p + v`` (the lecture form: ``lr`` is inside ``v``)
- ``nesterov``: ``v' <- mu v - lr g;  p <- p + v' + mu (v' - v)``, i.e. ``p`` tracks the
  look-ahead point ``theta + mu v`` of ``v <- mu v - lr grad(theta + mu v)``
- ``adagrad``:  ``r <- r + g^2;  p <- p - lr g / sqrt(r + eps)``
- ``adadelta``: ``r <- rho r + (1-rho) g^2;  d = sqrt(s + eps) / sqrt(r + eps) g;
  s <- rho s + (1-rho) d^2;  p <- p - lr d``
- ``rmsprop``:  ``r <- rho r + (1-rho) g^2;  p <- p - lr g / sqrt(r + eps)``
- ``adam``:     ``m <- b1 m + (1-b1) g;  v <- b2 v + (1-b2) g^2;
  p <- p - lr m_hat / (sqrt(v_hat) + eps)`` with ``m_hat = m / (1 - b1^t)``,
  ``v_hat = v / (1 - b2^t)``
- ``adamw``:    adam plus decoupled decay ``p <- p - lr (m_hat / (sqrt(v_hat) + eps) + wd p)``

Every recipe takes ``lr_factor``, an optional transform applied right after the
learning-rate scaling (the plateau factor), so "divide the rate by k" means the same in
every recipe, including momentum, where it scales only new contributions to ``v``.
"""

from collections.abc import Callable, Sequence
from typing import Annotated, Literal, NamedTuple

import optax
from pydantic import Field, PositiveFloat

from dlcore.config.section import Section
from dlcore.optim.freezing import freeze
from dlcore.optim.plateau import scale_by_plateau
from dlcore.optim.schedules import ConstantSchedule, ScheduleConfig, build_schedule, find_plateau
from dlcore.regularizers import weight_mask

Rate = float | optax.Schedule
Factor = optax.GradientTransformation | None  # applied right after the rate (plateau)


class _Optimizer(Section):
    learning_rate: PositiveFloat = Field(1e-3, description="base rate the schedule scales")
    schedule: ScheduleConfig = Field(  # type: ignore[valid-type]
        default_factory=ConstantSchedule, description="learning-rate schedule ([..schedule])"
    )
    clip_norm: PositiveFloat | None = Field(
        None, description="clip gradients to this global L2 norm before the update"
    )
    clip_value: PositiveFloat | None = Field(
        None, description="clip each gradient element to [-clip_value, clip_value] first"
    )
    freeze: tuple[Annotated[str, Field(min_length=1)], ...] = Field(
        (), description="glob patterns over '/'-joined parameter paths that get no updates"
    )
    train_only: tuple[Annotated[str, Field(min_length=1)], ...] = Field(
        (), description="glob patterns of the only parameters that train (the rest are frozen)"
    )


class SGDConfig(_Optimizer):
    """Plain gradient descent: p <- p - lr g."""

    name: Literal["sgd"] = "sgd"


class MomentumConfig(_Optimizer):
    """Classical momentum in the lecture form: v <- mu v - lr g; p <- p + v."""

    name: Literal["momentum"] = "momentum"
    momentum: float = Field(0.9, ge=0.0, lt=1.0)


class NesterovConfig(MomentumConfig):
    """Nesterov accelerated gradient (momentum evaluated at the look-ahead point)."""

    name: Literal["nesterov"] = "nesterov"  # type: ignore[assignment]


class AdagradConfig(_Optimizer):
    """Adagrad: divide by the root of the running sum of squared gradients."""

    name: Literal["adagrad"] = "adagrad"
    learning_rate: PositiveFloat = 1e-2
    eps: PositiveFloat = Field(1e-8, description="added under the square root")


class AdadeltaConfig(_Optimizer):
    """Adadelta (Zeiler): the step's units come from a running average of past steps."""

    name: Literal["adadelta"] = "adadelta"
    learning_rate: PositiveFloat = 1.0
    rho: float = Field(0.95, gt=0.0, lt=1.0)
    eps: PositiveFloat = Field(1e-6, description="added under both square roots")


class RMSPropConfig(_Optimizer):
    """RMSProp (Tieleman & Hinton): divide by a running RMS of the gradient."""

    name: Literal["rmsprop"] = "rmsprop"
    decay: float = Field(0.9, gt=0.0, lt=1.0)
    eps: PositiveFloat = Field(1e-8, description="added under the square root")


class AdamConfig(_Optimizer):
    """Adam (Kingma & Ba) with bias-corrected first and second moments."""

    name: Literal["adam"] = "adam"
    b1: float = Field(0.9, ge=0.0, lt=1.0)
    b2: float = Field(0.999, ge=0.0, lt=1.0)
    eps: PositiveFloat = 1e-8


class AdamWConfig(AdamConfig):
    """Adam with decoupled weight decay (Loshchilov & Hutter)."""

    name: Literal["adamw"] = "adamw"  # type: ignore[assignment]
    weight_decay: float = Field(1e-4, ge=0.0)


def descend(learning_rate: Rate, lr_factor: Factor = None) -> optax.GradientTransformation:
    """``u -> -lr u`` (``lr`` a float or a schedule of the update count), then ``lr_factor``."""
    step = optax.scale_by_learning_rate(learning_rate)
    return step if lr_factor is None else optax.chain(step, lr_factor)


def sgd(learning_rate: Rate, *, lr_factor: Factor = None) -> optax.GradientTransformation:
    """Gradient descent: p <- p - lr g."""
    return descend(learning_rate, lr_factor)


def momentum(
    learning_rate: Rate, momentum: float = 0.9, *, lr_factor: Factor = None
) -> optax.GradientTransformation:
    """Lecture-form momentum: the velocity accumulates already-scaled steps -lr g.

    Example:
      >>> import jax.numpy as jnp
      >>> opt = momentum(0.1, 0.5)
      >>> state = opt.init(jnp.zeros(1))
      >>> u, state = opt.update(jnp.ones(1), state)  # v = -0.1
      >>> round(float(opt.update(jnp.ones(1), state)[0][0]), 6)  # v = 0.5 * -0.1 - 0.1
      -0.15
    """
    return optax.chain(descend(learning_rate, lr_factor), optax.trace(decay=momentum))


def nesterov(
    learning_rate: Rate, momentum: float = 0.9, *, lr_factor: Factor = None
) -> optax.GradientTransformation:
    """Nesterov momentum in the look-ahead parameterization (Sutskever et al. 2013)."""
    return optax.chain(
        descend(learning_rate, lr_factor), optax.trace(decay=momentum, nesterov=True)
    )


def adagrad(
    learning_rate: Rate, eps: float = 1e-8, *, lr_factor: Factor = None
) -> optax.GradientTransformation:
    """Adagrad with a zero initial accumulator and ``eps`` under the square root."""
    return optax.chain(
        optax.scale_by_rss(initial_accumulator_value=0.0, eps=eps),
        descend(learning_rate, lr_factor),
    )


def adadelta(
    learning_rate: Rate = 1.0, rho: float = 0.95, eps: float = 1e-6, *, lr_factor: Factor = None
) -> optax.GradientTransformation:
    """Adadelta; ``learning_rate = 1`` is Zeiler's original (rate-free) rule."""
    return optax.chain(optax.scale_by_adadelta(rho=rho, eps=eps), descend(learning_rate, lr_factor))


def rmsprop(
    learning_rate: Rate, decay: float = 0.9, eps: float = 1e-8, *, lr_factor: Factor = None
) -> optax.GradientTransformation:
    """RMSProp with a zero initial mean square and ``eps`` under the square root."""
    return optax.chain(
        optax.scale_by_rms(decay=decay, eps=eps, initial_scale=0.0),
        descend(learning_rate, lr_factor),
    )


def adam(
    learning_rate: Rate,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    *,
    lr_factor: Factor = None,
) -> optax.GradientTransformation:
    """Adam with bias correction."""
    return optax.chain(
        optax.scale_by_adam(b1=b1, b2=b2, eps=eps), descend(learning_rate, lr_factor)
    )


def adamw(
    learning_rate: Rate,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    weight_decay: float = 1e-4,
    *,
    decay_mask=None,
    lr_factor: Factor = None,
) -> optax.GradientTransformation:
    """Adam plus ``weight_decay * p`` added after the Adam step, so the decay is not
    divided by ``sqrt(v_hat)`` (decoupled); ``decay_mask`` limits it to some leaves."""
    return optax.chain(
        optax.scale_by_adam(b1=b1, b2=b2, eps=eps),
        optax.add_decayed_weights(weight_decay, mask=decay_mask),
        descend(learning_rate, lr_factor),
    )


class OptimizerEntry(NamedTuple):
    config: type[Section]
    build: Callable[..., optax.GradientTransformation]  # (config, rate, lr_factor) -> chain


OPTIMIZERS: dict[str, OptimizerEntry] = {
    "sgd": OptimizerEntry(SGDConfig, lambda c, lr, f: sgd(lr, lr_factor=f)),
    "momentum": OptimizerEntry(
        MomentumConfig, lambda c, lr, f: momentum(lr, c.momentum, lr_factor=f)
    ),
    "nesterov": OptimizerEntry(
        NesterovConfig, lambda c, lr, f: nesterov(lr, c.momentum, lr_factor=f)
    ),
    "adagrad": OptimizerEntry(AdagradConfig, lambda c, lr, f: adagrad(lr, c.eps, lr_factor=f)),
    "adadelta": OptimizerEntry(
        AdadeltaConfig, lambda c, lr, f: adadelta(lr, c.rho, c.eps, lr_factor=f)
    ),
    "rmsprop": OptimizerEntry(
        RMSPropConfig, lambda c, lr, f: rmsprop(lr, c.decay, c.eps, lr_factor=f)
    ),
    "adam": OptimizerEntry(AdamConfig, lambda c, lr, f: adam(lr, c.b1, c.b2, c.eps, lr_factor=f)),
    "adamw": OptimizerEntry(
        AdamWConfig,
        lambda c, lr, f: adamw(
            lr, c.b1, c.b2, c.eps, c.weight_decay, lr_factor=f, decay_mask=weight_mask
        ),
    ),
}


def clipping(clip_norm: float | None, clip_value: float | None) -> Sequence:
    """The clipping transforms that go in front of an update rule (value, then norm)."""
    parts = []
    if clip_value is not None:
        parts.append(optax.clip(clip_value))
    if clip_norm is not None:
        parts.append(optax.clip_by_global_norm(clip_norm))
    return parts


def build_optimizer(cfg: Section) -> optax.GradientTransformation:
    """The optax chain for a validated optimizer section.

    ``[clip_value] -> [clip_norm] -> update rule with the scheduled rate [and plateau
    factor]``, wrapped so that ``freeze`` patterns (and whatever ``train_only`` patterns do
    not match) get zero updates and no state.

    Example:
      >>> import jax.numpy as jnp
      >>> opt = build_optimizer(SGDConfig(learning_rate=0.5, clip_value=1.0))
      >>> float(opt.update(jnp.full(1, 4.0), opt.init(jnp.zeros(1)))[0][0])
      -0.5
    """
    plateau = find_plateau(cfg.schedule)
    lr_factor = (
        None
        if plateau is None
        else scale_by_plateau(plateau.factor, plateau.patience, plateau.mode, plateau.min_delta)
    )
    rate = build_schedule(cfg.schedule, cfg.learning_rate)
    rule = OPTIMIZERS[cfg.name].build(cfg, rate, lr_factor)
    chain = optax.chain(*clipping(cfg.clip_norm, cfg.clip_value), rule)
    return freeze(chain, cfg.freeze, cfg.train_only)
