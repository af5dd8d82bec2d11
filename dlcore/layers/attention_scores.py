"""Attention in every classic flavour: score functions, masks and one module owning the weights.

For queries q_i ``[B, Tq, Dq]``, keys k_j ``[B, Tk, Dk]`` and values v_j ``[B, Tk, Dv]``:

    e_ij = score(q_i, k_j)                      scores   [B, Tq, Tk]
    a_i  = normalise(e_i, keep_i)               weights  [B, Tq, Tk]  (softmax, sparsemax,
                                                                      entmax-1.5; masked keys 0)
    c_i  = sum_j a_ij v_j                       contexts [B, Tq, Dv]

with the scores

    additive    w^T tanh(Wq^T q + Wk^T k + b)   Wq [Dq, A], Wk [Dk, A], b [A], w [A]   Bahdanau 2015
    concat      w^T tanh(W [q; k] + b)          the same, W = [Wq^T  Wk^T]              Luong 2015
    dot         q . k                           (Dq = Dk)                               Luong 2015
    general     q^T W k                         W [Dq, Dk]                              Luong 2015
    scaled_dot  q . k / sqrt(Dk)                (Dq = Dk)                               Vaswani 2017

Luong's concat and Bahdanau's additive score are one function: splitting Luong's W_a acting on
the concatenation [q; k] into a query part and a key part gives Bahdanau's Wq q + Wk k, and
computing those projections once per query and once per key costs Tq + Tk products, not Tq Tk.
The two papers differ in how the decoder uses the score, not in the score: Bahdanau et al. query
with the *previous* decoder state s_{t-1} and feed the context into the recurrent step that
makes s_t; Luong et al. query with the *current* state h_t and combine the context with it
after the step (h~_t = tanh(Wc [c_t; h_t]), optionally fed to the next step: "input feeding").
Luong's paper has no bias b; it starts at zero here, as in :class:`AdditiveAttention`.

Masks are boolean with **True = attend**, as in :mod:`dlcore.layers.multihead`.
"""

import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from dlcore.checks import check_choice
from dlcore.layers.attention import additive_scores, check_attention_inputs
from dlcore.layers.attention_norm import NORMALISERS, entmax15, normalise

__all__ = [
    "NORMALISERS",
    "SCORES",
    "Attention",
    "additive_scores",
    "attend",
    "causal_mask",
    "concat_scores",
    "dot_scores",
    "entmax15",
    "general_scores",
    "normalise",
    "padding_mask",
    "scaled_dot_scores",
]

SCORES = ("additive", "dot", "general", "concat", "scaled_dot")
_WIDTH_SCORES = ("additive", "concat")  # the scores with an attention width A


def _check_same_width(q: jax.Array, k: jax.Array, score: str) -> None:
    if q.shape[-1] != k.shape[-1]:
        raise ValueError(
            f"attention score {score!r} needs queries and keys of one width (Dq = Dk); got "
            f"{q.shape[-1]} and {k.shape[-1]}: use 'general', 'additive' or 'concat'"
        )


def dot_scores(q_BxTqxD: jax.Array, k_BxTkxD: jax.Array) -> jax.Array:
    """Luong's dot score ``e_ij = q_i . k_j``, ``[B, Tq, Tk]``; needs Dq = Dk.

    Example:
      >>> dot_scores(jnp.ones((1, 1, 2)), jnp.eye(2)[None]).tolist()
      [[[1.0, 1.0]]]
    """
    _check_same_width(q_BxTqxD, k_BxTkxD, "dot")
    return jnp.einsum("bqd,bkd->bqk", q_BxTqxD, k_BxTkxD)


def scaled_dot_scores(q_BxTqxD: jax.Array, k_BxTkxD: jax.Array) -> jax.Array:
    """The scaled dot product ``e_ij = q_i . k_j / sqrt(D)``, ``[B, Tq, Tk]`` (Vaswani 2017).

    Dividing by sqrt(D) keeps the scores' variance near 1 for unit-variance inputs, so the
    softmax does not saturate as the width grows.
    """
    _check_same_width(q_BxTqxD, k_BxTkxD, "scaled_dot")
    return dot_scores(q_BxTqxD, k_BxTkxD) / math.sqrt(q_BxTqxD.shape[-1])


