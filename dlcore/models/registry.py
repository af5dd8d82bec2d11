"""Model registry: config name -> (config section, builder)."""

from collections.abc import Callable
from typing import Literal, NamedTuple

import flax.linen as nn
from pydantic import Field, PositiveInt, field_validator, model_validator

from dlcore.activations import ACTIVATIONS
from dlcore.checks import check_choice
from dlcore.config_base import Section
from dlcore.initializers import INITIALIZERS
from dlcore.models.mlp import MLP, MODULE_ACTIVATIONS


class MLPConfig(Section):
    """Hidden layers of the given widths; the output width comes from the data set."""

    name: Literal["mlp"] = "mlp"
    widths: list[PositiveInt] = Field(default_factory=lambda: [128])
    activation: str = "relu"
    dropout: float = Field(0.0, ge=0.0, lt=1.0)
    dropout_mode: Literal["inverted", "classic"] = "inverted"
    norm: Literal["none", "batch", "layer"] = "none"
    dropconnect: float = Field(0.0, ge=0.0, lt=1.0, description="DropConnect drop prob.")
    weight_noise: float = Field(0.0, ge=0.0, description="std of Gaussian weight noise")
    maxout_pieces: int = Field(2, ge=2)
    kernel_init: str = "lecun_normal"
    bias_init: str = "zeros"

    @field_validator("activation")
    @classmethod
    def _known_activation(cls, value: str) -> str:
        check_choice(value, (*ACTIVATIONS, *MODULE_ACTIVATIONS), "activation")
        return value

    @field_validator("kernel_init", "bias_init")
    @classmethod
    def _known_initializer(cls, value: str) -> str:
        check_choice(value, INITIALIZERS, "initializer")
        return value

    @model_validator(mode="after")
    def _one_weight_perturbation(self):
        if self.dropconnect > 0 and self.weight_noise > 0:
            raise ValueError("use dropconnect or weight_noise, not both")
        return self


def _mlp(cfg: MLPConfig, out_features: int) -> nn.Module:
    fields = cfg.model_dump(exclude={"name", "widths"})
    return MLP(widths=tuple(cfg.widths), out_features=out_features, **fields)


class LinearConfig(Section):
    """One dense layer, scores = W x + b: logistic regression with softmax cross-entropy,
    a linear SVM with a hinge loss, linear regression with squared error."""

    name: Literal["linear"] = "linear"


def _linear(cfg: LinearConfig, out_features: int) -> nn.Module:
    return MLP(widths=(), out_features=out_features)


class ModelEntry(NamedTuple):
    config: type[Section]
    build: Callable[..., nn.Module]  # (config, out_features) -> module
    summary: str


MODELS: dict[str, ModelEntry] = {
    "mlp": ModelEntry(MLPConfig, _mlp, "multi-layer perceptron (dropout, batch norm)"),
    "linear": ModelEntry(LinearConfig, _linear, "one dense layer (logistic regression, SVM)"),
}


def build_model(cfg: Section, out_features: int) -> nn.Module:
    """The Flax module for a validated model section."""
    return MODELS[cfg.name].build(cfg, out_features)
