"""Elementwise and simplex-valued activation functions, looked up by name from configs.

Each entry maps a config name to a plain function ``f(x) -> y``. Activations with learnable
parameters (PReLU, Maxout) are modules in :mod:`dlcore.layers`; the math lives here.
"""

from collections.abc import Callable

import jax
import jax.numpy as jnp

from dlcore.checks import check_choice
from dlcore.sparsemax import sparsemax

Activation = Callable[[jax.Array], jax.Array]


def identity(x: jax.Array) -> jax.Array:
    """f(x) = x."""
    return x


def sigmoid(x: jax.Array) -> jax.Array:
    """f(x) = 1 / (1 + exp(-x)), computed without overflow for large |x|."""
    return jax.nn.sigmoid(x)


def tanh(x: jax.Array) -> jax.Array:
    """f(x) = (exp(x) - exp(-x)) / (exp(x) + exp(-x))."""
    return jnp.tanh(x)


def relu(x: jax.Array) -> jax.Array:
    """f(x) = max(0, x), with derivative 0 at x = 0 (jnp.maximum would split it 1/2-1/2)."""
    return jax.nn.relu(x)


def leaky_relu(x: jax.Array, alpha: float | jax.Array = 0.01) -> jax.Array:
    """f(x) = x if x > 0 else alpha * x.

    ``alpha`` may be an array broadcastable to ``x`` (PReLU passes its learned slopes here).

    Example:
      >>> leaky_relu(jnp.array([-2.0, 3.0]), alpha=0.1)
      Array([-0.2,  3. ], dtype=float32)
    """
    return jnp.where(x > 0, x, alpha * x)


def abs_rectification(x: jax.Array) -> jax.Array:
    """Absolute-value rectification f(x) = |x| (leaky ReLU with alpha = -1)."""
    return jnp.abs(x)


def softmax(x: jax.Array, axis: int = -1) -> jax.Array:
    """softmax(x)_j = exp(x_j - max x) / sum_k exp(x_k - max x) along ``axis``.

    Subtracting the max changes nothing mathematically and keeps exp() from overflowing.
    """
    shifted = x - jax.lax.stop_gradient(jnp.max(x, axis=axis, keepdims=True))
    unnormalized = jnp.exp(shifted)
    return unnormalized / jnp.sum(unnormalized, axis=axis, keepdims=True)


ACTIVATIONS: dict[str, Activation] = {
    "identity": identity,
    "sigmoid": sigmoid,
    "tanh": tanh,
    "relu": relu,
    "leaky_relu": leaky_relu,
    "abs": abs_rectification,
    "softmax": softmax,
    "sparsemax": sparsemax,
    "gelu": jax.nn.gelu,
}


def get_activation(name: str) -> Activation:
    """Returns the activation registered under ``name``.

    Raises:
      ValueError: if ``name`` is not registered; the message lists the valid names.
    """
    check_choice(name, ACTIVATIONS, "activation")
    return ACTIVATIONS[name]
