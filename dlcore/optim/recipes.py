"""Optimizers from config: each is an ``optax.chain`` of small transforms.

A config section names a recipe; the recipe is a thin function returning the chain, so the
same chains are available to research code without any config. With ``g`` the gradient,
``lr`` the (scheduled) learning rate and all operations elementwise:

- ``sgd``:      ``p <- p - lr g``
- ``momentum``: ``v <- mu v - lr g;  p <- p + v`` (the lecture form: ``lr`` is inside ``v``);
  with ``dampening = d``: ``v <- mu v - (1-d) lr g`` after the first step (PyTorch's SGD)
- ``nesterov``: ``v' <- mu v - lr g;  p <- p + v' + mu (v' - v)``, i.e. ``p`` tracks the
  look-ahead point ``theta + mu v`` of ``v <- mu v - lr grad(theta + mu v)``
- ``adagrad``:  ``r <- r + g^2;  p <- p - lr g / sqrt(r + eps)``, ``r_0 =
  initial_accumulator_value``; ``eps_in_sqrt = false``: ``g / (sqrt(r) + eps)`` (PyTorch)
- ``adadelta``: ``r <- rho r + (1-rho) g^2;  d = sqrt(s + eps) / sqrt(r + eps) g;
  s <- rho s + (1-rho) d^2;  p <- p - lr d``
- ``rmsprop``:  ``r <- rho r + (1-rho) g^2;  p <- p - lr g / sqrt(r + eps)``;
  ``eps_in_sqrt = false``: ``g / (sqrt(r) + eps)`` (PyTorch); ``centered``: ``r - m^2`` in
  place of ``r`` with ``m <- rho m + (1-rho) g``; ``momentum = mu``: ``v <- mu v - lr s;
  p <- p + v`` with ``s`` the scaled gradient (PyTorch's buffer, with ``lr`` inside)
- ``adam``:     ``m <- b1 m + (1-b1) g;  v <- b2 v + (1-b2) g^2;
  p <- p - lr m_hat / (sqrt(v_hat) + eps)`` with ``m_hat = m / (1 - b1^t)``,
  ``v_hat = v / (1 - b2^t)``
- ``adamw``:    adam plus decoupled decay ``p <- p - lr (m_hat / (sqrt(v_hat) + eps) + wd p)``

Every optimizer also takes ``coupled_weight_decay`` (``g <- g + wd p`` before the rule,
PyTorch's ``weight_decay``) and ``decay_include`` / ``decay_exclude`` globs choosing the
leaves any decay touches (see :mod:`dlcore.optim.decay`).

Every recipe takes ``lr_factor``, an optional transform applied right after the
learning-rate scaling (the plateau factor), so "divide the rate by k" means the same in
every recipe, including momentum, where it scales only new contributions to ``v``.
"""

from collections.abc import Callable, Sequence
from typing import Annotated, Literal, NamedTuple

import optax
from pydantic import Field, PositiveFloat, model_validator

from dlcore.config.section import Section
from dlcore.optim.accumulators import dampened_trace, scale_by_rss_eps_outside
from dlcore.optim.constraints import max_norm
from dlcore.optim.decay import check_decay_on_init, coupled_weight_decay, decay_mask
from dlcore.optim.freezing import freeze
from dlcore.optim.plateau import scale_by_plateau
from dlcore.optim.schedules import ConstantSchedule, ScheduleConfig, build_schedule, find_plateau
from dlcore.traced import statically_zero

Rate = float | optax.Schedule
Factor = optax.GradientTransformation | None  # applied right after the rate (plateau)
Glob = Annotated[str, Field(min_length=1)]


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
    freeze: tuple[Glob, ...] = Field(
        (), description="glob patterns over '/'-joined parameter paths that get no updates"
    )
    train_only: tuple[Glob, ...] = Field(
        (), description="glob patterns of the only parameters that train (the rest are frozen)"
    )
    coupled_weight_decay: float = Field(
        0.0, ge=0.0, description="g <- g + wd p before the rule (PyTorch's weight_decay)"
    )
    decay_include: tuple[Glob, ...] = Field(
        (), description="globs of the parameters that decay (default: no bias or norm leaf)"
    )
    decay_exclude: tuple[Glob, ...] = Field((), description="globs of parameters that never decay")
    max_norm: PositiveFloat | None = Field(
        None, description="after each update, project each unit's incoming weights to norm <= c"
    )

    def decays(self) -> bool:
        """Whether some weight decay is on (the decay globs mask it)."""
        return self.coupled_weight_decay > 0.0

    @model_validator(mode="after")
    def _globs_need_a_decay(self):
        if (self.decay_include or self.decay_exclude) and not self.decays():
            field = "decay_include" if self.decay_include else "decay_exclude"
            raise ValueError(
                f"{field}: there is no weight decay to mask; set coupled_weight_decay > 0"
                + (" or weight_decay > 0" if self.name == "adamw" else "")
            )
        return self


