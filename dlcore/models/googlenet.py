"""The Inception module and a mini-GoogLeNet (Szegedy et al., 2015) for small images.

An Inception module runs four branches on the same input and concatenates them on channels,
in this order:

  branch1x1:   1x1 conv                                   -> c1 channels
  branch3x3:   1x1 conv (reduce to c3r) -> 3x3 conv        -> c3
  branch5x5:   1x1 conv (reduce to c5r) -> 5x5 conv        -> c5
               (or two 3x3 convs, the same 5x5 window with fewer weights, as in Inception v2)
  branch_pool: 3x3 max-pool (stride 1, 'same') -> 1x1 conv -> cp

so the output has c1 + c3 + c5 + cp channels and the input's height and width. The 1x1
"reduce" convs keep the 3x3 and 5x5 convs cheap. Every conv is followed by a ReLU (and batch
norm before it, if asked). A module is written as the paper's Table 1 row
``[c1, c3r, c3, c5r, c5, cp]``; the defaults are rows 3a, 3b, 4a, 4b divided by 4.
"""

from collections.abc import Sequence
from typing import Annotated, Literal

import flax.linen as nn
import jax
import jax.numpy as jnp
from pydantic import Field, PositiveInt

from dlcore.checks import check_choice
from dlcore.config.section import Section, one_of
from dlcore.data.dataset import DataSpec
from dlcore.data.needs import Need
from dlcore.layers.dropout import Dropout
from dlcore.layers.norm import BatchNorm
from dlcore.layers.pooling import global_avg_pool, max_pool
from dlcore.models.conv_blocks import (
    IMAGES,
    Shrink,
    check_feature_sizes,
    conv,
    data_image_size,
    images,
)

WIDE_BRANCHES = ("5x5", "two_3x3")
Row = Annotated[list[PositiveInt], Field(min_length=6, max_length=6)]
DEFAULT_STAGES = (
    ((16, 24, 32, 4, 8, 8), (32, 32, 48, 8, 24, 16)),
    ((48, 24, 52, 4, 12, 16), (40, 28, 56, 6, 16, 16)),
)


class ConvChain(nn.Module):
    """Convs in sequence, each followed by (batch norm and) ReLU; ``layers`` holds
    ``(name, features, kernel_size)`` triples, the batch norms are ``<name>_bn``."""

    layers: Sequence[tuple[str, int, int]]
    batch_norm: bool = False

    @nn.compact
    def __call__(self, h_BxHxWxC: jax.Array, *, train: bool) -> jax.Array:
        for name, features, k in self.layers:
            h_BxHxWxC = conv(features, k, name, bias=not self.batch_norm)(h_BxHxWxC)
            if self.batch_norm:
                h_BxHxWxC = BatchNorm(name=f"{name}_bn")(h_BxHxWxC, train=train)
            h_BxHxWxC = nn.relu(h_BxHxWxC)
        return h_BxHxWxC


class Inception(nn.Module):
    """One Inception module (see the module docstring for the branches and their order).

    Attributes:
      row: ``(c1, c3r, c3, c5r, c5, cp)``.
      wide_branch: ``"5x5"`` or ``"two_3x3"``.
      batch_norm: batch norm before every ReLU.

    Example:
      >>> block = Inception((2, 3, 4, 1, 2, 3))
      >>> variables = block.init(jax.random.key(0), jnp.ones((1, 5, 5, 6)), train=False)
      >>> block.apply(variables, jnp.ones((1, 5, 5, 6)), train=False).shape
      (1, 5, 5, 11)
    """

    row: Sequence[int]
    wide_branch: str = "5x5"
    batch_norm: bool = False

    def __post_init__(self):
        check_choice(self.wide_branch, WIDE_BRANCHES, "inception wide branch")
        if len(self.row) != 6:
            raise ValueError(
                f"an inception row is [c1, c3r, c3, c5r, c5, cp]; got {list(self.row)}"
            )
        super().__post_init__()

    @nn.compact
    def __call__(self, x_BxHxWxC: jax.Array, *, train: bool) -> jax.Array:
        c1, c3r, c3, c5r, c5, cp = self.row
        if self.wide_branch == "5x5":
            wide = (("reduce", c5r, 1), ("conv", c5, 5))
        else:
            wide = (("reduce", c5r, 1), ("conv_a", c5, 3), ("conv_b", c5, 3))
        chain = lambda layers, name: ConvChain(layers, self.batch_norm, name=name)  # noqa: E731
        branches = [  # each [B, H, W, c_i]
            chain((("conv", c1, 1),), "branch1x1")(x_BxHxWxC, train=train),
            chain((("reduce", c3r, 1), ("conv", c3, 3)), "branch3x3")(x_BxHxWxC, train=train),
            chain(wide, "branch5x5")(x_BxHxWxC, train=train),
            chain((("proj", cp, 1),), "branch_pool")(
                max_pool(x_BxHxWxC, 3, 1, padding=1, name="branch_pool"), train=train
            ),
        ]
        return jnp.concatenate(branches, axis=-1)  # [B, H, W, c1 + c3 + c5 + cp]


