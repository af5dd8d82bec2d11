"""Max- and average-pooling over spatial windows of NHWC arrays (pure functions, no weights).

Max-pooling is ``lax.reduce_window`` with ``max``; JAX differentiates it with
select-and-scatter, so the gradient of every window goes to its arg-max input and nothing to
the others, the routing the lectures derive by hand (``benchmarks.numpy_ref.conv``).
"""

import jax
import jax.numpy as jnp
from jax import lax

from dlcore.checks import check_rank


def _window(x_NxHxWxC: jax.Array, size: int, stride: int | None, name: str) -> int:
    check_rank(x_NxHxWxC, 4, f"{name} input", "[N, H, W, C]")
    stride = size if stride is None else stride
    if not isinstance(size, int) or not isinstance(stride, int) or size < 1 or stride < 1:
        raise ValueError(f"{name} size and stride must be ints >= 1; got {size!r}, {stride!r}")
    h, w = x_NxHxWxC.shape[1:3]
    if h < size or w < size:
        raise ValueError(
            f"{name} window {size}x{size} is larger than the input {h}x{w} "
            f"(shape {tuple(x_NxHxWxC.shape)})"
        )
    return stride


def max_pool(x_NxHxWxC: jax.Array, size: int = 2, stride: int | None = None) -> jax.Array:
    """Max over ``size x size`` windows, no padding.

    y[n, i, j, c] = max_{0 <= a, b < size} x[n, s*i + a, s*j + b, c],   s = stride (default size)

    Args:
      x_NxHxWxC: input ``[N, H, W, C]``.
      size: window side.
      stride: step between windows; defaults to ``size`` (non-overlapping windows).

    Returns:
      ``[N, (H - size) // s + 1, (W - size) // s + 1, C]``.

    Example:
      >>> x = jnp.arange(16.0).reshape(1, 4, 4, 1)
      >>> max_pool(x)[0, :, :, 0].tolist()
      [[5.0, 7.0], [13.0, 15.0]]
    """
    stride = _window(x_NxHxWxC, size, stride, "max_pool")
    return lax.reduce_window(
        x_NxHxWxC, -jnp.inf, lax.max, (1, size, size, 1), (1, stride, stride, 1), "VALID"
    )


def avg_pool(x_NxHxWxC: jax.Array, size: int = 2, stride: int | None = None) -> jax.Array:
    """Mean over ``size x size`` windows, no padding; each input gets 1/size^2 of the gradient.

    y[n, i, j, c] = (1 / size^2) sum_{0 <= a, b < size} x[n, s*i + a, s*j + b, c]

    Example:
      >>> x = jnp.arange(16.0).reshape(1, 4, 4, 1)
      >>> avg_pool(x)[0, :, :, 0].tolist()
      [[2.5, 4.5], [10.5, 12.5]]
    """
    stride = _window(x_NxHxWxC, size, stride, "avg_pool")
    summed = lax.reduce_window(
        x_NxHxWxC, 0.0, lax.add, (1, size, size, 1), (1, stride, stride, 1), "VALID"
    )
    return summed / (size * size)