class SGDConfig(_Optimizer):
    """Plain gradient descent: p <- p - lr g."""

    name: Literal["sgd"] = "sgd"


class MomentumConfig(_Optimizer):
    """Classical momentum in the lecture form: v <- mu v - lr g; p <- p + v."""

    name: Literal["momentum"] = "momentum"
    momentum: float = Field(0.9, ge=0.0, lt=1.0)
    dampening: float = Field(
        0.0, ge=0.0, lt=1.0, description="scale new gradients by 1 - dampening (PyTorch's SGD)"
    )


class NesterovConfig(MomentumConfig):
    """Nesterov accelerated gradient (momentum evaluated at the look-ahead point)."""

    name: Literal["nesterov"] = "nesterov"  # type: ignore[assignment]

    @model_validator(mode="after")
    def _undampened(self):
        if self.dampening != 0.0:
            raise ValueError(
                "dampening: Nesterov momentum takes no dampening (PyTorch refuses it too); "
                "use name = 'momentum' for dampened momentum"
            )
        return self


class AdagradConfig(_Optimizer):
    """Adagrad: divide by the root of the running sum of squared gradients."""

    name: Literal["adagrad"] = "adagrad"
    learning_rate: PositiveFloat = 1e-2
    eps: PositiveFloat = Field(1e-8, description="added under the square root")
    eps_in_sqrt: bool = Field(True, description="g/sqrt(r + eps); false: g/(sqrt(r) + eps)")
    initial_accumulator_value: float = Field(0.0, ge=0.0, description="r_0, the starting sum")


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
    eps_in_sqrt: bool = Field(True, description="g/sqrt(r + eps); false: g/(sqrt(r) + eps)")
    centered: bool = Field(False, description="divide by the running std, not the RMS")
    momentum: float = Field(0.0, ge=0.0, lt=1.0, description="momentum of the scaled steps")


class AdamConfig(_Optimizer):
    """Adam (Kingma & Ba) with bias-corrected first and second moments."""

    name: Literal["adam"] = "adam"
    b1: float = Field(0.9, ge=0.0, lt=1.0)
    b2: float = Field(0.999, ge=0.0, lt=1.0)
    eps: PositiveFloat = 1e-8


class AdamWConfig(AdamConfig):
    """Adam with decoupled weight decay (Loshchilov & Hutter)."""

    name: Literal["adamw"] = "adamw"  # type: ignore[assignment]
    weight_decay: float = Field(
        1e-4, ge=0.0, description="decoupled: p <- p - lr wd p, not divided by sqrt(v_hat)"
    )

    def decays(self) -> bool:
        return super().decays() or self.weight_decay > 0.0


def descend(learning_rate: Rate, lr_factor: Factor = None) -> optax.GradientTransformation:
    """``u -> -lr u`` (``lr`` a float or a schedule of the update count), then ``lr_factor``."""
    step = optax.scale_by_learning_rate(learning_rate)
    return step if lr_factor is None else optax.chain(step, lr_factor)


def sgd(learning_rate: Rate, *, lr_factor: Factor = None) -> optax.GradientTransformation:
    """Gradient descent: p <- p - lr g."""
    return descend(learning_rate, lr_factor)


def momentum(
    learning_rate: Rate,
    momentum: float = 0.9,
    *,
    dampening: float = 0.0,
    lr_factor: Factor = None,
) -> optax.GradientTransformation:
    """Lecture-form momentum: the velocity accumulates already-scaled steps -lr g.

    ``dampening = d`` scales each new step after the first by ``1 - d``, PyTorch's
    ``SGD(momentum=mu, dampening=d)`` (see :func:`dlcore.optim.accumulators.dampened_trace`).

    Example:
      >>> import jax.numpy as jnp
      >>> opt = momentum(0.1, 0.5)
      >>> state = opt.init(jnp.zeros(1))
      >>> u, state = opt.update(jnp.ones(1), state)  # v = -0.1
      >>> round(float(opt.update(jnp.ones(1), state)[0][0]), 6)  # v = 0.5 * -0.1 - 0.1
      -0.15
    """
    undamped = statically_zero(dampening)  # a traced one takes the general form (equal at 0)
    trace = optax.trace(decay=momentum) if undamped else dampened_trace(momentum, dampening)
    return optax.chain(descend(learning_rate, lr_factor), trace)


def nesterov(
    learning_rate: Rate, momentum: float = 0.9, *, lr_factor: Factor = None
) -> optax.GradientTransformation:
    """Nesterov momentum in the look-ahead parameterization (Sutskever et al. 2013)."""
    return optax.chain(
        descend(learning_rate, lr_factor), optax.trace(decay=momentum, nesterov=True)
    )


