"""Multi-layer perceptron: the first model every task plugs into."""

from collections.abc import Sequence
from typing import Literal

import flax.linen as nn
import jax
from pydantic import Field, PositiveInt, field_validator, model_validator

from dlcore.activations import ACTIVATIONS, get_activation
from dlcore.checks import check_choice
from dlcore.config.section import Section, one_of
from dlcore.data.dataset import DataSpec
from dlcore.data.needs import Need
from dlcore.initializers import INITIALIZERS, get_initializer
from dlcore.layers import DropConnectDense, Dropout, GaussianWeightNoiseDense, Maxout, PReLU
from dlcore.layers.dropout import DROPOUT_MODES
from dlcore.traced import statically_zero

# Activations that are modules with parameters rather than plain functions.
MODULE_ACTIVATIONS = ("prelu", "maxout")
NORMS = ("none", "batch", "layer")


class MLP(nn.Module):
    """A stack of hidden layers and a linear output layer.

    Each hidden layer computes h = dropout(act(norm(W h_prev + b))); the output layer is
    linear (logits or regression outputs). Inputs of rank > 2 are flattened to ``[B, D]``.

    Attributes:
      widths: hidden layer widths, e.g. ``(128, 128)``; ``()`` is a linear model.
      out_features: width of the output layer (number of classes or targets).
      activation: a name in ``dlcore.activations.ACTIVATIONS``, or ``"prelu"`` (learned
        leaky slope) or ``"maxout"`` (each unit the max of ``maxout_pieces`` linear pieces).
      dropout: drop probability after each hidden activation.
      dropout_mode: ``"inverted"`` (scale by 1/q while training) or ``"classic"`` (scale by
        q at test time).
      norm: ``"none"``, ``"batch"`` (running statistics in ``batch_stats``) or ``"layer"``.
      dropconnect: probability of dropping each hidden weight while training (DropConnect).
      weight_noise: std of Gaussian noise added to hidden weights while training.
      maxout_pieces: linear pieces per maxout unit.
      kernel_init: name in ``dlcore.initializers.INITIALIZERS`` for every dense kernel.
      bias_init: name in ``dlcore.initializers.INITIALIZERS`` for every dense bias.

    Example:
      >>> model = MLP(widths=(32,), out_features=10)
      >>> variables = model.init(jax.random.key(0), jnp.ones((4, 64)), train=False)
      >>> model.apply(variables, jnp.ones((4, 64)), train=False).shape
      (4, 10)
    """

    widths: Sequence[int]
    out_features: int
    activation: str = "relu"
    dropout: float = 0.0
    dropout_mode: str = "inverted"
    norm: str = "none"
    dropconnect: float = 0.0
    weight_noise: float = 0.0
    maxout_pieces: int = 2
    kernel_init: str = "lecun_normal"
    bias_init: str = "zeros"

    def _hidden(self, width: int, inits: dict, train: bool, h_BxD: jax.Array) -> jax.Array:
        if self.activation == "maxout":
            return Maxout(width, self.maxout_pieces, kernel_init=inits["kernel_init"])(h_BxD)
        if self.dropconnect > 0:
            h_BxD = DropConnectDense(width, self.dropconnect, **inits)(h_BxD, train=train)
        elif self.weight_noise > 0:
            h_BxD = GaussianWeightNoiseDense(width, self.weight_noise, **inits)(h_BxD, train=train)
        else:
            h_BxD = nn.Dense(width, use_bias=self.norm != "batch", **inits)(h_BxD)
        if self.norm == "batch":
            h_BxD = nn.BatchNorm(use_running_average=not train, momentum=0.9)(h_BxD)
        elif self.norm == "layer":
            h_BxD = nn.LayerNorm()(h_BxD)
        if self.activation == "prelu":
            return PReLU()(h_BxD)
        return get_activation(self.activation)(h_BxD)

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
        check_choice(self.activation, (*ACTIVATIONS, *MODULE_ACTIVATIONS), "activation")
        check_choice(self.norm, NORMS, "norm")
        inits = {
            "kernel_init": get_initializer(self.kernel_init),
            "bias_init": get_initializer(self.bias_init),
        }
        h_BxD = x.reshape(x.shape[0], -1)
        for width in self.widths:
            h_BxD = self._hidden(width, inits, train, h_BxD)
            if not statically_zero(self.dropout):  # a traced rate may be a member's 0
                h_BxD = Dropout(self.dropout, self.dropout_mode)(h_BxD, train=train)
        return nn.Dense(self.out_features, **inits)(h_BxD)


BIAS_ONLY_INITIALIZERS = ("forget_gate_bias",)
Initializer = one_of(INITIALIZERS, "initializer")
# Dense models read real-valued inputs of any shape (they flatten them).
REAL_INPUTS = (Need("x", ("features",), "real-valued features (use the rnn model for tokens)"),)


class MLPConfig(Section):
    """Hidden layers of the given widths; the output width comes from the task."""

    name: Literal["mlp"] = "mlp"
    widths: list[PositiveInt] = Field(default_factory=lambda: [128])
    activation: one_of((*ACTIVATIONS, *MODULE_ACTIVATIONS), "activation") = "relu"
    dropout: float = Field(0.0, ge=0.0, lt=1.0)
    dropout_mode: one_of(DROPOUT_MODES, "dropout_mode") = "inverted"
    norm: one_of(NORMS, "norm") = "none"
    dropconnect: float = Field(0.0, ge=0.0, lt=1.0, description="DropConnect drop prob.")
    weight_noise: float = Field(0.0, ge=0.0, description="std of Gaussian weight noise")
    maxout_pieces: int = Field(2, ge=2)
    kernel_init: Initializer = "lecun_normal"
    bias_init: Initializer = "zeros"

    @field_validator("kernel_init")
    @classmethod
    def _weights_initializer(cls, value: str) -> str:
        if value in BIAS_ONLY_INITIALIZERS:
            raise ValueError(f"{value} initializes bias vectors; use it as bias_init")
        return value

    @model_validator(mode="after")
    def _one_weight_perturbation(self):
        if self.dropconnect > 0 and self.weight_noise > 0:
            raise ValueError("use dropconnect or weight_noise, not both")
        return self

    def needs(self) -> tuple[Need, ...]:
        return REAL_INPUTS

    def make(self, out_features: int, data: DataSpec | None = None) -> MLP:
        fields = self.model_dump(exclude={"name", "widths"})
        return MLP(widths=tuple(self.widths), out_features=out_features, **fields)


class LinearConfig(Section):
    """One dense layer, scores = W x + b: logistic regression with softmax cross-entropy,
    a linear SVM with a hinge loss, linear regression with squared error."""

    name: Literal["linear"] = "linear"

    def needs(self) -> tuple[Need, ...]:
        return REAL_INPUTS

    def make(self, out_features: int, data: DataSpec | None = None) -> MLP:
        return MLP(widths=(), out_features=out_features)
