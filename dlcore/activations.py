"""Elementwise activation functions, looked up by name from experiment configs.

Each entry maps a config name to a plain function ``f(x) -> y``. Activations with
learnable parameters (PReLU, Maxout) are modules and live beside the layers.
"""

from collections.abc import Callable

import jax
import jax.numpy as jnp

from dlcore.checks import check_choice

Activation = Callable[[jax.Array], jax.Array]


def identity(x: jax.Array) -> jax.Array:
    """f(x) = x."""
    return x


ACTIVATIONS: dict[str, Activation] = {
    "identity": identity,
    "sigmoid": jax.nn.sigmoid,
    "tanh": jnp.tanh,
    "relu": jax.nn.relu,
    "gelu": jax.nn.gelu,
}


def get_activation(name: str) -> Activation:
    """Returns the activation registered under ``name``.

    Raises:
      ValueError: if ``name`` is not registered; the message lists the valid names.
    """
    check_choice(name, ACTIVATIONS, "activation")
    return ACTIVATIONS[name]
