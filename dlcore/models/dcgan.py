"""DCGAN (Radford, Metz & Chintala, 2016): a generator of transposed convolutions and a
discriminator of strided convolutions, both with batch norm and no pooling.

Generator, with ``widths = [w_1, ..., w_n]`` and images H x W x C (H, W multiples of 2^n):

    h_0 = ReLU(BN(Dense(z)))                         reshaped to [H/2^n, W/2^n, w_1]
    h_i = ReLU(BN(ConvT_k,stride2(h_{i-1})))         [H/2^(n-i), W/2^(n-i), w_(i+1)],  i < n
    x   = out(ConvT_k,stride2(h_(n-1)) + b)          [H, W, C]

with ``out`` sigmoid (pixels in [0, 1]), tanh ([-1, 1]) or the identity (logits, e.g. for a
Bernoulli decoder). Discriminator, with ``widths = [v_1, ..., v_m]``:

    g_1 = LReLU(Conv_k,stride2(x) + b)               [ceil(H/2), ceil(W/2), v_1]
    g_j = LReLU(BN(Conv_k,stride2(g_(j-1))))         halves again,  j = 2..m
    l   = Dense(flatten(g_m))                        [out_features] logits

with LReLU(a) = max(a, 0.2 a). The first layer has no batch norm (the paper: normalizing the
discriminator's input layer made training unstable); ``batch_norm = False`` drops it
everywhere, which losses that penalize D per example (WGAN-GP, hinge) want. Weights are drawn
from N(0, 0.02^2), the paper's initialization, biases and BN shifts start at 0.

The generator reads no data, but draws images of the data's size: its config section's
``make(out_features, data)`` takes (H, W) from the data's image ``x`` (or ``info["image_shape"]``
for flat data) and C = out_features / (H W), so a task asking for ``prod(x_shape)`` outputs
gets images ``[B, H, W, C]`` of exactly that many values.
"""

from collections.abc import Callable, Sequence
from typing import Literal

import flax.linen as nn
import jax
from pydantic import Field, PositiveInt

from dlcore.checks import check_choice
from dlcore.config.section import Section, one_of
from dlcore.data.dataset import DataSpec
from dlcore.data.needs import Need
from dlcore.layers.conv import Conv2D
from dlcore.layers.conv_transpose import ConvTranspose2D
from dlcore.layers.norm import BatchNorm
from dlcore.models.conv_blocks import IMAGES, images

# The generator's output activation and the pixel range it can reach.
OUTPUTS: dict[str, tuple[Callable[[jax.Array], jax.Array], tuple[float, float] | None]] = {
    "sigmoid": (jax.nn.sigmoid, (0.0, 1.0)),
    "tanh": (jax.nn.tanh, (-1.0, 1.0)),
    "linear": (lambda a: a, None),
}
INIT_STD = 0.02  # DCGAN's N(0, 0.02^2) for every kernel
DCGAN_INIT = nn.initializers.normal(INIT_STD)
# The generator reads a vector (noise z, or an encoder's code), never the data's x.
VECTORS = Need("x", ("features",), "noise or code vectors [D] (a generator or decoder)", (1,))


def start_size(image_HxW: Sequence[int], upsamplings: int, source: str) -> tuple[int, int]:
    """The side of the generator's first map: ``(H / 2^n, W / 2^n)``.

    Raises:
      ValueError: if H or W is not a multiple of 2^n, naming the sizes and the fix.

    Example:
      >>> start_size((16, 16), 2, "digits")
      (4, 4)
    """
    divisor = 2**upsamplings
    h, w = image_HxW
    if h % divisor or w % divisor:
        raise ValueError(
            f"dcgan_generator doubles its map {upsamplings} times (one per width), so the image "
            f"sides must be multiples of {divisor}; {source} has {h}x{w} images (use fewer "
            "widths or another image_size)"
        )
    return h // divisor, w // divisor


