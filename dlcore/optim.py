"""Optimizers from config: each is an ``optax.chain`` of small transforms.

A config section names a recipe; the recipe is a thin function returning the chain, so the
same chains are available to research code without any config.
"""

from collections.abc import Callable
from typing import Literal, NamedTuple

import optax
from pydantic import Field, PositiveFloat

from dlcore.config_base import Section


class _Optimizer(Section):
    learning_rate: PositiveFloat = 1e-3
    clip_norm: PositiveFloat | None = Field(
        None, description="clip gradients to this global L2 norm before the update"
    )


class SGDConfig(_Optimizer):
    """Plain gradient descent: p <- p - lr * g."""

    name: Literal["sgd"] = "sgd"


class MomentumConfig(_Optimizer):
    """Classical momentum, v <- mu v - lr g; p <- p + v (optax's equivalent trace form)."""

    name: Literal["momentum"] = "momentum"
    momentum: float = Field(0.9, ge=0.0, lt=1.0)


class NesterovConfig(MomentumConfig):
    """Nesterov accelerated gradient (momentum evaluated at the look-ahead point)."""

    name: Literal["nesterov"] = "nesterov"  # type: ignore[assignment]


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


def _sgd(cfg: SGDConfig) -> optax.GradientTransformation:
    return optax.sgd(cfg.learning_rate)


def _momentum(cfg: MomentumConfig) -> optax.GradientTransformation:
    return optax.sgd(cfg.learning_rate, momentum=cfg.momentum)


def _nesterov(cfg: NesterovConfig) -> optax.GradientTransformation:
    return optax.sgd(cfg.learning_rate, momentum=cfg.momentum, nesterov=True)


def _adam(cfg: AdamConfig) -> optax.GradientTransformation:
    return optax.adam(cfg.learning_rate, b1=cfg.b1, b2=cfg.b2, eps=cfg.eps)


def _adamw(cfg: AdamWConfig) -> optax.GradientTransformation:
    return optax.adamw(
        cfg.learning_rate, b1=cfg.b1, b2=cfg.b2, eps=cfg.eps, weight_decay=cfg.weight_decay
    )


class OptimizerEntry(NamedTuple):
    config: type[Section]
    build: Callable[..., optax.GradientTransformation]


OPTIMIZERS: dict[str, OptimizerEntry] = {
    "sgd": OptimizerEntry(SGDConfig, _sgd),
    "momentum": OptimizerEntry(MomentumConfig, _momentum),
    "nesterov": OptimizerEntry(NesterovConfig, _nesterov),
    "adam": OptimizerEntry(AdamConfig, _adam),
    "adamw": OptimizerEntry(AdamWConfig, _adamw),
}


def build_optimizer(cfg: Section) -> optax.GradientTransformation:
    """The optax chain for a validated optimizer section: [clip] -> update rule."""
    parts = []
    if cfg.clip_norm is not None:
        parts.append(optax.clip_by_global_norm(cfg.clip_norm))
    parts.append(OPTIMIZERS[cfg.name].build(cfg))
    return optax.chain(*parts)
