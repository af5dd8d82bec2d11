"""Padded max/average pooling in 1-D and 2-D and the global pools against NumPy loops (float64),
including where the gradient goes: max to the first arg-max of each window (never to the -inf
padding), average dy / count to every real input.
"""

from functools import partial

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from dlcore.layers import (
    AvgPool,
    AvgPool1D,
    GlobalAvgPool,
    GlobalMaxPool,
    MaxPool,
    MaxPool1D,
    avg_pool,
    avg_pool1d,
    global_avg_pool,
    global_max_pool,
    max_pool,
    max_pool1d,
)

TOL = 1e-12


def windows(x, window, stride, pads, fill):
    """Yields (output index, padded window [N, *window, C], real-input mask, input offsets)."""
    ndim = x.ndim - 2
    xp = np.pad(x, ((0, 0), *pads, (0, 0)), constant_values=fill)
    real = np.pad(np.ones(x.shape[1:-1], bool), pads)
    out = [(xp.shape[1 + i] - window[i]) // stride[i] + 1 for i in range(ndim)]
    for o in np.ndindex(*out):
        sl = tuple(slice(stride[i] * o[i], stride[i] * o[i] + window[i]) for i in range(ndim))
        starts = [stride[i] * o[i] - pads[i][0] for i in range(ndim)]
        yield o, out, xp[(slice(None), *sl)], real[sl], starts


def np_pool_and_grad(x, g, kind, window, stride, pads, count_include_pad=True):
    """Forward by loops, and the gradient routed as the module docstring says."""
    fill = -np.inf if kind == "max" else 0.0
    y, dx = None, np.zeros_like(x)
    for o, out, win, real, starts in windows(x, window, stride, pads, fill):
        if y is None:
            y = np.zeros((x.shape[0], *out, x.shape[-1]))
        flat = win.reshape(x.shape[0], -1, x.shape[-1])  # row-major over the window
        go = g[(slice(None), *o)]  # [N, C]
        if kind == "max":
            y[(slice(None), *o)] = flat.max(axis=1)
            first = flat.argmax(axis=1)  # first maximum in row-major window order
            for n, c in np.ndindex(first.shape):
                a = np.unravel_index(first[n, c], window)
                dx[(n, *(s + ai for s, ai in zip(starts, a, strict=True)), c)] += go[n, c]
        else:
            count = np.prod(window) if count_include_pad else real.sum()
            y[(slice(None), *o)] = flat.sum(axis=1) / count
            for a in np.ndindex(*window):
                if real[a]:
                    idx = tuple(s + ai for s, ai in zip(starts, a, strict=True))
                    dx[(slice(None), *idx)] += go / count
    return y, dx


CASES_2D = [  # (size, stride, padding, explicit pads) on [2, 5, 6, 2]
    (2, None, 0, ((0, 0), (0, 0))),
    ((3, 2), (2, 1), 1, ((1, 1), (1, 1))),
    (3, 2, ((1, 0), (2, 1)), ((1, 0), (2, 1))),
    (3, 1, "same", ((1, 1), (1, 1))),
    (2, 1, "full", ((1, 1), (1, 1))),
]
FUNCS_2D = {
    "max": max_pool,
    "avg": avg_pool,
    "avg_exclude_pad": partial(avg_pool, count_include_pad=False),
}


@pytest.mark.parametrize("kind", sorted(FUNCS_2D))
@pytest.mark.parametrize(("size", "stride", "padding", "pads"), CASES_2D)
def test_2d_pools_and_their_gradients_match_numpy(kind, size, stride, padding, pads):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 5, 6, 2))
    f = partial(FUNCS_2D[kind], size=size, stride=stride, padding=padding)
    window = (size,) * 2 if isinstance(size, int) else size
    strides = window if stride is None else ((stride,) * 2 if isinstance(stride, int) else stride)
    with jax.enable_x64(True):
        y, vjp = jax.vjp(f, x)
        g = rng.standard_normal(y.shape)
        (dx,) = vjp(g)
    y, dx = np.asarray(y), np.asarray(dx)
    y_np, dx_np = np_pool_and_grad(
        x, g, kind[:3], window, strides, pads, count_include_pad=kind != "avg_exclude_pad"
    )
    np.testing.assert_allclose(y, y_np, rtol=TOL, atol=TOL)
    np.testing.assert_allclose(dx, dx_np, rtol=TOL, atol=TOL)
    if kind == "max":  # every window's gradient lands on a real input: none is lost to padding
        assert np.isclose(dx.sum(), g.sum(), rtol=TOL)


@pytest.mark.parametrize("kind", ["max", "avg", "avg_exclude_pad"])
def test_1d_pools_and_their_gradients_match_numpy(kind):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 7, 3))
    include = kind != "avg_exclude_pad"
    f = {"max": max_pool1d, "avg": avg_pool1d, "avg_exclude_pad": avg_pool1d}[kind]
    extra = {} if kind == "max" else {"count_include_pad": include}
    f = partial(f, size=3, stride=2, padding=(2, 1), **extra)
    with jax.enable_x64(True):
        y, vjp = jax.vjp(f, x)
        g = rng.standard_normal(y.shape)
        (dx,) = vjp(g)
        check_grads(jax.jit(f), (x,), order=1, modes=("rev",))
    y_np, dx_np = np_pool_and_grad(x, g, kind[:3], (3,), (2,), ((2, 1),), include)
    np.testing.assert_allclose(y, y_np, rtol=TOL, atol=TOL)
    np.testing.assert_allclose(dx, dx_np, rtol=TOL, atol=TOL)


