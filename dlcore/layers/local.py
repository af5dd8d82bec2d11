"""Locally connected 2-D layer: a convolution's windows without its weight sharing.

"With weight sharing, this is called convolution; without weight sharing, this is called a
locally connected layer" (the Montréal deck). Every output position (i, j) has its own kernel:

    y[n, i, j, f] = b[i, j, f] + sum_{a, b, c} x_pad[n, sh i + a, sw j + b, c] W[i, j, a, b, c, f]

so the layer holds OH*OW times the parameters of the matching convolution and is tied to one
input size. Windows, strides, padding and output size follow :mod:`dlcore.layers.geometry`.
"""

from collections.abc import Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from dlcore.checks import check_positive_int, check_rank
from dlcore.layers.conv_math import patches
from dlcore.layers.geometry import (
    PaddingLike,
    check_fits,
    check_padding,
    layer_name,
    per_axis,
    resolve_pads,
    window_out,
)

IntOrPair = int | Sequence[int]


def locally_connected2d(
    x_NxHxWxC: jax.Array,
    w_OHxOWxKHxKWxCxF: jax.Array,
    b_OHxOWxF: jax.Array | None = None,
    *,
    stride: IntOrPair = 1,
    padding: PaddingLike = "valid",
    name: str = "locally_connected",
) -> jax.Array:
    """The unshared-weight layer of the module docstring.

    Args:
      x_NxHxWxC: input ``[N, H, W, C]``.
      w_OHxOWxKHxKWxCxF: one ``[KH, KW, C, F]`` kernel per output position.
      b_OHxOWxF: optional bias per output position and channel.
      stride: ``s`` or ``(sh, sw)``.
      padding: as for :func:`dlcore.layers.conv_math.conv2d`.
      name: the layer named in size errors.

    Returns:
      ``[N, OH, OW, F]``.

    Example:
      >>> w = jnp.ones((2, 2, 2, 2, 1, 1))
      >>> locally_connected2d(jnp.ones((1, 3, 3, 1)), w)[0, :, :, 0].tolist()
      [[4.0, 4.0], [4.0, 4.0]]
    """
    check_rank(x_NxHxWxC, 4, "locally connected input", "[N, H, W, C]")
    check_rank(w_OHxOWxKHxKWxCxF, 6, "locally connected kernel", "[OH, OW, KH, KW, C, F]")
    oh_w, ow_w, kh, kw, c, f = w_OHxOWxKHxKWxCxF.shape
    size = x_NxHxWxC.shape[1:3]
    stride = per_axis(stride, 2, f"{name} stride")
    pads = resolve_pads(padding, size, (kh, kw), stride)
    out = tuple(window_out(*a) for a in zip(size, (kh, kw), stride, pads, strict=True))
    check_fits(name, "kernel", size, out, (kh, kw), stride, padding, pads)
    if x_NxHxWxC.shape[3] != c or out != (oh_w, ow_w):
        raise ValueError(
            f"{name}: kernel {tuple(w_OHxOWxKHxKWxCxF.shape)} needs inputs giving "
            f"{oh_w}x{ow_w} outputs with {c} channels; got input {tuple(x_NxHxWxC.shape)} "
            f"giving {out[0]}x{out[1]}"
        )
    dtype = jnp.result_type(x_NxHxWxC, w_OHxOWxKHxKWxCxF)
    cols_NxOHxOWxP = patches(x_NxHxWxC.astype(dtype), (kh, kw), stride, pads)
    w_OHxOWxPxF = w_OHxOWxKHxKWxCxF.astype(dtype).reshape(oh_w, ow_w, kh * kw * c, f)
    y_NxOHxOWxF = jnp.einsum("nhwp,hwpf->nhwf", cols_NxOHxOWxP, w_OHxOWxPxF)
    if b_OHxOWxF is not None:
        y_NxOHxOWxF = y_NxOHxOWxF + b_OHxOWxF.astype(dtype)[None]
    return y_NxOHxOWxF


class LocallyConnected2D(nn.Module):
    """Owns a kernel ``[OH, OW, KH, KW, C, F]`` and a bias ``[OH, OW, F]`` (module docstring).

    Attributes:
      features: output channels F.
      kernel_size: ``k`` or ``(kh, kw)``.
      stride: ``s`` or ``(sh, sw)``.
      padding: ``'same'``, ``'valid'``, ``'full'``, int, ``(ph, pw)`` or per-side pairs.
      use_bias: add a learned bias per output position and channel.
      kernel_init: initializer; LeCun normal over each position's fan-in KH*KW*C.
      param_dtype: dtype of kernel and bias.

    Example:
      >>> layer = LocallyConnected2D(features=2, kernel_size=3, stride=2)
      >>> variables = layer.init(jax.random.key(0), jnp.ones((1, 7, 7, 3)))
      >>> variables["params"]["kernel"].shape, layer.apply(variables, jnp.ones((1, 7, 7, 3))).shape
      ((3, 3, 3, 3, 3, 2), (1, 3, 3, 2))
    """

    features: int
    kernel_size: IntOrPair
    stride: IntOrPair = 1
    padding: PaddingLike = "valid"
    use_bias: bool = True
    kernel_init: Callable = nn.initializers.lecun_normal(
        in_axis=(2, 3, 4), out_axis=-1, batch_axis=(0, 1)
    )
    param_dtype: jnp.dtype = jnp.float32

    def __post_init__(self):
        check_positive_int(self.features, "locally connected features")
        per_axis(self.kernel_size, 2, "locally connected kernel_size")
        per_axis(self.stride, 2, "locally connected stride")
        check_padding(self.padding, 2)
        super().__post_init__()

    @nn.compact
    def __call__(self, x_BxHxWxC: jax.Array) -> jax.Array:
        check_rank(x_BxHxWxC, 4, "LocallyConnected2D input", "[B, H, W, C]")
        name = layer_name(self)
        kernel = per_axis(self.kernel_size, 2, "locally connected kernel_size")
        stride = per_axis(self.stride, 2, "locally connected stride")
        size = x_BxHxWxC.shape[1:3]
        pads = resolve_pads(self.padding, size, kernel, stride)
        oh, ow = (window_out(*a) for a in zip(size, kernel, stride, pads, strict=True))
        check_fits(name, "kernel", size, (oh, ow), kernel, stride, self.padding, pads)
        shape = (oh, ow, *kernel, x_BxHxWxC.shape[-1], self.features)
        w = self.param("kernel", self.kernel_init, shape, self.param_dtype)
        b = (
            self.param("bias", nn.initializers.zeros, (oh, ow, self.features), self.param_dtype)
            if self.use_bias
            else None
        )
        return locally_connected2d(
            x_BxHxWxC, w, b, stride=self.stride, padding=self.padding, name=name
        )
