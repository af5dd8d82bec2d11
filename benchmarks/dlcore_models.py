"""dlcore compositions for suites where dlcore has the layers but no ready-made model yet.

The char-LM is ``dlcore.recurrent.RNN(LSTMCell)`` followed by a dense read-out, trained with
``dlcore.classification`` (per-token cross-entropy: the task's loss and metrics work on
``[B, T, V]`` logits and ``[B, T]`` labels). It is built only when ``dlcore.recurrent`` exists.
"""

import flax.linen as nn
import jax
import optax

import dlcore
from benchmarks.availability import dlcore_has


def char_lm_task(hidden: int, vocab: int, remat: bool = False, lr: float = 1e-3):
    """A dlcore task training an LSTM char-LM on one-hot inputs ``[B, T, V]``.

    Raises:
      ImportError: if ``dlcore.recurrent`` is not there (the suites report "not available").
    """
    if not dlcore_has("dlcore.recurrent"):
        raise ImportError("dlcore.recurrent (the LSTM layer) is not merged yet")
    from dlcore.recurrent import RNN, LSTMCell  # only importable once merged

    class CharLSTM(nn.Module):
        @nn.compact
        def __call__(self, x_BxTxV: jax.Array, *, train: bool) -> jax.Array:
            h_BxTxH = RNN(LSTMCell(features=hidden), remat=remat)(x_BxTxV)
            return nn.Dense(vocab)(h_BxTxH)

    return dlcore.classification(CharLSTM(), optax.adam(lr))
