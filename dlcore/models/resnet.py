"""ResNet (He et al., 2016) for small images, and its *plain* counterpart of the same depth.

CIFAR-style layout (the paper's section 4.2): a 3x3 stem, then stages of residual blocks whose
first block halves the map (stride 2, from the second stage on) and changes the width, global
average pooling and a dense head. Depth counts the weighted layers: with S stages of n blocks,
basic blocks give 2 S n + 2 layers (S = 3: 6n + 2 = 20, 32, 44, 56) and bottleneck blocks
3 S n + 2.

The plain net is the same stack without the shortcuts: the paper's control showing that a
deeper plain net trains *worse* (higher training error), which the shortcuts fix.
"""

from collections.abc import Sequence
from typing import Literal

import flax.linen as nn
import jax
import jax.numpy as jnp
from pydantic import Field, PositiveInt, model_validator

from dlcore.checks import check_choice
from dlcore.config.section import Section, one_of
from dlcore.data.dataset import DataSpec
from dlcore.data.needs import Need
from dlcore.layers.norm import BatchNorm
from dlcore.layers.pooling import global_avg_pool
from dlcore.models.conv_blocks import (
    IMAGES,
    ConvBN,
    Shrink,
    check_feature_sizes,
    conv,
    data_image_size,
    images,
)

BLOCKS = ("basic", "bottleneck")
# "projection": 1x1 conv + BN where the shape changes, identity elsewhere (the paper's B);
# "identity": strided subsampling and zero-padded new channels, no parameters (option A).
SHORTCUTS = ("projection", "identity")
LAYERS_PER_BLOCK = {"basic": 2, "bottleneck": 3}


def zero_pad_shortcut(x_BxHxWxC: jax.Array, stride: int, features: int) -> jax.Array:
    """Option A: ``x[:, ::s, ::s, :]`` with ``features - C`` zero channels appended."""
    y = x_BxHxWxC[:, ::stride, ::stride, :]
    extra = features - y.shape[-1]
    return jnp.pad(y, ((0, 0), (0, 0), (0, 0), (0, extra))) if extra else y


class ResidualBlock(nn.Module):
    """One residual block: y = relu(F(x) + shortcut(x)), or relu(F(x)) when ``plain``.

    basic:      F(x) = BN(W2 * relu(BN(W1 * x)))                 3x3 (stride s), 3x3
    bottleneck: F(x) = BN(W3 * relu(BN(W2 * relu(BN(W1 * x)))))  1x1, 3x3 (stride s), 1x1
                with ``width`` channels inside and ``expansion * width`` out.

    The shortcut is the identity when the shape is kept; otherwise a projection
    BN(W_s * x) (1x1, stride s) or, with ``shortcut = "identity"``, zero padding.

    Example:
      >>> block = ResidualBlock(width=8, stride=2)
      >>> x = jnp.ones((2, 6, 6, 4))
      >>> variables = block.init(jax.random.key(0), x, train=False)
      >>> block.apply(variables, x, train=False).shape, sorted(variables["params"])
      ((2, 3, 3, 8), ['bn1', 'bn2', 'conv1', 'conv2', 'shortcut'])
    """

    width: int
    stride: int = 1
    block: str = "basic"
    expansion: int = 4
    shortcut: str = "projection"
    plain: bool = False

    @property
    def out_features(self) -> int:
        return self.width * (self.expansion if self.block == "bottleneck" else 1)

    @nn.compact
    def __call__(self, x_BxHxWxC: jax.Array, *, train: bool) -> jax.Array:
        if self.block == "basic":
            kernels, widths = (3, 3), (self.width, self.width)
            strides = (self.stride, 1)
        else:  # the stride sits on the 3x3 conv, where it loses least information
            kernels, widths = (1, 3, 1), (self.width, self.width, self.out_features)
            strides = (1, self.stride, 1)
        h = x_BxHxWxC
        for i, (k, f, s) in enumerate(zip(kernels, widths, strides, strict=True), start=1):
            h = conv(f, k, f"conv{i}", s, bias=False)(h)
            h = BatchNorm(name=f"bn{i}")(h, train=train)
            if i < len(kernels):
                h = nn.relu(h)
        if self.plain:
            return nn.relu(h)
        return nn.relu(h + self._shortcut(x_BxHxWxC, train))

    def _shortcut(self, x_BxHxWxC: jax.Array, train: bool) -> jax.Array:
        if self.stride == 1 and x_BxHxWxC.shape[-1] == self.out_features:
            return x_BxHxWxC
        if self.shortcut == "identity":
            return zero_pad_shortcut(x_BxHxWxC, self.stride, self.out_features)
        return ConvBN(self.out_features, 1, self.stride, name="shortcut")(x_BxHxWxC, train=train)


class ResNetStage(nn.Module):
    """``blocks`` copies of ``template`` named ``block0..``; the first one has ``stride``."""

    template: ResidualBlock
    blocks: int
    stride: int = 1

    @nn.compact
    def __call__(self, h_BxHxWxC: jax.Array, *, train: bool) -> jax.Array:
        for j in range(self.blocks):
            stride = self.stride if j == 0 else 1
            h_BxHxWxC = self.template.clone(stride=stride, name=f"block{j}", parent=self)(
                h_BxHxWxC, train=train
            )
        return h_BxHxWxC