def adagrad(
    learning_rate: Rate,
    eps: float = 1e-8,
    *,
    eps_in_sqrt: bool = True,
    initial_accumulator_value: float = 0.0,
    lr_factor: Factor = None,
) -> optax.GradientTransformation:
    """Adagrad, by default with a zero initial accumulator and ``eps`` under the square
    root; ``eps_in_sqrt=False`` divides by ``sqrt(r) + eps`` as ``torch.optim.Adagrad``."""
    if eps_in_sqrt:
        scale = optax.scale_by_rss(initial_accumulator_value=initial_accumulator_value, eps=eps)
    else:
        scale = scale_by_rss_eps_outside(initial_accumulator_value, eps)
    return optax.chain(scale, descend(learning_rate, lr_factor))


def adadelta(
    learning_rate: Rate = 1.0, rho: float = 0.95, eps: float = 1e-6, *, lr_factor: Factor = None
) -> optax.GradientTransformation:
    """Adadelta; ``learning_rate = 1`` is Zeiler's original (rate-free) rule."""
    return optax.chain(optax.scale_by_adadelta(rho=rho, eps=eps), descend(learning_rate, lr_factor))


def rmsprop(
    learning_rate: Rate,
    decay: float = 0.9,
    eps: float = 1e-8,
    *,
    eps_in_sqrt: bool = True,
    centered: bool = False,
    momentum: float = 0.0,
    lr_factor: Factor = None,
) -> optax.GradientTransformation:
    """RMSProp with a zero initial mean square, by default with ``eps`` under the root.

    ``centered`` divides by ``sqrt(r - m^2 [+ eps])``, ``m`` the running mean gradient
    (``optax.scale_by_stddev``); ``momentum = mu`` accumulates the scaled steps,
    ``v <- mu v - lr s; p <- p + v``. With ``eps_in_sqrt=False`` and ``decay = alpha`` this is
    ``torch.optim.RMSprop(alpha, eps, momentum, centered)``.
    """
    scale = optax.scale_by_stddev if centered else optax.scale_by_rms
    parts = [
        scale(decay=decay, eps=eps, initial_scale=0.0, eps_in_sqrt=eps_in_sqrt),
        descend(learning_rate, lr_factor),
    ]
    if not statically_zero(momentum):  # no trace at all by default: the state stays as it was
        parts.append(optax.trace(decay=momentum))
    return optax.chain(*parts)


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


def _keywords(cfg: Section, *names: str) -> dict:
    """The named fields of a section as keyword arguments of its recipe."""
    return cfg.model_dump(include=set(names))


OPTIMIZERS: dict[str, OptimizerEntry] = {
    "sgd": OptimizerEntry(SGDConfig, lambda c, lr, f: sgd(lr, lr_factor=f)),
    "momentum": OptimizerEntry(
        MomentumConfig,
        lambda c, lr, f: momentum(lr, c.momentum, dampening=c.dampening, lr_factor=f),
    ),
    "nesterov": OptimizerEntry(
        NesterovConfig, lambda c, lr, f: nesterov(lr, c.momentum, lr_factor=f)
    ),
    "adagrad": OptimizerEntry(
        AdagradConfig,
        lambda c, lr, f: adagrad(
            lr, c.eps, lr_factor=f, **_keywords(c, "eps_in_sqrt", "initial_accumulator_value")
        ),
    ),
    "adadelta": OptimizerEntry(
        AdadeltaConfig, lambda c, lr, f: adadelta(lr, c.rho, c.eps, lr_factor=f)
    ),
    "rmsprop": OptimizerEntry(
        RMSPropConfig,
        lambda c, lr, f: rmsprop(
            lr, c.decay, c.eps, lr_factor=f, **_keywords(c, "eps_in_sqrt", "centered", "momentum")
        ),
    ),
    "adam": OptimizerEntry(AdamConfig, lambda c, lr, f: adam(lr, c.b1, c.b2, c.eps, lr_factor=f)),
    "adamw": OptimizerEntry(
        AdamWConfig,
        lambda c, lr, f: adamw(
            lr,
            c.b1,
            c.b2,
            c.eps,
            c.weight_decay,
            lr_factor=f,
            decay_mask=decay_mask(c.decay_include, c.decay_exclude),
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

    ``[clip_value] -> [clip_norm] -> [coupled weight decay] -> update rule with the
    scheduled rate [and plateau factor] -> [max_norm projection]``, wrapped so that
    ``freeze`` patterns (and whatever ``train_only`` patterns do not match) get zero updates
    and no state; ``init`` checks that every freeze, train-only and decay glob matches some
    parameter.

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
    parts = clipping(cfg.clip_norm, cfg.clip_value)
    if not statically_zero(cfg.coupled_weight_decay):  # after clipping, as PyTorch does
        mask = decay_mask(cfg.decay_include, cfg.decay_exclude)
        parts.append(coupled_weight_decay(cfg.coupled_weight_decay, mask))
    chain = optax.chain(*parts, rule, *([] if cfg.max_norm is None else [max_norm(cfg.max_norm)]))
    return check_decay_on_init(
        freeze(chain, cfg.freeze, cfg.train_only), cfg.decay_include, cfg.decay_exclude
    )
