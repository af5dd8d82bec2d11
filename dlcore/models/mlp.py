"""Multi-layer perceptron: the first model every task plugs into."""

from collections.abc import Sequence

import flax.linen as nn
import jax

from dlcore.activations import get_activation
from dlcore.initializers import get_initializer


class MLP(nn.Module):
    """A stack of dense layers with optional batch norm and dropout.

    Each hidden layer computes h = dropout(act(bn(W h_prev + b))); the last layer is linear
    (logits or regression outputs). Inputs of rank > 2 are flattened to ``[B, D]``.

    Attributes:
      widths: hidden layer widths, e.g. ``(128, 128)``.
      out_features: width of the output layer (number of classes or targets).
      activation: name in ``dlcore.activations.ACTIVATIONS``.
      dropout: drop probability after each hidden activation (inverted dropout).
      batch_norm: insert batch normalization before each hidden activation.
      kernel_init: name in ``dlcore.initializers.INITIALIZERS`` for every dense kernel.
      bias_init: name in ``dlcore.initializers.INITIALIZERS`` for every dense bias.

    Example:
      >>> model = MLP(widths=(32,), out_features=10)
      >>> variables = model.init(jax.random.key(0), jnp.ones((4, 64)), train=False)
      >>> model.apply(variables, jnp.ones((4, 64)), train=False).shape
      (4, 10)
    """

    widths: Sequence[int]
    out_features: int
    activation: str = "relu"
    dropout: float = 0.0
    batch_norm: bool = False
    kernel_init: str = "lecun_normal"
    bias_init: str = "zeros"

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
        act = get_activation(self.activation)
        inits = {
            "kernel_init": get_initializer(self.kernel_init),
            "bias_init": get_initializer(self.bias_init),
        }
        h_BxD = x.reshape(x.shape[0], -1)
        for width in self.widths:
            h_BxD = nn.Dense(width, use_bias=not self.batch_norm, **inits)(h_BxD)
            if self.batch_norm:
                h_BxD = nn.BatchNorm(use_running_average=not train, momentum=0.9)(h_BxD)
            h_BxD = act(h_BxD)
            if self.dropout > 0:
                h_BxD = nn.Dropout(self.dropout, deterministic=not train)(h_BxD)
        return nn.Dense(self.out_features, **inits)(h_BxD)
