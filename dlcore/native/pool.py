"""oneDNN's 2-D max pooling as a differentiable jax function (``csrc/pool.cc``, XLA's FFI).

    y[n, i, j, c] = max_{a, b} x_pad[n, sh i + a, sw j + b, c]   (padding = -inf)

Its :func:`jax.custom_vjp` sends all of dy_ij to the first arg-max of window ij in row-major
window order, like XLA's select-and-scatter (:mod:`dlcore.layers.pooling`). On LeNet-5's step
XLA's max pooling forward and backward took about as long as the rest of the step (figures in
:func:`dlcore.layers.pooling.max_pool`), hence this kernel. Batching as in
:mod:`dlcore.native.conv` (``vmap_method="broadcast_all"``).
"""

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from dlcore.native import loader

TARGETS = ("dlcore_max_pool_fwd", "dlcore_max_pool_bwd")


def _attrs(geom) -> dict:
    (kh, kw), (sh, sw), ((pt, pb), (pl, pr)) = geom
    values = {
        "window_h": kh,
        "window_w": kw,
        "stride_h": sh,
        "stride_w": sw,
        "pad_top": pt,
        "pad_bottom": pb,
        "pad_left": pl,
        "pad_right": pr,
    }
    return {k: np.int64(v) for k, v in values.items()}


def _forward(geom, x):
    (kh, kw), (sh, sw), ((pt, pb), (pl, pr)) = geom
    n, h, w, c = x.shape
    out = jax.ShapeDtypeStruct(
        (n, (h + pt + pb - kh) // sh + 1, (w + pl + pr - kw) // sw + 1, c), jnp.float32
    )
    return jax.ffi.ffi_call(TARGETS[0], out, vmap_method="broadcast_all")(x, **_attrs(geom))


@partial(jax.custom_vjp, nondiff_argnums=(0,))
def _max_pool(geom, x):
    return _forward(geom, x)


def _max_pool_fwd(geom, x):
    return _forward(geom, x), x


def _max_pool_bwd(geom, x, dy):
    out = jax.ShapeDtypeStruct(x.shape, jnp.float32)
    call = jax.ffi.ffi_call(TARGETS[1], out, vmap_method="broadcast_all")
    return (call(x, dy, **_attrs(geom)),)


_max_pool.defvjp(_max_pool_fwd, _max_pool_bwd)


def max_pool_native(x_NxHxWxC: jax.Array, window, strides, pads) -> jax.Array:
    """oneDNN max pooling of float32 ``[N, H, W, C]`` with explicit ``((t, b), (l, r))`` pads.

    Example:
      >>> from dlcore import native
      >>> x = jnp.arange(16.0).reshape(1, 4, 4, 1)
      >>> pool = partial(max_pool_native, window=(2, 2), strides=(2, 2), pads=((0, 0), (0, 0)))
      >>> y = pool(x) if native.available() else x[:, 1::2, 1::2]
      >>> y[0, :, :, 0].tolist()
      [[5.0, 7.0], [13.0, 15.0]]
    """
    loader.ensure_targets(TARGETS)
    geom = (
        tuple(int(k) for k in window),
        tuple(int(s) for s in strides),
        tuple((int(lo), int(hi)) for lo, hi in pads),
    )
    return _max_pool(geom, x_NxHxWxC)