class GoogLeNet(nn.Module):
    """Mini-GoogLeNet: ``stem`` (3x3 conv, ReLU, and with ``stem_pool`` a 3x3 stride-2
    max-pool, ``pool0``, as GoogLeNet's stem shrinks its input before the first Inception
    module), stages ``stage1..`` of Inception modules ``inception0..`` with a 3x3 stride-2
    max-pool (``pool1..``) between stages, global average pooling, dropout and a dense ``head``
    (no auxiliary classifiers).

    Attributes:
      out_features: classes K.
      stages: Inception rows per stage.
      stem_width: channels of the stem conv.
      stem_pool: halve the map after the stem conv.
      wide_branch: ``"5x5"`` or ``"two_3x3"``.
      batch_norm: batch norm before every ReLU.
      dropout: drop probability before the head (GoogLeNet: 0.4).

    Example:
      >>> model = GoogLeNet(3, stages=(((2, 2, 2, 1, 2, 2),), ((2, 2, 2, 1, 2, 2),)), stem_width=4)
      >>> variables = model.init(jax.random.key(0), jnp.ones((2, 8, 8, 3)), train=False)
      >>> model.apply(variables, jnp.ones((2, 8, 8, 3)), train=False).shape
      (2, 3)
    """

    out_features: int
    stages: Sequence[Sequence[Sequence[int]]] = DEFAULT_STAGES
    stem_width: int = 32
    stem_pool: bool = True
    wide_branch: str = "5x5"
    batch_norm: bool = False
    dropout: float = 0.4

    def shrinks(self) -> list[Shrink]:
        first = 0 if self.stem_pool else 1
        return [Shrink(f"pool{i}", 3, 2, 1) for i in range(first, len(self.stages))]

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
        h = images(x)
        check_feature_sizes("googlenet", self.shrinks(), h.shape[1:3], "the input")
        h = ConvChain((("conv", self.stem_width, 3),), self.batch_norm, name="stem")(h, train=train)
        for i, rows in enumerate(self.stages, start=1):
            if i > 1 or self.stem_pool:
                h = max_pool(h, 3, 2, padding=1, name=f"pool{i - 1}")
            h = InceptionStage(rows, self.wide_branch, self.batch_norm, name=f"stage{i}")(
                h, train=train
            )
        h_BxC = global_avg_pool(h)  # [B, C]
        h_BxC = Dropout(self.dropout)(h_BxC, train=train)
        return nn.Dense(self.out_features, name="head")(h_BxC)


class InceptionStage(nn.Module):
    """Inception modules ``inception0..`` in sequence, one per row."""

    rows: Sequence[Sequence[int]]
    wide_branch: str = "5x5"
    batch_norm: bool = False

    @nn.compact
    def __call__(self, h_BxHxWxC: jax.Array, *, train: bool) -> jax.Array:
        for j, row in enumerate(self.rows):
            block = Inception(tuple(row), self.wide_branch, self.batch_norm, name=f"inception{j}")
            h_BxHxWxC = block(h_BxHxWxC, train=train)
        return h_BxHxWxC


class GoogLeNetConfig(Section):
    """Mini-GoogLeNet: ``stages`` lists Inception rows ``[c1, c3r, c3, c5r, c5, cp]`` per
    stage; a 3x3 stride-2 max-pool sits between stages."""

    name: Literal["googlenet"] = "googlenet"
    stages: list[Annotated[list[Row], Field(min_length=1)]] = Field(
        default_factory=lambda: [[list(r) for r in s] for s in DEFAULT_STAGES], min_length=1
    )
    stem_width: PositiveInt = 32
    stem_pool: bool = Field(True, description="3x3 stride-2 max-pool after the stem conv")
    wide_branch: one_of(WIDE_BRANCHES, "inception wide branch") = Field(
        "5x5", description="'5x5' conv or 'two_3x3' convs in the third branch"
    )
    batch_norm: bool = False
    dropout: float = Field(0.4, ge=0.0, lt=1.0)

    def needs(self) -> tuple[Need, ...]:
        return (IMAGES,)

    def make(self, out_features: int, data: DataSpec | None = None) -> GoogLeNet:
        model = GoogLeNet(
            out_features=out_features,
            stages=tuple(tuple(tuple(r) for r in s) for s in self.stages),
            **self.model_dump(exclude={"name", "stages"}),
        )
        if data is not None:
            size = data_image_size("googlenet", data)
            check_feature_sizes("googlenet", model.shrinks(), size, data.name)
        return model