def test_max_pool_ties_send_the_whole_gradient_to_the_first_maximum():
    x = np.ones((1, 3, 3, 1))
    with jax.enable_x64(True):
        dx = np.asarray(jax.grad(lambda x: jnp.sum(max_pool(x, 2, 1, padding=1)))(x))
    _, dx_np = np_pool_and_grad(x, np.ones((1, 4, 4, 1)), "max", (2, 2), (1, 1), ((1, 1),) * 2)
    np.testing.assert_array_equal(dx, dx_np)
    # 16 windows; (0, 0) is the first real input of the 4 windows that contain it
    assert dx[0, 0, 0, 0] == 4 and dx.sum() == 16


def test_global_pools_reduce_every_spatial_axis():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 3, 4, 5))
    x[1, 2, 3, 4] = x[1, 0, 1, 4] = x[1].max() + 1  # a tie: jnp.max splits its gradient
    with jax.enable_x64(True):
        avg, d_avg = jax.value_and_grad(lambda x: jnp.sum(global_avg_pool(x)))(x)
        mx, d_max = jax.value_and_grad(lambda x: jnp.sum(global_max_pool(x)))(x)
        seq = global_max_pool(x[:, 0])  # max over time on [B, T, C]
        module_out = [m.apply({}, x) for m in (GlobalAvgPool(), GlobalMaxPool())]
        avg, d_avg, mx, d_max = map(np.asarray, (avg, d_avg, mx, d_max))
    assert np.isclose(avg, x.mean(axis=(1, 2)).sum(), rtol=TOL)
    np.testing.assert_allclose(d_avg, np.full(x.shape, 1 / 12))
    assert np.isclose(mx, x.max(axis=(1, 2)).sum(), rtol=TOL)
    assert d_max[1, 2, 3, 4] == d_max[1, 0, 1, 4] == 0.5 and d_max.sum() == 10
    np.testing.assert_allclose(seq, x[:, 0].max(axis=1))
    np.testing.assert_allclose(module_out[0], x.mean(axis=(1, 2)), rtol=1e-6)
    np.testing.assert_allclose(module_out[1], x.max(axis=(1, 2)), rtol=1e-6)


def test_modules_match_the_functions():
    x = np.random.default_rng(3).standard_normal((1, 6, 5, 2)).astype(np.float32)
    pairs = [
        (MaxPool(3, 2, padding=1), max_pool(x, 3, 2, 1)),
        (
            AvgPool((2, 3), 1, "same", count_include_pad=False),
            avg_pool(x, (2, 3), 1, "same", False),
        ),
        (MaxPool1D(2), max_pool1d(x[:, 0], 2)),
        (AvgPool1D(3, 1, 1), avg_pool1d(x[:, 0], 3, 1, 1)),
    ]
    for module, expected in pairs:
        got = module.apply({}, x[:, 0] if "1D" in type(module).__name__ else x, train=True)
        np.testing.assert_array_equal(got, expected)


class Net(nn.Module):
    @nn.compact
    def __call__(self, x):
        return MaxPool(3, 2, name="pool1")(x)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (
            lambda: max_pool(jnp.ones((1, 1, 4, 1))),
            "max_pool: 2x2 window, stride 2, padding 0 shrinks a 1x4 feature map to 0x2 "
            "(max_pool window 2x2 is larger than the input 1x4)",
        ),
        (
            lambda: avg_pool(jnp.ones((1, 4, 1, 1)), (2, 3), padding=((0, 0), (1, 0))),
            "avg_pool: 2x3 window, stride 2x3, padding ((0, 0), (1, 0)) shrinks a 4x1 feature "
            "map to 2x0 (avg_pool window 2x3 is larger than the padded input 4x2)",
        ),
        (
            lambda: Net().apply({}, jnp.ones((1, 2, 2, 1))),
            "pool1: 3x3 window, stride 2, padding 0 shrinks a 2x2 feature map to 0x0 "
            "(pool1 window 3x3 is larger than the input 2x2)",
        ),
        (
            lambda: max_pool(jnp.ones((1, 4, 4, 1)), 2, padding=2),
            "max_pool: padding 2 must be smaller than the 2-wide window on each side",
        ),
        (lambda: max_pool1d(jnp.ones((1, 4, 4, 1))), r"max_pool1d input must be [N, T, C]"),
        (lambda: max_pool(jnp.ones((1, 4, 4, 1)), 0), "max_pool size must be an int >= 1"),
        (lambda: global_avg_pool(jnp.ones((2, 3))), "global_avg_pool input must be [N, ..., C]"),
    ],
)
def test_bad_pools_give_one_line_errors(make, message):
    with pytest.raises(ValueError) as info:
        make()
    assert str(info.value).startswith(message) and "\n" not in str(info.value)


def test_existing_positional_calls_keep_their_meaning():
    x = np.random.default_rng(4).standard_normal((2, 6, 6, 1))
    g2, g3 = np.zeros((2, 3, 3, 1)), np.zeros((2, 2, 2, 1))
    with jax.enable_x64(True):
        np.testing.assert_array_equal(
            max_pool(x), np_pool_and_grad(x, g2, "max", (2, 2), (2, 2), ((0, 0),) * 2)[0]
        )
        np.testing.assert_array_equal(
            max_pool(x, 3, 2), np_pool_and_grad(x, g3, "max", (3, 3), (2, 2), ((0, 0),) * 2)[0]
        )
