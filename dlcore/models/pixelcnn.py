"""PixelCNN (van den Oord et al., 2016): an autoregressive image model whose masked
convolutions give, in one pass, a logit per pixel that depends only on earlier pixels in
raster order, so that

    log p(x) = sum_{t = 1..H W} log p(x_t | x_<t),    p(x_t = 1 | x_<t) = sigmoid(l_t(x_<t))

for binary images (one Bernoulli logit per pixel and channel). The network, with
``features = F``, on images ``[B, H, W, C]`` in {0, 1}:

    h_0 = MaskedConv_A,k0(2 x - 1)                                   [B, H, W, F]
    h_n = h_(n-1) + Conv_1x1(g(MaskedConv_B,k(h_(n-1))))             n = 1..blocks
    l   = Conv_1x1(ReLU(Conv_1x1(ReLU(h_N))))                        [B, H, W, C] logits

with g(u) = ReLU(u) on F channels (``gated = false``; the conv sees ReLU(h)), or the gated
unit g(u) = tanh(u_a) * sigmoid(u_b) on u = [u_a, u_b] of 2F channels (``gated = true``).
Pixels are fed as 2x - 1 in {-1, 1} so that the zero padding of the first layer stands for
"outside the image", not for a blank pixel. The 1x1 convolutions read only their own pixel,
whose features already summarize earlier pixels, so they keep the causality of the masks.
The last 1x1 kernel starts at zero, so training starts from p = 1/2 at every pixel.

Blind spot. A k x k type-B mask reaches the row above up to k // 2 columns to the right and
nothing to the right in the current row, so after the stack the logit at (i, j) sees row
i - d only up to column j + k0 // 2 + (d - 1) (k // 2), for 1 <= d <= blocks + 1. Earlier
pixels further right, e.g. (i - 1, j + k0 // 2 + 1), are never seen however deep the stack:
the wedge above-right is the plain PixelCNN's blind spot (tests/test_pixelcnn.py measures
it). The gated PixelCNN of van den Oord et al. (2016b) removes it with separate vertical
and horizontal stacks; that variant is not built here.
"""

from typing import Literal

import flax.linen as nn
import jax
import jax.numpy as jnp
from pydantic import Field, PositiveInt, field_validator

from dlcore.checks import check_rank
from dlcore.config.section import Section
from dlcore.data.dataset import DataSpec
from dlcore.data.needs import Need
from dlcore.layers.conv import Conv2D
from dlcore.layers.masked_conv import MaskedConv2D

IMAGE_INPUT = Need("x", ("features",), "images [H, W, C] (digits: layout = 'image')", (3,))


class PixelCNNBlock(nn.Module):
    """One residual block: ``h + Conv_1x1(g(MaskedConv_B(h)))`` (module docstring).

    Attributes:
      features: F, channels in and out.
      kernel_size: side of the type-B masked convolution (odd).
      gated: the gated unit tanh * sigmoid on 2F channels instead of a ReLU on F.
      impl: the convolution lowering.
    """

    features: int
    kernel_size: int = 3
    gated: bool = False
    impl: str = "auto"

    @nn.compact
    def __call__(self, h_BxHxWxF: jax.Array) -> jax.Array:
        f = self.features
        if self.gated:
            u = MaskedConv2D(2 * f, self.kernel_size, "B", impl=self.impl, name="masked")(
                h_BxHxWxF
            )  # [B, H, W, 2F]
            r = jnp.tanh(u[..., :f]) * jax.nn.sigmoid(u[..., f:])  # [B, H, W, F]
        else:
            u = MaskedConv2D(f, self.kernel_size, "B", impl=self.impl, name="masked")(
                nn.relu(h_BxHxWxF)
            )
            r = nn.relu(u)  # [B, H, W, F]
        return h_BxHxWxF + Conv2D(f, 1, impl=self.impl, name="proj")(r)


