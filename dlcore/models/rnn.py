"""A recurrent sequence model: input encoding -> dlcore.recurrent stack -> readout -> dense head.

One module covers every task shape:

* many-to-one (``readout="last"`` or ``"mean"``): ``[B, T] -> [B, K]``, e.g. parity,
  the adding problem;
* many-to-many and one-to-many (``readout="all"``): ``[B, T] -> [B, T, K]``, e.g. tagging,
  spelling a number, character-level language modelling.

Token inputs are int ``[B, T]`` with ``-1`` after each sequence's end; their lengths are the
number of non-negative ids, so the stack freezes its carry and zeroes its outputs there and a
padded step never reaches the loss. Real-valued inputs ``[B, T, D]`` are always full length.
"""

from typing import Literal

import flax.linen as nn
import jax
import jax.numpy as jnp
from flax.core import FrozenDict
from pydantic import Field, PositiveInt, model_validator

from dlcore.checks import check_choice, check_rank
from dlcore.config.section import Section, one_of
from dlcore.data.dataset import DataSpec
from dlcore.data.needs import Need
from dlcore.recurrent import CELLS, RECURRENT_INITS, StackedRNN
from dlcore.recurrent.sequence import IMPLS
from dlcore.recurrent.stacks import MERGES

InputMode = Literal["embedding", "one_hot", "real"]
Readout = Literal["last", "mean", "all"]
INPUT_MODES = ("embedding", "one_hot", "real")
READOUTS = ("last", "mean", "all")


def last_valid(y_BxTxH: jax.Array, lengths_B: jax.Array | None) -> jax.Array:
    """y[b, L_b - 1] for every sequence (the last real step), ``[B, H]``."""
    if lengths_B is None:
        return y_BxTxH[:, -1]
    index_B = jnp.maximum(lengths_B - 1, 0)
    return jnp.take_along_axis(y_BxTxH, index_B[:, None, None], axis=1)[:, 0]


def masked_mean(y_BxTxH: jax.Array, lengths_B: jax.Array | None) -> jax.Array:
    """Mean of y over each sequence's valid steps, ``[B, H]`` (padded outputs are already 0)."""
    if lengths_B is None:
        return jnp.mean(y_BxTxH, axis=1)
    return jnp.sum(y_BxTxH, axis=1) / jnp.maximum(lengths_B, 1)[:, None].astype(y_BxTxH.dtype)


