"""Convolution layers: :class:`Conv1D` on ``[B, T, C]`` and :class:`Conv2D` on ``[B, H, W, C]``.

The modules own the kernel and bias; the math (:func:`conv2d`, :func:`conv1d`, the two
lowerings and :func:`resolve_impl`) lives in :mod:`dlcore.layers.conv_math` and the padding
and output-size rules in :mod:`dlcore.layers.geometry`; both are re-exported here.
"""

from collections.abc import Callable, Sequence
from typing import ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp

from dlcore.checks import check_choice, check_positive_int, check_rank
from dlcore.layers.conv_math import (
    AUTO_LOWERING,
    AUTO_LOWERING_IN_LOOP,
    CONV_IMPLS,
    LOWERINGS,
    conv1d,
    conv2d,
    conv2d_gemm,
    conv2d_xla,
    conv_geometry,
    conv_nd,
    conv_pads,
    patches,
    resolve_impl,
)
from dlcore.layers.geometry import PADDINGS, PaddingLike, Pads, check_padding, layer_name, per_axis

__all__ = [
    "AUTO_LOWERING",
    "AUTO_LOWERING_IN_LOOP",
    "CONV_IMPLS",
    "LOWERINGS",
    "PADDINGS",
    "Conv1D",
    "Conv2D",
    "Pads",
    "check_padding",
    "conv1d",
    "conv2d",
    "conv2d_gemm",
    "conv2d_xla",
    "conv_pads",
    "patches",
    "resolve_impl",
]


