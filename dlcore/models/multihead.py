"""A shared-trunk multi-head network for multi-task learning (hard parameter sharing)."""

from collections.abc import Mapping, Sequence
from typing import Literal

import flax.linen as nn
import jax
from pydantic import Field, PositiveInt

from dlcore.activations import ACTIVATIONS, get_activation
from dlcore.config.section import Section, one_of
from dlcore.data.dataset import DataSpec
from dlcore.data.needs import Need
from dlcore.initializers import get_initializer
from dlcore.models.mlp import REAL_INPUTS, Initializer


class MultiHeadMLP(nn.Module):
    """One MLP trunk shared by all tasks, one linear head per task.

    h = trunk(x) = act(W_L ... act(W_1 x + b_1) ... + b_L),   y_k = V_k h + c_k  for each task k

    Every task's loss back-propagates into the shared trunk, which is what lets related tasks
    regularize each other; pair it with :class:`dlcore.losses.MultiTaskLoss`.

    Attributes:
      trunk_widths: widths of the shared hidden layers.
      head_features: output width of each task's head, by task name.
      activation: name in ``dlcore.activations.ACTIVATIONS``.
      kernel_init, bias_init: names in ``dlcore.initializers.INITIALIZERS``.

    Example:
      >>> import jax.numpy as jnp
      >>> model = MultiHeadMLP(trunk_widths=(16,), head_features={"digit": 10, "size": 1})
      >>> variables = model.init(jax.random.key(0), jnp.ones((4, 8)), train=False)
      >>> {k: v.shape for k, v in model.apply(variables, jnp.ones((4, 8)), train=False).items()}
      {'digit': (4, 10), 'size': (4, 1)}
    """

    trunk_widths: Sequence[int]
    head_features: Mapping[str, int]
    activation: str = "relu"
    kernel_init: str = "lecun_normal"
    bias_init: str = "zeros"

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool) -> dict[str, jax.Array]:
        del train  # no dropout or batch norm here; the argument keeps the common signature
        if not self.head_features:
            raise ValueError("MultiHeadMLP needs at least one head in head_features; got none")
        act = get_activation(self.activation)
        inits = {
            "kernel_init": get_initializer(self.kernel_init),
            "bias_init": get_initializer(self.bias_init),
        }
        h_BxD = x.reshape(x.shape[0], -1)
        for i, width in enumerate(self.trunk_widths):
            h_BxD = act(nn.Dense(width, name=f"trunk_{i}", **inits)(h_BxD))
        return {
            task: nn.Dense(features, name=f"head_{task}", **inits)(h_BxD)
            for task, features in sorted(self.head_features.items())
        }


class MultiHeadMLPConfig(Section):
    """A shared MLP trunk and one linear head per target (multi-task learning)."""

    name: Literal["multihead_mlp"] = "multihead_mlp"
    trunk_widths: list[PositiveInt] = Field(default_factory=lambda: [128])
    activation: one_of(ACTIVATIONS, "activation") = "relu"
    kernel_init: Initializer = "lecun_normal"
    bias_init: Initializer = "zeros"

    def needs(self) -> tuple[Need, ...]:
        return REAL_INPUTS

    def make(self, out_features, data: DataSpec | None = None) -> MultiHeadMLP:
        if not isinstance(out_features, dict) or not out_features:
            raise ValueError("multihead_mlp needs a multi-target data set and the multitask task")
        fields = self.model_dump(exclude={"name", "trunk_widths"})
        return MultiHeadMLP(
            trunk_widths=tuple(self.trunk_widths), head_features=out_features, **fields
        )
