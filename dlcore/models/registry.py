"""Model registry: config name -> (config section, builder)."""

from collections.abc import Callable
from typing import Literal, NamedTuple

import flax.linen as nn
from flax.core import FrozenDict
from pydantic import Field, PositiveInt, field_validator, model_validator

from dlcore.activations import ACTIVATIONS
from dlcore.config_base import Section, one_of
from dlcore.initializers import INITIALIZERS
from dlcore.layers.conv import CONV_IMPLS
from dlcore.models.lenet import LeNet5
from dlcore.models.mlp import MLP, MODULE_ACTIVATIONS
from dlcore.models.multihead import MultiHeadMLP
from dlcore.models.rnn import SequenceModel
from dlcore.recurrent import CELLS, RECURRENT_INITS
from dlcore.recurrent.sequence import IMPLS

LSTM_CELLS = ("lstm", "peephole_lstm", "coupled_lstm")

BIAS_ONLY_INITIALIZERS = ("forget_gate_bias",)
Initializer = one_of(INITIALIZERS, "initializer")


class MLPConfig(Section):
    """Hidden layers of the given widths; the output width comes from the data set."""

    name: Literal["mlp"] = "mlp"
    widths: list[PositiveInt] = Field(default_factory=lambda: [128])
    activation: one_of((*ACTIVATIONS, *MODULE_ACTIVATIONS), "activation") = "relu"
    dropout: float = Field(0.0, ge=0.0, lt=1.0)
    dropout_mode: Literal["inverted", "classic"] = "inverted"
    norm: Literal["none", "batch", "layer"] = "none"
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


def _mlp(cfg: MLPConfig, out_features: int, data=None) -> nn.Module:
    fields = cfg.model_dump(exclude={"name", "widths"})
    return MLP(widths=tuple(cfg.widths), out_features=out_features, **fields)


class LinearConfig(Section):
    """One dense layer, scores = W x + b: logistic regression with softmax cross-entropy,
    a linear SVM with a hinge loss, linear regression with squared error."""

    name: Literal["linear"] = "linear"


def _linear(cfg: LinearConfig, out_features: int, data=None) -> nn.Module:
    return MLP(widths=(), out_features=out_features)


class MultiHeadMLPConfig(Section):
    """A shared MLP trunk and one linear head per target (multi-task learning)."""

    name: Literal["multihead_mlp"] = "multihead_mlp"
    trunk_widths: list[PositiveInt] = Field(default_factory=lambda: [128])
    activation: one_of(ACTIVATIONS, "activation") = "relu"
    kernel_init: Initializer = "lecun_normal"
    bias_init: Initializer = "zeros"


def _multihead(cfg: MultiHeadMLPConfig, out_features, data=None) -> nn.Module:
    if not isinstance(out_features, dict) or not out_features:
        raise ValueError("multihead_mlp needs a multi-target data set and the multitask task")
    return MultiHeadMLP(
        trunk_widths=tuple(cfg.trunk_widths),
        head_features=out_features,
        activation=cfg.activation,
        kernel_init=cfg.kernel_init,
        bias_init=cfg.bias_init,
    )


class LeNet5Config(Section):
    """LeNet-5 for square grey images (flat ``[B, S*S]`` inputs are reshaped to S x S)."""

    name: Literal["lenet5"] = "lenet5"
    activation: one_of(ACTIVATIONS, "activation") = "relu"
    conv_impl: one_of(CONV_IMPLS, "conv impl") = Field(
        "auto", description="'auto' (the faster lowering per backend), 'gemm' or 'xla'"
    )
    image_size: PositiveInt = 28
    lrn: bool = Field(False, description="local response normalization after each conv")


def _lenet5(cfg: LeNet5Config, out_features: int, data=None) -> nn.Module:
    return LeNet5(
        out_features=out_features,
        activation=cfg.activation,
        conv_impl=cfg.conv_impl,
        image_size=cfg.image_size,
        lrn=cfg.lrn,
    )


