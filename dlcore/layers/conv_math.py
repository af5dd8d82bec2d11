"""Convolution as pure functions (NHWC / NWC inputs, HWIO / WIO kernels) and its lowerings.

Every lowering computes the same cross-correlation; they differ only in what runs it: XLA's
convolution, patches + GEMM, or oneDNN's kernels behind XLA's FFI (``'native'``,
:mod:`dlcore.native.conv`, CPU float32 only).
The GEMM lowering lays the input patches out as rows (im2col) and calls one matrix product,
the way the lectures and ``benchmarks.numpy_ref.conv`` do it; it materializes KH*KW times the
input. Which one is faster depends on the machine and its load (measurements in
:class:`dlcore.layers.conv.Conv2D`), so ``impl='auto'`` takes the native kernels where
:func:`dlcore.native.auto_native` allows (CPU, float32, library built) and otherwise reads a
small per-backend table, :data:`AUTO_LOWERING`. Sizes and padding follow
:mod:`dlcore.layers.geometry`.
"""

from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
from jax import lax

from dlcore import native
from dlcore.checks import check_choice, check_positive_int, check_rank
from dlcore.engine.tracing import in_loop_body
from dlcore.layers.geometry import (
    PaddingLike,
    Pads,
    check_fits,
    per_axis,
    resolve_pads,
    window_out,
)
from dlcore.native.conv import check_native, conv2d_native

IntOrPair = int | Sequence[int]


def conv_pads(
    padding: PaddingLike,
    size_HxW: Sequence[int],
    kernel_HxW: Sequence[int],
    stride: IntOrPair,
    dilation: IntOrPair = 1,
) -> Pads:
    """Zero padding ``(lo, hi)`` per spatial axis (rules in :mod:`dlcore.layers.geometry`).

    Example:
      >>> conv_pads("same", (7, 8), (3, 3), 2), conv_pads("full", (5,), (3,), 1, dilation=2)
      (((1, 1), (0, 1)), ((4, 4),))
    """
    ndim = len(size_HxW)
    stride = per_axis(stride, ndim, "conv stride")
    dilation = per_axis(dilation, ndim, "conv dilation")
    return resolve_pads(padding, size_HxW, kernel_HxW, stride, dilation)


def conv2d_xla(
    x_NxHxWxC: jax.Array,
    w_KxKxCxF: jax.Array,
    stride: IntOrPair,
    pads: Pads,
    dilation: Sequence[int] = (1, 1),
    groups: int = 1,
) -> jax.Array:
    """Cross-correlation by ``lax.conv_general_dilated`` (no bias)."""
    return lax.conv_general_dilated(
        x_NxHxWxC,
        w_KxKxCxF,
        window_strides=per_axis(stride, 2, "conv stride"),
        padding=pads,
        rhs_dilation=tuple(dilation),
        dimension_numbers=("NHWC", "HWIO", "NHWC"),
        feature_group_count=groups,
    )


def patches(
    x_NxHxWxC: jax.Array,
    kernel_HxW: Sequence[int],
    stride: IntOrPair,
    pads: Pads,
    dilation: Sequence[int] = (1, 1),
) -> jax.Array:
    """im2col by strided slices: ``[N, OH, OW, KH*KW*C]``, features ordered (kh, kw, c).

    One strided slice per kernel offset (KH*KW of them); their adjoints are pads that XLA fuses
    into a single sum, so the backward pass is as cheap as the forward one.
    """
    (kh, kw), (sh, sw), (dh, dw) = kernel_HxW, per_axis(stride, 2, "conv stride"), dilation
    xp = jnp.pad(x_NxHxWxC, ((0, 0), *pads, (0, 0)))
    oh = (xp.shape[1] - dh * (kh - 1) - 1) // sh + 1
    ow = (xp.shape[2] - dw * (kw - 1) - 1) // sw + 1
    cols = [
        xp[:, dh * i : dh * i + sh * (oh - 1) + 1 : sh, dw * j : dw * j + sw * (ow - 1) + 1 : sw]
        for i in range(kh)
        for j in range(kw)
    ]  # KH*KW arrays of [N, OH, OW, C]
    n, c = x_NxHxWxC.shape[0], x_NxHxWxC.shape[3]
    return jnp.stack(cols, axis=3).reshape(n, oh, ow, kh * kw * c)


