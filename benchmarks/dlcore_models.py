"""dlcore compositions for suites where dlcore has the layers but no ready-made model yet.

The char-LM is ``dlcore.recurrent.RNN(LSTMCell)`` followed by a dense read-out, trained with
``dlcore.classification`` (per-token cross-entropy: the task's loss and metrics work on
``[B, T, V]`` logits and ``[B, T]`` labels). It is built only when ``dlcore.recurrent`` exists.

The attention layer is ``dlcore.layers.AdditiveAttention`` trained with ``dlcore.regression``
(half squared error per example, averaged over the batch: L = 1/(2B) ||ctx - target||^2, the
loss of the NumPy and pure-JAX references) on batches ``{"x": {"q", "k", "v"}, "y": target}``.
"""

import flax.linen as nn
import jax
import optax

import dlcore
from benchmarks.availability import dlcore_has


def char_lm_task(
    hidden: int, vocab: int, remat: bool = False, lr: float = 1e-3, impl: str = "auto"
):
    """A dlcore task training an LSTM char-LM on one-hot inputs ``[B, T, V]``; ``impl`` is
    the RNN layer's (``dlcore.recurrent.sequence.IMPLS``).

    Raises:
      ImportError: if ``dlcore.recurrent`` is not there (the suites report "not available").
    """
    if not dlcore_has("dlcore.recurrent"):
        raise ImportError("dlcore.recurrent (the LSTM layer) is not merged yet")
    from dlcore.recurrent import RNN, LSTMCell  # only importable once merged

    class CharLSTM(nn.Module):
        @nn.compact
        def __call__(self, x_BxTxV: jax.Array, *, train: bool) -> jax.Array:
            h_BxTxH = RNN(LSTMCell(features=hidden), remat=remat, impl=impl)(x_BxTxV)
            return nn.Dense(vocab)(h_BxTxH)

    return dlcore.classification(CharLSTM(), optax.adam(lr))


def attention_task(features: int, lr: float = 1e-3):
    """A dlcore task fitting one additive attention layer's contexts to a target.

    Raises:
      ImportError: if ``dlcore.layers.attention`` is not there.
    """
    if not dlcore_has("dlcore.layers.attention"):
        raise ImportError("dlcore.layers.attention is not merged yet")
    from dlcore.layers.attention import AdditiveAttention

    class AttentionLayer(nn.Module):
        @nn.compact
        def __call__(self, x: dict, *, train: bool) -> jax.Array:
            ctx_BxTqxE, _ = AdditiveAttention(features)(x["q"], x["k"], x["v"])
            return ctx_BxTqxE

    return dlcore.regression(AttentionLayer(), optax.adam(lr))
