"""Transposed convolution, defined as the adjoint of :func:`dlcore.layers.conv_math.conv2d`.

For the convolution ``A: [N, OH, OW, F] -> [N, H, W, C]`` with kernel ``W [KH, KW, F, C]``,
stride s, padding (lo, hi) and dilation d, the transposed convolution is the unique linear map
``A^T: [N, H, W, C] -> [N, OH, OW, F]`` with

    <A x, y> = <x, A^T y>   for all x, y,

which written out scatters every input pixel through the kernel:

    z[n, sh i + dh a - top, sw j + dw b - left, f] += sum_c y[n, i, j, c] W[a, b, f, c]

(indices outside the output are dropped: padding crops). Its output size is PyTorch's
``OH = (H - 1) sh - top - bottom + dh (KH - 1) + output_padding + 1``. ``output_padding``
(< max(stride, dilation), as in PyTorch) picks among the OH that a stride-s convolution maps
to the same H; its extra rows receive no input. The kernel layout is PyTorch's and Flax's
``ConvTranspose(transpose_kernel=True)``: the kernel of the convolution this is the adjoint of.
"""

from collections.abc import Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from dlcore.checks import check_choice, check_positive_int, check_rank
from dlcore.layers.conv_math import LOWERINGS, resolve_impl
from dlcore.layers.geometry import (
    PaddingLike,
    check_fits,
    check_padding,
    layer_name,
    per_axis,
    resolve_pads,
    transpose_out,
)

IntOrPair = int | Sequence[int]
# The native kernel has no linear transpose (a custom VJP), so only XLA's lowerings here.
TRANSPOSE_IMPLS = ("auto", *LOWERINGS)


