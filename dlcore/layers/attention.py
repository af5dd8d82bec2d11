"""Additive (Bahdanau) attention: the score math as pure functions, a module owning the weights.

For queries q_i ``[B, Tq, Dq]``, keys k_j ``[B, Tk, Dk]`` and values v_j ``[B, Tk, Dv]``:

    e_ij = w^T tanh(Wq^T q_i + Wk^T k_j + b)          scores        [B, Tq, Tk]
    a_ij = exp(e_ij) m_j / sum_l exp(e_il) m_l          masked softmax over the keys
    c_i  = sum_j a_ij v_j                               contexts      [B, Tq, Dv]

with the key mask m_j in {0, 1}. Same parameters and equations as
``benchmarks.numpy_ref.attention`` (``Wq [Dq, A]``, ``Wk [Dk, A]``, ``b [A]``, ``w [A]``).
"""

import flax.linen as nn
import jax
import jax.numpy as jnp

from dlcore.checks import check_rank


def additive_scores(
    q_BxTqxD: jax.Array,
    k_BxTkxD: jax.Array,
    Wq_DxA: jax.Array,
    Wk_DxA: jax.Array,
    b_A: jax.Array,
    w_A: jax.Array,
) -> jax.Array:
    """Scores ``e_ij = w . tanh(q_i Wq + k_j Wk + b)``, shape ``[B, Tq, Tk]``.

    The projections are computed once per query and once per key (``Tq + Tk`` products, not
    ``Tq * Tk``); only the tanh and the dot with ``w`` run over all pairs.
    """
    pq_BxTqxA = q_BxTqxD @ Wq_DxA
    pk_BxTkxA = k_BxTkxD @ Wk_DxA
    u_BxTqxTkxA = jnp.tanh(
        pq_BxTqxA[:, :, None, :] + pk_BxTkxA[:, None, :, :] + b_A[None, None, None, :]
    )
    return u_BxTqxTkxA @ w_A


def softmax_where(scores: jax.Array, keep: jax.Array | None) -> jax.Array:
    """Softmax over the last axis where entries with ``keep`` False (any shape that
    broadcasts to ``scores``) get exactly zero weight and zero gradient.

    Masked scores are replaced (not added to) by the dtype's lowest value, so no gradient
    reaches them and no inf - inf appears; the weights are then zeroed with ``where`` so a row
    whose keys are all masked gets all-zero weights instead of a uniform average.
    """
    if keep is None:
        return jax.nn.softmax(scores, axis=-1)
    masked = jnp.where(keep, scores, jnp.finfo(scores.dtype).min)
    return jnp.where(keep, jax.nn.softmax(masked, axis=-1), 0.0)


def masked_softmax(e_BxTqxTk: jax.Array, key_mask_BxTk: jax.Array | None) -> jax.Array:
    """:func:`softmax_where` over the keys, ``key_mask_BxTk`` (1 = a real key) shared by
    every query."""
    keep = None if key_mask_BxTk is None else key_mask_BxTk.astype(bool)[:, None, :]
    return softmax_where(e_BxTqxTk, keep)


