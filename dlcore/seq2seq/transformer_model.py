"""The Transformer encoder–decoder (Vaswani et al., 2017) under the seq2seq protocol.

    e_s = sqrt(D) E_src[x_s] + P(s),      h = Enc_N(... Enc_1(δ(e)))          (memory [B, S, D])
    d_t = sqrt(D) E_tgt[y_t] + P(t),      z = Dec_M(... Dec_1(δ(d), h))
    logits_t = z_t W + b     (or z_t E_tgt^T with ``tie_embeddings``)

with the blocks of :mod:`dlcore.seq2seq.transformer_blocks` (pre-LN stacks end with a final
LayerNorm). Padded source tokens (id 0) are masked keys for the encoder's self-attention and
the decoder's cross-attention. Decoding (:mod:`dlcore.seq2seq.protocol`): ``encode`` returns
``{"h": [B, S, D], "mask": [B, S], "cross": ...}`` with each decoder layer's cross-attention
keys/values ``{"k", "v"}: [B, S, D]`` projected once; the carry is each decoder layer's
self-attention cache ``{"k", "v"}: [B, max_len, D]`` and the position ``"t"`` ``[B]``;
``step``'s aux is ``{"attention": [B, S]}``, the last decoder layer's cross-attention averaged
over heads.
"""

from typing import Literal

import flax.linen as nn
import jax
import jax.numpy as jnp
from pydantic import Field, PositiveInt, model_validator

from dlcore.checks import check_choice
from dlcore.config.section import Section, one_of
from dlcore.data.dataset import DataSpec
from dlcore.data.needs import Need
from dlcore.seq2seq.protocol import source_mask
from dlcore.seq2seq.transformer_blocks import (
    FF_ACTIVATIONS,
    LN_EPSILON,
    NORMS,
    POSITIONS,
    DecoderBlock,
    EncoderBlock,
    Positions,
    check_heads,
    embed_scale,
)


def check_length(length: int, max_len: int, what: str) -> None:
    """One-line ValueError when a sequence is longer than the model's ``max_len``."""
    if length > max_len:
        raise ValueError(
            f"{what} length {length} exceeds model.max_len = {max_len} (the size of the "
            "position table and decoding cache); raise model.max_len"
        )


def empty_cache(batch: int, max_len: int, d_model: int, layers: int, dtype=jnp.float32) -> dict:
    """Zero self-attention caches for ``layers`` decoder blocks and position 0, batch-first."""
    zeros = jnp.zeros((batch, max_len, d_model), dtype)
    return {
        "layers": [{"k": zeros, "v": zeros} for _ in range(layers)],
        "t": jnp.zeros(batch, jnp.int32),
    }


