"""Max and average pooling over windows of ``[N, H, W, C]`` (2-D) or ``[N, T, C]`` (1-D).

With window k, stride s (default k) and padding (lo, hi) per axis (any spec of
:mod:`dlcore.layers.geometry`; each side < k, so every window holds at least one input):

    max:  y[n, i, j, c] = max_{a, b} x_pad[n, sh i + a, sw j + b, c],   padding = -inf
    avg:  y[n, i, j, c] = (1 / count_ij) sum_{a, b} x_pad[n, sh i + a, sw j + b, c],  padding = 0

with count_ij = kh kw (``count_include_pad=True``, PyTorch's default) or the number of real
inputs in the window (False). Gradient routing, as the lectures derive it by hand
(``benchmarks.numpy_ref.conv``): average pooling sends dy_ij / count_ij to every real input of
window ij; max pooling is ``lax.reduce_window(max)``, which JAX differentiates with XLA's
select-and-scatter (or, on CPU float32, oneDNN's kernel, which routes the same way): all of
dy_ij goes to one arg-max of window ij, on ties the first maximum in row-major window order
(not split). As padding is -inf and every window holds an input, no
gradient is lost to padding. The global pools reduce all spatial axes at once
(``[N, ..., C] -> [N, C]``); ``global_max_pool`` is ``jnp.max``, whose gradient is split
equally among tied maxima.
"""

from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from dlcore import native
from dlcore.checks import check_rank
from dlcore.layers.geometry import (
    PaddingLike,
    Pads,
    check_fits,
    check_padding,
    layer_name,
    per_axis,
    resolve_pads,
    window_out,
)
from dlcore.native.pool import max_pool_native

IntOrPair = int | Sequence[int]
LAYOUTS = {1: "[N, T, C]", 2: "[N, H, W, C]"}


def pool_geometry(
    x: jax.Array, ndim: int, size: IntOrPair, stride: IntOrPair | None, padding, name: str
) -> tuple[tuple, tuple, Pads]:
    """``(window, strides, pads)`` per spatial axis after every check, for ``ndim`` axes."""
    check_rank(x, ndim + 2, f"{name} input", LAYOUTS[ndim])
    window = per_axis(size, ndim, f"{name} size")
    strides = window if stride is None else per_axis(stride, ndim, f"{name} stride")
    check_padding(padding, ndim, what=name)
    pads = resolve_pads(padding, x.shape[1:-1], window, strides)
    for k, (lo, hi) in zip(window, pads, strict=True):
        if max(lo, hi) >= k:
            raise ValueError(
                f"{name}: padding {padding!r} must be smaller than the {k}-wide window on each "
                "side (a window of padding alone has no input)"
            )
    size_in = x.shape[1:-1]
    out = [window_out(*a) for a in zip(size_in, window, strides, pads, strict=True)]
    check_fits(name, "window", size_in, out, window, strides, padding, pads)
    return window, strides, pads


def _reduce(x: jax.Array, init: float, op, window, strides, pads) -> jax.Array:
    return lax.reduce_window(
        x,
        init,  # a Python scalar: JAX then picks the differentiable max/add window reducers
        op,
        (1, *window, 1),
        (1, *strides, 1),
        ((0, 0), *pads, (0, 0)),
    )


def _window_counts(size, window, strides, pads) -> np.ndarray:
    """Real (unpadded) inputs per window, ``[O_1, ..., O_ndim]``, computed at trace time."""
    counts = np.ones((), np.int64)
    for n, k, s, (lo, hi) in zip(size, window, strides, pads, strict=True):
        real = np.pad(np.ones(n, np.int64), (lo, hi))
        starts = range(0, len(real) - k + 1, s)
        counts = np.multiply.outer(counts, np.array([real[i : i + k].sum() for i in starts]))
    return counts


