"""A decoder-only Transformer language model: causal self-attention blocks, no cross-attention.

    d_t = sqrt(D) E[x_t] + P(t),    z = Dec_M(... Dec_1(δ(d))),    logits_t = z_t W + b

It is a drop-in for the recurrent :class:`dlcore.models.rnn.SequenceModel` in the
``tagging`` task (``model(x, train=...) -> [B, T, K]``, token ids with ``-1`` padding at the
end) and in ``dlcore sample``: ``return_carry=True`` also returns a fixed-size cache (per
layer keys/values ``[B, max_len, D]``, the position ``t`` ``[B]`` and the cached tokens
``[B, max_len]``), and a call with ``carry`` continues from it one token at a time.

The model sees at most C = ``max_len`` positions. A longer input (a held-out window at
evaluation) is read as overlapping windows of C positions with stride C/2: the first window's
logits are kept whole, each later window contributes its second half, so every prediction has
between C/2 and C tokens of context. Generation does the same: when the cache is full, it is
rebuilt from its last C/2 tokens (at positions 0..C/2-1), so a sample can be any length and
its logits equal those of the whole text read in windows.
"""

from typing import ClassVar, Literal

import flax.linen as nn
import jax
import jax.numpy as jnp
from pydantic import Field, PositiveInt

from dlcore.checks import check_choice, check_rank
from dlcore.data.dataset import DataSpec
from dlcore.data.needs import Need
from dlcore.seq2seq.transformer_blocks import (
    LN_EPSILON,
    NORMS,
    DecoderBlock,
    Positions,
    check_heads,
    embed_scale,
)
from dlcore.seq2seq.transformer_model import TransformerSizes, check_length, empty_cache


