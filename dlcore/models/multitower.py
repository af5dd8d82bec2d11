"""Per-task towers of one shape for multi-task learning by soft parameter sharing.

Hard sharing (:class:`dlcore.models.MultiHeadMLP`) gives every task the same trunk. Soft
sharing gives every task its own network and lets a penalty on the distance between the
corresponding layers of the towers pull them together (Duong et al., 2015):

    R(theta) = sum_{a < b} sum_{l in L} ||theta_l^a - theta_l^b||^2,

added to the loss as lambda R. lambda = 0 leaves the towers independent; as lambda grows the
towers' shared layers are forced to agree and the model approaches a shared trunk.
"""

from collections.abc import Mapping, Sequence
from typing import Literal

import flax.linen as nn
import jax
import jax.numpy as jnp
from pydantic import Field, PositiveInt

from dlcore.activations import ACTIVATIONS
from dlcore.config.section import Section, one_of
from dlcore.data.dataset import DataSpec
from dlcore.data.needs import Need
from dlcore.models.mlp import MLP, REAL_INPUTS, Initializer


def tower_name(task: str) -> str:
    """The parameter-tree key of ``task``'s tower."""
    return f"tower_{task}"


def hidden_layer_name(index: int) -> str:
    """The key of a tower's hidden layer ``index`` (each tower is a :class:`MLP`, whose
    Dense layers Flax numbers in order; the last one is the task's head)."""
    return f"Dense_{index}"


def tower_distance(params: Mapping, tasks: Sequence[str], layers: Sequence[int]) -> jax.Array:
    """Squared L2 distance between the corresponding layers of every pair of towers.

    R = sum_{a < b} sum_{l in layers} (||W_l^a - W_l^b||_F^2 + ||b_l^a - b_l^b||^2)

    Kernels and biases both count, since a shared trunk shares both.

    Args:
      params: the parameters of a :class:`MultiTowerMLP` (``{"tower_<task>": ...}``).
      tasks: the task names whose towers are compared (at least two for a non-zero R).
      layers: indices of the hidden layers that are shared softly.

    Returns:
      The scalar R.

    Example:
      >>> one = {"Dense_0": {"kernel": jnp.ones((2, 2)), "bias": jnp.zeros(2)}}
      >>> two = {"Dense_0": {"kernel": jnp.zeros((2, 2)), "bias": jnp.zeros(2)}}
      >>> tower_distance({"tower_a": one, "tower_b": two}, ["a", "b"], [0])
      Array(4., dtype=float32)
    """
    total = jnp.zeros(())
    for i, a in enumerate(tasks):
        for b in tasks[i + 1 :]:
            for layer in layers:
                key = hidden_layer_name(layer)
                diffs = jax.tree.map(
                    lambda p, q: jnp.sum(jnp.square(p - q)),
                    params[tower_name(a)][key],
                    params[tower_name(b)][key],
                )
                total = total + sum(jax.tree.leaves(diffs))
    return total


class MultiTowerMLP(nn.Module):
    """One MLP tower per task, all with the same hidden widths; each ends in its task's head.

    y_k = tower_k(x) = V_k act(W_L^k ... act(W_1^k x + b_1^k) ... + b_L^k) + c_k

    No parameter is shared: the towers are coupled only by a penalty on their distance
    (:func:`tower_distance`; the ``multitask`` task's ``sharing_strength``). Each tower is a
    :class:`dlcore.models.MLP`, so a tower's parameters are exactly those of a single-task
    ``mlp`` model.

    Attributes:
      tower_widths: widths of every tower's hidden layers.
      head_features: output width of each task's head, by task name.
      activation: name in ``dlcore.activations.ACTIVATIONS``.
      kernel_init, bias_init: names in ``dlcore.initializers.INITIALIZERS``.

    Example:
      >>> model = MultiTowerMLP(tower_widths=(16,), head_features={"digit": 10, "size": 1})
      >>> variables = model.init(jax.random.key(0), jnp.ones((4, 8)), train=False)
      >>> sorted(variables["params"])
      ['tower_digit', 'tower_size']
      >>> {k: v.shape for k, v in model.apply(variables, jnp.ones((4, 8)), train=False).items()}
      {'digit': (4, 10), 'size': (4, 1)}
    """

    tower_widths: Sequence[int]
    head_features: Mapping[str, int]
    activation: str = "relu"
    kernel_init: str = "lecun_normal"
    bias_init: str = "zeros"

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool) -> dict[str, jax.Array]:
        if not self.head_features:
            raise ValueError("MultiTowerMLP needs at least one head in head_features; got none")
        return {
            task: MLP(
                widths=tuple(self.tower_widths),
                out_features=features,
                activation=self.activation,
                kernel_init=self.kernel_init,
                bias_init=self.bias_init,
                name=tower_name(task),
            )(x, train=train)
            for task, features in sorted(self.head_features.items())
        }


class MultiTowerMLPConfig(Section):
    """One MLP tower per target, all of one shape (multi-task learning by soft sharing with
    the multitask task's ``sharing_strength``)."""

    name: Literal["multitower_mlp"] = "multitower_mlp"
    tower_widths: list[PositiveInt] = Field(
        default_factory=lambda: [128], description="hidden widths of every task's tower"
    )
    activation: one_of(ACTIVATIONS, "activation") = "relu"
    kernel_init: Initializer = "lecun_normal"
    bias_init: Initializer = "zeros"

    def needs(self) -> tuple[Need, ...]:
        return REAL_INPUTS

    def make(self, out_features, data: DataSpec | None = None) -> MultiTowerMLP:
        if not isinstance(out_features, dict) or not out_features:
            raise ValueError("multitower_mlp needs a multi-target data set and the multitask task")
        fields = self.model_dump(exclude={"name", "tower_widths"})
        return MultiTowerMLP(
            tower_widths=tuple(self.tower_widths), head_features=out_features, **fields
        )