def transpose_geometry(
    size_HxW: Sequence[int],
    kernel_HxW: Sequence[int],
    stride: IntOrPair = 1,
    padding: PaddingLike = "valid",
    output_padding: IntOrPair = 0,
    dilation: IntOrPair = 1,
    name: str = "conv_transpose",
):
    """``(pads, output_padding, out_HxW)`` after checking every option.

    ``padding`` is the forward convolution's: ``'valid'`` (none), ``'full'`` (k_eff - 1 per
    side), ints or pairs, or ``'same'``, which makes OH = sh H (the adjoint of the 'same'
    convolution from sh H to H) and then needs ``output_padding = 0``.

    Example:
      >>> transpose_geometry((4, 4), (3, 3), stride=2, padding=1, output_padding=1)[2]
      (8, 8)
    """
    stride = per_axis(stride, 2, f"{name} stride")
    dilation = per_axis(dilation, 2, f"{name} dilation")
    output_padding = per_axis(output_padding, 2, f"{name} output_padding", minimum=0)
    check_padding(padding, 2)
    if padding == "same":
        if any(output_padding):
            raise ValueError(f"{name}: padding 'same' fixes the output size; use output_padding=0")
        spans = [d * (k - 1) + 1 for k, d in zip(kernel_HxW, dilation, strict=True)]
        totals = [max(e - s, 0) for e, s in zip(spans, stride, strict=True)]
        pads = tuple((t // 2, t - t // 2) for t in totals)
        output_padding = tuple(max(s - e, 0) for e, s in zip(spans, stride, strict=True))
    else:
        pads = resolve_pads(padding, size_HxW, kernel_HxW, stride, dilation)
    for op, s, d in zip(output_padding, stride, dilation, strict=True):
        if op >= max(s, d):
            raise ValueError(
                f"{name}: output_padding {op} must be smaller than the stride {s} or the "
                f"dilation {d}"
            )
    out = tuple(
        transpose_out(*a)
        for a in zip(size_HxW, kernel_HxW, stride, pads, dilation, output_padding, strict=True)
    )
    check_fits(name, "kernel", size_HxW, out, kernel_HxW, stride, padding, pads, dilation)
    return pads, output_padding, out


def conv_transpose2d(
    y_NxHxWxC: jax.Array,
    w_KxKxFxC: jax.Array,
    b_F: jax.Array | None = None,
    *,
    stride: IntOrPair = 1,
    padding: PaddingLike = "valid",
    output_padding: IntOrPair = 0,
    dilation: IntOrPair = 1,
    impl: str = "auto",
    name: str = "conv_transpose",
) -> jax.Array:
    """The adjoint of the convolution with kernel ``W [KH, KW, F, C]`` (module docstring).

    Args:
      y_NxHxWxC: input ``[N, H, W, C]``.
      w_KxKxFxC: kernel of the forward convolution (F -> C channels).
      b_F: optional bias ``[F]``.
      stride, padding, output_padding, dilation: see :func:`transpose_geometry`.
      impl: lowering of the forward convolution whose adjoint this is: ``'xla'``, ``'gemm'``
        or ``'auto'`` (:func:`dlcore.layers.conv_math.resolve_impl`).
      name: the layer named in size errors.

    Returns:
      ``[N, OH, OW, F]``.

    Example:
      >>> z = conv_transpose2d(jnp.ones((1, 2, 2, 1)), jnp.ones((2, 2, 1, 1)), stride=2)
      >>> z.shape, float(z.sum())
      ((1, 4, 4, 1), 16.0)
    """
    check_rank(y_NxHxWxC, 4, "conv_transpose input", "[N, H, W, C]")
    check_rank(w_KxKxFxC, 4, "conv_transpose kernel", "[KH, KW, F, C]")
    n, h, w, c = y_NxHxWxC.shape
    kh, kw, f, c_kernel = w_KxKxFxC.shape
    if c != c_kernel:
        raise ValueError(
            f"{name}: input has {c} channels but the kernel [KH, KW, F, C] expects {c_kernel}; "
            f"got input {tuple(y_NxHxWxC.shape)} and kernel {tuple(w_KxKxFxC.shape)}"
        )
    pads, _, (oh, ow) = transpose_geometry(
        (h, w), (kh, kw), stride, padding, output_padding, dilation, name
    )
    dtype = jnp.result_type(y_NxHxWxC, w_KxKxFxC)
    kernel = w_KxKxFxC.astype(dtype)
    stride, dilation = per_axis(stride, 2, "stride"), per_axis(dilation, 2, "dilation")

    check_choice(impl, TRANSPOSE_IMPLS, "conv_transpose impl")
    lowering = LOWERINGS[resolve_impl(impl)]

    def conv_NxOHxOWxF(x):  # the forward map A; it can overshoot H by output_padding // s
        return lowering(x, kernel, stride, pads, dilation)[:, :h, :w]

    (z_NxOHxOWxF,) = jax.linear_transpose(
        conv_NxOHxOWxF, jax.ShapeDtypeStruct((n, oh, ow, f), dtype)
    )(y_NxHxWxC.astype(dtype))
    if b_F is not None:
        z_NxOHxOWxF = z_NxOHxOWxF + b_F.astype(dtype).reshape(1, 1, 1, f)
    return z_NxOHxOWxF


class ConvTranspose2D(nn.Module):
    """A transposed ("fractionally strided") convolution layer, kernel ``[KH, KW, F, C]``.

    z = A^T y + b, the adjoint of the stride-s convolution F -> C (module docstring), on
    ``[B, H, W, C] -> [B, OH, OW, F]``; ``kernel_size=2, stride=2`` doubles H and W.

    Attributes:
      features: output channels F.
      kernel_size: ``k`` or ``(kh, kw)``.
      stride: ``s`` or ``(sh, sw)``: the upsampling factor.
      padding: the forward convolution's padding (crops the output).
      output_padding: extra rows/columns at the bottom/right, < max(stride, dilation).
      dilation: ``d`` or ``(dh, dw)``.
      use_bias: add a learned bias per output channel.
      kernel_init: initializer (LeCun normal over fan-in KH*KW*C).
      param_dtype: dtype of kernel and bias.
      impl: ``'auto'``, ``'gemm'`` or ``'xla'``: the forward convolution's lowering.

    Example:
      >>> layer = ConvTranspose2D(features=3, kernel_size=2, stride=2)
      >>> variables = layer.init(jax.random.key(0), jnp.ones((1, 4, 5, 8)))
      >>> variables["params"]["kernel"].shape, layer.apply(variables, jnp.ones((1, 4, 5, 8))).shape
      ((2, 2, 3, 8), (1, 8, 10, 3))
    """

    features: int
    kernel_size: IntOrPair
    stride: IntOrPair = 1
    padding: PaddingLike = "valid"
    output_padding: IntOrPair = 0
    dilation: IntOrPair = 1
    use_bias: bool = True
    kernel_init: Callable = nn.initializers.lecun_normal(in_axis=-1, out_axis=-2)
    param_dtype: jnp.dtype = jnp.float32
    impl: str = "auto"

    def __post_init__(self):
        check_positive_int(self.features, "conv_transpose features")
        check_choice(self.impl, TRANSPOSE_IMPLS, "conv_transpose impl")
        per_axis(self.kernel_size, 2, "conv_transpose kernel_size")
        check_padding(self.padding, 2)
        super().__post_init__()

    @nn.compact
    def __call__(self, y_BxHxWxC: jax.Array) -> jax.Array:
        check_rank(y_BxHxWxC, 4, "ConvTranspose2D input", "[B, H, W, C]")
        kh, kw = per_axis(self.kernel_size, 2, "conv_transpose kernel_size")
        name = layer_name(self)
        transpose_geometry(
            y_BxHxWxC.shape[1:3],
            (kh, kw),
            self.stride,
            self.padding,
            self.output_padding,
            self.dilation,
            name,
        )  # checks the options and the output size before any parameter is drawn
        shape = (kh, kw, self.features, y_BxHxWxC.shape[-1])
        w = self.param("kernel", self.kernel_init, shape, self.param_dtype)
        b = (
            self.param("bias", nn.initializers.zeros, (self.features,), self.param_dtype)
            if self.use_bias
            else None
        )
        return conv_transpose2d(
            y_BxHxWxC,
            w,
            b,
            stride=self.stride,
            padding=self.padding,
            output_padding=self.output_padding,
            dilation=self.dilation,
            impl=self.impl,
            name=name,
        )
