"""Multi-head scaled dot-product attention (Vaswani et al., 2017) as pure functions and a module.

For queries ``[B, Tq, Dq]``, keys ``[B, Tk, Dk]`` and values ``[B, Tk, Dv]``, with E = H * d
(H heads of width d) and head h owning columns ``h*d : (h+1)*d`` of each projection:

    Q = q Wq + bq,   K = k Wk + bk,   V = v Wv + bv               [B, T, E] -> [B, H, T, d]
    s_hij = Q_hi . K_hj / sqrt(d) + c_hij                           scores  [B, H, Tq, Tk]
    a_hij = m_hij exp(s_hij) / sum_l m_hil exp(s_hil)               weights (masked softmax)
    o_hi  = sum_j dropout(a)_hij V_hj,   y = concat_h(o_h) Wo + bo  output  [B, Tq, E]

with the keep mask m in {0, 1} (key mask and attention mask combined) and the additive bias c
(a float mask, 0 or -inf as PyTorch's float masks). Masked keys get exactly zero weight and
zero gradient: their scores are replaced, not offset, and the weights zeroed with ``where``, so
a query whose keys are all masked gets all-zero weights (PyTorch gives NaN there).

Masks follow flax and :mod:`dlcore.layers.attention`: **True = attend**. PyTorch's boolean
``key_padding_mask`` and ``attn_mask`` mean the opposite (True = masked out): pass
``~mask``. Float masks are additive in both and go to ``attn_bias``.

Parameters (``[in, out]`` kernels, like flax ``Dense``): ``Wq [Dq, E]``, ``Wk [Dk, E]``,
``Wv [Dv, E]``, ``Wo [E, E]`` and, with ``use_bias``, ``bq``, ``bk``, ``bv``, ``bo`` ``[E]``.
PyTorch's ``nn.MultiheadAttention`` maps as ``Wq, Wk, Wv = in_proj_weight[:E].T,
[E:2E].T, [2E:].T`` (or ``q_proj_weight.T`` ... when kdim or vdim differ from E),
``bq, bk, bv = in_proj_bias`` split in three, ``Wo = out_proj.weight.T``,
``bo = out_proj.bias`` (:mod:`dlcore.interop.torch_attention` does it).
"""

import math

import flax.linen as nn
import jax
import jax.numpy as jnp

from dlcore.checks import check_probability
from dlcore.layers.attention import check_attention_inputs, softmax_where
from dlcore.layers.dropout import dropout