class SequenceModel(nn.Module):
    """Encoder, recurrent stack and readout; see the module docstring.

        e_t = Embed(x_t) | one_hot(x_t) | x_t
        h_t = stack(e_{1..t})                      (per direction; ``cell`` steps in a scan)
        out = W r + b,  r = h_{L} | mean_t h_t | h_t for every t

    For bidirectional stacks, ``"last"`` reads the forward half at step L − 1 and the
    backward half at step 0 (where it has seen the whole sequence).

    Attributes:
      out_features: classes (or regression targets) of the head.
      vocab_size: number of input token ids (token inputs only).
      input_mode: "embedding", "one_hot" or "real".
      embed_dim: embedding width.
      cell, features, num_layers, bidirectional, merge, dropout, recurrent_dropout: passed
        to :class:`dlcore.recurrent.StackedRNN`, as are variational, cell_kwargs, impl,
        unroll and remat.
      readout: "last", "mean" or "all" (see above).
      output_dropout: dropout on the stack's outputs before the head.

    Example:
      >>> model = SequenceModel(out_features=2, vocab_size=2, readout="last")
      >>> x = jnp.array([[0, 1, 1, -1], [1, 0, 1, 1]])
      >>> variables = model.init(jax.random.key(0), x, train=False)
      >>> model.apply(variables, x, train=False).shape
      (2, 2)
    """

    out_features: int
    vocab_size: int | None = None
    input_mode: str = "embedding"
    embed_dim: int = 32
    cell: str = "lstm"
    features: int = 64
    num_layers: int = 1
    bidirectional: bool = False
    merge: str = "concat"
    dropout: float = 0.0
    recurrent_dropout: float = 0.0
    variational: bool = False
    cell_kwargs: FrozenDict = FrozenDict()
    impl: str = "auto"
    unroll: int = 1
    remat: bool = False
    readout: str = "all"
    output_dropout: float = 0.0

    def _encode(self, x: jax.Array) -> tuple[jax.Array, jax.Array | None]:
        check_choice(self.input_mode, INPUT_MODES, "input_mode")
        if self.input_mode == "real":
            check_rank(x, 3, "real-valued sequence inputs", "[batch, time, features]")
            return x, None
        check_rank(x, 2, "token sequence inputs", "[batch, time] integer ids")
        if not jnp.issubdtype(x.dtype, jnp.integer):
            raise ValueError(
                f"input_mode {self.input_mode!r} needs integer token ids; got dtype {x.dtype} "
                "(use input_mode = 'real' for real-valued sequences)"
            )
        if self.vocab_size is None:
            raise ValueError(f"input_mode {self.input_mode!r} needs vocab_size; got None")
        lengths_B = jnp.sum((x >= 0).astype(jnp.int32), axis=1)
        if self.input_mode == "one_hot":
            return jax.nn.one_hot(x, self.vocab_size), lengths_B  # -1 -> all zeros
        return nn.Embed(self.vocab_size, self.embed_dim)(jnp.maximum(x, 0)), lengths_B

    @nn.compact
    def __call__(
        self,
        x: jax.Array,
        *,
        train: bool,
        carry: list | None = None,
        return_carry: bool = False,
    ):
        """Runs the model.

        Args:
          x: int ``[B, T]`` token ids (``-1`` = padding) or real ``[B, T, D]``.
          train: enables dropout (needs a "dropout" rng).
          carry: per-layer initial carries (unidirectional), e.g. from the previous
            truncated-BPTT chunk or sampling step.
          return_carry: also return the per-layer final carries.

        Returns:
          logits/predictions ``[B, K]`` or ``[B, T, K]``; with ``return_carry``,
          ``(carries, outputs)``.
        """
        check_choice(self.readout, READOUTS, "readout")
        if self.bidirectional and self.readout == "last" and self.merge != "concat":
            raise ValueError(
                "readout 'last' of a bidirectional stack needs merge = 'concat'; "
                f"got {self.merge!r}"
            )
        e_BxTxE, lengths_B = self._encode(x)
        stack = StackedRNN(
            features=self.features,
            num_layers=self.num_layers,
            cell=self.cell,
            cell_kwargs=self.cell_kwargs,
            bidirectional=self.bidirectional,
            merge=self.merge,
            dropout=self.dropout,
            recurrent_dropout=self.recurrent_dropout,
            variational=self.variational,
            impl=self.impl,
            unroll=self.unroll,
            remat=self.remat,
        )
        if self.bidirectional:
            finals = None
            h_BxTxH = stack(e_BxTxE, train=train, lengths=lengths_B)
        else:
            finals, h_BxTxH = stack(
                e_BxTxE, train=train, lengths=lengths_B, carry=carry, return_carry=True
            )
        if self.readout == "last" and self.bidirectional:
            half = self.features
            r = jnp.concatenate(
                [last_valid(h_BxTxH[..., :half], lengths_B), h_BxTxH[:, 0, half:]], axis=-1
            )
        elif self.readout == "last":
            r = last_valid(h_BxTxH, lengths_B)
        elif self.readout == "mean":
            r = masked_mean(h_BxTxH, lengths_B)
        else:
            r = h_BxTxH
        if self.output_dropout > 0:
            r = nn.Dropout(self.output_dropout, deterministic=not train)(r)
        out = nn.Dense(self.out_features, name="head")(r)
        if return_carry:
            if finals is None:
                raise ValueError("return_carry needs a unidirectional stack; got bidirectional")
            return finals, out
        return out


