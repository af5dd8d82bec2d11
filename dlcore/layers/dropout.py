"""The dropout family: unit dropout (inverted or classic), DropConnect and weight noise.

All are identity-like in eval mode (``train=False``) and draw their randomness from the
module's ``'dropout'`` RNG stream, so callers pass keys explicitly via
``apply(..., rngs={"dropout": key})``. The pure functions take the key as an argument.
"""

from typing import Literal

import flax.linen as nn
import jax
import jax.numpy as jnp

from dlcore.checks import check_choice, check_probability
from dlcore.traced import is_traced, statically_zero

DropoutMode = Literal["inverted", "classic"]
DROPOUT_MODES = ("inverted", "classic")


def dropout(
    key: jax.Array, x: jax.Array, rate: float, *, train: bool, mode: DropoutMode = "inverted"
) -> jax.Array:
    """Zeroes each entry of ``x`` with probability ``rate`` (keep probability q = 1 - rate).

    Inverted:  train y = m * x / q,  eval y = x.
    Classic:   train y = m * x,      eval y = q * x.

    with m ~ Bernoulli(q). Both make the eval output equal the expected train output; the
    inverted form pays the 1/q at training time so inference is untouched.

    Args:
      key: PRNG key for the mask (unused when ``train`` is False).
      x: activations of any shape.
      rate: drop probability in [0, 1).
      train: apply the random mask (True) or the deterministic eval rule (False).
      mode: ``"inverted"`` (default) or ``"classic"``.

    Example:
      >>> y = dropout(jax.random.key(0), jnp.ones(4), 0.5, train=True)
      >>> set(y.tolist()) <= {0.0, 2.0}
      True
    """
    if not is_traced(rate):  # a population member's traced rate was checked as config
        check_probability(rate, "dropout rate")
    check_choice(mode, DROPOUT_MODES, "dropout mode")
    keep = 1.0 - rate
    if not train or statically_zero(rate):
        return x * keep if mode == "classic" else x
    mask = jax.random.bernoulli(key, keep, x.shape)
    kept = jnp.where(mask, x, jnp.zeros_like(x))
    return kept / keep if mode == "inverted" else kept


class Dropout(nn.Module):
    """Unit dropout as a module; see :func:`dropout` for the two scaling conventions.

    Attributes:
      rate: drop probability in [0, 1).
      mode: ``"inverted"`` (scale by 1/q while training) or ``"classic"`` (scale by q at test).

    Example:
      >>> layer = Dropout(0.5)
      >>> y = layer.apply({}, jnp.ones((2, 3)), train=True, rngs={"dropout": jax.random.key(1)})
      >>> y.shape
      (2, 3)
    """

    rate: float
    mode: DropoutMode = "inverted"

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
        key = self.make_rng("dropout") if train and not statically_zero(self.rate) else None
        return dropout(key, x, self.rate, train=train, mode=self.mode)


class DropConnectDense(nn.Module):
    """A dense layer whose individual weights are dropped (Wan et al., 2013).

    train: y = x (M * W) / q + b,   M_ij ~ Bernoulli(q), one mask per call;
    eval:  y = x W + b.

    The inverted 1/q keeps E[y] equal to the eval output (Wan et al.'s Gaussian moment
    matching at inference is not used). The bias is never dropped.

    Attributes:
      features: output width.
      rate: probability of dropping each weight, in [0, 1).
      param_dtype: dtype of kernel and bias.

    Example:
      >>> layer = DropConnectDense(features=3, rate=0.5)
      >>> variables = layer.init(jax.random.key(0), jnp.ones((2, 4)), train=False)
      >>> layer.apply(variables, jnp.ones((2, 4)), train=True,
      ...             rngs={"dropout": jax.random.key(1)}).shape
      (2, 3)
    """

    features: int
    rate: float = 0.5
    kernel_init: nn.initializers.Initializer = nn.initializers.lecun_normal()
    bias_init: nn.initializers.Initializer = nn.initializers.zeros
    param_dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x_BxD: jax.Array, *, train: bool) -> jax.Array:
        kernel_DxF = self.param(
            "kernel", self.kernel_init, (x_BxD.shape[-1], self.features), self.param_dtype
        )
        bias_F = self.param("bias", self.bias_init, (self.features,), self.param_dtype)
        if train and self.rate > 0:
            kernel_DxF = dropout(self.make_rng("dropout"), kernel_DxF, self.rate, train=True)
        return x_BxD @ kernel_DxF + bias_F.reshape((1,) * (x_BxD.ndim - 1) + (-1,))


class GaussianWeightNoiseDense(nn.Module):
    """A dense layer with additive Gaussian noise on its weights while training (Graves, 2011).

    train: y = x (W + sigma * E) + b,  E_ij ~ N(0, 1), fresh every call;
    eval:  y = x W + b.

    Attributes:
      features: output width.
      stddev: noise standard deviation sigma >= 0.
      param_dtype: dtype of kernel and bias.

    Example:
      >>> layer = GaussianWeightNoiseDense(features=3, stddev=0.1)
      >>> variables = layer.init(jax.random.key(0), jnp.ones((2, 4)), train=False)
      >>> layer.apply(variables, jnp.ones((2, 4)), train=False).shape
      (2, 3)
    """

    features: int
    stddev: float = 0.01
    kernel_init: nn.initializers.Initializer = nn.initializers.lecun_normal()
    bias_init: nn.initializers.Initializer = nn.initializers.zeros
    param_dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x_BxD: jax.Array, *, train: bool) -> jax.Array:
        if self.stddev < 0:
            raise ValueError(f"weight noise stddev must be >= 0; got {self.stddev!r}")
        kernel_DxF = self.param(
            "kernel", self.kernel_init, (x_BxD.shape[-1], self.features), self.param_dtype
        )
        bias_F = self.param("bias", self.bias_init, (self.features,), self.param_dtype)
        if train and self.stddev > 0:
            noise = jax.random.normal(self.make_rng("dropout"), kernel_DxF.shape, kernel_DxF.dtype)
            kernel_DxF = kernel_DxF + self.stddev * noise
        return x_BxD @ kernel_DxF + bias_F.reshape((1,) * (x_BxD.ndim - 1) + (-1,))
