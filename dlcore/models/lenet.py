"""LeNet-5 (ReLU and max-pool variant) for 28x28 grey images, as in benchmarks.numpy_ref.conv.

[28, 28, 1] -conv 5x5x6 'same', act, max-pool 2-> [14, 14, 6]
            -conv 5x5x16 'valid', act, max-pool 2-> [5, 5, 16] -flatten (h, w, c)-> 400
            -dense 120, act -dense 84, act -dense K-> logits
"""

import math
from typing import Literal

import flax.linen as nn
import jax
from pydantic import Field, PositiveInt

from dlcore.activations import ACTIVATIONS, get_activation
from dlcore.checks import check_choice
from dlcore.config.section import Section, one_of
from dlcore.data.dataset import DataSpec
from dlcore.data.needs import Need
from dlcore.layers.conv import CONV_IMPLS, Conv2D
from dlcore.layers.norm import LocalResponseNorm, LRNSection, local_response_norm
from dlcore.layers.pooling import max_pool

MIN_IMAGE = 12  # conv2 (5x5, valid) then a 2x2 pool need a 6x6 map after the first pool


def as_images(x: jax.Array, image_size: int) -> jax.Array:
    """``[B, S*S]``, ``[B, H, W]`` or ``[B, H, W, C]`` as ``[B, H, W, C]``.

    Raises:
      ValueError: if a flat input's width is not ``image_size**2``, or the rank is not 2-4.
    """
    if x.ndim == 2:
        if x.shape[1] != image_size * image_size:
            raise ValueError(
                f"flat images must have image_size**2 = {image_size * image_size} features; "
                f"got shape {tuple(x.shape)} (set the model's image_size)"
            )
        return x.reshape(x.shape[0], image_size, image_size, 1)
    if x.ndim == 3:
        return x[..., None]
    if x.ndim == 4:
        return x
    raise ValueError(f"images must be [B, H*W], [B, H, W] or [B, H, W, C]; got {tuple(x.shape)}")


class LeNet5(nn.Module):
    """LeNet-5 with configurable activation and convolution lowering.

    Parameters are named ``conv1``, ``conv2`` (kernel ``[5, 5, C, F]``, bias ``[F]``) and
    ``dense0``, ``dense1``, ``dense2`` (kernel ``[in, out]``, bias ``[out]``): the NumPy
    baseline's ``conv1_W``, ``conv1_b``, ..., ``W0``, ``b0``, ... in the same layout.

    Attributes:
      out_features: number of classes K.
      activation: name in ``dlcore.activations.ACTIVATIONS`` (the baseline uses ``relu``).
      conv_impl: ``'auto'``, ``'gemm'``, ``'xla'`` or ``'native'`` (see
        ``dlcore.layers.conv.Conv2D``).
      lrn: local response normalization after each conv: True for n=5, k=2, alpha=1e-4,
        beta=0.75, or a configured :class:`LocalResponseNorm`.

      image_size: side of the square images that flat ``[B, S*S]`` inputs are reshaped to.

    Example:
      >>> import jax.numpy as jnp
      >>> model = LeNet5(out_features=10)
      >>> variables = model.init(jax.random.key(0), jnp.ones((2, 784)), train=False)
      >>> model.apply(variables, jnp.ones((2, 28, 28)), train=False).shape
      (2, 10)
    """

    out_features: int = 10
    activation: str = "relu"
    conv_impl: str = "auto"
    lrn: bool | LocalResponseNorm = False
    image_size: int = 28

    def __post_init__(self):
        check_choice(self.activation, ACTIVATIONS, "activation")
        check_choice(self.conv_impl, CONV_IMPLS, "conv impl")
        super().__post_init__()

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
        del train  # no dropout or batch norm in LeNet-5
        act = get_activation(self.activation)
        x_BxHxWxC = as_images(x, self.image_size)
        if min(x_BxHxWxC.shape[1:3]) < MIN_IMAGE:
            raise ValueError(
                f"LeNet5 needs images of at least {MIN_IMAGE}x{MIN_IMAGE}; got input "
                f"{tuple(x.shape)} read as {tuple(x_BxHxWxC.shape)}"
            )
        conv = dict(kernel_size=5, impl=self.conv_impl)
        # AlexNet-style local response normalization after each rectified conv, if asked.
        norm = self.lrn if isinstance(self.lrn, nn.Module) else local_response_norm
        norm = norm if self.lrn else (lambda a: a)
        h = max_pool(norm(act(Conv2D(6, padding="same", name="conv1", **conv)(x_BxHxWxC))))
        h = max_pool(norm(act(Conv2D(16, padding="valid", name="conv2", **conv)(h))))
        h_BxD = h.reshape(h.shape[0], -1)  # (h, w, c) order, as the baseline flattens
        h_BxD = act(nn.Dense(120, name="dense0")(h_BxD))
        h_BxD = act(nn.Dense(84, name="dense1")(h_BxD))
        return nn.Dense(self.out_features, name="dense2")(h_BxD)


class LeNet5Config(Section):
    """LeNet-5 for square grey images (flat ``[B, S*S]`` inputs are reshaped to S x S)."""

    name: Literal["lenet5"] = "lenet5"
    activation: one_of(ACTIVATIONS, "activation") = "relu"
    conv_impl: one_of(CONV_IMPLS, "conv impl") = Field(
        "auto",
        description="'auto' (oneDNN on CPU float32, else the faster lowering per backend), 'gemm', "
        "'xla' or 'native'",
    )
    image_size: PositiveInt = 28
    lrn: LRNSection = Field(
        default_factory=lambda: LRNSection(enabled=False),
        description="local response normalization after each conv (true, false or a table)",
    )

    def needs(self) -> tuple[Need, ...]:
        return (Need("x", ("features",), "grey images, flat [S*S] or [S, S, 1]", (1, 3)),)

    def make(self, out_features: int, data: DataSpec | None = None) -> LeNet5:
        if data is not None:
            shape = data.fields["x"].shape
            side = self.image_size
            if len(shape) == 1 and shape[0] != side * side:
                root = math.isqrt(shape[0])
                hint = f"set image_size = {root}" if root * root == shape[0] else "use mlp"
                raise ValueError(
                    f"lenet5 reads flat inputs as {side}x{side} images ({side * side} "
                    f"features); {data.name} has x features [{shape[0]}] ({hint})"
                )
            if min(shape[:2] if len(shape) > 1 else (side,)) < MIN_IMAGE:
                raise ValueError(
                    f"lenet5 needs images of at least {MIN_IMAGE}x{MIN_IMAGE}; {data.name} "
                    f"has x {list(shape)}"
                )
        fields = self.model_dump(exclude={"name", "lrn"})
        return LeNet5(out_features=out_features, lrn=self.lrn.make(), **fields)
