"""Show, Attend and Tell (Xu et al. 2015): a CNN reads the image, an LSTM writes the caption
while attending softly over the CNN's feature map.

Encoder. The image ``[B, H, W, 3]`` (with two coordinate channels appended, ``coords``) goes
through stages of (conv 3x3, ReLU, max-pool 2) to a feature map ``[B, h, w, C]``, flattened to
L = h w annotation vectors a_l, ``[B, L, C]``: the memory, with an all-True key mask.

Decoder, one step per word, from the previous word y_{t-1} and state (h_{t-1}, c_{t-1}):

    e_tl     = w^T tanh(Wq h_{t-1} + Wk a_l + b)          additive scores over the L locations
    alpha_t  = softmax_l(e_t)                              (or sparsemax, entmax-1.5)
    z_t      = beta_t sum_l alpha_tl a_l,  beta_t = sigmoid(f_beta(h_{t-1}))   (``gate``)
    h_t, c_t = LSTM([E y_{t-1}; z_t], (h_{t-1}, c_{t-1}))
    o_t      = tanh(E y_{t-1} + L_h h_t + L_z z_t)          deep output (Pascanu et al. 2014)
    logits_t = L_o o_t

starting from h_0 = tanh(f_h(mean_l a_l)) and c_0 = tanh(f_c(mean_l a_l)).

The module follows :mod:`dlcore.seq2seq.protocol`: ``encode``, ``init_carry`` and ``step``
(``aux = {"attention": alpha_t [B, L]}``), and ``__call__`` is the same step under one
``nn.scan`` over the target words (teacher forcing).
"""

from collections.abc import Sequence
from typing import Literal

import flax.linen as nn
import jax
import jax.numpy as jnp
from pydantic import Field, PositiveInt

from dlcore.checks import check_rank
from dlcore.config.section import Section, one_of
from dlcore.data.dataset import DataSpec
from dlcore.layers.attention_norm import NORMALISERS
from dlcore.layers.attention_scores import Attention
from dlcore.layers.pooling import max_pool
from dlcore.models.conv_blocks import (
    IMAGES,
    Shrink,
    check_feature_sizes,
    conv,
    data_image_size,
    images,
)
from dlcore.recurrent import LSTMCell

MODEL = "show_attend_tell"


def stage_shrinks(stages: int) -> list[Shrink]:
    """The downsampling layers of the encoder: one 2x2 max-pool per stage."""
    return [Shrink(f"stage{i}/pool", 2, 2) for i in range(stages)]


def coordinate_channels(x_BxHxWxC: jax.Array) -> jax.Array:
    """``x`` with two channels appended: the row and the column, each scaled to [-1, 1].

    A CNN is translation-equivariant, so away from the borders its features do not say
    *where* they are; captions do ("left of", "above"). The coordinates (CoordConv, Liu et
    al. 2018) let the annotations carry their position into the attention context.
    """
    b, h, w, _ = x_BxHxWxC.shape
    rows_HxW, cols_HxW = jnp.meshgrid(
        jnp.linspace(-1.0, 1.0, h, dtype=x_BxHxWxC.dtype),
        jnp.linspace(-1.0, 1.0, w, dtype=x_BxHxWxC.dtype),
        indexing="ij",
    )
    coords_BxHxWx2 = jnp.broadcast_to(jnp.stack([rows_HxW, cols_HxW], -1), (b, h, w, 2))
    return jnp.concatenate([x_BxHxWxC, coords_BxHxWx2], axis=-1)


