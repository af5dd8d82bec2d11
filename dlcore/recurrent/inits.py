"""Initializers for recurrent weight matrices, looked up by name.

A recurrent kernel stacks one ``[H, H]`` block per gate side by side, ``[H, G*H]``. Each
block is initialized on its own so that, e.g., "orthogonal" makes every gate's recurrent
map orthogonal rather than the wide stacked matrix (whose columns cannot all be orthonormal).
"""

from collections.abc import Callable

import jax
import jax.numpy as jnp
from flax import linen as nn

from dlcore.checks import check_choice

Initializer = Callable[[jax.Array, tuple[int, ...], jnp.dtype], jax.Array]


def identity_init(key: jax.Array, shape: tuple[int, ...], dtype=jnp.float32) -> jax.Array:
    """U = I, the IRNN recipe (Le, Jaitly & Hinton 2015) for ReLU Elman networks."""
    del key
    if len(shape) != 2 or shape[0] != shape[1]:
        raise ValueError(f"identity init needs a square [H, H] block; got shape {shape}")
    return jnp.eye(shape[0], dtype=dtype)


RECURRENT_INITS: dict[str, Initializer] = {
    "orthogonal": nn.initializers.orthogonal(),
    "identity": identity_init,
    "lecun_normal": nn.initializers.lecun_normal(),
    "glorot_uniform": nn.initializers.glorot_uniform(),
}


def get_recurrent_init(name: str) -> Initializer:
    """Returns the recurrent initializer registered under ``name``.

    Raises:
      ValueError: if ``name`` is not registered; the message lists the valid names.
    """
    check_choice(name, RECURRENT_INITS, "recurrent_init")
    return RECURRENT_INITS[name]


def gate_blocks_init(name: str, num_gates: int) -> Initializer:
    """An initializer for ``[H, G*H]`` that fills each of the G ``[H, H]`` blocks with ``name``.

    Example:
      >>> init = gate_blocks_init("identity", 2)
      >>> init(jax.random.key(0), (3, 6), jnp.float32).shape
      (3, 6)
    """
    block_init = get_recurrent_init(name)

    def init(key: jax.Array, shape: tuple[int, ...], dtype=jnp.float32) -> jax.Array:
        hidden, width = shape
        if width != num_gates * hidden:
            raise ValueError(f"recurrent kernel must be [H, {num_gates}*H]; got shape {shape}")
        keys = jax.random.split(key, num_gates)
        blocks = [block_init(k, (hidden, hidden), dtype) for k in keys]
        return jnp.concatenate(blocks, axis=1)

    return init
