"""A 1-D convolutional text classifier (Kim, 2014) with an optional time-delay (TDNN) stack.

    e_t = Embed(x_t) m_t                                   m_t = 1 for real steps, 0 for padding
    h^0 = e,  h^l_t = act(b^l + sum_{j, c} W^l[j, c, :] h^{l-1}_{t + d_l (j - o_l), c}) m_t
    z^w_t = act(b^w + sum_{j, c} V^w[j, c, :] h^L_{t + j - o_w, c})    one branch per width w
    p^w = max_{t : m_t = 1} z^w_t                          max over time, padding set to -inf
    logits = U dropout([p^{w_1}, ..., p^{w_n}]) + c

The stacked layers (``layers``: kernel k_l, dilation d_l) are a time-delay neural network:
with dilations 1, 2, 4 a unit at step t sees a window of 1 + sum_l d_l (k_l - 1) characters.
Every convolution is 'same' (offset o = d (k - 1) // 2), and the input of each one is zero
beyond the sequence's end (embeddings and outputs are multiplied by m), so a step's value is
that of a convolution over the real tokens padded with zeros: what follows the end (the
``-1`` padding of ``[B, T]`` token inputs, read as in the ``rnn`` model) changes no output
and receives no gradient.
"""

from typing import Literal

import flax.linen as nn
import jax
import jax.numpy as jnp
from pydantic import Field, PositiveInt

from dlcore.activations import ACTIVATIONS, get_activation
from dlcore.checks import check_choice, check_rank
from dlcore.config.section import Section, one_of
from dlcore.data.dataset import DataSpec
from dlcore.data.needs import Need
from dlcore.layers.conv import Conv1D

# Patches times one GEMM, not XLA's convolution: inside the lax.scan of mode = "scan" training,
# XLA's CPU convolution ran 60x slower than the GEMM form (the default model's three branches,
# B = 64, T = 161, loss and gradient: 1784 vs 29 ms per step; jax 0.10.2, this shared 2-core
# machine), though outside a scan it is the faster one (12 vs 22 ms at T = 80).
CONV_IMPL = "gemm"


def max_over_time(h_BxTxF: jax.Array, mask_BxT: jax.Array) -> jax.Array:
    """p[b, f] = max over the valid steps t of h[b, t, f], ``[B, F]``; 0 for an empty row.

    Padded steps are set to -inf before the max, so they never win and get zero gradient.

    Example:
      >>> h = jnp.array([[[1.0], [5.0], [9.0]]])  # [B=1, T=3, F=1]
      >>> max_over_time(h, jnp.array([[True, True, False]])).tolist()
      [[5.0]]
    """
    masked = jnp.where(mask_BxT[:, :, None], h_BxTxF, -jnp.inf)
    pooled_BxF = jnp.max(masked, axis=1)
    return jnp.where(jnp.any(mask_BxT, axis=1)[:, None], pooled_BxF, 0.0)


class TextCNN(nn.Module):
    """Embedding, optional TDNN stack, parallel convolutions, max over time, dense head.

    The equations are in the module docstring.

    Attributes:
      out_features: classes K.
      vocab_size: token ids 0..vocab_size-1 (``-1`` is padding).
      embed_dim: embedding width E.
      widths: kernel widths of the parallel branches (Kim's 3, 4, 5).
      features: output channels of every branch.
      layers: ``(kernel, dilation, features)`` of each stacked TDNN layer (may be empty).
      activation: name in ``dlcore.activations.ACTIVATIONS``.
      dropout: drop probability of the pooled features (off when ``train=False``).

    Example:
      >>> model = TextCNN(out_features=4, vocab_size=10, widths=(2, 3), features=5)
      >>> x = jnp.array([[3, 1, 4, -1], [1, 5, 9, 2]])  # [B=2, T=4], -1 = padding
      >>> variables = model.init(jax.random.key(0), x, train=False)
      >>> model.apply(variables, x, train=False).shape
      (2, 4)
    """

    out_features: int
    vocab_size: int
    embed_dim: int = 32
    widths: tuple[int, ...] = (3, 4, 5)
    features: int = 64
    layers: tuple[tuple[int, int, int], ...] = ()
    activation: str = "relu"
    dropout: float = 0.0

    def __post_init__(self):
        check_choice(self.activation, ACTIVATIONS, "activation")
        super().__post_init__()

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
        check_rank(x, 2, "text_cnn input", "[batch, time] integer token ids")
        if not jnp.issubdtype(x.dtype, jnp.integer):
            raise ValueError(
                f"text_cnn reads integer token ids [batch, time]; got dtype {x.dtype} and "
                f"shape {tuple(x.shape)} (images or real features need a model such as mlp)"
            )
        act = get_activation(self.activation)

        def conv(features: int, kernel: int, dilation: int, name: str) -> Conv1D:
            return Conv1D(
                features, kernel, padding="same", dilation=dilation, impl=CONV_IMPL, name=name
            )

        mask_BxT = x >= 0
        keep_BxTx1 = mask_BxT[:, :, None].astype(jnp.float32)
        h_BxTxE = nn.Embed(self.vocab_size, self.embed_dim, name="embed")(jnp.maximum(x, 0))
        h = h_BxTxE * keep_BxTx1
        for i, (kernel, dilation, features) in enumerate(self.layers):
            h = act(conv(features, kernel, dilation, f"tdnn{i}")(h)) * keep_BxTx1
        pooled = [
            max_over_time(act(conv(self.features, w, 1, f"conv{i}")(h)), mask_BxT)
            for i, w in enumerate(self.widths)
        ]
        r_BxD = jnp.concatenate(pooled, axis=-1)
        if self.dropout > 0:
            r_BxD = nn.Dropout(self.dropout, deterministic=not train)(r_BxD)
        return nn.Dense(self.out_features, name="head")(r_BxD)


class TDNNLayerConfig(Section):
    """One stacked time-delay layer: a 'same' convolution with a dilation."""

    kernel: PositiveInt = 3
    dilation: PositiveInt = 1
    features: PositiveInt = 64


class TextCNNConfig(Section):
    """A 1-D CNN over token embeddings with max-over-time pooling (see ``TextCNN``).

    ``layers`` (a TOML array of tables ``[[model.layers]]``) adds a time-delay stack of dilated
    convolutions before the parallel ``widths`` branches.
    """

    name: Literal["text_cnn"] = "text_cnn"
    embed_dim: PositiveInt = 32
    widths: list[PositiveInt] = Field([3, 4, 5], min_length=1, description="branch kernels")
    features: PositiveInt = Field(64, description="channels of each branch")
    layers: list[TDNNLayerConfig] = Field([], description="stacked dilated layers first")
    activation: one_of(ACTIVATIONS, "activation") = "relu"
    dropout: float = Field(0.5, ge=0.0, lt=1.0, description="on the pooled features")

    def needs(self) -> tuple[Need, ...]:
        return (Need("x", ("tokens",), "token ids [T] (-1 = padding)", (1,)),)

    def make(self, out_features: int, data: DataSpec | None = None) -> TextCNN:
        if data is None or "vocab_size" not in data.info:
            raise ValueError("text_cnn needs a token data set with a vocabulary (vocab_size)")
        return TextCNN(
            out_features=out_features,
            vocab_size=int(data.info["vocab_size"]),
            embed_dim=self.embed_dim,
            widths=tuple(self.widths),
            features=self.features,
            layers=tuple((t.kernel, t.dilation, t.features) for t in self.layers),
            activation=self.activation,
            dropout=self.dropout,
        )