LSTM_CELLS = ("lstm", "peephole_lstm", "coupled_lstm")


class RNNConfig(Section):
    """A recurrent sequence model (dlcore.recurrent stack) with a dense head.

    ``readout`` picks the task shape: "last" or "mean" for many-to-one, "all" for
    many-to-many and one-to-many. Token inputs (``embedding``/``one_hot``) use ``-1`` as
    padding; ``real`` inputs are ``[T, D]`` vectors per example.
    """

    name: Literal["rnn"] = "rnn"
    input: one_of(INPUT_MODES, "input") = "embedding"
    embed_dim: PositiveInt = 32
    cell: one_of(CELLS, "cell") = "lstm"
    features: PositiveInt = 64
    num_layers: PositiveInt = 1
    bidirectional: bool = False
    merge: one_of(MERGES, "merge") = "concat"
    dropout: float = Field(0.0, ge=0.0, lt=1.0, description="between layers")
    recurrent_dropout: float = Field(0.0, ge=0.0, lt=1.0, description="needs variational")
    variational: bool = False
    output_dropout: float = Field(0.0, ge=0.0, lt=1.0, description="before the head")
    recurrent_init: one_of(RECURRENT_INITS, "recurrent_init") = "orthogonal"
    forget_bias: float | None = Field(
        None, description="initial forget-gate bias of LSTM cells (None: the cell's 1.0)"
    )
    reset_after: bool = Field(
        False, description="gru: reset gate after the recurrent matmul (PyTorch/cuDNN form)"
    )
    readout: one_of(READOUTS, "readout") = "last"
    impl: one_of(IMPLS, "impl") = Field(
        "auto",
        description="'auto', 'scan' (autodiff of the scan), 'custom_vjp' (lstm only) or "
        "'native' (oneDNN on CPU, float32; lstm and gru, no recurrent_dropout or remat)",
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
        if self.reset_after and self.cell != "gru":
            raise ValueError(
                f"reset_after applies to the 'gru' cell; cell {self.cell!r} has no reset gate"
            )
        if self.impl == "custom_vjp" and self.cell != "lstm":
            raise ValueError(
                f"impl = 'custom_vjp' is the plain 'lstm' cell's hand-written backward; "
                f"cell {self.cell!r} needs impl = 'auto' or 'scan'"
            )
        if self.impl == "native":
            if self.cell not in ("lstm", "gru"):
                raise ValueError(f"impl = 'native' runs 'lstm' and 'gru'; got cell {self.cell!r}")
            if self.recurrent_dropout > 0 or self.remat:
                raise ValueError("impl = 'native' supports neither recurrent_dropout nor remat")
        return self

    def needs(self) -> tuple[Need, ...]:
        if self.input == "real":
            return (Need("x", ("features",), "real-valued sequences [T, D]", (2,)),)
        return (Need("x", ("tokens",), f"token ids [T] (input = {self.input!r})", (1,)),)

    def make(self, out_features: int, data: DataSpec | None = None) -> SequenceModel:
        vocab_size = None
        if self.input != "real":
            if data is None or "vocab_size" not in data.info:
                raise ValueError(
                    f"model.input = {self.input!r} needs a token data set (with a vocabulary); "
                    "use input = 'real' for real-valued sequences"
                )
            vocab_size = int(data.info["vocab_size"])
        cell_kwargs = {"recurrent_init": self.recurrent_init}
        if self.forget_bias is not None:
            cell_kwargs["forget_bias"] = self.forget_bias
        if self.reset_after:  # only then: other cells have no such field
            cell_kwargs["reset_after"] = True
        exclude = {"name", "input", "recurrent_init", "forget_bias", "reset_after"}
        fields = self.model_dump(exclude=exclude)
        return SequenceModel(
            out_features=out_features,
            vocab_size=vocab_size,
            input_mode=self.input,
            cell_kwargs=FrozenDict(cell_kwargs),
            **fields,
        )
