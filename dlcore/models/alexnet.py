"""An AlexNet-style net (Krizhevsky, Sutskever & Hinton, 2012) scaled down for 32x32 images.

The ingredients the paper credits, kept: ReLU units, local response normalization after the
first two convs, *overlapping* max-pooling (3x3 windows, stride 2) and dropout in the dense
layers. The 224x224 stem (11x11, stride 4) becomes a 5x5 stride-1 conv, and the widths
(96, 256, 384, 384, 256; 4096, 4096) are configurable:

  conv1 5x5 -> ReLU -> LRN -> pool 3/2 -> conv2 5x5 -> ReLU -> LRN -> pool 3/2
  -> conv3 3x3 -> ReLU -> conv4 3x3 -> ReLU -> conv5 3x3 -> ReLU -> pool 3/2
  -> flatten -> [dense, ReLU, dropout] x 2 -> head

On 32x32 inputs the maps are 32 -> 15 -> 7 -> 3; the smallest input is 15x15.
"""

from collections.abc import Sequence
from typing import Literal

import flax.linen as nn
import jax
from pydantic import Field, PositiveInt

from dlcore.config.section import Section
from dlcore.data.dataset import DataSpec
from dlcore.data.needs import Need
from dlcore.layers.dropout import Dropout
from dlcore.layers.norm import LocalResponseNorm, LRNSection, local_response_norm
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

KERNELS = (5, 5, 3, 3, 3)  # conv1..conv5
POOL_AFTER = (1, 2, 5)  # overlapping 3x3 / stride-2 max-pool after these convs
LRN_AFTER = (1, 2)


class AlexNet(nn.Module):
    """AlexNet-style classifier; parameters ``conv1..conv5``, ``dense1``, ``dense2``, ``head``.

    LRN (when ``lrn``) is b_c = a_c / (k + alpha sum_{|j - c| <= 2} a_j^2)^beta with AlexNet's
    k = 2, alpha = 1e-4, beta = 0.75 (:func:`dlcore.layers.norm.local_response_norm`).

    Attributes:
      out_features: classes K.
      widths: channels of conv1..conv5.
      dense: widths of the two hidden dense layers (any number is accepted).
      dropout: drop probability after each hidden dense layer (AlexNet: 0.5).
      lrn: local response normalization after conv1 and conv2 (True: AlexNet's constants),
        or a configured :class:`LocalResponseNorm`.

    Example:
      >>> import jax.numpy as jnp
      >>> model = AlexNet(out_features=3, widths=(4, 4, 4, 4, 4), dense=(8, 8))
      >>> variables = model.init(jax.random.key(0), jnp.ones((2, 16, 16, 3)), train=False)
      >>> model.apply(variables, jnp.ones((2, 16, 16, 3)), train=False).shape
      (2, 3)
    """

    out_features: int
    widths: Sequence[int] = (32, 64, 96, 96, 64)
    dense: Sequence[int] = (256, 256)
    dropout: float = 0.5
    lrn: bool | LocalResponseNorm = True

    def __post_init__(self):
        if len(self.widths) != len(KERNELS):
            raise ValueError(
                f"alexnet has {len(KERNELS)} convs; got widths {list(self.widths)} "
                f"(give {len(KERNELS)} widths)"
            )
        super().__post_init__()

    @staticmethod
    def shrinks() -> list[Shrink]:
        return [Shrink(f"pool{i}", 3, 2) for i in range(1, len(POOL_AFTER) + 1)]

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
        h = images(x)
        check_feature_sizes("alexnet", self.shrinks(), h.shape[1:3], "the input")
        for i, (width, k) in enumerate(zip(self.widths, KERNELS, strict=True), start=1):
            h = nn.relu(conv(width, k, f"conv{i}")(h))
            if self.lrn and i in LRN_AFTER:  # True: AlexNet's constants; else a configured layer
                h = self.lrn(h) if isinstance(self.lrn, nn.Module) else local_response_norm(h)
            if i in POOL_AFTER:  # overlapping: windows 3 wide, 2 apart
                h = max_pool(h, 3, 2, name=f"pool{POOL_AFTER.index(i) + 1}")
        h_BxD = h.reshape(h.shape[0], -1)
        for k, width in enumerate(self.dense, start=1):
            h_BxD = nn.relu(nn.Dense(width, kernel_init=HE_NORMAL, name=f"dense{k}")(h_BxD))
            h_BxD = Dropout(self.dropout)(h_BxD, train=train)
        return nn.Dense(self.out_features, name="head")(h_BxD)


class AlexNetConfig(Section):
    """AlexNet-style net for images of at least 15x15 (32x32 by design)."""

    name: Literal["alexnet"] = "alexnet"
    widths: list[PositiveInt] = Field(
        default_factory=lambda: [32, 64, 96, 96, 64],
        min_length=len(KERNELS),
        max_length=len(KERNELS),
        description="channels of conv1..conv5",
    )
    dense: list[PositiveInt] = Field(default_factory=lambda: [256, 256])
    dropout: float = Field(0.5, ge=0.0, lt=1.0)
    lrn: LRNSection = Field(
        default_factory=lambda: LRNSection(enabled=True),
        description="local response normalization after conv1 and conv2 (true, false or a table)",
    )

    def needs(self) -> tuple[Need, ...]:
        return (IMAGES,)

    def make(self, out_features: int, data: DataSpec | None = None) -> AlexNet:
        if data is not None:
            size = data_image_size("alexnet", data)
            check_feature_sizes("alexnet", AlexNet.shrinks(), size, data.name)
        return AlexNet(
            out_features=out_features,
            widths=tuple(self.widths),
            dense=tuple(self.dense),
            dropout=self.dropout,
            lrn=self.lrn.make(),
        )