class TransformerSeq2Seq(nn.Module):
    """Transformer encoder–decoder; see the module docstring.

    Attributes:
      vocab_size: target vocabulary V (the output classes).
      src_vocab_size: source vocabulary (None: V).
      d_model: D, the width of every residual stream.
      num_heads: H (must divide D).
      d_ff: feed-forward hidden width.
      encoder_layers, decoder_layers: N, M blocks.
      dropout: embeddings, attention weights, sub-layer outputs, FF hidden layer.
      norm: "pre" or "post" LayerNorm.
      activation: FF non-linearity, "relu" or "gelu".
      positions: "sinusoidal" or "learned" (separate tables for source and target).
      max_len: longest source or target sequence (position tables, the decoding cache).
      tie_embeddings: output projection = the target embedding's transpose (no bias).

    Example:
      >>> model = TransformerSeq2Seq(vocab_size=7, d_model=8, num_heads=2, d_ff=16, max_len=6)
      >>> src, tgt_in = jnp.array([[3, 4, 0]]), jnp.array([[1, 5]])
      >>> variables = model.init(jax.random.key(0), src, tgt_in, train=False)
      >>> model.apply(variables, src, tgt_in, train=False).shape
      (1, 2, 7)
    """

    vocab_size: int
    src_vocab_size: int | None = None
    d_model: int = 64
    num_heads: int = 4
    d_ff: int = 256
    encoder_layers: int = 2
    decoder_layers: int = 2
    dropout: float = 0.1
    norm: str = "pre"
    activation: str = "relu"
    positions: str = "sinusoidal"
    max_len: int = 64
    tie_embeddings: bool = False

    def setup(self):
        check_heads(self.d_model, self.num_heads)
        check_choice(self.norm, NORMS, "transformer norm")
        check_choice(self.positions, POSITIONS, "transformer positions")
        d = self.d_model
        self.src_embed = nn.Embed(self.src_vocab_size or self.vocab_size, d)
        self.tgt_embed = nn.Embed(self.vocab_size, d)
        self.src_pos = Positions(self.positions, self.max_len, d)
        self.tgt_pos = Positions(self.positions, self.max_len, d)
        kw = dict(
            num_heads=self.num_heads,
            d_ff=self.d_ff,
            dropout=self.dropout,
            norm=self.norm,
            activation=self.activation,
        )
        self.encoder = [EncoderBlock(**kw) for _ in range(self.encoder_layers)]
        self.decoder = [DecoderBlock(**kw) for _ in range(self.decoder_layers)]
        if self.norm == "pre":  # a pre-LN stack's output has not been normalised yet
            self.enc_norm = nn.LayerNorm(epsilon=LN_EPSILON)
            self.dec_norm = nn.LayerNorm(epsilon=LN_EPSILON)
        if not self.tie_embeddings:
            self.head = nn.Dense(self.vocab_size)
        self.drop = nn.Dropout(self.dropout)

    def _logits(self, z: jax.Array) -> jax.Array:
        if self.norm == "pre":
            z = self.dec_norm(z)
        return self.tgt_embed.attend(z) if self.tie_embeddings else self.head(z)

    def encode(self, src_BxS: jax.Array, *, train: bool = False) -> dict:
        """``{"h": [B, S, D] encoder output, "mask": [B, S] real source tokens, "cross":
        each decoder layer's cross-attention keys/values {"k", "v"}: [B, S, D]}`` (projected
        once here rather than at every decoding step)."""
        memory = self._encode(src_BxS, train)
        memory["cross"] = [block.cross_kv(memory["h"]) for block in self.decoder]
        return memory

    def _encode(self, src_BxS: jax.Array, train: bool) -> dict:
        check_length(src_BxS.shape[1], self.max_len, "source")
        mask_BxS = source_mask(src_BxS)
        s = jnp.arange(src_BxS.shape[1])
        e = self.src_embed(src_BxS) * embed_scale(self.d_model) + self.src_pos(s)[None]
        h = self.drop(e, deterministic=not train)
        for block in self.encoder:
            h = block(h, mask_BxS, train=train)
        if self.norm == "pre":
            h = self.enc_norm(h)
        return {"h": h, "mask": mask_BxS}

    def __call__(self, src_BxS: jax.Array, tgt_in_BxT: jax.Array, *, train: bool) -> jax.Array:
        """Teacher-forced logits ``[B, T, V]`` for decoder inputs ``tgt_in`` (``<bos> w...``)."""
        check_length(tgt_in_BxT.shape[1], self.max_len, "target")
        memory = self._encode(src_BxS, train)
        t = jnp.arange(tgt_in_BxT.shape[1])
        d = self.tgt_embed(tgt_in_BxT) * embed_scale(self.d_model) + self.tgt_pos(t)[None]
        z = self.drop(d, deterministic=not train)
        for block in self.decoder:
            z, _, _ = block(z, memory["h"], memory["mask"], train=train)
        return self._logits(z)

    def init_carry(self, memory: dict) -> dict:
        """Empty caches and position 0 (see the module docstring); every leaf ``[B, ...]``."""
        b = memory["h"].shape[0]
        return empty_cache(b, self.max_len, self.d_model, self.decoder_layers, memory["h"].dtype)

    def step(self, memory: dict, carry: dict, token_B: jax.Array) -> tuple[dict, jax.Array, dict]:
        """Feeds ``token_B`` at position ``carry["t"]``: ``(carry, logits [B, V], aux)``.

        Positions past ``max_len - 1`` are not cached: decode at most ``max_len`` steps.
        """
        t_B = carry["t"]
        d = self.tgt_embed(token_B) * embed_scale(self.d_model) + self.tgt_pos(t_B)
        z = d[:, None, :]  # [B, 1, D]
        caches, weights = [], None
        layers = zip(self.decoder, carry["layers"], memory["cross"], strict=True)
        for block, cache, cross_kv in layers:
            z, cache, weights = block.step(z, cache, t_B, cross_kv, memory["mask"])
            caches.append(cache)
        logits_BxV = self._logits(z)[:, 0]
        return {"layers": caches, "t": t_B + 1}, logits_BxV, {"attention": weights[:, 0]}


class TransformerSizes(Section):
    """The options every Transformer model section shares (sizes, norm, positions)."""

    d_model: PositiveInt = 64
    num_heads: PositiveInt = 4
    d_ff: PositiveInt = 256
    dropout: float = Field(0.1, ge=0.0, lt=1.0)
    norm: one_of(NORMS, "norm") = "pre"
    activation: one_of(FF_ACTIVATIONS, "activation") = "relu"
    positions: one_of(POSITIONS, "positions") = "sinusoidal"
    tie_embeddings: bool = Field(False, description="output projection = (target) embedding^T")

    @model_validator(mode="after")
    def _heads_divide(self):
        if self.d_model % self.num_heads:
            raise ValueError(
                f"d_model ({self.d_model}) must be divisible by num_heads ({self.num_heads})"
            )
        return self


class TransformerSeq2SeqConfig(TransformerSizes):
    """Transformer encoder–decoder: token sources and ``<bos> ... <eos>`` targets (PAD = 0).

    The source vocabulary is the data set's ``vocab_size``; the target one the task's classes.
    """

    name: Literal["transformer_seq2seq"] = "transformer_seq2seq"
    encoder_layers: PositiveInt = 2
    decoder_layers: PositiveInt = 2
    max_len: PositiveInt = Field(64, description="longest source/target (positions, cache)")

    def needs(self) -> tuple[Need, ...]:
        return (Need("x", ("tokens",), "source token ids [S] (0 = padding)", (1,)),)

    def make(self, out_features: int, data: DataSpec | None = None) -> TransformerSeq2Seq:
        if data is None or "vocab_size" not in data.info:
            raise ValueError("model transformer_seq2seq needs a token data set with a vocabulary")
        fields = self.model_dump(exclude={"name"})
        return TransformerSeq2Seq(
            vocab_size=out_features, src_vocab_size=int(data.info["vocab_size"]), **fields
        )