class _Conv(nn.Module):
    """Shared fields and call of :class:`Conv1D` and :class:`Conv2D` (``ndim`` spatial axes)."""

    ndim: ClassVar[int] = 2

    features: int
    kernel_size: int | Sequence[int]
    stride: int | Sequence[int] = 1
    padding: PaddingLike = "valid"
    use_bias: bool = True
    impl: str = "auto"
    kernel_init: Callable = nn.initializers.lecun_normal()
    dilation: int | Sequence[int] = 1
    groups: int = 1
    flip: bool = False
    param_dtype: jnp.dtype = jnp.float32

    def __post_init__(self):
        # Fail at construction, with the config still in view, rather than at the first call.
        check_padding(self.padding, self.ndim)
        check_choice(self.impl, CONV_IMPLS, "conv impl")
        per_axis(self.kernel_size, self.ndim, "conv kernel_size")
        per_axis(self.stride, self.ndim, "conv stride")
        per_axis(self.dilation, self.ndim, "conv dilation")
        check_positive_int(self.features, "conv features")
        check_positive_int(self.groups, "conv groups")
        if self.features % self.groups:
            raise ValueError(
                f"conv features {self.features} must be a multiple of groups={self.groups}"
            )
        super().__post_init__()

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        layout = "[N, T, C]" if self.ndim == 1 else "[N, H, W, C]"
        check_rank(x, self.ndim + 2, f"{type(self).__name__} input", layout)
        kernel = per_axis(self.kernel_size, self.ndim, "conv kernel_size")
        c, name = x.shape[-1], layer_name(self)
        if c % self.groups:
            raise ValueError(
                f"{name}: input channels {c} must be a multiple of groups={self.groups}"
            )
        # Check the output size before any parameter is drawn.
        conv_geometry(x.shape[1:-1], kernel, self.stride, self.padding, self.dilation, name)
        shape = (*kernel, c // self.groups, self.features)
        w = self.param("kernel", self.kernel_init, shape, self.param_dtype)
        b = (
            self.param("bias", nn.initializers.zeros, (self.features,), self.param_dtype)
            if self.use_bias
            else None
        )
        return conv_nd(
            x,
            w,
            b,
            stride=self.stride,
            padding=self.padding,
            dilation=self.dilation,
            groups=self.groups,
            flip=self.flip,
            impl=self.impl,
            name=name,
        )


class Conv2D(_Conv):
    """A 2-D convolution layer owning a kernel ``[KH, KW, C/G, F]`` and a bias ``[F]``.

    y = conv2d(x, W) + b  on ``[B, H, W, C] -> [B, OH, OW, F]``
    (see :func:`conv2d` for the equation, :mod:`dlcore.layers.geometry` for OH, OW).

    ``impl='auto'`` runs oneDNN's convolution kernels behind XLA's FFI on the CPU in float32
    when the native library is available (``'native'``, :mod:`dlcore.native.conv`; LeNet-5
    figures in that module). Otherwise (GPU, float64, no library) it picks XLA's convolution
    on CPU and GPU (:data:`AUTO_LOWERING`), except
    inside the engine's multi-step scan on CPU, where XLA's convolution is an order of
    magnitude slower and patches + GEMM run instead (:data:`AUTO_LOWERING_IN_LOOP`; figures in
    :mod:`dlcore.engine.tracing`). For a single compiled step, LeNet-5, B = 128, float32,
    median (min) ms, GEMM lowering vs XLA convolution for both conv layers:

    - this project's machine (AMD EPYC, 2 cores shared by four engineers, load average 5-7,
      jax 0.10.2), whole dlcore train step with Adam, ``python -m benchmarks cnn attention``:
      108 (95.6) vs 58.6 (57.0), XLA 1.84x faster; an earlier run 152 (98.5) vs 67.9 (56.0).
      A loss-and-gradient A/B of every mix gave the same order (GEMM also loses on conv1).
    - an idle x86 host (the H100 machine's CPU) limited to 2 cores with ``taskset``,
      jax 0.11.2, loss and gradient only: 14.7 (13.3) vs 17.7 (15.5), GEMM 1.20x faster, all of
      it from conv1 (one input channel): GEMM conv1 + XLA conv2 took 14.9 (13.1). With its 16
      cores: 7.5 vs 7.6, the GEMM-conv1 mix 6.1.
    - the H100 GPU (jax 0.11.2, launch-bound at this size): 0.13 vs 0.23.

    So the GEMM lowering wins on an idle CPU but loses on the loaded one this project runs on,
    where the KH*KW-fold patch array meets contended memory bandwidth; ``impl='gemm'`` stays
    available for machines where it wins.

    Attributes:
      features: output channels F.
      kernel_size: ``k`` or ``(kh, kw)`` (1 for a 1x1 convolution).
      stride: ``s`` or ``(sh, sw)``.
      padding: ``'same'``, ``'valid'``, ``'full'``, int, ``(ph, pw)`` or
        ``((top, bottom), (left, right))``.
      use_bias: add a learned bias per output channel.
      impl: ``'auto'``, ``'gemm'``, ``'xla'`` or ``'native'`` (oneDNN; CPU float32 only,
        a one-line ValueError at the call elsewhere or when the library is unavailable).
      kernel_init: initializer of the kernel (LeCun normal: fan-in KH*KW*C/G).
      dilation: ``d`` or ``(dh, dw)``: taps d apart.
      groups: feature groups G (``groups = C = F``: depthwise).
      flip: true convolution (kernel flipped) instead of cross-correlation.
      param_dtype: dtype of kernel and bias.

    Raises:
      ValueError: at construction for bad options; at the call for channels and for a map
        the layer would shrink below 1x1 (one line naming the module path and the sizes).

    Example:
      >>> layer = Conv2D(features=6, kernel_size=5, padding="same")
      >>> variables = layer.init(jax.random.key(0), jnp.ones((2, 28, 28, 1)))
      >>> y = layer.apply(variables, jnp.ones((2, 28, 28, 1)))
      >>> variables["params"]["kernel"].shape, y.shape
      ((5, 5, 1, 6), (2, 28, 28, 6))
    """

    ndim: ClassVar[int] = 2


class Conv1D(_Conv):
    """A 1-D convolution (time-delay) layer owning a kernel ``[K, C/G, F]`` and a bias ``[F]``.

    y[b, t, f] = b_f + sum_{a, c} x_pad[b, s t + d a, c] W[a, c, f]  on ``[B, T, C] -> [B, OT, F]``

    Same attributes as :class:`Conv2D` for one axis (see :func:`conv1d`).

    Example:
      >>> layer = Conv1D(features=4, kernel_size=3, padding="same", dilation=2)
      >>> variables = layer.init(jax.random.key(0), jnp.ones((2, 9, 5)))
      >>> variables["params"]["kernel"].shape, layer.apply(variables, jnp.ones((2, 9, 5))).shape
      ((3, 5, 4), (2, 9, 4))
    """

    ndim: ClassVar[int] = 1
