"""Parametric ReLU (He et al., 2015): a leaky ReLU whose negative slope is learned."""

import flax.linen as nn
import jax
import jax.numpy as jnp

from dlcore.activations import leaky_relu


class PReLU(nn.Module):
    """f(x_c) = x_c if x_c > 0 else alpha_c * x_c, with alpha learned.

    Attributes:
      per_channel: learn one slope per feature (last axis) instead of one shared slope.
      alpha_init: initial slope; 0.25 as in He et al.
      param_dtype: dtype of the slope (cast to the input's dtype when applied).

    Example:
      >>> layer = PReLU(per_channel=True)
      >>> variables = layer.init(jax.random.key(0), jnp.ones((2, 3)))
      >>> variables["params"]["alpha"].shape
      (3,)
    """

    per_channel: bool = False
    alpha_init: float = 0.25
    param_dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        shape = (x.shape[-1],) if self.per_channel else ()
        init = nn.initializers.constant(self.alpha_init)
        alpha = self.param("alpha", init, shape, self.param_dtype)
        # [C] -> [1, ..., 1, C]: explicit broadcasting (rank promotion is an error in tests)
        alpha = jnp.reshape(alpha, (1,) * (x.ndim - len(shape)) + shape)
        return leaky_relu(x, jnp.asarray(alpha, x.dtype))