class RNNConfig(Section):
    """A recurrent sequence model (dlcore.recurrent stack) with a dense head.

    ``readout`` picks the task shape: "last" or "mean" for many-to-one, "all" for
    many-to-many and one-to-many. Token inputs (``embedding``/``one_hot``) use ``-1`` as
    padding; ``real`` inputs are ``[T, D]`` vectors per example.
    """

    name: Literal["rnn"] = "rnn"
    input: Literal["embedding", "one_hot", "real"] = "embedding"
    embed_dim: PositiveInt = 32
    cell: one_of(CELLS, "cell") = "lstm"
    features: PositiveInt = 64
    num_layers: PositiveInt = 1
    bidirectional: bool = False
    merge: Literal["concat", "sum"] = "concat"
    dropout: float = Field(0.0, ge=0.0, lt=1.0, description="between layers")
    recurrent_dropout: float = Field(0.0, ge=0.0, lt=1.0, description="needs variational")
    variational: bool = False
    output_dropout: float = Field(0.0, ge=0.0, lt=1.0, description="before the head")
    recurrent_init: one_of(RECURRENT_INITS, "recurrent_init") = "orthogonal"
    forget_bias: float | None = Field(
        None, description="initial forget-gate bias of LSTM cells (None: the cell's 1.0)"
    )
    readout: Literal["last", "mean", "all"] = "last"
    impl: one_of(IMPLS, "impl") = Field(
        "auto", description="'auto', 'scan' (autodiff of the scan) or 'custom_vjp' (lstm only)"
    )
    unroll: PositiveInt = Field(1, description="time steps per scan iteration")
    remat: bool = Field(False, description="recompute each step in the backward pass")

    @model_validator(mode="after")
    def _cell_options(self):
        if self.forget_bias is not None and self.cell not in LSTM_CELLS:
            raise ValueError(
                f"forget_bias applies to LSTM cells ({', '.join(LSTM_CELLS)}); "
                f"cell {self.cell!r} has no forget gate"
            )
        if self.impl == "custom_vjp" and self.cell != "lstm":
            raise ValueError(
                f"impl = 'custom_vjp' is the plain 'lstm' cell's hand-written backward; "
                f"cell {self.cell!r} needs impl = 'auto' or 'scan'"
            )
        return self


def _rnn(cfg: RNNConfig, out_features: int, data=None) -> nn.Module:
    vocab_size = None
    if cfg.input != "real":
        if data is None or "vocab_size" not in data.info:
            raise ValueError(
                f"model.input = {cfg.input!r} needs a token data set (with a vocabulary); "
                "use input = 'real' for real-valued sequences"
            )
        vocab_size = int(data.info["vocab_size"])
    cell_kwargs = {"recurrent_init": cfg.recurrent_init}
    if cfg.forget_bias is not None:
        cell_kwargs["forget_bias"] = cfg.forget_bias
    return SequenceModel(
        out_features=out_features,
        vocab_size=vocab_size,
        input_mode=cfg.input,
        embed_dim=cfg.embed_dim,
        cell=cfg.cell,
        features=cfg.features,
        num_layers=cfg.num_layers,
        bidirectional=cfg.bidirectional,
        merge=cfg.merge,
        dropout=cfg.dropout,
        recurrent_dropout=cfg.recurrent_dropout,
        variational=cfg.variational,
        cell_kwargs=FrozenDict(cell_kwargs),
        readout=cfg.readout,
        output_dropout=cfg.output_dropout,
        impl=cfg.impl,
        unroll=cfg.unroll,
        remat=cfg.remat,
    )


class ModelEntry(NamedTuple):
    config: type[Section]
    build: Callable[..., nn.Module]  # (config, out_features, data) -> module
    summary: str


MODELS: dict[str, ModelEntry] = {
    "mlp": ModelEntry(MLPConfig, _mlp, "multi-layer perceptron (dropout, batch norm)"),
    "linear": ModelEntry(LinearConfig, _linear, "one dense layer (logistic regression, SVM)"),
    "multihead_mlp": ModelEntry(
        MultiHeadMLPConfig, _multihead, "shared trunk, one head per target (multi-task)"
    ),
    "lenet5": ModelEntry(LeNet5Config, _lenet5, "LeNet-5 CNN for 28x28 images (conv, max-pool)"),
    "rnn": ModelEntry(RNNConfig, _rnn, "recurrent stack (RNN/LSTM/GRU) with a dense head"),
}


def build_model(cfg: Section, out_features: int, data=None) -> nn.Module:
    """The Flax module for a validated model section (``data`` sizes token inputs)."""
    return MODELS[cfg.name].build(cfg, out_features, data)