def general_scores(q_BxTqxDq: jax.Array, k_BxTkxDk: jax.Array, W_DqxDk: jax.Array) -> jax.Array:
    """Luong's general (bilinear) score ``e_ij = q_i^T W k_j``, ``[B, Tq, Tk]``.

    ``q W`` is formed first (``Tq`` products with W), then dotted with every key.
    """
    if tuple(W_DqxDk.shape) != (q_BxTqxDq.shape[-1], k_BxTkxDk.shape[-1]):
        raise ValueError(
            f"attention 'general' W must be [Dq, Dk] = {(q_BxTqxDq.shape[-1], k_BxTkxDk.shape[-1])}"
            f"; got {tuple(W_DqxDk.shape)}"
        )
    return jnp.einsum("bqe,bke->bqk", q_BxTqxDq @ W_DqxDk, k_BxTkxDk)


def concat_scores(
    q_BxTqxDq: jax.Array,
    k_BxTkxDk: jax.Array,
    Wq_DqxA: jax.Array,
    Wk_DkxA: jax.Array,
    b_A: jax.Array,
    w_A: jax.Array,
) -> jax.Array:
    """Luong's concat score ``e_ij = w^T tanh(W [q_i; k_j] + b)``, ``[B, Tq, Tk]``.

    With ``W = [Wq^T  Wk^T]`` split into its query and key columns this is
    ``w^T tanh(Wq^T q_i + Wk^T k_j + b)``: :func:`additive_scores`, which it calls (see the
    module docstring for how the two papers differ in using it).
    """
    return additive_scores(q_BxTqxDq, k_BxTkxDk, Wq_DqxA, Wk_DkxA, b_A, w_A)


def padding_mask(lengths_B: jax.Array, T: int) -> jax.Array:
    """``[B, T]`` bool, True at the first ``lengths[b]`` positions of row b (the real tokens).

    Example:
      >>> padding_mask(jnp.array([2, 0]), 3).tolist()
      [[True, True, False], [False, False, False]]
    """
    return jnp.arange(T)[None, :] < jnp.asarray(lengths_B)[:, None]


def causal_mask(Tq: int, Tk: int | None = None) -> jax.Array:
    """``[Tq, Tk]`` bool, True where key j <= query i: position i sees itself and the past.

    Queries and keys are both counted from position 0 (``Tk`` defaults to ``Tq``). Built with
    NumPy, so it is a constant in every trace.

    Example:
      >>> causal_mask(3).astype(int).tolist()
      [[1, 0, 0], [1, 1, 0], [1, 1, 1]]
    """
    return jnp.asarray(np.tri(Tq, Tq if Tk is None else Tk, dtype=bool))


def attend(weights_BxTqxTk: jax.Array, v_BxTkxDv: jax.Array) -> jax.Array:
    """Contexts ``c_i = sum_j a_ij v_j``, ``[B, Tq, Dv]``."""
    return jnp.einsum("bqk,bkd->bqd", weights_BxTqxTk, v_BxTkxDv)


def keep_mask_3d(
    key_mask_BxTk: jax.Array | None, attn_mask: jax.Array | None, shape_BxTqxTk: tuple
) -> jax.Array | None:
    """The key mask and attention mask (``[Tq, Tk]`` or ``[B, Tq, Tk]``) combined into one
    boolean ``[B, Tq, Tk]`` keep mask, or None when neither is given."""
    keep = None
    if key_mask_BxTk is not None:
        keep = key_mask_BxTk.astype(bool)[:, None, :]
    if attn_mask is not None:
        m = attn_mask.astype(bool)
        m = m[None] if m.ndim == 2 else m
        keep = m if keep is None else keep & m
    return None if keep is None else jnp.broadcast_to(keep, shape_BxTqxTk)


def check_attn_mask(attn_mask: jax.Array | None, b: int, tq: int, tk: int) -> None:
    """One-line ValueError unless ``attn_mask`` is None or a bool/int ``[Tq, Tk]`` or
    ``[B, Tq, Tk]``."""
    if attn_mask is None:
        return
    if jnp.issubdtype(attn_mask.dtype, jnp.floating):  # an additive -inf/0 mask would invert
        raise ValueError(
            f"attention attn_mask must be boolean (True = attend); got {attn_mask.dtype}"
        )
    if tuple(attn_mask.shape) not in ((tq, tk), (b, tq, tk)):
        raise ValueError(
            f"attention attn_mask must be [Tq, Tk] = {(tq, tk)} or [B, Tq, Tk] = {(b, tq, tk)}"
            f"; got {tuple(attn_mask.shape)}"
        )


