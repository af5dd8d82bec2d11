"""oneDNN's convolution as a differentiable jax function (``csrc/conv.cc`` behind XLA's FFI).

:func:`conv2d_native` computes the same cross-correlation as
:func:`dlcore.layers.conv_math.conv2d_xla`, plus the bias, on ``[N, H, W, C]`` inputs with a
``[KH, KW, C/G, F]`` kernel:

    y[n, i, j, f] = b_f + sum_{a, b, c} x_pad[n, sh i + dh a, sw j + dw b, g C/G + c] W[a, b, c, f]

and its :func:`jax.custom_vjp` runs oneDNN's backward kernels,

    dx = conv_backward_data(dy, W),   dW = conv_backward_weights(x, dy),   db_f = sum dy[..., f].

Under ``vmap`` the FFI calls use ``vmap_method="broadcast_all"``: every operand gets the
vmapped axes in front and the kernel runs one convolution per vmapped index with the same
cached primitive, so population training (params and data both vmapped) costs P plain calls
and no XLA loop. Works under ``jit``, ``grad``, ``vmap`` and inside ``lax.scan``.

Layouts (``DLCORE_NATIVE_CONV_LAYOUT``, read once per process): activations stay NHWC and only
the kernel is reordered into the layout oneDNN prefers (``weights``, the default). Binding the
kernel to HWIO too (``plain``) makes oneDNN fall back to im2col + GEMM for both backward
passes; letting it pick every layout (``any``) adds activation reorders around each call.
LeNet-5, B = 128, whole Adam step, 1 oneDNN thread, this project's 2 shared cores (load 6-7),
median ms (torch eager in the same run): plain 34.3 (39.1); weights 14.2 (25.1), 20.6 (25.3),
19.6 (26.6); any 25.6 (27.1), 23.5 (25.5), 23.3 (25.8) (the candidates of
``benchmarks/suite_cnn.py``, interleaved, 7 samples of 10 steps; one process per layout).

Example:
  >>> import jax.numpy as jnp
  >>> from dlcore import native
  >>> y = conv2d_native(jnp.ones((1, 5, 5, 1)), jnp.ones((3, 3, 1, 2)), None, (1, 1),
  ...                   ((1, 1), (1, 1)), (1, 1), 1) if native.available() else jnp.full((1,), 4.0)
  >>> float(y.reshape(-1)[0])
  4.0
"""

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from dlcore.native import loader

TARGETS = ("dlcore_conv_fwd", "dlcore_conv_bwd_data", "dlcore_conv_bwd_weights")
# (stride (sh, sw), pads ((top, bottom), (left, right)), dilation (dh, dw), groups)
Geometry = tuple[tuple[int, int], tuple[tuple[int, int], tuple[int, int]], tuple[int, int], int]


def check_native(x: jax.Array, w: jax.Array, what: str = "conv") -> None:
    """Raises the one-line ValueError of ``impl='native'`` when it cannot run here.

    Raises:
      ValueError: the library is unavailable, the backend is not the CPU, or an operand is
        not float32 (oneDNN's kernels here are float32 only).
    """
    loader.require(what)
    if jax.default_backend() != "cpu":
        raise ValueError(
            f"{what}: impl='native' runs on the CPU only (backend is {jax.default_backend()!r}); "
            "use impl='auto'"
        )
    dtypes = {str(jnp.result_type(a)) for a in (x, w)}
    if dtypes != {"float32"}:
        raise ValueError(
            f"{what}: impl='native' needs float32 inputs and kernel; got {sorted(dtypes)} "
            "(use impl='auto', which falls back to XLA)"
        )


def _attrs(geom: Geometry) -> dict:
    (sh, sw), ((pt, pb), (pl, pr)), (dh, dw), groups = geom
    values = {
        "stride_h": sh,
        "stride_w": sw,
        "pad_top": pt,
        "pad_bottom": pb,
        "pad_left": pl,
        "pad_right": pr,
        "dilation_h": dh,
        "dilation_w": dw,
        "groups": groups,
    }
    return {k: np.int64(v) for k, v in values.items()}


def _out_hw(geom: Geometry, x_shape, w_shape) -> tuple[int, int]:
    strides, pads, dilation, _ = geom
    return tuple(
        (n + lo + hi - d * (k - 1) - 1) // s + 1
        for n, k, s, (lo, hi), d in zip(
            x_shape[1:3], w_shape[:2], strides, pads, dilation, strict=True
        )
    )


def _forward(geom: Geometry, x, w, b, has_bias: bool):
    oh, ow = _out_hw(geom, x.shape, w.shape)
    out = jax.ShapeDtypeStruct((x.shape[0], oh, ow, w.shape[3]), jnp.float32)
    call = jax.ffi.ffi_call(TARGETS[0], out, vmap_method="broadcast_all")
    return call(x, w, b, **_attrs(geom), has_bias=np.int64(has_bias))


@partial(jax.custom_vjp, nondiff_argnums=(0, 1))
def _conv(geom: Geometry, has_bias: bool, x, w, b):
    return _forward(geom, x, w, b, has_bias)


def _conv_fwd(geom, has_bias, x, w, b):
    return _forward(geom, x, w, b, has_bias), (x, w, b)


def _conv_bwd(geom, has_bias, res, dy_NxOHxOWxF):
    x, w, b = res
    attrs = _attrs(geom)
    dx = jax.ffi.ffi_call(
        TARGETS[1], jax.ShapeDtypeStruct(x.shape, jnp.float32), vmap_method="broadcast_all"
    )(dy_NxOHxOWxF, w, **attrs)
    dw, db = jax.ffi.ffi_call(
        TARGETS[2],
        (
            jax.ShapeDtypeStruct(w.shape, jnp.float32),
            jax.ShapeDtypeStruct((w.shape[3],), jnp.float32),
        ),
        vmap_method="broadcast_all",
    )(x, dy_NxOHxOWxF, **attrs)
    # Without a bias, ``b`` is an empty placeholder and so is its cotangent.
    return dx, dw, db if has_bias else jnp.zeros_like(b)


_conv.defvjp(_conv_fwd, _conv_bwd)


def conv2d_native(
    x_NxHxWxC: jax.Array,
    w_KxKxCxF: jax.Array,
    b_F: jax.Array | None,
    stride: tuple[int, int],
    pads: tuple[tuple[int, int], tuple[int, int]],
    dilation: tuple[int, int],
    groups: int,
) -> jax.Array:
    """oneDNN cross-correlation plus bias (module docstring), float32, on the CPU.

    Args:
      x_NxHxWxC: input ``[N, H, W, C]`` (float32).
      w_KxKxCxF: kernel ``[KH, KW, C/G, F]`` (float32).
      b_F: bias ``[F]`` or None.
      stride: ``(sh, sw)``.
      pads: explicit ``((top, bottom), (left, right))`` zero padding.
      dilation: ``(dh, dw)`` (1: dense taps).
      groups: feature groups G.

    Returns:
      ``[N, OH, OW, F]``.
    """
    loader.ensure_targets(TARGETS)
    geom = (
        tuple(int(s) for s in stride),
        tuple((int(lo), int(hi)) for lo, hi in pads),
        tuple(int(d) for d in dilation),
        int(groups),
    )
    has_bias = b_F is not None
    b = b_F if has_bias else jnp.zeros((0,), jnp.float32)
    return _conv(geom, has_bias, x_NxHxWxC, w_KxKxCxF, b)
