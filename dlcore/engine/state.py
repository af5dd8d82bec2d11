"""The train state: everything a training step reads and writes, as one pytree."""

import zlib
from typing import Any

import flax.struct
import jax
import optax


class TrainState(flax.struct.PyTreeNode):
    """State carried from one compiled step to the next and saved in checkpoints.

    Attributes:
      step: number of optimizer updates applied so far, int32 scalar.
      params: trainable parameters (a plain nested dict of arrays). Tasks with several
        models keep one entry per model, e.g. ``{"generator": ..., "discriminator": ...}``.
      model_state: non-trainable model variables such as ``batch_stats``; ``{}`` if none.
      opt_state: the optax chain's state; ``{name: state}`` for tasks with several chains.
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


def apply_gradients(
    state: TrainState,
    optimizer: optax.GradientTransformation,
    grads: Any,
    collection: str | None = None,
) -> TrainState:
    """``update -> apply_updates -> replace`` for one optax chain; the step is not bumped.

    Args:
      state: the train state.
      optimizer: the chain that owns ``state.opt_state`` (or ``state.opt_state[collection]``).
      grads: gradients shaped like the parameters it updates.
      collection: for tasks with several models and chains (a GAN's generator and
        discriminator), the key of ``state.params`` and ``state.opt_state`` to update;
        None updates the whole of both.

    Example:
      >>> state = apply_gradients(state, d_opt, d_grads, "discriminator")
      >>> state = apply_gradients(state, g_opt, g_grads, "generator").replace(step=state.step + 1)
    """
    if collection is None:
        updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
        return state.replace(params=optax.apply_updates(state.params, updates), opt_state=opt_state)
    params = state.params[collection]
    updates, opt_state = optimizer.update(grads, state.opt_state[collection], params)
    return state.replace(
        params={**state.params, collection: optax.apply_updates(params, updates)},
        opt_state={**state.opt_state, collection: opt_state},
    )