def additive_attention(
    params: dict,
    q_BxTqxD: jax.Array,
    k_BxTkxD: jax.Array,
    v_BxTkxE: jax.Array,
    key_mask_BxTk: jax.Array | None = None,
) -> tuple[jax.Array, jax.Array]:
    """Contexts ``[B, Tq, Dv]`` and weights ``[B, Tq, Tk]`` (see the module docstring).

    Args:
      params: ``{"Wq": [Dq, A], "Wk": [Dk, A], "b": [A], "w": [A]}``.
      q_BxTqxD: queries (in Bahdanau et al. 2015, the decoder state).
      k_BxTkxD: keys (the encoder states).
      v_BxTkxE: values (the encoder states again, or anything aligned with the keys).
      key_mask_BxTk: 1/True for real keys, 0/False for padding; None keeps every key.

    Returns:
      ``(context, weights)``.

    Example:
      >>> p = {"Wq": jnp.ones((3, 4)), "Wk": jnp.ones((2, 4)), "b": jnp.zeros(4), "w": jnp.ones(4)}
      >>> ctx, a = additive_attention(p, jnp.ones((1, 1, 3)), jnp.ones((1, 2, 2)),
      ...                             jnp.eye(2)[None], jnp.array([[1, 0]]))
      >>> ctx.tolist(), a.tolist()
      ([[[1.0, 0.0]]], [[[1.0, 0.0]]])
    """
    check_attention_inputs(q_BxTqxD, k_BxTkxD, v_BxTkxE, key_mask_BxTk)
    e_BxTqxTk = additive_scores(
        q_BxTqxD, k_BxTkxD, params["Wq"], params["Wk"], params["b"], params["w"]
    )
    a_BxTqxTk = masked_softmax(e_BxTqxTk, key_mask_BxTk)
    return a_BxTqxTk @ v_BxTkxE, a_BxTqxTk


def check_attention_inputs(q, k, v, key_mask=None) -> None:
    """One-line ValueErrors for ranks, batch sizes, and keys/values/mask that do not align."""
    check_rank(q, 3, "attention queries", "[B, Tq, Dq]")
    check_rank(k, 3, "attention keys", "[B, Tk, Dk]")
    check_rank(v, 3, "attention values", "[B, Tk, Dv]")
    if not (q.shape[0] == k.shape[0] == v.shape[0]) or k.shape[1] != v.shape[1]:
        raise ValueError(
            "attention queries [B, Tq, Dq], keys [B, Tk, Dk] and values [B, Tk, Dv] must share "
            f"B and Tk; got {tuple(q.shape)}, {tuple(k.shape)}, {tuple(v.shape)}"
        )
    if key_mask is not None and tuple(key_mask.shape) != tuple(k.shape[:2]):
        raise ValueError(
            f"attention key_mask must be [B, Tk] = {tuple(k.shape[:2])}; "
            f"got {tuple(key_mask.shape)}"
        )


class AdditiveAttention(nn.Module):
    """Bahdanau attention owning ``Wq [Dq, A]``, ``Wk [Dk, A]``, ``b [A]`` and ``w [A]``.

    Calls :func:`additive_attention`; the input widths Dq, Dk come from the first call.

    Attributes:
      features: the attention width A.
      param_dtype: dtype of Wq, Wk, b and w.

    Example:
      >>> layer = AdditiveAttention(features=8)
      >>> q, kv = jnp.ones((2, 3, 4)), jnp.ones((2, 5, 6))
      >>> variables = layer.init(jax.random.key(0), q, kv, kv)
      >>> ctx, weights = layer.apply(variables, q, kv, kv, jnp.ones((2, 5)))
      >>> ctx.shape, weights.shape
      ((2, 3, 6), (2, 3, 5))
    """

    features: int
    param_dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(
        self,
        q_BxTqxD: jax.Array,
        k_BxTkxD: jax.Array,
        v_BxTkxE: jax.Array,
        key_mask_BxTk: jax.Array | None = None,
    ) -> tuple[jax.Array, jax.Array]:
        check_attention_inputs(q_BxTqxD, k_BxTkxD, v_BxTkxE, key_mask_BxTk)
        init = nn.initializers.lecun_normal()
        a, dt = self.features, self.param_dtype
        params = {
            "Wq": self.param("Wq", init, (q_BxTqxD.shape[-1], a), dt),
            "Wk": self.param("Wk", init, (k_BxTkxD.shape[-1], a), dt),
            "b": self.param("b", nn.initializers.zeros, (a,), dt),
            # w is a vector: lecun_normal needs a matrix, so scale a normal by 1/sqrt(A).
            "w": self.param("w", nn.initializers.normal(a**-0.5), (a,), dt),
        }
        return additive_attention(params, q_BxTqxD, k_BxTkxD, v_BxTkxE, key_mask_BxTk)