def split_heads(x_BxTxE: jax.Array, num_heads: int) -> jax.Array:
    """``[B, T, H*d] -> [B, H, T, d]``; head h is columns ``h*d : (h+1)*d`` (PyTorch's order)."""
    b, t, e = x_BxTxE.shape
    return x_BxTxE.reshape(b, t, num_heads, e // num_heads).transpose(0, 2, 1, 3)


def merge_heads(x_BxHxTxd: jax.Array) -> jax.Array:
    """``[B, H, T, d] -> [B, T, H*d]``, the inverse of :func:`split_heads`."""
    b, h, t, d = x_BxHxTxd.shape
    return x_BxHxTxd.transpose(0, 2, 1, 3).reshape(b, t, h * d)


def _as_4d(m: jax.Array) -> jax.Array:
    """A mask ``[Tq, Tk]``, ``[B, Tq, Tk]`` or ``[B, H, Tq, Tk]`` as 4-D, by explicit new axes
    (the tests forbid broadcasting by rank promotion)."""
    return m[None, None] if m.ndim == 2 else m[:, None] if m.ndim == 3 else m


def keep_mask(
    key_mask_BxTk: jax.Array | None, attn_mask: jax.Array | None, shape_BxHxTqxTk: tuple
) -> jax.Array | None:
    """The combined boolean keep mask broadcast to ``[B, H, Tq, Tk]`` (None: keep all).

    ``attn_mask`` may be ``[Tq, Tk]``, ``[B, Tq, Tk]`` or ``[B, H, Tq, Tk]``.
    """
    keep = None
    if key_mask_BxTk is not None:
        keep = key_mask_BxTk.astype(bool)[:, None, None, :]
    if attn_mask is not None:
        m = _as_4d(attn_mask.astype(bool))
        keep = m if keep is None else keep & m
    return None if keep is None else jnp.broadcast_to(keep, shape_BxHxTqxTk)


def dot_product_weights(
    Q_BxHxTqxd: jax.Array,
    K_BxHxTkxd: jax.Array,
    keep_BxHxTqxTk: jax.Array | None = None,
    attn_bias: jax.Array | None = None,
) -> jax.Array:
    """Weights ``a = softmax(Q K^T / sqrt(d) + c)`` over the keys, ``[B, H, Tq, Tk]``.

    Kept entries of ``keep`` get the softmax over the kept keys; the others exactly 0 with
    no gradient (see the module docstring). ``attn_bias`` broadcasts to ``[B, H, Tq, Tk]``.
    """
    d = Q_BxHxTqxd.shape[-1]
    s = jnp.einsum("bhqd,bhkd->bhqk", Q_BxHxTqxd, K_BxHxTkxd) / math.sqrt(d)
    if attn_bias is not None:
        s = s + attn_bias.astype(s.dtype)
    return softmax_where(s, keep_BxHxTqxTk)


def multi_head_attention(
    params: dict,
    q_BxTqxDq: jax.Array,
    k_BxTkxDk: jax.Array,
    v_BxTkxDv: jax.Array,
    *,
    num_heads: int,
    key_mask_BxTk: jax.Array | None = None,
    attn_mask: jax.Array | None = None,
    attn_bias: jax.Array | None = None,
    dropout_rate: float = 0.0,
    dropout_key: jax.Array | None = None,
    train: bool = False,
    average_weights: bool = True,
) -> tuple[jax.Array, jax.Array]:
    """Output ``[B, Tq, E]`` and weights (see the module docstring for the equations).

    Args:
      params: ``{"Wq", "Wk", "Wv", "Wo"}`` kernels ``[in, E]`` and optionally ``"bq"``,
        ``"bk"``, ``"bv"``, ``"bo"`` ``[E]``.
      q_BxTqxDq, k_BxTkxDk, v_BxTkxDv: queries, keys, values (batch first).
      num_heads: H; must divide E.
      key_mask_BxTk: bool/int, True (nonzero) for keys to attend to, False for padding.
      attn_mask: bool/int, True = query i may attend to key j; ``[Tq, Tk]``, ``[B, Tq, Tk]``
        or ``[B, H, Tq, Tk]``.
      attn_bias: float, added to the scores (PyTorch's float masks); same shapes.
      dropout_rate: inverted dropout on the weights while ``train``.
      dropout_key: PRNG key for that dropout.
      train: apply the dropout.
      average_weights: return the weights averaged over heads ``[B, Tq, Tk]`` (PyTorch's
        ``average_attn_weights=True``) or per head ``[B, H, Tq, Tk]``.

    Returns:
      ``(output, weights)``; the weights are those multiplied with V, i.e. after dropout,
      as PyTorch returns them.

    Raises:
      ValueError: for bad ranks, sizes, float keep masks or a dropout rate outside [0, 1).

    Example:
      >>> E = 4
      >>> p = {"Wq": jnp.eye(E), "Wk": jnp.eye(E), "Wv": jnp.eye(E), "Wo": jnp.eye(E)}
      >>> x = jnp.ones((1, 2, E))
      >>> y, a = multi_head_attention(p, x, x, x, num_heads=2, key_mask_BxTk=jnp.array([[1, 0]]))
      >>> a.tolist(), y.tolist() == x.tolist()
      ([[[1.0, 0.0], [1.0, 0.0]]], True)
    """
    check_mha_inputs(q_BxTqxDq, k_BxTkxDk, v_BxTkxDv, key_mask_BxTk, attn_mask, attn_bias)
    check_probability(dropout_rate, "attention dropout_rate")
    e = params["Wq"].shape[-1]
    if e % num_heads:
        raise ValueError(f"attention embed_dim {e} must be divisible by num_heads {num_heads}")

    def project(x, w, b):
        y = x @ params[w]
        return y + params[b][None, None, :] if b in params else y

    Q = split_heads(project(q_BxTqxDq, "Wq", "bq"), num_heads)  # [B, H, Tq, d]
    K = split_heads(project(k_BxTkxDk, "Wk", "bk"), num_heads)  # [B, H, Tk, d]
    V = split_heads(project(v_BxTkxDv, "Wv", "bv"), num_heads)  # [B, H, Tk, d]
    shape = (Q.shape[0], num_heads, Q.shape[2], K.shape[2])
    keep = keep_mask(key_mask_BxTk, attn_mask, shape)
    a_BxHxTqxTk = dot_product_weights(Q, K, keep, None if attn_bias is None else _as_4d(attn_bias))
    if train and dropout_rate > 0:
        a_BxHxTqxTk = dropout(dropout_key, a_BxHxTqxTk, dropout_rate, train=True)
    o_BxTqxE = merge_heads(jnp.einsum("bhqk,bhkd->bhqd", a_BxHxTqxTk, V))
    y = project(o_BxTqxE, "Wo", "bo")
    return y, a_BxHxTqxTk.mean(axis=1) if average_weights else a_BxHxTqxTk


def check_mha_inputs(q, k, v, key_mask=None, attn_mask=None, attn_bias=None) -> None:
    """One-line ValueErrors for ranks, batch/time sizes and mask shapes and dtypes."""
    check_attention_inputs(q, k, v)  # ranks and shared sizes, as for additive attention
    b, tq, tk = q.shape[0], q.shape[1], k.shape[1]
    for name, m in (("key_mask", key_mask), ("attn_mask", attn_mask)):
        if m is not None and jnp.issubdtype(m.dtype, jnp.floating):
            raise ValueError(
                f"attention {name} must be boolean (True = attend); got {m.dtype}. A float "
                "mask is additive: pass it as attn_bias"
            )
    if key_mask is not None and tuple(key_mask.shape) != (b, tk):
        raise ValueError(
            f"attention key_mask must be [B, Tk] = {(b, tk)}; got {tuple(key_mask.shape)}"
        )
    for name, m in (("attn_mask", attn_mask), ("attn_bias", attn_bias)):
        if m is None:
            continue
        ok = {2: (tq, tk), 3: (b, tq, tk)}.get(m.ndim, (b, None, tq, tk))
        if len(ok) != m.ndim or any(
            w is not None and w != g for w, g in zip(ok, m.shape, strict=False)
        ):
            raise ValueError(
                f"attention {name} must be [Tq, Tk], [B, Tq, Tk] or [B, H, Tq, Tk] with "
                f"B, Tq, Tk = {(b, tq, tk)}; got {tuple(m.shape)}"
            )


class MultiHeadAttention(nn.Module):
    """Multi-head attention owning ``Wq``, ``Wk``, ``Wv``, ``Wo`` (and biases); see
    :func:`multi_head_attention` and the module docstring for the PyTorch mapping.

    Attributes:
      num_heads: H.
      embed_dim: E (None: the query width Dq, as PyTorch's ``embed_dim``).
      dropout_rate: dropout on the attention weights while ``train`` (``'dropout'`` RNG).
      use_bias: the four projection biases (PyTorch ``bias=True``).
      average_weights: weights averaged over heads (True) or per head.
      kernel_init: initializer of the four kernels (xavier uniform, as PyTorch's in_proj).
      param_dtype: dtype of the parameters.

    Example:
      >>> layer = MultiHeadAttention(num_heads=2)
      >>> x, mask = jnp.ones((2, 3, 4)), jnp.array([[1, 1, 0], [1, 1, 1]])
      >>> variables = layer.init(jax.random.key(0), x, x, x, train=False)
      >>> y, a = layer.apply(variables, x, x, x, key_mask_BxTk=mask, train=False)
      >>> y.shape, a.shape
      ((2, 3, 4), (2, 3, 3))
    """

    num_heads: int
    embed_dim: int | None = None
    dropout_rate: float = 0.0
    use_bias: bool = True
    average_weights: bool = True
    kernel_init: nn.initializers.Initializer = nn.initializers.xavier_uniform()
    param_dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(
        self,
        q_BxTqxDq: jax.Array,
        k_BxTkxDk: jax.Array,
        v_BxTkxDv: jax.Array,
        *,
        key_mask_BxTk: jax.Array | None = None,
        attn_mask: jax.Array | None = None,
        attn_bias: jax.Array | None = None,
        train: bool,
    ) -> tuple[jax.Array, jax.Array]:
        check_mha_inputs(q_BxTqxDq, k_BxTkxDk, v_BxTkxDv, key_mask_BxTk, attn_mask, attn_bias)
        e = self.embed_dim or q_BxTqxDq.shape[-1]
        if e % self.num_heads:
            raise ValueError(
                f"attention embed_dim {e} must be divisible by num_heads {self.num_heads}"
            )
        dt, init = self.param_dtype, self.kernel_init
        params = {
            name: self.param(name, init, (x.shape[-1], e), dt)
            for name, x in (("Wq", q_BxTqxDq), ("Wk", k_BxTkxDk), ("Wv", v_BxTkxDv))
        }
        params["Wo"] = self.param("Wo", init, (e, e), dt)
        if self.use_bias:  # zeros, as PyTorch initialises in_proj_bias and out_proj.bias
            for name in ("bq", "bk", "bv", "bo"):
                params[name] = self.param(name, nn.initializers.zeros, (e,), dt)
        use_rng = train and self.dropout_rate > 0
        return multi_head_attention(
            params,
            q_BxTqxDq,
            k_BxTkxDk,
            v_BxTkxDv,
            num_heads=self.num_heads,
            key_mask_BxTk=key_mask_BxTk,
            attn_mask=attn_mask,
            attn_bias=attn_bias,
            dropout_rate=self.dropout_rate,
            dropout_key=self.make_rng("dropout") if use_rng else None,
            train=train,
            average_weights=self.average_weights,
        )
