"""Maxout units (Goodfellow et al., 2013): the max over k learned linear pieces."""

import flax.linen as nn
import jax
import jax.numpy as jnp

from dlcore.checks import check_positive_int


def maxout(z_BxFK: jax.Array, num_pieces: int) -> jax.Array:
    """Max over groups of ``num_pieces`` consecutive features: ``[..., F*k] -> [..., F]``.

    h_f = max_{j < k} z_{f*k + j}
    """
    if z_BxFK.shape[-1] % num_pieces:
        raise ValueError(
            f"maxout input width must be a multiple of num_pieces={num_pieces}; "
            f"got shape {tuple(z_BxFK.shape)}"
        )
    z_BxFxK = z_BxFK.reshape(*z_BxFK.shape[:-1], -1, num_pieces)
    return jnp.max(z_BxFxK, axis=-1)


class Maxout(nn.Module):
    """A dense maxout layer: h_f(x) = max_{j<k} (w_{fj}^T x + b_{fj}).

    With k = 2 it can represent ReLU, leaky ReLU and |x| as special cases; in general it learns
    a convex piecewise-linear activation per unit.

    Attributes:
      features: number of output units F.
      num_pieces: number of linear pieces k per unit.
      kernel_init: initializer of the ``[D, F*k]`` kernel.
      param_dtype: dtype of kernel and bias.

    Example:
      >>> layer = Maxout(features=4, num_pieces=3)
      >>> variables = layer.init(jax.random.key(0), jnp.ones((2, 5)))
      >>> layer.apply(variables, jnp.ones((2, 5))).shape
      (2, 4)
    """

    features: int
    num_pieces: int = 2
    kernel_init: nn.initializers.Initializer = nn.initializers.lecun_normal()
    param_dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x_BxD: jax.Array) -> jax.Array:
        check_positive_int(self.num_pieces, "num_pieces")
        z_BxFK = nn.Dense(
            self.features * self.num_pieces,
            kernel_init=self.kernel_init,
            param_dtype=self.param_dtype,
        )(x_BxD)
        return maxout(z_BxFK, self.num_pieces)
