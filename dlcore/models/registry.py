"""Model registry: config name -> (config section, builder)."""

from collections.abc import Callable
from typing import Literal, NamedTuple

import flax.linen as nn
from pydantic import Field, PositiveInt, field_validator

from dlcore.activations import ACTIVATIONS
from dlcore.checks import check_choice
from dlcore.config_base import Section
from dlcore.layers.conv import CONV_IMPLS
from dlcore.models.lenet import LeNet5
from dlcore.models.mlp import MLP


class MLPConfig(Section):
    """Dense layers of the given widths; the output width comes from the data set."""

    name: Literal["mlp"] = "mlp"
    widths: list[PositiveInt] = Field(default_factory=lambda: [128])
    activation: str = "relu"
    dropout: float = Field(0.0, ge=0.0, lt=1.0)
    batch_norm: bool = False

    @field_validator("activation")
    @classmethod
    def _known_activation(cls, value: str) -> str:
        check_choice(value, ACTIVATIONS, "activation")
        return value


def _mlp(cfg: MLPConfig, out_features: int) -> nn.Module:
    return MLP(
        widths=tuple(cfg.widths),
        out_features=out_features,
        activation=cfg.activation,
        dropout=cfg.dropout,
        batch_norm=cfg.batch_norm,
    )


class LinearConfig(Section):
    """One dense layer, scores = W x + b: logistic regression with softmax cross-entropy,
    a linear SVM with a hinge loss, linear regression with squared error."""

    name: Literal["linear"] = "linear"


def _linear(cfg: LinearConfig, out_features: int) -> nn.Module:
    return MLP(widths=(), out_features=out_features)


class LeNet5Config(Section):
    """LeNet-5 for square grey images (flat ``[B, S*S]`` inputs are reshaped to S x S)."""

    name: Literal["lenet5"] = "lenet5"
    activation: str = "relu"
    conv_impl: str = Field("auto", description="'auto' (GEMM on CPU, XLA elsewhere), 'gemm', 'xla'")
    image_size: PositiveInt = 28

    @field_validator("activation")
    @classmethod
    def _known_activation(cls, value: str) -> str:
        check_choice(value, ACTIVATIONS, "activation")
        return value

    @field_validator("conv_impl")
    @classmethod
    def _known_conv_impl(cls, value: str) -> str:
        check_choice(value, CONV_IMPLS, "conv impl")
        return value


def _lenet5(cfg: LeNet5Config, out_features: int) -> nn.Module:
    return LeNet5(
        out_features=out_features,
        activation=cfg.activation,
        conv_impl=cfg.conv_impl,
        image_size=cfg.image_size,
    )


class ModelEntry(NamedTuple):
    config: type[Section]
    build: Callable[..., nn.Module]  # (config, out_features) -> module
    summary: str


MODELS: dict[str, ModelEntry] = {
    "mlp": ModelEntry(MLPConfig, _mlp, "multi-layer perceptron (dropout, batch norm)"),
    "linear": ModelEntry(LinearConfig, _linear, "one dense layer (logistic regression, SVM)"),
    "lenet5": ModelEntry(LeNet5Config, _lenet5, "LeNet-5 CNN for 28x28 images (conv, max-pool)"),
}


def build_model(cfg: Section, out_features: int) -> nn.Module:
    """The Flax module for a validated model section."""
    return MODELS[cfg.name].build(cfg, out_features)