def sliding_windows(x_BxT: jax.Array, width: int, pad: int) -> tuple[jax.Array, int]:
    """Overlapping windows ``[B, n, width]`` with stride ``width // 2`` covering ``x`` (its
    tail padded with ``pad``), and n."""
    b, t = x_BxT.shape
    stride = width // 2
    n = 1 + max(0, -(-(t - width) // stride))
    total = width + (n - 1) * stride
    x = jnp.concatenate([x_BxT, jnp.full((b, total - t), pad, x_BxT.dtype)], axis=1)
    index_nxW = stride * jnp.arange(n)[:, None] + jnp.arange(width)[None, :]
    return x[:, index_nxW], n


def stitch_windows(y_BxnxWxK: jax.Array, length: int) -> jax.Array:
    """The inverse of :func:`sliding_windows` for causal outputs: the first window whole, then
    the second half of each later one; ``[B, length, K]``."""
    b, n, w, k = y_BxnxWxK.shape
    stride = w // 2
    later = y_BxnxWxK[:, 1:, w - stride :].reshape(b, (n - 1) * stride, k)
    return jnp.concatenate([y_BxnxWxK[:, 0], later], axis=1)[:, :length]


class TransformerLM(nn.Module):
    """Decoder-only causal Transformer; see the module docstring.

    Attributes:
      out_features: K, classes predicted at every step (the vocabulary).
      vocab_size: input token ids.
      d_model, num_heads, d_ff, dropout, norm, activation, positions: as
        :class:`dlcore.seq2seq.transformer_model.TransformerSeq2Seq`.
      num_layers: decoder blocks.
      max_len: C, the context (positions, cache); longer inputs use sliding windows.
      tie_embeddings: output projection = the embedding's transpose (needs K = vocab_size).

    Example:
      >>> lm = TransformerLM(out_features=5, vocab_size=5, d_model=8, num_heads=2, max_len=4)
      >>> x = jnp.array([[1, 2, 3, -1]])
      >>> variables = lm.init(jax.random.key(0), x, train=False)
      >>> lm.apply(variables, x, train=False).shape
      (1, 4, 5)
    """

    out_features: int
    vocab_size: int
    d_model: int = 64
    num_heads: int = 4
    d_ff: int = 256
    num_layers: int = 2
    dropout: float = 0.1
    norm: str = "pre"
    activation: str = "relu"
    positions: str = "sinusoidal"
    max_len: int = 128
    tie_embeddings: bool = False

    # what ``dlcore sample`` checks: per-step outputs, left to right
    readout: ClassVar[str] = "all"
    bidirectional: ClassVar[bool] = False

    def setup(self):
        check_heads(self.d_model, self.num_heads)
        check_choice(self.norm, NORMS, "transformer norm")
        if self.max_len < 2:
            raise ValueError(f"transformer_lm max_len must be >= 2; got {self.max_len}")
        if self.tie_embeddings and self.out_features != self.vocab_size:
            raise ValueError(
                f"tie_embeddings needs out_features = vocab_size; got {self.out_features} "
                f"and {self.vocab_size}"
            )
        self.embed = nn.Embed(self.vocab_size, self.d_model)
        self.pos = Positions(self.positions, self.max_len, self.d_model)
        self.blocks = [
            DecoderBlock(
                self.num_heads, self.d_ff, self.dropout, self.norm, self.activation, cross=False
            )
            for _ in range(self.num_layers)
        ]
        if self.norm == "pre":
            self.final_norm = nn.LayerNorm(epsilon=LN_EPSILON)
        if not self.tie_embeddings:
            self.head = nn.Dense(self.out_features)
        self.drop = nn.Dropout(self.dropout)

    def _inputs(self, ids: jax.Array, t: jax.Array, train: bool) -> jax.Array:
        e = self.embed(jnp.maximum(ids, 0)) * embed_scale(self.d_model) + self.pos(t)
        return self.drop(e, deterministic=not train)

    def _logits(self, z: jax.Array) -> jax.Array:
        if self.norm == "pre":
            z = self.final_norm(z)
        return self.embed.attend(z) if self.tie_embeddings else self.head(z)

    def _parallel(self, x_BxT: jax.Array, train: bool, return_kv: bool = False):
        t = jnp.arange(x_BxT.shape[1])
        z = self._inputs(x_BxT, t[None, :], train)
        kvs = []
        for block in self.blocks:
            z, _, kv = block(z, train=train, return_kv=return_kv)
            kvs.append(kv)
        return self._logits(z), kvs

    def __call__(
        self,
        x_BxT: jax.Array,
        *,
        train: bool,
        carry: dict | None = None,
        return_carry: bool = False,
    ):
        """Logits ``[B, T, K]``; with ``return_carry``, ``(carry, logits)``.

        Args:
          x_BxT: int token ids, ``-1`` = padding (at the end of a row).
          train: enables dropout (needs a "dropout" rng).
          carry: a cache from an earlier ``return_carry`` call: ``x`` continues it, one
            step per token (inference).
          return_carry: also return the cache after ``x`` (for sampling).
        """
        check_rank(x_BxT, 2, "transformer_lm inputs", "[batch, time] integer ids")
        b, length = x_BxT.shape
        if carry is not None:
            steps = []
            for i in range(length):  # sampling feeds one token at a time
                carry, logits_BxK = self.step(carry, x_BxT[:, i])
                steps.append(logits_BxK)
            logits = jnp.stack(steps, axis=1)
            return (carry, logits) if return_carry else logits
        if return_carry:  # a prompt: one parallel pass, its keys/values seed the cache
            check_length(length, self.max_len, "transformer_lm prompt")
            pad = jnp.full((b, self.max_len - length), -1, jnp.int32)
            tokens = jnp.concatenate([x_BxT.astype(jnp.int32), pad], axis=1)
            logits, cache = self._fill(tokens, jnp.full(b, length, jnp.int32))
            return cache, logits[:, :length]
        if length <= self.max_len:
            return self._parallel(x_BxT, train)[0]
        if train:
            check_length(length, self.max_len, "transformer_lm training window")
        windows_BxnxC, n = sliding_windows(x_BxT, self.max_len, -1)
        logits = self._parallel(windows_BxnxC.reshape(b * n, self.max_len), False)[0]
        return stitch_windows(logits.reshape(b, n, self.max_len, -1), length)

    def init_carry(self, batch: int) -> dict:
        """An empty cache at position 0."""
        tokens = jnp.full((batch, self.max_len), -1, jnp.int32)
        return {**empty_cache(batch, self.max_len, self.d_model, self.num_layers), "tokens": tokens}

    def _fill(self, tokens_BxC: jax.Array, t_B: jax.Array) -> tuple[jax.Array, dict]:
        """Logits ``[B, C, K]`` and a cache holding ``tokens`` (-1 after the first t)."""
        logits, kvs = self._parallel(tokens_BxC, False, return_kv=True)
        return logits, {"layers": kvs, "t": t_B, "tokens": tokens_BxC}

    def _refresh(self, carry: dict) -> dict:
        """The cache rebuilt from its last C/2 tokens, now at positions 0..C/2-1."""
        c, half = self.max_len, self.max_len // 2
        pad = jnp.full((carry["tokens"].shape[0], c - half), -1, jnp.int32)
        tokens = jnp.concatenate([carry["tokens"][:, c - half :], pad], axis=1)
        return self._fill(tokens, jnp.full_like(carry["t"], half))[1]

    def step(self, carry: dict, token_B: jax.Array) -> tuple[dict, jax.Array]:
        """Feeds one token at ``carry["t"]``: ``(carry, logits [B, K])``; a full cache is
        first rebuilt from its last C/2 tokens (rows share t, as in sampling)."""
        full = carry["t"][0] >= self.max_len
        carry = nn.cond(full, TransformerLM._refresh, lambda _, c: c, self, carry)
        t_B = carry["t"]
        z = self._inputs(token_B, t_B, False)[:, None, :]
        caches = []
        for block, cache in zip(self.blocks, carry["layers"], strict=True):
            z, cache, _ = block.step(z, cache, t_B)
            caches.append(cache)
        at_t = jnp.arange(self.max_len)[None, :] == t_B[:, None]
        tokens = jnp.where(at_t, token_B.astype(jnp.int32)[:, None], carry["tokens"])
        return {"layers": caches, "t": t_B + 1, "tokens": tokens}, self._logits(z)[:, 0]


class TransformerLMConfig(TransformerSizes):
    """Decoder-only causal Transformer over token ids [T] (-1 = padding), logits per step.

    Inputs longer than max_len are read as overlapping windows (stride max_len / 2).
    """

    name: Literal["transformer_lm"] = "transformer_lm"
    num_layers: PositiveInt = 2
    max_len: int = Field(128, ge=2, description="context C: positions, cache, eval windows")

    def needs(self) -> tuple[Need, ...]:
        return (Need("x", ("tokens",), "token ids [T] (-1 = padding)", (1,)),)

    def make(self, out_features: int, data: DataSpec | None = None) -> TransformerLM:
        if data is None or "vocab_size" not in data.info:
            raise ValueError("model transformer_lm needs a token data set with a vocabulary")
        fields = self.model_dump(exclude={"name"})
        return TransformerLM(out_features, int(data.info["vocab_size"]), **fields)
