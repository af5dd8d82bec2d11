"""VGG (Simonyan & Zisserman, 2015): stages of 3x3 convolutions, each stage closed by a 2x2
max-pool, then dense layers. Two stacked 3x3 convs see a 5x5 window (three see 7x7) with fewer
weights (2 * 9 C^2 < 25 C^2) and an extra non-linearity in between.
"""

from collections.abc import Sequence
from typing import Annotated, Literal

import flax.linen as nn
import jax
from pydantic import Field, PositiveInt

from dlcore.config.section import Section
from dlcore.data.dataset import DataSpec
from dlcore.data.needs import Need
from dlcore.layers.dropout import Dropout
from dlcore.layers.norm import BatchNorm
from dlcore.layers.pooling import max_pool
from dlcore.models.conv_blocks import (
    HE_NORMAL,
    IMAGES,
    Shrink,
    check_feature_sizes,
    conv,
    data_image_size,
    images,
)


class VGGStage(nn.Module):
    """n x [3x3 conv ('same'), (batch norm), ReLU], then a 2x2 max-pool (stride 2):
    h_k = relu(BN(W_k * h_{k-1})) (or relu(W_k * h_{k-1} + b_k)), y = maxpool_2x2(h_n).

    Example:
      >>> import jax.numpy as jnp
      >>> stage = VGGStage(widths=(4, 4))
      >>> variables = stage.init(jax.random.key(0), jnp.ones((1, 8, 8, 3)), train=False)
      >>> stage.apply(variables, jnp.ones((1, 8, 8, 3)), train=False).shape
      (1, 4, 4, 4)
    """

    widths: Sequence[int]
    batch_norm: bool = False

    @nn.compact
    def __call__(self, h_BxHxWxC: jax.Array, *, train: bool) -> jax.Array:
        for k, width in enumerate(self.widths, start=1):
            h_BxHxWxC = conv(width, 3, f"conv{k}", bias=not self.batch_norm)(h_BxHxWxC)
            if self.batch_norm:
                h_BxHxWxC = BatchNorm(name=f"bn{k}")(h_BxHxWxC, train=train)
            h_BxHxWxC = nn.relu(h_BxHxWxC)
        return max_pool(h_BxHxWxC, 2, 2, name=f"{self.name}/pool")


class VGG(nn.Module):
    """Stages ``stage1..`` (see :class:`VGGStage`), flatten, dense ReLU layers ``dense1..``
    with dropout, and a linear ``head``.

    Attributes:
      out_features: classes K.
      stages: conv widths per stage, e.g. ``((16, 16), (32, 32), (64,))``.
      dense: widths of the hidden dense layers.
      batch_norm: batch norm after every conv (the conv then has no bias).
      dropout: drop probability after each hidden dense layer.

    Example:
      >>> import jax.numpy as jnp
      >>> model = VGG(out_features=3, stages=((4,), (8,)), dense=(16,))
      >>> variables = model.init(jax.random.key(0), jnp.ones((2, 8, 8, 1)), train=False)
      >>> model.apply(variables, jnp.ones((2, 8, 8, 1)), train=False).shape
      (2, 3)
    """

    out_features: int
    stages: Sequence[Sequence[int]] = ((16, 16), (32, 32), (64,))
    dense: Sequence[int] = (128,)
    batch_norm: bool = False
    dropout: float = 0.5

    def shrinks(self) -> list[Shrink]:
        return [Shrink(f"stage{i}/pool", 2, 2) for i in range(1, len(self.stages) + 1)]

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
        h = images(x)
        check_feature_sizes("vgg", self.shrinks(), h.shape[1:3], "the input")
        for i, widths in enumerate(self.stages, start=1):
            h = VGGStage(tuple(widths), self.batch_norm, name=f"stage{i}")(h, train=train)
        h_BxD = h.reshape(h.shape[0], -1)
        for k, width in enumerate(self.dense, start=1):
            h_BxD = nn.relu(nn.Dense(width, kernel_init=HE_NORMAL, name=f"dense{k}")(h_BxD))
            if self.dropout > 0:
                h_BxD = Dropout(self.dropout)(h_BxD, train=train)
        return nn.Dense(self.out_features, name="head")(h_BxD)


class VGGConfig(Section):
    """VGG blocks: ``stages = [[16, 16], [32, 32], [64]]`` gives three stages of two, two and
    one 3x3 convs, each followed by a 2x2 max-pool (images must be at least 2^stages pixels)."""

    name: Literal["vgg"] = "vgg"
    stages: list[Annotated[list[PositiveInt], Field(min_length=1)]] = Field(
        default_factory=lambda: [[16, 16], [32, 32], [64]], min_length=1
    )
    dense: list[PositiveInt] = Field(default_factory=lambda: [128])
    batch_norm: bool = False
    dropout: float = Field(0.5, ge=0.0, lt=1.0)

    def needs(self) -> tuple[Need, ...]:
        return (IMAGES,)

    def make(self, out_features: int, data: DataSpec | None = None) -> VGG:
        model = VGG(
            out_features=out_features,
            stages=tuple(tuple(s) for s in self.stages),
            dense=tuple(self.dense),
            batch_norm=self.batch_norm,
            dropout=self.dropout,
        )
        if data is not None:
            size = data_image_size("vgg", data)
            check_feature_sizes("vgg", model.shrinks(), size, data.name)
        return model
