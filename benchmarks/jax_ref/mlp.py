"""MLP (ReLU hidden layers) with mean softmax cross-entropy, in plain jax.numpy."""

import jax
import jax.numpy as jnp


def cross_entropy(logits_NxK: jax.Array, labels_N: jax.Array) -> jax.Array:
    """Mean of logsumexp(s_i) - s_{i, y_i}."""
    picked = jnp.take_along_axis(logits_NxK, labels_N[:, None], axis=-1)[:, 0]
    return jnp.mean(jax.nn.logsumexp(logits_NxK, axis=-1) - picked)


def apply(params: dict, x_BxD: jax.Array) -> jax.Array:
    """Logits for params keyed ``W0, b0, W1, ...`` (the layout of ``numpy_ref.mlp``)."""
    n = sum(1 for k in params if k.startswith("W"))
    h = x_BxD.reshape(x_BxD.shape[0], -1)
    for i in range(n):
        h = h @ params[f"W{i}"] + params[f"b{i}"][None, :]
        if i < n - 1:
            h = jax.nn.relu(h)
    return h


def loss(params: dict, x_BxD: jax.Array, labels_B: jax.Array) -> jax.Array:
    """Mean softmax cross-entropy of the MLP's logits.

    Example:
      >>> p = {"W0": jnp.zeros((3, 4)), "b0": jnp.zeros(4)}
      >>> round(float(loss(p, jnp.ones((2, 3)), jnp.array([0, 1]))), 4)  # log 4
      1.3863
    """
    return cross_entropy(apply(params, x_BxD), labels_B)