def max_pool(
    x_NxHxWxC: jax.Array,
    size: IntOrPair = 2,
    stride: IntOrPair | None = None,
    padding: PaddingLike = 0,
    *,
    name: str = "max_pool",
) -> jax.Array:
    """Max over windows (module docstring), padding with -inf.

    On the CPU in float32, when :func:`dlcore.native.auto_native` allows, oneDNN's kernel runs
    it (:mod:`dlcore.native.pool`; same values, same gradient routing). XLA's reduce_window +
    select_and_scatter took ~13 of ~30 ms of a native-conv LeNet-5 step (B = 128, 2 shared
    cores, one interleaved run); with the native pool the step took ~17 ms.

    Args:
      x_NxHxWxC: input ``[N, H, W, C]``.
      size: window ``k`` or ``(kh, kw)``.
      stride: ``s`` or ``(sh, sw)``; defaults to ``size`` (non-overlapping windows).
      padding: int, pair, per-side pairs, ``'same'``, ``'valid'`` or ``'full'``.
      name: the layer named in size errors.

    Returns:
      ``[N, OH, OW, C]``, OH = (H + top + bottom - kh) // sh + 1, likewise OW.

    Example:
      >>> x = jnp.arange(16.0).reshape(1, 4, 4, 1)
      >>> max_pool(x)[0, :, :, 0].tolist(), max_pool(x, 3, 2, padding=1)[0, :, :, 0].tolist()
      ([[5.0, 7.0], [13.0, 15.0]], [[5.0, 7.0], [13.0, 15.0]])
    """
    geometry = pool_geometry(x_NxHxWxC, 2, size, stride, padding, name)
    if native.auto_native(x_NxHxWxC):  # oneDNN on CPU float32: same values and gradients
        native.record("max_pool")
        return max_pool_native(x_NxHxWxC, *geometry)
    return _reduce(x_NxHxWxC, -jnp.inf, lax.max, *geometry)


def avg_pool(
    x_NxHxWxC: jax.Array,
    size: IntOrPair = 2,
    stride: IntOrPair | None = None,
    padding: PaddingLike = 0,
    count_include_pad: bool = True,
    *,
    name: str = "avg_pool",
) -> jax.Array:
    """Mean over windows (module docstring); padding counts as zeros unless excluded.

    Args:
      x_NxHxWxC, size, stride, padding, name: as for :func:`max_pool`.
      count_include_pad: divide by kh*kw (True) or by the real inputs in the window (False).

    Example:
      >>> x = jnp.arange(16.0).reshape(1, 4, 4, 1)
      >>> avg_pool(x)[0, :, :, 0].tolist()
      [[2.5, 4.5], [10.5, 12.5]]
      >>> avg_pool(jnp.ones((1, 2, 2, 1)), 2, 1, padding=1, count_include_pad=False).sum()
      Array(9., dtype=float32)
    """
    return _avg(x_NxHxWxC, 2, size, stride, padding, count_include_pad, name)


def _avg(x, ndim, size, stride, padding, count_include_pad, name) -> jax.Array:
    window, strides, pads = pool_geometry(x, ndim, size, stride, padding, name)
    summed = _reduce(x, 0.0, lax.add, window, strides, pads)
    if count_include_pad:
        return summed / int(np.prod(window))
    counts = _window_counts(x.shape[1:-1], window, strides, pads)
    return summed / jnp.asarray(counts, summed.dtype)[None, ..., None]


def max_pool1d(
    x_NxTxC: jax.Array,
    size: int = 2,
    stride: int | None = None,
    padding: PaddingLike = 0,
    *,
    name: str = "max_pool1d",
) -> jax.Array:
    """:func:`max_pool` over time: ``y[n, t, c] = max_a x_pad[n, s t + a, c]``.

    Example:
      >>> max_pool1d(jnp.array([1.0, 3.0, 2.0, 0.0, 5.0]).reshape(1, 5, 1), 2, 2, 1)[0, :, 0]
      Array([1., 3., 5.], dtype=float32)
    """
    geometry = pool_geometry(x_NxTxC, 1, size, stride, padding, name)
    return _reduce(x_NxTxC, -jnp.inf, lax.max, *geometry)


def avg_pool1d(
    x_NxTxC: jax.Array,
    size: int = 2,
    stride: int | None = None,
    padding: PaddingLike = 0,
    count_include_pad: bool = True,
    *,
    name: str = "avg_pool1d",
) -> jax.Array:
    """:func:`avg_pool` over time: ``y[n, t, c] = (1 / count_t) sum_a x_pad[n, s t + a, c]``.

    Example:
      >>> avg_pool1d(jnp.arange(4.0).reshape(1, 4, 1))[0, :, 0]
      Array([0.5, 2.5], dtype=float32)
    """
    return _avg(x_NxTxC, 1, size, stride, padding, count_include_pad, name)


