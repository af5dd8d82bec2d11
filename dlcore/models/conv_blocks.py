"""What the image classifiers (alexnet, vgg, googlenet, resnet) share: the image input they
need, He-initialized convolutions, a conv + batch-norm pair, and the feature-map size check.

Every downsampling layer of a model is listed as a :class:`Shrink`; :func:`check_feature_sizes`
walks an input size through them, so a net too deep for its images is one line naming the
layer and the sizes, raised from the config's ``make`` (before any run directory exists) and
again from the module's ``__call__`` for research code.
"""

from collections.abc import Sequence
from typing import NamedTuple

import flax.linen as nn
import jax

from dlcore.data.dataset import DataSpec
from dlcore.data.needs import Need
from dlcore.initializers import get_initializer
from dlcore.layers.conv import Conv2D
from dlcore.layers.norm import BatchNorm
from dlcore.models.lenet import as_images

# Every conv of these nets feeds a ReLU: He et al. (2015), Var(W) = 2 / fan_in.
HE_NORMAL = get_initializer("he_normal")
IMAGES = Need("x", ("features",), "images [H, W, C] (or grey [H, W])", (2, 3))


class Shrink(NamedTuple):
    """A layer that shrinks the feature map: ``out = (in + 2 pad - window) // stride + 1``."""

    layer: str
    window: int
    stride: int
    pad: int = 0

    def smallest_input(self) -> int:
        # A stride-s layer on a map smaller than s would "downsample" a single pixel.
        return max(self.window - 2 * self.pad, self.stride, 1)

    def out(self, side: int) -> int:
        return (side + 2 * self.pad - self.window) // self.stride + 1


def check_feature_sizes(
    model: str, shrinks: Sequence[Shrink], size_HxW: Sequence[int], source: str
) -> tuple[int, int]:
    """The ``(H, W)`` after every layer in ``shrinks``, checking each one fits its input.

    Args:
      model: the registry name, to start the message.
      shrinks: the downsampling layers in order.
      size_HxW: the input's spatial size.
      source: whose images, e.g. the data set's name or ``"the input"``.

    Returns:
      The final spatial size.

    Raises:
      ValueError: naming the first layer that does not fit and the sizes on the way to it.

    Example:
      >>> check_feature_sizes("vgg", [Shrink("stage1/pool", 2, 2)] * 2, (8, 8), "x")
      (2, 2)
    """
    h, w = size_HxW
    path = [f"{h}x{w}"]
    for s in shrinks:
        need = s.smallest_input()
        if h < need or w < need:
            raise ValueError(
                f"{model}: {s.layer} ({s.window}x{s.window}, stride {s.stride}, pad {s.pad}) "
                f"needs a feature map of at least {need}x{need}, but {source} images shrink to "
                f"{' -> '.join(path)} before it; use larger images or fewer downsampling layers"
            )
        h, w = s.out(h), s.out(w)
        path.append(f"{h}x{w}")
    return h, w


def data_image_size(model: str, data: DataSpec) -> tuple[int, int]:
    """The ``(H, W)`` of the data's ``x`` images (``[H, W]`` or ``[H, W, C]`` per example).

    Raises:
      ValueError: if ``x`` is not an image (flat features need ``layout = "image"``).
    """
    shape = data.fields["x"].shape
    if len(shape) not in (2, 3):
        raise ValueError(
            f"{model} needs images [H, W, C]; {data.name} has x {list(shape)} "
            "(use the data set's image layout)"
        )
    return shape[0], shape[1]


def images(x: jax.Array) -> jax.Array:
    """``[B, H, W]`` or ``[B, H, W, C]`` as ``[B, H, W, C]`` (no flat inputs: no side to guess)."""
    if x.ndim == 2:
        raise ValueError(
            f"these CNNs take images [B, H, W, C] or [B, H, W]; got flat {tuple(x.shape)}"
        )
    return as_images(x, image_size=1)


def conv(features: int, kernel_size: int, name: str, stride: int = 1, bias: bool = True):
    """A 'same'-padded, He-initialized :class:`Conv2D` (no bias when batch norm follows)."""
    return Conv2D(
        features,
        kernel_size,
        stride=stride,
        padding="same",
        use_bias=bias,
        kernel_init=HE_NORMAL,
        name=name,
    )


class ConvBN(nn.Module):
    """Convolution then optional batch norm, parameters under ``conv`` and ``bn``:
    y = BN(W * x) with ``norm``, else W * x + b. No activation (the caller adds it).

    Example:
      >>> import jax.numpy as jnp
      >>> layer = ConvBN(8, 3, stride=2)
      >>> variables = layer.init(jax.random.key(0), jnp.ones((1, 6, 6, 3)), train=False)
      >>> layer.apply(variables, jnp.ones((1, 6, 6, 3)), train=False).shape
      (1, 3, 3, 8)
    """

    features: int
    kernel_size: int
    stride: int = 1
    norm: bool = True

    @nn.compact
    def __call__(self, x_BxHxWxC: jax.Array, *, train: bool) -> jax.Array:
        y = conv(self.features, self.kernel_size, "conv", self.stride, bias=not self.norm)(
            x_BxHxWxC
        )
        return BatchNorm(name="bn")(y, train=train) if self.norm else y