class ResNet(nn.Module):
    """Stem (3x3 conv, BN, ReLU), stages ``stage1..stageS`` of blocks ``block0..``, global
    average pooling, dense ``head``. Stage i > 1 starts with a stride-2 block.

    Attributes:
      out_features: classes K.
      widths: block width per stage (a bottleneck block outputs ``expansion`` times it).
      blocks_per_stage: residual blocks per stage.
      block: ``"basic"`` or ``"bottleneck"``.
      shortcut: ``"projection"`` or ``"identity"`` (zero padding) where the shape changes.
      plain: no shortcuts at all (the plain counterpart of the same depth).
      stem_width: channels of the stem conv (default: the first stage's width).
      expansion: bottleneck output channels / width.

    Example:
      >>> model = ResNet(out_features=3, widths=(4, 8), blocks_per_stage=(1, 1), stem_width=4)
      >>> variables = model.init(jax.random.key(0), jnp.ones((2, 8, 8, 3)), train=False)
      >>> model.apply(variables, jnp.ones((2, 8, 8, 3)), train=False).shape
      (2, 3)
    """

    out_features: int
    widths: Sequence[int] = (16, 32, 64)
    blocks_per_stage: Sequence[int] = (3, 3, 3)
    block: str = "basic"
    shortcut: str = "projection"
    plain: bool = False
    stem_width: int | None = None
    expansion: int = 4

    def __post_init__(self):
        check_choice(self.block, BLOCKS, "resnet block")
        check_choice(self.shortcut, SHORTCUTS, "resnet shortcut")
        if len(self.widths) != len(self.blocks_per_stage):
            raise ValueError(
                f"resnet needs one width per stage; got widths {list(self.widths)} and "
                f"blocks_per_stage {list(self.blocks_per_stage)}"
            )
        super().__post_init__()

    def shrinks(self) -> list[Shrink]:
        return [Shrink(f"stage{i}/block0", 3, 2, 1) for i in range(2, len(self.widths) + 1)]

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
        x_BxHxWxC = images(x)
        check_feature_sizes("resnet", self.shrinks(), x_BxHxWxC.shape[1:3], "the input")
        stem_width = self.stem_width or self.widths[0]
        h = nn.relu(ConvBN(stem_width, 3, name="stem")(x_BxHxWxC, train=train))
        for i, (width, n) in enumerate(zip(self.widths, self.blocks_per_stage, strict=True)):
            h = ResNetStage(
                ResidualBlock(
                    width,
                    block=self.block,
                    expansion=self.expansion,
                    shortcut=self.shortcut,
                    plain=self.plain,
                    parent=None,
                ),
                blocks=n,
                stride=2 if i > 0 else 1,
                name=f"stage{i + 1}",
            )(h, train=train)
        h_BxC = global_avg_pool(h)  # [B, C]
        return nn.Dense(self.out_features, name="head")(h_BxC)


_DEFAULT_BLOCKS = 3  # residual blocks per stage when neither blocks_per_stage nor depth is given


class ResNetConfig(Section):
    """ResNet (or with ``plain = true`` the same net without shortcuts) for images.

    Give the depth either per stage (``blocks_per_stage``) or as ``depth`` (the number of
    weighted layers, equal blocks per stage: basic 2 S n + 2, bottleneck 3 S n + 2).
    """

    name: Literal["resnet"] = "resnet"
    block: one_of(BLOCKS, "resnet block") = "basic"
    widths: list[PositiveInt] = Field(default_factory=lambda: [16, 32, 64], min_length=1)
    # None, not [3, 3, 3]: a saved run's config.toml spells every set field out, so a default
    # list would read back as "given" beside depth and the run could not be resumed.
    blocks_per_stage: list[PositiveInt] | None = Field(
        None, min_length=1, description=f"default: {_DEFAULT_BLOCKS} per stage (or depth)"
    )
    depth: PositiveInt | None = Field(None, description="weighted layers, e.g. 20, 32, 56")
    shortcut: one_of(SHORTCUTS, "resnet shortcut") = "projection"
    plain: bool = Field(False, description="no shortcuts: the plain net of the same depth")
    stem_width: PositiveInt | None = Field(None, description="default: widths[0]")
    expansion: PositiveInt = 4

    @model_validator(mode="after")
    def _one_depth(self):
        if self.depth is not None and self.blocks_per_stage is not None:
            raise ValueError("give depth or blocks_per_stage, not both")
        per_block = LAYERS_PER_BLOCK[self.block]
        if self.depth is not None:
            n, rest = divmod(self.depth - 2, per_block * len(self.widths))
            if n < 1 or rest:
                raise ValueError(
                    f"depth {self.depth} is not {per_block} x {len(self.widths)} stages x n "
                    f"blocks + 2 for {self.block} blocks (e.g. "
                    f"{per_block * len(self.widths) + 2} or {2 * per_block * len(self.widths) + 2})"
                )
        elif self.blocks_per_stage is not None and len(self.blocks_per_stage) != len(self.widths):
            raise ValueError(
                f"blocks_per_stage has {len(self.blocks_per_stage)} stages but widths has "
                f"{len(self.widths)}; give one of each per stage"
            )
        return self

    def stage_blocks(self) -> tuple[int, ...]:
        if self.depth is None:
            return tuple(self.blocks_per_stage or [_DEFAULT_BLOCKS] * len(self.widths))
        n = (self.depth - 2) // (LAYERS_PER_BLOCK[self.block] * len(self.widths))
        return (n,) * len(self.widths)

    def needs(self) -> tuple[Need, ...]:
        return (IMAGES,)

    def make(self, out_features: int, data: DataSpec | None = None) -> ResNet:
        fields = self.model_dump(exclude={"name", "widths", "blocks_per_stage", "depth"})
        model = ResNet(
            out_features=out_features,
            widths=tuple(self.widths),
            blocks_per_stage=self.stage_blocks(),
            **fields,
        )
        if data is not None:
            size = data_image_size("resnet", data)
            check_feature_sizes("resnet", model.shrinks(), size, data.name)
        return model
