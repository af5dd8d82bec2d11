"""Transformer encoder and decoder blocks (Vaswani et al., 2017) with a fixed-size KV cache.

Each block is a chain of sub-layers f (attention or feed-forward) with dropout δ, residuals
and LayerNorm placed after the residual ("post", the paper) or before the sub-layer ("pre",
Xiong et al., 2020, whose stack then ends with one more LayerNorm):

    post:  x ← LN(x + δ(f(x)))           pre:  x ← x + δ(f(LN(x)))

* :class:`EncoderBlock`: self-attention over the source (padded keys masked), then FF.
* :class:`DecoderBlock`: causal self-attention, cross-attention to the encoder's memory
  (``cross=False`` drops it: a decoder-only language model), then FF.

with the position-wise feed-forward FF(x) = W2 δ(φ(W1 x + b1)) + b2, φ = ReLU or GELU, and the
attention of :class:`dlcore.layers.multihead.MultiHeadAttention`. Positions are added to the
scaled token embeddings: sinusoidal (fixed) or learned (a table of ``max_len`` rows).

Incremental decoding: :meth:`DecoderBlock.step` takes one token's input ``[B, 1, E]`` and a
cache of the block's projected self-attention keys and values ``{"k", "v"}: [B, max_len, E]``.
It writes row t of the cache (t ``[B]``, the token's position) and attends to rows ≤ t, so
shapes never change from step to step, and it equals the parallel pass at ``train=False``.
"""

import functools
import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from dlcore.checks import check_choice
from dlcore.layers.multihead import (
    MultiHeadAttention,
    dot_product_weights,
    keep_mask,
    merge_heads,
    split_heads,
)

NORMS = ("pre", "post")
POSITIONS = ("sinusoidal", "learned")
FF_ACTIVATIONS = {"relu": jax.nn.relu, "gelu": functools.partial(jax.nn.gelu, approximate=False)}
LN_EPSILON = 1e-5  # PyTorch's nn.LayerNorm default