class PixelCNN(nn.Module):
    """Binary images ``[B, H, W, C]`` -> Bernoulli logits ``[B, H, W, out_channels]`` whose
    value at (i, j) depends on pixels before (i, j) only (module docstring).

    Parameters: ``conv_a`` (type A), ``block1`` ... ``block{n}`` (each ``masked``, ``proj``),
    ``out1``, ``out2`` (1x1 convolutions).

    Attributes:
      out_channels: logits per pixel (the images' C).
      features: F, channels of the residual stream.
      blocks: residual blocks of type-B convolutions.
      first_kernel: side of the type-A convolution (odd).
      kernel_size: side of the blocks' type-B convolutions (odd).
      gated: gated units tanh * sigmoid in the blocks.
      head_width: channels of the hidden 1x1 output convolution.
      impl: the convolution lowering (``'auto'``, ``'gemm'``, ``'xla'``).

    Example:
      >>> net = PixelCNN(1, features=8, blocks=2)
      >>> variables = net.init(jax.random.key(0), jnp.zeros((2, 8, 8, 1)), train=False)
      >>> net.apply(variables, jnp.zeros((2, 8, 8, 1)), train=False).shape
      (2, 8, 8, 1)
    """

    out_channels: int = 1
    features: int = 32
    blocks: int = 4
    first_kernel: int = 7
    kernel_size: int = 3
    gated: bool = False
    head_width: int = 32
    impl: str = "auto"

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool = False) -> jax.Array:
        del train  # no dropout or batch norm: the same function in training and evaluation
        check_rank(x, 4, "PixelCNN input", "[B, H, W, C] images in {0, 1}")
        h = MaskedConv2D(self.features, self.first_kernel, "A", impl=self.impl, name="conv_a")(
            2.0 * x - 1.0
        )  # [B, H, W, F]
        for n in range(1, self.blocks + 1):
            h = PixelCNNBlock(
                self.features, self.kernel_size, self.gated, self.impl, name=f"block{n}"
            )(h)
        h = Conv2D(self.head_width, 1, impl=self.impl, name="out1")(nn.relu(h))
        # A zero kernel starts every logit at its bias 0: p = 1/2, exactly 1 bit per pixel,
        # instead of the large random logits of a deep unnormalized stack.
        out = Conv2D(
            self.out_channels, 1, impl=self.impl, kernel_init=nn.initializers.zeros, name="out2"
        )
        return out(nn.relu(h))


def _odd(value: int) -> int:
    if value % 2 == 0:
        raise ValueError(f"must be odd (the centre tap is the output pixel); got {value}")
    return value


class PixelCNNConfig(Section):
    """PixelCNN: a type-A ``first_kernel`` convolution, ``blocks`` residual blocks of type-B
    ``kernel_size`` convolutions (``gated`` units optional), 1x1 convolutions to one Bernoulli
    logit per pixel. For the ``pixelcnn`` task (binary images)."""

    name: Literal["pixelcnn"] = "pixelcnn"
    features: PositiveInt = Field(32, description="channels F of the residual stream")
    blocks: int = Field(4, ge=0, description="residual blocks of type-B masked convolutions")
    first_kernel: PositiveInt = Field(7, description="side of the type-A convolution (odd)")
    kernel_size: PositiveInt = Field(3, description="side of the type-B convolutions (odd)")
    gated: bool = Field(False, description="gated units tanh(a) * sigmoid(b) in the blocks")
    head_width: PositiveInt = Field(32, description="channels of the hidden 1x1 output conv")

    @field_validator("first_kernel", "kernel_size")
    @classmethod
    def _odd_side(cls, value: int) -> int:
        return _odd(value)

    def needs(self) -> tuple[Need, ...]:
        return (IMAGE_INPUT,)

    def make(self, out_features: int, data: DataSpec | None = None) -> PixelCNN:
        del data
        return PixelCNN(out_features, **self.model_dump(exclude={"name"}))
