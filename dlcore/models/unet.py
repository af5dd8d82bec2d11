"""U-Net (Ronneberger et al., 2015) for per-pixel classification of small images.

With ``widths = [w1, ..., wD]`` (D levels):

    encoder level d:  e_d = block_d(pool(e_{d-1}))  (no pool at level 1)   [H/2^(d-1), ., w_d]
    bottom:           the deepest encoder block e_D
    decoder level d:  u = ConvT_2x2,stride2(h)  -> [H/2^(d-1), ., w_d]       (upsampling)
                      h = block(concat[e_d, u])                                    (skip connection)
    head:             1x1 conv -> logits [H, W, K]

``block`` is two 3x3 'same' convolutions, each followed by batch norm (optional) and ReLU;
``pool`` is 2x2 max-pooling. The skip connections carry the encoder's full-resolution
features past the bottleneck, which is what lets the decoder draw sharp boundaries.
"""

from typing import Literal

import flax.linen as nn
import jax
import jax.numpy as jnp
from pydantic import Field, PositiveInt

from dlcore.config.section import Section
from dlcore.data.dataset import DataSpec
from dlcore.layers.conv_transpose import ConvTranspose2D
from dlcore.layers.pooling import max_pool
from dlcore.models.conv_blocks import IMAGES, ConvBN, conv, data_image_size, images


def check_unet_size(size_HxW, depth: int, where: str) -> None:
    """Each of the ``depth - 1`` poolings halves the map exactly, or the skips would not align.

    Raises:
      ValueError: naming the sizes and the divisor needed.
    """
    divisor = 2 ** (depth - 1)
    if any(s % divisor for s in size_HxW):
        h, w = size_HxW
        raise ValueError(
            f"unet with {depth} levels halves the map {depth - 1} times, so the image side "
            f"must be a multiple of {divisor}; {where} has {h}x{w} (change widths or image_size)"
        )


class UNetBlock(nn.Module):
    """Two 3x3 convolutions, each with optional batch norm and a ReLU."""

    features: int
    norm: bool = True

    @nn.compact
    def __call__(self, x_BxHxWxC: jax.Array, *, train: bool) -> jax.Array:
        h = x_BxHxWxC
        for i in (1, 2):
            h = nn.relu(ConvBN(self.features, 3, norm=self.norm, name=f"conv{i}")(h, train=train))
        return h


class UNet(nn.Module):
    """U-Net mapping images ``[B, H, W, C]`` to per-pixel logits ``[B, H, W, K]``.

    Parameters: ``down{d}`` (encoder blocks), ``up{d}`` (transposed convolutions),
    ``dec{d}`` (decoder blocks), ``head`` (1x1 convolution).

    Example:
      >>> model = UNet(out_features=3, widths=(4, 8))
      >>> variables = model.init(jax.random.key(0), jnp.ones((2, 8, 8, 3)), train=False)
      >>> model.apply(variables, jnp.ones((2, 8, 8, 3)), train=False).shape
      (2, 8, 8, 3)
    """

    out_features: int
    widths: tuple[int, ...] = (16, 32, 64)
    batch_norm: bool = True

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
        x_BxHxWxC = images(x)
        check_unet_size(x_BxHxWxC.shape[1:3], len(self.widths), "the input")
        skips = []
        h = x_BxHxWxC
        for d, width in enumerate(self.widths, start=1):
            if d > 1:
                h = max_pool(h, 2)
            h = UNetBlock(width, self.batch_norm, name=f"down{d}")(h, train=train)
            skips.append(h)
        for d in range(len(self.widths) - 1, 0, -1):  # from the bottom up to level 1
            width = self.widths[d - 1]
            up = ConvTranspose2D(width, 2, stride=2, name=f"up{d}")(h)  # [B, 2h, 2w, width]
            h = jnp.concatenate([skips[d - 1], up], axis=-1)
            h = UNetBlock(width, self.batch_norm, name=f"dec{d}")(h, train=train)
        return conv(self.out_features, 1, "head")(h)  # [B, H, W, K]


class UNetConfig(Section):
    """U-Net for segmentation: ``widths`` per level (depth = their number)."""

    name: Literal["unet"] = "unet"
    widths: list[PositiveInt] = Field(default_factory=lambda: [16, 32, 64], min_length=1)
    batch_norm: bool = True

    def needs(self):
        return (IMAGES,)

    def make(self, out_features: int, data: DataSpec | None = None) -> UNet:
        if data is not None:
            check_unet_size(data_image_size("unet", data), len(self.widths), data.name)
        return UNet(out_features, tuple(self.widths), self.batch_norm)