class Attention(nn.Module):
    """Attention with a chosen score and normaliser (see the module docstring for the math).

    Attributes:
      score: ``"additive"`` (Bahdanau), ``"dot"``, ``"general"``, ``"concat"`` (Luong) or
        ``"scaled_dot"``.
      normaliser: ``"softmax"``, ``"sparsemax"`` or ``"entmax15"``.
      features: the attention width A of ``"additive"`` and ``"concat"`` (required there,
        unused by the others).
      param_dtype: dtype of the parameters: ``W [Dq, Dk]`` for ``"general"``; ``Wq [Dq, A]``,
        ``Wk [Dk, A]``, ``b [A]``, ``w [A]`` for ``"additive"``/``"concat"`` (initialised as
        :class:`~dlcore.layers.attention.AdditiveAttention`, so they match it exactly); none
        for ``"dot"`` and ``"scaled_dot"``.

    Example:
      >>> layer = Attention(score="general", normaliser="sparsemax")
      >>> q, kv = jnp.ones((2, 3, 4)), jnp.ones((2, 5, 6))
      >>> variables = layer.init(jax.random.key(0), q, kv, kv)
      >>> ctx, weights = layer.apply(variables, q, kv, kv, padding_mask(jnp.array([5, 2]), 5))
      >>> ctx.shape, weights.shape, weights[1, 0].tolist()
      ((2, 3, 6), (2, 3, 5), [0.5, 0.5, 0.0, 0.0, 0.0])
    """

    score: str = "additive"
    normaliser: str = "softmax"
    features: int | None = None
    param_dtype: jnp.dtype = jnp.float32

    def check_options(self) -> None:
        """One-line ValueErrors for an unknown score or normaliser or a missing width."""
        check_choice(self.score, SCORES, "attention score")
        check_choice(self.normaliser, NORMALISERS, "attention normaliser")
        if self.score in _WIDTH_SCORES and self.features is None:
            raise ValueError(
                f"attention score {self.score!r} needs features (the attention width A); got None"
            )

    @nn.compact
    def __call__(
        self,
        q_BxTqxDq: jax.Array,
        k_BxTkxDk: jax.Array,
        v_BxTkxDv: jax.Array,
        key_mask_BxTk: jax.Array | None = None,
        attn_mask: jax.Array | None = None,
    ) -> tuple[jax.Array, jax.Array]:
        """Contexts ``[B, Tq, Dv]`` and weights ``[B, Tq, Tk]``.

        Args:
          q_BxTqxDq: queries (a decoder state, see the module docstring for which one).
          k_BxTkxDk: keys (encoder states).
          v_BxTkxDv: values aligned with the keys (often the keys again).
          key_mask_BxTk: True/1 for real keys, False/0 for padding; None keeps every key.
          attn_mask: bool ``[Tq, Tk]`` or ``[B, Tq, Tk]``, True = query i may attend to key j
            (e.g. :func:`causal_mask`); combined with ``key_mask_BxTk`` by logical and.

        Raises:
          ValueError: for bad options, ranks or sizes (one line each).
        """
        self.check_options()
        check_attention_inputs(q_BxTqxDq, k_BxTkxDk, v_BxTkxDv, key_mask_BxTk)
        b, tq, tk = q_BxTqxDq.shape[0], q_BxTqxDq.shape[1], k_BxTkxDk.shape[1]
        check_attn_mask(attn_mask, b, tq, tk)
        e_BxTqxTk = self._scores(q_BxTqxDq, k_BxTkxDk)
        keep = keep_mask_3d(key_mask_BxTk, attn_mask, (b, tq, tk))
        a_BxTqxTk = normalise(self.normaliser, e_BxTqxTk, keep)
        return attend(a_BxTqxTk, v_BxTkxDv), a_BxTqxTk

    def _scores(self, q_BxTqxDq: jax.Array, k_BxTkxDk: jax.Array) -> jax.Array:
        """The scores ``[B, Tq, Tk]``, creating this score's parameters on first use."""
        dq, dk, dt = q_BxTqxDq.shape[-1], k_BxTkxDk.shape[-1], self.param_dtype
        if self.score == "dot":
            return dot_scores(q_BxTqxDq, k_BxTkxDk)
        if self.score == "scaled_dot":
            return scaled_dot_scores(q_BxTqxDq, k_BxTkxDk)
        init = nn.initializers.lecun_normal()
        if self.score == "general":
            W = self.param("W", init, (dq, dk), dt)
            return general_scores(q_BxTqxDq, k_BxTkxDk, W)
        # additive / concat: the names, shapes, initialisers and order of AdditiveAttention
        a = self.features
        Wq = self.param("Wq", init, (dq, a), dt)
        Wk = self.param("Wk", init, (dk, a), dt)
        b = self.param("b", nn.initializers.zeros, (a,), dt)
        w = self.param("w", nn.initializers.normal(a**-0.5), (a,), dt)
        scores = concat_scores if self.score == "concat" else additive_scores  # the same math
        return scores(q_BxTqxDq, k_BxTkxDk, Wq, Wk, b, w)
