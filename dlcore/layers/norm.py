"""Normalization layers: batch norm, layer norm and AlexNet's local response normalization.

Batch and layer norm are Flax's implementations behind the ``__call__(x, *, train)`` signature
every dlcore model uses; batch norm's running averages live in the ``batch_stats`` collection,
which the supervised task carries in ``TrainState.model_state``.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp

from dlcore.checks import check_positive_int


class BatchNorm(nn.Module):
    """Batch normalization (Ioffe & Szegedy, 2015) over all axes but the last.

    train: y = gamma * (x - mu_B) / sqrt(var_B + eps) + beta, and the running averages are
           updated as r <- momentum * r + (1 - momentum) * batch value;
    eval:  the same with the running mean and variance in place of mu_B, var_B.

    Attributes:
      momentum: decay of the running averages.
      epsilon: added to the variance for stability.

    Example:
      >>> layer = BatchNorm()
      >>> variables = layer.init(jax.random.key(0), jnp.ones((4, 3)), train=False)
      >>> sorted(variables)
      ['batch_stats', 'params']
    """

    momentum: float = 0.9
    epsilon: float = 1e-5

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
        return nn.BatchNorm(
            use_running_average=not train, momentum=self.momentum, epsilon=self.epsilon
        )(x)


class LayerNorm(nn.Module):
    """Layer normalization (Ba et al., 2016) over the last axis; the same in train and eval.

    y = gamma * (x - mean(x)) / sqrt(var(x) + eps) + beta, statistics per example.

    Example:
      >>> layer = LayerNorm()
      >>> variables = layer.init(jax.random.key(0), jnp.ones((4, 3)), train=False)
      >>> sorted(variables["params"]["LayerNorm_0"])
      ['bias', 'scale']
    """

    epsilon: float = 1e-5

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool = False) -> jax.Array:
        del train  # per-example statistics: nothing differs between modes
        return nn.LayerNorm(epsilon=self.epsilon)(x)


def local_response_norm(
    x_BxHxWxC: jax.Array,
    size: int = 5,
    k: float = 2.0,
    alpha: float = 1e-4,
    beta: float = 0.75,
) -> jax.Array:
    """Local response normalization across channels (Krizhevsky et al., 2012).

    b_c = a_c / (k + alpha * sum_{j = max(0, c - n/2)}^{min(C - 1, c + n/2)} a_j^2)^beta

    with n = ``size`` neighbouring channels (n/2 rounded down), channels on the last axis.
    The sum is AlexNet's (alpha is not divided by n, unlike some libraries).

    Args:
      x_BxHxWxC: activations; any rank >= 1 with channels last.
      size: number of channels n in the window (odd).
      k, alpha, beta: the constants of the formula; AlexNet's values are the defaults.

    Returns:
      Normalized activations, same shape.

    Example:
      >>> local_response_norm(jnp.ones((1, 2, 2, 8))).shape
      (1, 2, 2, 8)
    """
    check_positive_int(size, "LRN size")
    if size % 2 == 0:
        raise ValueError(f"LRN size must be odd (a window centred on each channel); got {size}")
    half = size // 2
    squares = x_BxHxWxC * x_BxHxWxC
    # Zero-pad the channel axis and add the n shifted views: the padding realises the
    # max(0, .)/min(C - 1, .) limits of the sum. n is small (5), so n slices are cheap.
    channels = x_BxHxWxC.shape[-1]
    padded = jnp.pad(squares, ((0, 0),) * (squares.ndim - 1) + ((half, half),))
    sums = sum(padded[..., offset : offset + channels] for offset in range(size))
    return x_BxHxWxC / jnp.power(k + alpha * sums, beta)


class LocalResponseNorm(nn.Module):
    """:func:`local_response_norm` as a module (no parameters), for use in model stacks.

    Example:
      >>> LocalResponseNorm().apply({}, jnp.ones((1, 2, 2, 8))).shape
      (1, 2, 2, 8)
    """

    size: int = 5
    k: float = 2.0
    alpha: float = 1e-4
    beta: float = 0.75

    def __call__(self, x: jax.Array, *, train: bool = False) -> jax.Array:
        del train
        return local_response_norm(x, self.size, self.k, self.alpha, self.beta)