class ShowAttendTell(nn.Module):
    """CNN encoder and attentive LSTM decoder (see the module docstring for the equations).

    Attributes:
      vocab_size: caption vocabulary V (ids 0, 1, 2 are ``<pad>``, ``<bos>``, ``<eos>``).
      channels: output channels C_i of the encoder stages; the map shrinks 2^len times.
      coords: append row/column coordinate channels to the image.
      embed_dim: word embedding width E (also the deep output's width).
      features: LSTM hidden size H.
      attention_features: width A of the additive attention.
      normaliser: "softmax" (Xu et al.'s soft attention), "sparsemax" or "entmax15" over the
        locations (see :mod:`dlcore.layers.attention_norm`).
      gate: the gating scalar beta_t on the context.
      dropout: dropout on the deep output o_t (training only).

    Example:
      >>> model = ShowAttendTell(vocab_size=10, channels=(8,), features=16)
      >>> src, tgt = jnp.zeros((2, 8, 8, 3)), jnp.ones((2, 5), jnp.int32)
      >>> variables = model.init(jax.random.key(0), src, tgt, train=False)
      >>> model.apply(variables, src, tgt, train=False).shape
      (2, 5, 10)
    """

    vocab_size: int
    channels: Sequence[int] = (32, 64)
    coords: bool = True
    embed_dim: int = 64
    features: int = 128
    attention_features: int = 64
    normaliser: str = "softmax"
    gate: bool = True
    dropout: float = 0.0

    def setup(self) -> None:
        self.convs = [conv(c, 3, f"conv{i}") for i, c in enumerate(self.channels)]
        self.init_h = nn.Dense(self.features)
        self.init_c = nn.Dense(self.features)
        self.attention = Attention("additive", self.normaliser, features=self.attention_features)
        if self.gate:
            self.f_beta = nn.Dense(1)
        self.embed = nn.Embed(self.vocab_size, self.embed_dim)
        self.lstm = LSTMCell(self.features)
        self.out_h = nn.Dense(self.embed_dim, use_bias=False)
        self.out_z = nn.Dense(self.embed_dim, use_bias=False)
        self.out = nn.Dense(self.vocab_size)
        self.drop = nn.Dropout(self.dropout)

    def encode(self, src: jax.Array, *, train: bool = False) -> dict[str, jax.Array]:
        """Annotations ``[B, L, C]`` of images ``[B, H, W, C]``, their all-True mask ``[B, L]``."""
        del train  # no dropout or batch norm in the encoder
        x_BxHxWxC = images(src)
        check_feature_sizes(
            MODEL, stage_shrinks(len(self.channels)), x_BxHxWxC.shape[1:3], "the input"
        )
        if self.coords:
            x_BxHxWxC = coordinate_channels(x_BxHxWxC)
        for i, layer in enumerate(self.convs):
            x_BxHxWxC = max_pool(nn.relu(layer(x_BxHxWxC)), name=f"stage{i}/pool")
        b, h, w, c = x_BxHxWxC.shape
        return {
            "annotations": x_BxHxWxC.reshape(b, h * w, c),
            "mask": jnp.ones((b, h * w), bool),
        }

    def init_carry(self, memory: dict[str, jax.Array]) -> dict[str, jax.Array]:
        """``{"c": c_0, "h": h_0}``, each ``[B, H]``, from the mean annotation."""
        mean_BxC = jnp.mean(memory["annotations"], axis=1)
        return {"c": jnp.tanh(self.init_c(mean_BxC)), "h": jnp.tanh(self.init_h(mean_BxC))}

    def _step(self, memory, carry, token_B, train: bool):
        a_BxLxC = memory["annotations"]
        z_Bx1xC, alpha_Bx1xL = self.attention(carry["h"][:, None], a_BxLxC, a_BxLxC, memory["mask"])
        z_BxC, alpha_BxL = z_Bx1xC[:, 0], alpha_Bx1xL[:, 0]
        if self.gate:
            z_BxC = jax.nn.sigmoid(self.f_beta(carry["h"])) * z_BxC  # [B, 1] * [B, C]
        e_BxE = self.embed(token_B)
        carry, h_BxH = self.lstm(carry, jnp.concatenate([e_BxE, z_BxC], axis=-1))
        o_BxE = jnp.tanh(e_BxE + self.out_h(h_BxH) + self.out_z(z_BxC))
        o_BxE = self.drop(o_BxE, deterministic=not train)
        return carry, self.out(o_BxE), {"attention": alpha_BxL}

    def step(self, memory, carry, token_B: jax.Array):
        """One decoding step: ``(carry, logits [B, V], {"attention": alpha [B, L]})``."""
        return self._step(memory, carry, token_B, train=False)

    def __call__(self, src: jax.Array, tgt_in_BxT: jax.Array, *, train: bool) -> jax.Array:
        """Teacher-forced logits ``[B, T, V]`` of the words after each of ``tgt_in``.

        Needs a ``"dropout"`` rng when ``train`` and ``dropout > 0``.
        """
        check_rank(tgt_in_BxT, 2, "caption decoder inputs", "[batch, time] token ids")
        memory = self.encode(src, train=train)

        def body(module, carry, memory, token_B):
            carry, logits_BxV, _ = module._step(memory, carry, token_B, train)
            return carry, logits_BxV

        # Parameters are shared by every step; each step draws its own dropout mask.
        scan = nn.scan(
            body,
            variable_broadcast="params",
            split_rngs={"params": False, "dropout": True},
            in_axes=(nn.broadcast, 0),
            out_axes=1,
        )
        _, logits_BxTxV = scan(self, self.init_carry(memory), memory, tgt_in_BxT.T)
        return logits_BxTxV


class ShowAttendTellConfig(Section):
    """Image captioning with visual attention (Show, Attend and Tell): a small CNN encoder
    and an LSTM decoder attending over its feature map; the output size is the vocabulary."""

    name: Literal["show_attend_tell"] = MODEL
    channels: list[PositiveInt] = Field(
        default_factory=lambda: [32, 64],
        min_length=1,
        description="encoder stages (conv 3x3, ReLU, max-pool 2), their channels",
    )
    coords: bool = Field(True, description="append row/column coordinate channels")
    embed_dim: PositiveInt = 64
    features: PositiveInt = Field(128, description="LSTM hidden size")
    attention_features: PositiveInt = 64
    normaliser: one_of(NORMALISERS, "attention normaliser") = "softmax"
    gate: bool = Field(True, description="gating scalar beta on the attention context")
    dropout: float = Field(0.0, ge=0.0, lt=1.0, description="on the deep output")

    def needs(self) -> tuple:
        return (IMAGES,)

    def make(self, out_features: int, data: DataSpec | None = None) -> ShowAttendTell:
        if data is not None:
            size = data_image_size(MODEL, data)
            check_feature_sizes(MODEL, stage_shrinks(len(self.channels)), size, data.name)
        fields = self.model_dump(exclude={"name", "channels"})
        return ShowAttendTell(vocab_size=out_features, channels=tuple(self.channels), **fields)
