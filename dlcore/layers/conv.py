"""2-D convolution (NHWC, HWIO) with two lowerings: XLA's convolution, or patches + one GEMM.

Both compute the same cross-correlation; they differ only in which XLA ops run it. The GEMM
lowering lays the input patches out as rows (im2col) and calls one matrix product, the way the
lectures and ``benchmarks.numpy_ref.conv`` do it; it materializes KH*KW times the input. Which
one is faster depends on the machine and its load (measurements in :class:`Conv2D`), so
``impl='auto'`` reads a small per-backend table, :data:`AUTO_LOWERING`.
"""

from collections.abc import Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax

from dlcore.checks import check_choice, check_rank

Pads = tuple[tuple[int, int], tuple[int, int]]  # ((top, bottom), (left, right))
PADDINGS = ("same", "valid", "full")


def check_padding(padding: str | int) -> None:
    """Raises a one-line ValueError unless ``padding`` is a known name or a non-negative int."""
    if isinstance(padding, bool) or not (
        (isinstance(padding, int) and padding >= 0) or padding in PADDINGS
    ):
        raise ValueError(
            f"conv padding must be 'same', 'valid', 'full' or an int >= 0; got {padding!r}"
        )


def conv_pads(
    padding: str | int, size_HxW: tuple[int, int], kernel_HxW: tuple[int, int], stride: int
) -> Pads:
    """Zero padding per spatial side.

    ``'valid'`` pads nothing; ``'same'`` pads so that out = ceil(in / stride), the extra pixel
    (if odd) at the bottom/right as in XLA and TensorFlow; ``'full'`` pads ``k - 1`` per side;
    an int pads that much on every side.
    """
    check_padding(padding)
    pads = []
    for size, k in zip(size_HxW, kernel_HxW, strict=True):
        if padding == "valid":
            pads.append((0, 0))
        elif padding == "full":
            pads.append((k - 1, k - 1))
        elif padding == "same":
            out = -(-size // stride)
            total = max((out - 1) * stride + k - size, 0)
            pads.append((total // 2, total - total // 2))
        else:
            pads.append((padding, padding))
    return tuple(pads)


def conv2d_xla(x_NxHxWxC: jax.Array, w_KxKxCxF: jax.Array, stride: int, pads: Pads) -> jax.Array:
    """Cross-correlation by ``lax.conv_general_dilated`` (no bias)."""
    return lax.conv_general_dilated(
        x_NxHxWxC,
        w_KxKxCxF,
        window_strides=(stride, stride),
        padding=pads,
        dimension_numbers=("NHWC", "HWIO", "NHWC"),
    )


def patches(
    x_NxHxWxC: jax.Array, kernel_HxW: tuple[int, int], stride: int, pads: Pads
) -> jax.Array:
    """im2col by strided slices: ``[N, OH, OW, KH*KW*C]``, features ordered (kh, kw, c).

    One strided slice per kernel offset (KH*KW of them); their adjoints are pads that XLA fuses
    into a single sum, so the backward pass is as cheap as the forward one.
    """
    kh, kw = kernel_HxW
    xp = jnp.pad(x_NxHxWxC, ((0, 0), *pads, (0, 0)))
    oh = (xp.shape[1] - kh) // stride + 1
    ow = (xp.shape[2] - kw) // stride + 1
    cols = [
        xp[:, i : i + stride * (oh - 1) + 1 : stride, j : j + stride * (ow - 1) + 1 : stride, :]
        for i in range(kh)
        for j in range(kw)
    ]  # KH*KW arrays of [N, OH, OW, C]
    n, c = x_NxHxWxC.shape[0], x_NxHxWxC.shape[3]
    return jnp.stack(cols, axis=3).reshape(n, oh, ow, kh * kw * c)


def conv2d_gemm(x_NxHxWxC: jax.Array, w_KxKxCxF: jax.Array, stride: int, pads: Pads) -> jax.Array:
    """Cross-correlation as patches ``[N*OH*OW, KH*KW*C]`` times ``W [KH*KW*C, F]`` (no bias)."""
    kh, kw, c, f = w_KxKxCxF.shape
    cols_NxOHxOWxP = patches(x_NxHxWxC, (kh, kw), stride, pads)
    return cols_NxOHxOWxP @ w_KxKxCxF.reshape(kh * kw * c, f)


LOWERINGS: dict[str, Callable[[jax.Array, jax.Array, int, Pads], jax.Array]] = {
    "gemm": conv2d_gemm,
    "xla": conv2d_xla,
}
CONV_IMPLS = ("auto", *LOWERINGS)
# What impl='auto' picks per jax backend, from the LeNet-5 measurements in Conv2D's docstring:
# on this project's shared 2-core CPU XLA's convolution won every run; other backends default
# to XLA's convolution (cuDNN on GPU), which does not materialize the KH*KW-fold patches.
AUTO_LOWERING: dict[str, str] = {"cpu": "xla", "gpu": "xla", "cuda": "xla"}


def resolve_impl(impl: str) -> str:
    """``'auto'`` -> :data:`AUTO_LOWERING` for ``jax.default_backend()`` (else ``'xla'``)."""
    check_choice(impl, CONV_IMPLS, "conv impl")
    if impl != "auto":
        return impl
    return AUTO_LOWERING.get(jax.default_backend(), "xla")


def conv2d(
    x_NxHxWxC: jax.Array,
    w_KxKxCxF: jax.Array,
    b_F: jax.Array | None = None,
    *,
    stride: int = 1,
    padding: str | int = "valid",
    impl: str = "auto",
) -> jax.Array:
    """2-D cross-correlation, the "convolution" of deep learning.

    y[n, i, j, f] = b_f + sum_{a, b, c} x_pad[n, s*i + a, s*j + b, c] W[a, b, c, f]

    Args:
      x_NxHxWxC: input images ``[N, H, W, C]``.
      w_KxKxCxF: kernel ``[KH, KW, C, F]``.
      b_F: optional bias ``[F]``.
      stride: step between windows in both spatial dimensions.
      padding: ``'same'``, ``'valid'``, ``'full'`` or an int (see :func:`conv_pads`).
      impl: ``'gemm'``, ``'xla'`` or ``'auto'`` (see :func:`resolve_impl`).

    Returns:
      ``[N, OH, OW, F]`` with OH = (H + pad_top + pad_bottom - KH) // stride + 1, likewise OW.

    Raises:
      ValueError: on a bad padding or impl name, mismatched channels, or a kernel larger than
        the padded input.

    Example:
      >>> y = conv2d(jnp.ones((1, 5, 5, 1)), jnp.ones((3, 3, 1, 2)), padding="same")
      >>> y.shape, float(y[0, 2, 2, 0]), float(y[0, 0, 0, 0])
      ((1, 5, 5, 2), 9.0, 4.0)
    """
    check_rank(x_NxHxWxC, 4, "conv input", "[N, H, W, C]")
    check_rank(w_KxKxCxF, 4, "conv kernel", "[KH, KW, C, F]")
    lowering = LOWERINGS[resolve_impl(impl)]
    if not isinstance(stride, int) or stride < 1:
        raise ValueError(f"conv stride must be an int >= 1; got {stride!r}")
    kh, kw, c, f = w_KxKxCxF.shape
    if x_NxHxWxC.shape[3] != c:
        raise ValueError(
            f"conv input has {x_NxHxWxC.shape[3]} channels but the kernel expects {c}; "
            f"got input {tuple(x_NxHxWxC.shape)} and kernel {tuple(w_KxKxCxF.shape)}"
        )
    pads = conv_pads(padding, x_NxHxWxC.shape[1:3], (kh, kw), stride)
    padded = [s + lo + hi for s, (lo, hi) in zip(x_NxHxWxC.shape[1:3], pads, strict=True)]
    if padded[0] < kh or padded[1] < kw:
        raise ValueError(
            f"conv kernel {kh}x{kw} is larger than the padded input {padded[0]}x{padded[1]} "
            f"(input {tuple(x_NxHxWxC.shape)}, padding {padding!r}); use padding='same' or a "
            "larger image"
        )
    y_NxOHxOWxF = lowering(x_NxHxWxC, w_KxKxCxF, stride, pads)
    if b_F is not None:
        y_NxOHxOWxF = y_NxOHxOWxF + b_F[None, None, None, :]
    return y_NxOHxOWxF


class Conv2D(nn.Module):
    """A 2-D convolution layer owning a kernel ``[KH, KW, C, F]`` and a bias ``[F]``.

    y = conv2d(x, W) + b  (see :func:`conv2d` for the equation and the lowerings).

    ``impl='auto'`` picks XLA's convolution on CPU and GPU (:data:`AUTO_LOWERING`). LeNet-5,
    B = 128, float32, median (min) ms, GEMM lowering vs XLA convolution for both conv layers:

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
      kernel_size: ``k`` or ``(kh, kw)``.
      stride: step between windows.
      padding: ``'same'``, ``'valid'``, ``'full'`` or an int.
      use_bias: add a learned bias per output channel.
      impl: ``'auto'``, ``'gemm'`` or ``'xla'``.
      kernel_init: initializer of the kernel (He/LeCun style fan-in scaling by default).

    Example:
      >>> layer = Conv2D(features=6, kernel_size=5, padding="same")
      >>> variables = layer.init(jax.random.key(0), jnp.ones((2, 28, 28, 1)))
      >>> y = layer.apply(variables, jnp.ones((2, 28, 28, 1)))
      >>> variables["params"]["kernel"].shape, y.shape
      ((5, 5, 1, 6), (2, 28, 28, 6))
    """

    features: int
    kernel_size: int | Sequence[int]
    stride: int = 1
    padding: str | int = "valid"
    use_bias: bool = True
    impl: str = "auto"
    kernel_init: Callable = nn.initializers.lecun_normal()

    def __post_init__(self):
        # Fail at construction, with the config still in view, rather than at the first call.
        check_padding(self.padding)
        check_choice(self.impl, CONV_IMPLS, "conv impl")
        super().__post_init__()

    @nn.compact
    def __call__(self, x_NxHxWxC: jax.Array) -> jax.Array:
        check_rank(x_NxHxWxC, 4, "Conv2D input", "[N, H, W, C]")
        ks = self.kernel_size
        kh, kw = (ks, ks) if isinstance(ks, int) else tuple(ks)
        c = x_NxHxWxC.shape[-1]
        kernel = self.param("kernel", self.kernel_init, (kh, kw, c, self.features))
        bias = (
            self.param("bias", nn.initializers.zeros, (self.features,)) if self.use_bias else None
        )
        return conv2d(
            x_NxHxWxC, kernel, bias, stride=self.stride, padding=self.padding, impl=self.impl
        )
