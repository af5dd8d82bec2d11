"""The train state: everything a training step reads and writes, as one pytree."""

import zlib
from typing import Any

import flax.struct
import jax


class TrainState(flax.struct.PyTreeNode):
    """State carried from one compiled step to the next and saved in checkpoints.

    Attributes:
      step: number of optimizer updates applied so far, int32 scalar.
      params: trainable parameters (a plain nested dict of arrays).
      model_state: non-trainable model variables such as ``batch_stats``; ``{}`` if none.
      opt_state: the optax chain's state.
      rng: base PRNG key (raw ``uint32[2]``); steps derive their keys with
        ``fold_in(rng, step)`` so randomness depends only on (seed, step).
      extra: task-specific carried state (e.g. the recurrent carry of truncated BPTT);
        ``{}`` if none.
    """

    step: jax.Array
    params: Any
    model_state: Any
    opt_state: Any
    rng: jax.Array
    extra: Any = flax.struct.field(default_factory=dict)

    def step_key(self, name: str = "") -> jax.Array:
        """A PRNG key unique to this step (and to ``name``, for several streams per step)."""
        key = jax.random.fold_in(self.rng, self.step)
        if name:
            key = jax.random.fold_in(key, _stable_hash(name))
        return key


def _stable_hash(name: str) -> int:
    # Python's hash() is salted per process; resume needs the same key in every process.
    return zlib.crc32(name.encode()) & 0x7FFFFFFF