def sinusoidal_positions(length: int, d_model: int) -> jax.Array:
    """The fixed position encodings ``[length, d_model]`` of Vaswani et al. (2017):

        PE[t, 2i] = sin(t / 10000^(2i / D)),    PE[t, 2i + 1] = cos(t / 10000^(2i / D))

    Example:
      >>> sinusoidal_positions(2, 4)[1].round(3).tolist()
      [0.841, 0.54, 0.01, 1.0]
    """
    t = np.arange(length, dtype=np.float64)[:, None]
    rate = 10000.0 ** (-np.arange(0, d_model, 2, dtype=np.float64) / d_model)  # [ceil(D/2)]
    pe = np.zeros((length, d_model), np.float64)
    pe[:, 0::2] = np.sin(t * rate)
    pe[:, 1::2] = np.cos(t * rate)[:, : d_model // 2]
    return jnp.asarray(pe, jnp.float32)


def causal_mask(length: int) -> jax.Array:
    """``[T, T]`` True where query i may attend to key j, i.e. j ≤ i (True = attend)."""
    return jnp.tril(jnp.ones((length, length), bool))


def check_heads(d_model: int, num_heads: int) -> None:
    """One-line ValueError unless ``num_heads`` divides ``d_model``."""
    if num_heads < 1 or d_model % num_heads:
        raise ValueError(
            f"transformer d_model ({d_model}) must be divisible by num_heads ({num_heads}); "
            "pick d_model = num_heads * head width"
        )


class Positions(nn.Module):
    """Position vectors for integer positions of any shape ``[...] -> [..., d_model]``.

    Attributes:
      kind: "sinusoidal" (:func:`sinusoidal_positions`) or "learned" (a ``[max_len, D]``
        parameter ``table``, N(0, 0.02²) at init).
      max_len: number of positions.
      d_model: D.
    """

    kind: str
    max_len: int
    d_model: int

    @nn.compact
    def __call__(self, t: jax.Array) -> jax.Array:
        check_choice(self.kind, POSITIONS, "transformer positions")
        if self.kind == "learned":
            init = nn.initializers.normal(0.02)
            table = self.param("table", init, (self.max_len, self.d_model), jnp.float32)
        else:
            table = sinusoidal_positions(self.max_len, self.d_model)
        return jnp.take(table, t, axis=0, mode="clip")  # past the end: the last row


class FeedForward(nn.Module):
    """FF(x) = W2 δ(φ(W1 x + b1)) + b2, applied at every position; output width = input's.

    Attributes:
      d_ff: hidden width.
      dropout: δ's rate while training.
      activation: φ, "relu" or "gelu" (exact, erf form).
    """

    d_ff: int
    dropout: float = 0.0
    activation: str = "relu"

    @nn.compact
    def __call__(self, x_BxTxE: jax.Array, *, train: bool) -> jax.Array:
        check_choice(self.activation, FF_ACTIVATIONS, "transformer activation")
        h = FF_ACTIVATIONS[self.activation](nn.Dense(self.d_ff, name="W1")(x_BxTxE))
        h = nn.Dropout(self.dropout, deterministic=not train)(h)
        return nn.Dense(x_BxTxE.shape[-1], name="W2")(h)


def sublayer(norm: str, x, f, ln: nn.Module, drop: nn.Module, train: bool):
    """``x + δ(f(LN(x)))`` (pre) or ``LN(x + δ(f(x)))`` (post)."""
    if norm == "pre":
        return x + drop(f(ln(x)), deterministic=not train)
    return ln(x + drop(f(x), deterministic=not train))


def _project(params: dict, x: jax.Array, w: str, b: str) -> jax.Array:
    y = x @ params[w]
    return y + params[b][None, None, :] if b in params else y


def project_kv(params: dict, x_BxTxE: jax.Array) -> dict:
    """The keys and values ``{"k": x Wk + bk, "v": x Wv + bv}`` ``[B, T, E]`` of an attention."""
    return {"k": _project(params, x_BxTxE, "Wk", "bk"), "v": _project(params, x_BxTxE, "Wv", "bv")}


def attend_projected(
    params: dict, x_BxTqxE: jax.Array, kv: dict, keep_BxTqxTk: jax.Array, num_heads: int
) -> tuple[jax.Array, jax.Array]:
    """:func:`multi_head_attention` (inference) with the keys/values already projected:
    ``(output [B, Tq, E], weights averaged over heads [B, Tq, Tk])``."""
    Q = split_heads(_project(params, x_BxTqxE, "Wq", "bq"), num_heads)  # [B, H, Tq, d]
    K, V = split_heads(kv["k"], num_heads), split_heads(kv["v"], num_heads)  # [B, H, Tk, d]
    keep = keep_mask(None, keep_BxTqxTk, Q.shape[:3] + K.shape[2:3])
    a_BxHxTqxTk = dot_product_weights(Q, K, keep)
    o_BxTqxE = merge_heads(jnp.einsum("bhqk,bhkd->bhqd", a_BxHxTqxTk, V))
    return _project(params, o_BxTqxE, "Wo", "bo"), a_BxHxTqxTk.mean(axis=1)


def cached_attention(
    params: dict, x_Bx1xE: jax.Array, cache: dict, t_B: jax.Array, num_heads: int
) -> tuple[jax.Array, dict]:
    """One query of causal self-attention against a fixed-size cache (inference only).

    The token's key and value ``x Wk + bk``, ``x Wv + bv`` are written to row ``t`` of the
    cache, then the query attends to rows ``0..t`` with :func:`multi_head_attention`'s
    equations (same parameters). Rows past ``max_len`` are never written.

    Args:
      params: a :class:`MultiHeadAttention`'s parameters.
      x_Bx1xE: the token's (normalised) input.
      cache: ``{"k", "v"}``, each ``[B, max_len, E]``.
      t_B: int positions.
      num_heads: H.

    Returns:
      ``(output [B, 1, E], updated cache)``.
    """
    rows_BxL = jnp.arange(cache["k"].shape[1])[None, :]
    write_BxLx1 = (rows_BxL == t_B[:, None])[:, :, None]
    new = project_kv(params, x_Bx1xE)  # [B, 1, E] each
    kv = {name: jnp.where(write_BxLx1, new[name], cache[name]) for name in ("k", "v")}
    y, _ = attend_projected(params, x_Bx1xE, kv, (rows_BxL <= t_B[:, None])[:, None, :], num_heads)
    return y, kv


class EncoderBlock(nn.Module):
    """Self-attention over the (unmasked) source positions, then FF; see the module docstring.

    Attributes:
      num_heads: H (must divide the input width E).
      d_ff: FF hidden width.
      dropout: on attention weights, sub-layer outputs and the FF hidden layer.
      norm: "pre" or "post".
      activation: "relu" or "gelu".

    Example:
      >>> block = EncoderBlock(num_heads=2, d_ff=8)
      >>> x, mask = jnp.ones((1, 3, 4)), jnp.array([[True, True, False]])
      >>> variables = block.init(jax.random.key(0), x, mask, train=False)
      >>> block.apply(variables, x, mask, train=False).shape
      (1, 3, 4)
    """

    num_heads: int
    d_ff: int
    dropout: float = 0.0
    norm: str = "pre"
    activation: str = "relu"

    def setup(self):
        check_choice(self.norm, NORMS, "transformer norm")
        self.attn = MultiHeadAttention(self.num_heads, dropout_rate=self.dropout)
        self.ff = FeedForward(self.d_ff, self.dropout, self.activation)
        self.ln_attn = nn.LayerNorm(epsilon=LN_EPSILON)
        self.ln_ff = nn.LayerNorm(epsilon=LN_EPSILON)
        self.drop = nn.Dropout(self.dropout)

    def __call__(
        self, x_BxSxE: jax.Array, key_mask_BxS: jax.Array | None, *, train: bool
    ) -> jax.Array:
        def attend(h):
            return self.attn(h, h, h, key_mask_BxTk=key_mask_BxS, train=train)[0]

        x = sublayer(self.norm, x_BxSxE, attend, self.ln_attn, self.drop, train)
        ff = functools.partial(self.ff, train=train)
        return sublayer(self.norm, x, ff, self.ln_ff, self.drop, train)


class DecoderBlock(nn.Module):
    """Causal self-attention, cross-attention to a memory (if ``cross``), then FF.

    Attributes:
      num_heads, d_ff, dropout, norm, activation: as :class:`EncoderBlock`.
      cross: with a cross-attention sub-layer (False: a decoder-only language model block).

    Example:
      >>> block = DecoderBlock(num_heads=2, d_ff=8)
      >>> x, m = jnp.ones((1, 3, 4)), jnp.ones((1, 5, 4))
      >>> variables = block.init(jax.random.key(0), x, m, None, train=False)
      >>> y, weights, _ = block.apply(variables, x, m, None, train=False)
      >>> y.shape, weights.shape
      ((1, 3, 4), (1, 3, 5))
    """

    num_heads: int
    d_ff: int
    dropout: float = 0.0
    norm: str = "pre"
    activation: str = "relu"
    cross: bool = True

    def setup(self):
        check_choice(self.norm, NORMS, "transformer norm")
        self.self_attn = MultiHeadAttention(self.num_heads, dropout_rate=self.dropout)
        self.ln_self = nn.LayerNorm(epsilon=LN_EPSILON)
        if self.cross:
            self.cross_attn = MultiHeadAttention(self.num_heads, dropout_rate=self.dropout)
            self.ln_cross = nn.LayerNorm(epsilon=LN_EPSILON)
        self.ff = FeedForward(self.d_ff, self.dropout, self.activation)
        self.ln_ff = nn.LayerNorm(epsilon=LN_EPSILON)
        self.drop = nn.Dropout(self.dropout)

    def _cross_and_ff(self, x, cross_attend, train):
        """The sub-layers after self-attention, ``cross_attend(h) -> (y, weights)``;
        returns ``(x, cross weights or None)``."""
        weights = []
        if self.cross:

            def attend(h):
                y, a = cross_attend(h)
                weights.append(a)
                return y

            x = sublayer(self.norm, x, attend, self.ln_cross, self.drop, train)
        ff = functools.partial(self.ff, train=train)
        x = sublayer(self.norm, x, ff, self.ln_ff, self.drop, train)
        return x, weights[0] if weights else None

    def __call__(
        self,
        x_BxTxE: jax.Array,
        memory_BxSxE: jax.Array | None = None,
        memory_mask_BxS: jax.Array | None = None,
        *,
        train: bool,
        return_kv: bool = False,
    ) -> tuple[jax.Array, jax.Array | None, dict | None]:
        """The parallel (teacher-forced) pass.

        Returns:
          ``(y [B, T, E], cross-attention weights [B, T, S] averaged over heads or None,
          {"k", "v"} [B, T, E] self-attention keys/values if return_kv else None)`` (the
          keys/values seed :meth:`step`'s cache after a prompt).
        """
        causal = causal_mask(x_BxTxE.shape[1])
        inputs = []

        def attend(h):
            inputs.append(h)
            return self.self_attn(h, h, h, attn_mask=causal, train=train)[0]

        def cross_attend(h):
            m = memory_BxSxE
            return self.cross_attn(h, m, m, key_mask_BxTk=memory_mask_BxS, train=train)

        x = sublayer(self.norm, x_BxTxE, attend, self.ln_self, self.drop, train)
        y, weights = self._cross_and_ff(x, cross_attend, train)
        kv = project_kv(self.self_attn.variables["params"], inputs[0]) if return_kv else None
        return y, weights, kv

    def cross_kv(self, memory_BxSxE: jax.Array) -> dict:
        """The cross-attention's keys and values of a memory, ``{"k", "v"}: [B, S, E]``, once
        per sequence for :meth:`step` (call after the parameters exist)."""
        return project_kv(self.cross_attn.variables["params"], memory_BxSxE)

    def step(
        self,
        x_Bx1xE: jax.Array,
        cache: dict,
        t_B: jax.Array,
        cross_kv: dict | None = None,
        memory_mask_BxS: jax.Array | None = None,
    ) -> tuple[jax.Array, dict, jax.Array | None]:
        """One decoding step at position ``t_B`` (inference: no dropout); see the module
        docstring. ``cross_kv`` is :meth:`cross_kv` of the memory. Returns
        ``(y [B, 1, E], updated cache, cross weights [B, 1, S] or None)``."""
        new_cache = []

        def attend(h):
            params = self.self_attn.variables["params"]
            y, c = cached_attention(params, h, cache, t_B, self.num_heads)
            new_cache.append(c)
            return y

        def cross_attend(h):
            params = self.cross_attn.variables["params"]
            keep = None if memory_mask_BxS is None else memory_mask_BxS.astype(bool)[:, None, :]
            return attend_projected(params, h, cross_kv, keep, self.num_heads)

        x = sublayer(self.norm, x_Bx1xE, attend, self.ln_self, self.drop, False)
        y, weights = self._cross_and_ff(x, cross_attend, False)
        return y, new_cache[0], weights


def embed_scale(d_model: int) -> float:
    """Token embeddings are multiplied by sqrt(D) before the positions are added (Vaswani)."""
    return math.sqrt(d_model)