def conv2d_gemm(
    x_NxHxWxC: jax.Array,
    w_KxKxCxF: jax.Array,
    stride: IntOrPair,
    pads: Pads,
    dilation: Sequence[int] = (1, 1),
    groups: int = 1,
) -> jax.Array:
    """Cross-correlation as patches ``[N*OH*OW, KH*KW*C]`` times ``W [KH*KW*C, F]`` (no bias).

    With G groups the product is batched over groups: group g maps its C/G input channels to
    output channels ``g F/G .. (g + 1) F/G - 1`` (XLA's ``feature_group_count`` layout).
    """
    kh, kw, cg, f = w_KxKxCxF.shape
    cols_NxOHxOWxP = patches(x_NxHxWxC, (kh, kw), stride, pads, dilation)
    if groups == 1:
        return cols_NxOHxOWxP @ w_KxKxCxF.reshape(kh * kw * cg, f)
    n, oh, ow, _ = cols_NxOHxOWxP.shape
    cols = cols_NxOHxOWxP.reshape(n, oh, ow, kh * kw, groups, cg)
    w_KKxCgxGxFg = w_KxKxCxF.reshape(kh * kw, cg, groups, f // groups)
    return jnp.einsum("nhwkgc,kcgf->nhwgf", cols, w_KKxCgxGxFg).reshape(n, oh, ow, f)


LOWERINGS: dict[str, Callable[..., jax.Array]] = {"gemm": conv2d_gemm, "xla": conv2d_xla}
# 'native' is not in LOWERINGS: it adds the bias itself and has no linear transpose.
CONV_IMPLS = ("auto", *LOWERINGS, "native")
# What impl='auto' picks per jax backend, from the LeNet-5 measurements in Conv2D's docstring:
# on this project's shared 2-core CPU XLA's convolution won every run; other backends default
# to XLA's convolution (cuDNN on GPU), which does not materialize the KH*KW-fold patches.
AUTO_LOWERING: dict[str, str] = {"cpu": "xla", "gpu": "xla", "cuda": "xla"}
# ... and inside a compiled loop (the engine's multi-step scan), where XLA:CPU's convolution
# is an order of magnitude slower than patches + GEMM (figures in dlcore.engine.tracing).
AUTO_LOWERING_IN_LOOP: dict[str, str] = {"cpu": "gemm", "gpu": "xla", "cuda": "xla"}


def resolve_impl(impl: str, *arrays: jax.Array) -> str:
    """``'auto'`` -> ``'native'`` when ``arrays`` are given and
    :func:`dlcore.native.auto_native` accepts them (CPU, all float32, library available), else
    the lowering :data:`AUTO_LOWERING` (or, while tracing a compiled loop's body,
    :data:`AUTO_LOWERING_IN_LOOP`) names for ``jax.default_backend()``, else ``'xla'``.
    Without ``arrays`` (the transposed convolution) ``'auto'`` never picks ``'native'``.

    Example:
      >>> from dlcore.engine.tracing import loop_body
      >>> with loop_body():
      ...     resolve_impl("auto") == AUTO_LOWERING_IN_LOOP.get(jax.default_backend(), "xla")
      True
    """
    check_choice(impl, CONV_IMPLS, "conv impl")
    if impl != "auto":
        return impl
    if arrays and native.auto_native(*arrays):
        return "native"
    table = AUTO_LOWERING_IN_LOOP if in_loop_body() else AUTO_LOWERING
    return table.get(jax.default_backend(), "xla")


def _check_channels(x: jax.Array, w: jax.Array, groups: int) -> None:
    check_positive_int(groups, "conv groups")
    c, f = w.shape[-2], w.shape[-1]
    per_group = f" ({c} per group x {groups} groups)" if groups > 1 else ""
    if x.shape[-1] != c * groups:
        raise ValueError(
            f"conv input has {x.shape[-1]} channels but the kernel expects {c * groups}"
            f"{per_group}; got input {tuple(x.shape)} and kernel {tuple(w.shape)}"
        )
    if f % groups:
        raise ValueError(f"conv features {f} must be a multiple of groups={groups}")


def conv_geometry(
    size: Sequence[int],
    kernel: Sequence[int],
    stride: IntOrPair,
    padding: PaddingLike,
    dilation: IntOrPair,
    name: str,
) -> tuple[tuple[int, ...], Pads, tuple[int, ...]]:
    """``(stride, pads, dilation)`` per spatial axis, after checking the output is >= 1."""
    ndim = len(size)
    stride = per_axis(stride, ndim, "conv stride")
    dilation = per_axis(dilation, ndim, "conv dilation")
    pads = resolve_pads(padding, size, kernel, stride, dilation)
    out = [window_out(*a) for a in zip(size, kernel, stride, pads, dilation, strict=True)]
    check_fits(name, "kernel", size, out, kernel, stride, padding, pads, dilation)
    return stride, pads, dilation


def conv_nd(
    x: jax.Array,
    w: jax.Array,
    b_F: jax.Array | None,
    *,
    stride: IntOrPair,
    padding: PaddingLike,
    dilation: IntOrPair,
    groups: int,
    flip: bool,
    impl: str,
    name: str,
) -> jax.Array:
    """:func:`conv2d` on ``[N, *S, C]`` with 1 or 2 spatial axes (1-D runs as H = 1)."""
    ndim = x.ndim - 2
    chosen = resolve_impl(impl, x, w, *([] if b_F is None else [b_F]))
    _check_channels(x, w, groups)
    stride, pads, dilation = conv_geometry(
        x.shape[1:-1], w.shape[:ndim], stride, padding, dilation, name
    )
    if flip:  # true convolution: correlate with the kernel reversed along every spatial axis
        w = jnp.flip(w, axis=tuple(range(ndim)))
    dtype = jnp.result_type(x, w)
    x, w = x.astype(dtype), w.astype(dtype)
    if ndim == 1:  # [N, T, C] as [N, 1, T, C]
        x, w = x[:, None], w[None]
        stride, dilation, pads = (1, *stride), (1, *dilation), ((0, 0), *pads)
    if chosen == "native":
        check_native(x, w, name)
        native.record("conv")
        bias = None if b_F is None else b_F.astype(dtype)
        y = conv2d_native(x, w, bias, stride, pads, dilation, groups)
        return y[:, 0] if ndim == 1 else y
    y = LOWERINGS[chosen](x, w, stride, pads, dilation, groups)
    if ndim == 1:
        y = y[:, 0]
    if b_F is not None:
        y = y + b_F.astype(dtype).reshape((1,) * (y.ndim - 1) + (-1,))
    return y


def conv2d(
    x_NxHxWxC: jax.Array,
    w_KxKxCxF: jax.Array,
    b_F: jax.Array | None = None,
    *,
    stride: IntOrPair = 1,
    padding: PaddingLike = "valid",
    dilation: IntOrPair = 1,
    groups: int = 1,
    flip: bool = False,
    impl: str = "auto",
    name: str = "conv",
) -> jax.Array:
    """2-D cross-correlation, the "convolution" of deep learning (or a true one with ``flip``).

    y[n, i, j, f] = b_f + sum_{a, b, c} x_pad[n, sh i + dh a, sw j + dw b, g C/G + c] W[a, b, c, f]

    for output channel f in group g = f // (F/G), c < C/G. ``flip=True`` uses
    W[KH-1-a, KW-1-b, c, f] instead: the true convolution of the Toronto deck ("flip rows and
    columns of the kernel"), which with ``padding='full'`` and stride 1 is exactly
    ``scipy.signal.convolve(x, W, 'full')``.

    Args:
      x_NxHxWxC: input images ``[N, H, W, C]``.
      w_KxKxCxF: kernel ``[KH, KW, C/G, F]``.
      b_F: optional bias ``[F]``.
      stride: ``s`` or ``(sh, sw)``.
      padding: ``'same'``, ``'valid'``, ``'full'``, int, ``(ph, pw)`` or
        ``((top, bottom), (left, right))`` (see :mod:`dlcore.layers.geometry`).
      dilation: kernel dilation ``d`` or ``(dh, dw)`` (a 3x3 kernel with d = 2 spans 5x5).
      groups: feature groups G (G = C: depthwise); C and F must be multiples of G.
      flip: true convolution instead of cross-correlation.
      impl: ``'gemm'``, ``'xla'``, ``'native'`` (oneDNN, CPU float32) or ``'auto'`` (see
        :func:`resolve_impl`).
      name: the layer named in size errors.

    Returns:
      ``[N, OH, OW, F]`` with OH = (H + top + bottom - dh (KH - 1) - 1) // sh + 1, likewise OW.

    Raises:
      ValueError: on a bad padding, stride or impl, mismatched channels or groups, a
        kernel larger than the padded input (one line naming ``name`` and the sizes), or
        ``impl='native'`` where it cannot run (no library, not the CPU, not float32).

    Example:
      >>> y = conv2d(jnp.ones((1, 5, 5, 1)), jnp.ones((3, 3, 1, 2)), padding="same")
      >>> y.shape, float(y[0, 2, 2, 0]), float(y[0, 0, 0, 0])
      ((1, 5, 5, 2), 9.0, 4.0)
    """
    check_rank(x_NxHxWxC, 4, "conv input", "[N, H, W, C]")
    check_rank(w_KxKxCxF, 4, "conv kernel", "[KH, KW, C, F]")
    return conv_nd(
        x_NxHxWxC,
        w_KxKxCxF,
        b_F,
        stride=stride,
        padding=padding,
        dilation=dilation,
        groups=groups,
        flip=flip,
        impl=impl,
        name=name,
    )


def conv1d(
    x_NxTxC: jax.Array,
    w_KxCxF: jax.Array,
    b_F: jax.Array | None = None,
    *,
    stride: int = 1,
    padding: PaddingLike = "valid",
    dilation: int = 1,
    groups: int = 1,
    flip: bool = False,
    impl: str = "auto",
    name: str = "conv1d",
) -> jax.Array:
    """1-D cross-correlation over time (a time-delay layer), or a true convolution with ``flip``.

    y[n, t, f] = b_f + sum_{a, c} x_pad[n, s t + d a, g C/G + c] W[a, c, f]

    Same options as :func:`conv2d` for one axis; ``padding`` may also be a bare ``(lo, hi)``.

    Returns:
      ``[N, OT, F]`` with OT = (T + lo + hi - d (K - 1) - 1) // s + 1.

    Example:
      >>> conv1d(jnp.arange(5.0).reshape(1, 5, 1), jnp.ones((2, 1, 1)))[0, :, 0].tolist()
      [1.0, 3.0, 5.0, 7.0]
    """
    check_rank(x_NxTxC, 3, "conv1d input", "[N, T, C]")
    check_rank(w_KxCxF, 3, "conv1d kernel", "[K, C, F]")
    return conv_nd(
        x_NxTxC,
        w_KxCxF,
        b_F,
        stride=stride,
        padding=padding,
        dilation=dilation,
        groups=groups,
        flip=flip,
        impl=impl,
        name=name,
    )