class DCGANGenerator(nn.Module):
    """Maps vectors ``z [B, D]`` to images ``[B, H, W, C]`` (module docstring).

    Parameters: ``project`` (dense), ``bn0`` ... ``bn{n-1}``, ``up1`` ... ``up{n}``
    (transposed convolutions); ``batch_stats`` under the ``bn`` layers.

    Attributes:
      image_shape: ``(H, W)`` of the images drawn; multiples of ``2^len(widths)``.
      channels: C.
      widths: channels of the projected map and of each upsampled map but the last.
      kernel_size: side of the transposed-convolution kernels ('same' padding: each doubles H, W).
      output: a name in :data:`OUTPUTS`.
      batch_norm: BN before every ReLU (else a bias).

    Example:
      >>> g = DCGANGenerator(image_shape=(8, 8), channels=1, widths=(8, 4))
      >>> variables = g.init(jax.random.key(0), jnp.ones((2, 3)), train=False)
      >>> g.apply(variables, jnp.ones((2, 3)), train=False).shape
      (2, 8, 8, 1)
    """

    image_shape: tuple[int, int]
    channels: int
    widths: tuple[int, ...] = (64, 32)
    kernel_size: int = 4
    output: str = "sigmoid"
    batch_norm: bool = True

    def _norm_relu(self, h: jax.Array, i: int, train: bool) -> jax.Array:
        if self.batch_norm:
            h = BatchNorm(name=f"bn{i}")(h, train=train)
        return nn.relu(h)

    @nn.compact
    def __call__(self, z: jax.Array, *, train: bool) -> jax.Array:
        check_choice(self.output, tuple(OUTPUTS), "dcgan_generator output")
        h0, w0 = start_size(self.image_shape, len(self.widths), "the module")
        z_BxD = z.reshape(z.shape[0], -1)
        bias = not self.batch_norm  # BN's shift replaces it
        dense = nn.Dense(
            h0 * w0 * self.widths[0], use_bias=bias, kernel_init=DCGAN_INIT, name="project"
        )
        h = dense(z_BxD).reshape(z_BxD.shape[0], h0, w0, self.widths[0])  # [B, h0, w0, w_1]
        h = self._norm_relu(h, 0, train)
        outs = (*self.widths[1:], self.channels)
        for i, features in enumerate(outs, start=1):
            last = i == len(outs)
            h = ConvTranspose2D(
                features,
                self.kernel_size,
                stride=2,
                padding="same",
                use_bias=bias or last,
                kernel_init=DCGAN_INIT,
                name=f"up{i}",
            )(h)  # [B, 2 h, 2 w, features]
            if not last:
                h = self._norm_relu(h, i, train)
        return OUTPUTS[self.output][0](h)  # [B, H, W, C]


class DCGANDiscriminator(nn.Module):
    """Maps images ``[B, H, W, C]`` (or ``[B, H, W]``) to logits ``[B, out_features]``.

    Parameters: ``conv1`` ... ``conv{m}``, ``bn2`` ... ``bn{m}`` (with ``batch_norm``), ``head``.

    Attributes:
      out_features: width of the head (1 for a GAN's logit).
      widths: channels of the stride-2 convolutions.
      kernel_size: their side ('same' padding: each halves H and W, rounding up).
      batch_norm: BN on every convolution but the first.
      leaky_slope: the leaky ReLU's slope for negative inputs.

    Example:
      >>> d = DCGANDiscriminator(1, widths=(4, 8))
      >>> variables = d.init(jax.random.key(0), jnp.ones((2, 8, 8, 1)), train=False)
      >>> d.apply(variables, jnp.ones((2, 8, 8, 1)), train=False).shape
      (2, 1)
    """

    out_features: int
    widths: tuple[int, ...] = (32, 64)
    kernel_size: int = 4
    batch_norm: bool = True
    leaky_slope: float = 0.2

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
        h = images(x)  # [B, H, W, C]
        for j, features in enumerate(self.widths, start=1):
            norm = self.batch_norm and j > 1
            h = Conv2D(
                features,
                self.kernel_size,
                stride=2,
                padding="same",
                use_bias=not norm,
                kernel_init=DCGAN_INIT,
                name=f"conv{j}",
            )(h)  # [B, ceil(H / 2^j), ceil(W / 2^j), v_j]
            if norm:
                h = BatchNorm(name=f"bn{j}")(h, train=train)
            h = nn.leaky_relu(h, self.leaky_slope)
        h_BxF = h.reshape(h.shape[0], -1)
        return nn.Dense(self.out_features, kernel_init=DCGAN_INIT, name="head")(h_BxF)