def global_avg_pool(x_NxHxWxC: jax.Array) -> jax.Array:
    """Mean over every spatial axis: ``[N, ..., C] -> [N, C]``; each input gets dy / (H W)."""
    check_rank_at_least(x_NxHxWxC, "global_avg_pool")
    return jnp.mean(x_NxHxWxC, axis=tuple(range(1, x_NxHxWxC.ndim - 1)))


def global_max_pool(x_NxHxWxC: jax.Array) -> jax.Array:
    """Max over every spatial axis: ``[N, ..., C] -> [N, C]`` (max-over-time for ``[N, T, C]``).

    Example:
      >>> global_max_pool(jnp.arange(8.0).reshape(1, 2, 2, 2)).tolist()
      [[6.0, 7.0]]
    """
    check_rank_at_least(x_NxHxWxC, "global_max_pool")
    return jnp.max(x_NxHxWxC, axis=tuple(range(1, x_NxHxWxC.ndim - 1)))


def check_rank_at_least(x: jax.Array, name: str) -> None:
    if x.ndim < 3:
        raise ValueError(f"{name} input must be [N, ..., C] (rank >= 3); got {tuple(x.shape)}")


class _Pool(nn.Module):
    """Window pooling as a module (no parameters); errors name the module path."""

    size: IntOrPair = 2
    stride: IntOrPair | None = None
    padding: PaddingLike = 0

    def __post_init__(self):
        check_padding(self.padding, what="pool")
        super().__post_init__()


class MaxPool(_Pool):
    """:func:`max_pool` as a module: ``[B, H, W, C] -> [B, OH, OW, C]``.

    Example:
      >>> MaxPool(3, 2, padding=1).apply({}, jnp.ones((1, 8, 8, 2))).shape
      (1, 4, 4, 2)
    """

    def __call__(self, x_BxHxWxC: jax.Array, *, train: bool = False) -> jax.Array:
        del train
        return max_pool(x_BxHxWxC, self.size, self.stride, self.padding, name=layer_name(self))


class AvgPool(_Pool):
    """:func:`avg_pool` as a module: ``[B, H, W, C] -> [B, OH, OW, C]``.

    Example:
      >>> AvgPool(2).apply({}, jnp.ones((1, 8, 8, 2))).shape
      (1, 4, 4, 2)
    """

    count_include_pad: bool = True

    def __call__(self, x_BxHxWxC: jax.Array, *, train: bool = False) -> jax.Array:
        del train
        return avg_pool(
            x_BxHxWxC,
            self.size,
            self.stride,
            self.padding,
            self.count_include_pad,
            name=layer_name(self),
        )


class MaxPool1D(_Pool):
    """:func:`max_pool1d` as a module: ``[B, T, C] -> [B, OT, C]``."""

    def __call__(self, x_BxTxC: jax.Array, *, train: bool = False) -> jax.Array:
        del train
        return max_pool1d(x_BxTxC, self.size, self.stride, self.padding, name=layer_name(self))


class AvgPool1D(_Pool):
    """:func:`avg_pool1d` as a module: ``[B, T, C] -> [B, OT, C]``."""

    count_include_pad: bool = True

    def __call__(self, x_BxTxC: jax.Array, *, train: bool = False) -> jax.Array:
        del train
        return avg_pool1d(
            x_BxTxC,
            self.size,
            self.stride,
            self.padding,
            self.count_include_pad,
            name=layer_name(self),
        )


class GlobalAvgPool(nn.Module):
    """:func:`global_avg_pool` as a module: ``[B, ..., C] -> [B, C]``."""

    def __call__(self, x: jax.Array, *, train: bool = False) -> jax.Array:
        del train
        return global_avg_pool(x)


class GlobalMaxPool(nn.Module):
    """:func:`global_max_pool` as a module: ``[B, ..., C] -> [B, C]``."""

    def __call__(self, x: jax.Array, *, train: bool = False) -> jax.Array:
        del train
        return global_max_pool(x)
