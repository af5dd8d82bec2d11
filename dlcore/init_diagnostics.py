"""Initialization diagnostics: activation statistics layer by layer through a deep net.

A good initializer keeps the spread of activations roughly constant with depth; a bad one
makes it vanish (too small: signals and gradients die) or explode. A constant initializer
makes every unit of a layer compute the same thing, a symmetry gradient descent never breaks.
The report shows all three: per layer the mean and std of the activations, and the spread
*across units* (0 when all units are identical).
"""

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from dlcore.activations import get_activation
from dlcore.checks import check_positive_int
from dlcore.initializers import get_initializer


@dataclasses.dataclass(frozen=True)
class LayerStats:
    """Statistics of one hidden layer's activations h ``[N, H]``.

    Attributes:
      mean: mean over all entries.
      std: standard deviation over all entries.
      unit_spread: mean over examples of the std across the H units (0: all units identical).
    """

    mean: float
    std: float
    unit_spread: float


@dataclasses.dataclass(frozen=True)
class ActivationReport:
    """Per-layer activation statistics, first hidden layer first; ``print`` it for a table."""

    layers: tuple[LayerStats, ...]

    @property
    def stds(self) -> np.ndarray:
        return np.array([s.std for s in self.layers])

    def __str__(self) -> str:
        lines = [f"{'layer':>5}  {'mean':>10}  {'std':>10}  {'unit spread':>11}"]
        for i, s in enumerate(self.layers, start=1):
            lines.append(f"{i:>5}  {s.mean:10.3e}  {s.std:10.3e}  {s.unit_spread:11.3e}")
        return "\n".join(lines)


def _stats(h_NxH: jax.Array) -> LayerStats:
    return LayerStats(
        mean=float(jnp.mean(h_NxH)),
        std=float(jnp.std(h_NxH)),
        unit_spread=float(jnp.mean(jnp.std(h_NxH, axis=-1))),
    )


def deep_net_activation_stats(
    key: jax.Array,
    kernel_init: str,
    *,
    activation: str = "relu",
    bias_init: str = "zeros",
    depth: int = 20,
    width: int = 256,
    num_examples: int = 256,
) -> ActivationReport:
    """Feeds N(0, 1) inputs through ``depth`` freshly initialized dense layers.

    h_0 = x,  h_l = act(h_{l-1} W_l + b_l),  W_l ~ kernel_init, b_l ~ bias_init,

    and reports the statistics of h_1 ... h_depth.

    Args:
      key: PRNG key for inputs and weights.
      kernel_init, bias_init: names in ``dlcore.initializers.INITIALIZERS``.
      activation: name in ``dlcore.activations.ACTIVATIONS``.
      depth: number of hidden layers.
      width: units per layer (also the input width).
      num_examples: rows of the input batch.

    Example:
      >>> report = deep_net_activation_stats(jax.random.key(0), "he_normal", depth=3)
      >>> len(report.layers)
      3
    """
    for value, name in ((depth, "depth"), (width, "width"), (num_examples, "num_examples")):
        check_positive_int(value, name)
    act = get_activation(activation)
    w_init, b_init = get_initializer(kernel_init), get_initializer(bias_init)
    key_x, *layer_keys = jax.random.split(key, depth + 1)
    h_NxH = jax.random.normal(key_x, (num_examples, width))
    stats = []
    for layer_key in layer_keys:
        key_w, key_b = jax.random.split(layer_key)
        h_NxH = act(h_NxH @ w_init(key_w, (width, width)) + b_init(key_b, (width,))[None])
        stats.append(_stats(h_NxH))
    return ActivationReport(tuple(stats))


def mlp_activation_stats(model: nn.Module, variables, x: jax.Array) -> ActivationReport:
    """Hidden-layer activation statistics of a :class:`dlcore.models.MLP` on inputs ``x``.

    Runs the model in eval mode, captures each hidden layer's pre-activation (the batch-norm
    output when the MLP uses batch norm, else the dense output) and applies the activation.

    Example:
      >>> from dlcore.models import MLP
      >>> model = MLP(widths=(8, 8), out_features=2, kernel_init="he_normal")
      >>> variables = model.init(jax.random.key(0), jnp.ones((4, 3)), train=False)
      >>> len(mlp_activation_stats(model, variables, jnp.ones((4, 3))).layers)
      2
    """
    _, state = model.apply(
        variables, x, train=False, capture_intermediates=True, mutable=["intermediates"]
    )
    captured = state["intermediates"]
    source = "BatchNorm" if model.norm == "batch" else "Dense"
    act = get_activation(model.activation)
    return ActivationReport(
        tuple(
            _stats(act(captured[f"{source}_{i}"]["__call__"][0])) for i in range(len(model.widths))
        )
    )