def generated_image_size(data: DataSpec) -> tuple[int, int]:
    """``(H, W)`` of the data's images: of ``x`` when it is ``[H, W]`` or ``[H, W, C]``,
    else ``info["image_shape"]`` (flat images, e.g. digits with ``layout = "flat"``).

    Raises:
      ValueError: when the data have neither.
    """
    shape = data.fields["x"].shape if "x" in data.fields else ()
    if len(shape) in (2, 3):
        return shape[0], shape[1]
    known = data.info.get("image_shape")
    if known is not None and len(known) >= 2:
        return int(known[0]), int(known[1])
    raise ValueError(
        f"dcgan_generator draws images of the data's size, but {data.name} has no images "
        f"(x {list(shape)}, no info['image_shape']); use image data (e.g. layout = 'image')"
    )


def check_output_range(output: str, data: DataSpec) -> None:
    """The output activation must reach the data's ``info["pixel_range"]``, when known.

    Raises:
      ValueError: e.g. a sigmoid generator for pixels in [-1, 1], naming the fix.
    """
    reach = OUTPUTS[output][1]
    pixels = data.info.get("pixel_range")
    if reach is None or pixels is None:
        return
    if pixels[0] < reach[0] or pixels[1] > reach[1]:
        fits = [
            n
            for n, (_, r) in OUTPUTS.items()
            if r is None or r[0] <= pixels[0] <= pixels[1] <= r[1]
        ]
        raise ValueError(
            f"output = {output!r} gives values in {list(reach)}, but {data.name}'s pixels lie "
            f"in {list(pixels)}; use output = {' or '.join(map(repr, fits))}"
        )


class DCGANGeneratorConfig(Section):
    """DCGAN generator: ``widths`` of the projected map and the upsampled maps; one
    stride-2 transposed convolution per width. Images take the data's size (module docstring)."""

    name: Literal["dcgan_generator"] = "dcgan_generator"
    widths: list[PositiveInt] = Field(default_factory=lambda: [64, 32], min_length=1)
    kernel_size: int = Field(4, ge=2, description="transposed-convolution kernel side")
    output: one_of(tuple(OUTPUTS), "output") = "sigmoid"
    batch_norm: bool = True

    def needs(self) -> tuple[Need, ...]:
        return (VECTORS,)

    def make(self, out_features: int, data: DataSpec | None = None) -> DCGANGenerator:
        if data is None:
            raise ValueError(
                "dcgan_generator draws images of the data's size: build it with the data "
                "(or use DCGANGenerator(image_shape=...) in code)"
            )
        h, w = generated_image_size(data)
        channels, rest = divmod(out_features, h * w)
        if rest or not channels:
            raise ValueError(
                f"dcgan_generator draws {h}x{w} images ({data.name}); {out_features} outputs are "
                f"not a whole number of {h}x{w} channels"
            )
        start_size((h, w), len(self.widths), data.name)
        check_output_range(self.output, data)
        fields = self.model_dump(exclude={"name", "widths"})
        return DCGANGenerator((h, w), channels, tuple(self.widths), **fields)


class DCGANDiscriminatorConfig(Section):
    """DCGAN discriminator: stride-2 convolutions of ``widths`` channels, leaky ReLUs, batch
    norm on all but the first (``batch_norm = false`` for WGAN/hinge-style losses), dense head."""

    name: Literal["dcgan_discriminator"] = "dcgan_discriminator"
    widths: list[PositiveInt] = Field(default_factory=lambda: [32, 64], min_length=1)
    kernel_size: PositiveInt = 4
    batch_norm: bool = True
    leaky_slope: float = Field(0.2, ge=0.0, lt=1.0)

    def needs(self) -> tuple[Need, ...]:
        return (IMAGES,)

    def make(self, out_features: int, data: DataSpec | None = None) -> DCGANDiscriminator:
        fields = self.model_dump(exclude={"name", "widths"})
        return DCGANDiscriminator(out_features, tuple(self.widths), **fields)
