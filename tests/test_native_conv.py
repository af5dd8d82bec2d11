"""oneDNN convolution behind XLA's FFI (``impl='native'``) against XLA's convolution.

Outputs and gradients (x, W, b) agree to float32 rounding over the options (stride, padding
kinds, dilation, groups, flip, bias, 1-D and 2-D); the kernel composes with jit, grad, vmap
(population training: params and data vmapped) and lax.scan; ``impl='auto'`` falls back to XLA
for float64 or without the library; training steps are bitwise reproducible in a fresh process
(what resuming a run relies on).
"""

import os
import subprocess
import sys
from functools import partial

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from dlcore import native
from dlcore.layers.conv import Conv2D, conv1d, conv2d
from dlcore.layers.pooling import max_pool, pool_geometry
from dlcore.native import loader
from tests.helpers import REPO

needs_native = pytest.mark.skipif(
    not native.available(), reason="native CPU kernels unavailable (see dlcore list)"
)

# (C, F, kernel, stride, padding, dilation, groups, flip, bias) with 2 spatial axes ...
CASES_2D = {
    "plain": (3, 4, 3, 1, "valid", 1, 1, False, True),
    "asym-groups-dilated": (4, 6, (3, 2), (2, 1), ((1, 2), (0, 1)), (2, 1), 2, False, True),
    "depthwise-same-s2": (4, 4, 3, 2, "same", 1, 4, False, False),
    "flip-full": (2, 3, 2, 1, "full", 1, 1, True, True),
    "lenet-conv1": (1, 2, 5, 1, 2, 1, 1, False, True),
}
# ... and with one (conv1d).
CASES_1D = {
    "same-dilated": (3, 4, 3, 1, "same", 2, 1, False, True),
    "groups-flip-lohi": (4, 4, 2, 2, (1, 0), 1, 2, True, False),
}


def _operands(case, ndim, seed=0):
    c, f, kernel, *_ = case
    rng = np.random.default_rng(seed)
    k = (kernel,) * ndim if isinstance(kernel, int) else kernel
    groups = case[6]
    x = rng.standard_normal((2, *(7, 6)[:ndim], c)).astype(np.float32)
    w = rng.standard_normal((*k, c // groups, f)).astype(np.float32)
    b = rng.standard_normal(f).astype(np.float32)
    return jnp.asarray(x), jnp.asarray(w), jnp.asarray(b)


def _value_and_grads(case, ndim, impl):
    _, _, _, stride, padding, dilation, groups, flip, bias = case
    fn = conv2d if ndim == 2 else conv1d
    opts = dict(stride=stride, padding=padding, dilation=dilation, groups=groups, flip=flip)

    def loss(x, w, b):
        y = fn(x, w, b if bias else None, impl=impl, **opts)
        # A fixed non-uniform cotangent, so that every output position matters.
        return jnp.sum(y * jnp.cos(jnp.arange(y.size, dtype=y.dtype)).reshape(y.shape)), y

    return jax.jit(jax.value_and_grad(loss, argnums=(0, 1, 2), has_aux=True))


def _assert_close(a, b):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=2e-5, atol=2e-5)


@needs_native
@pytest.mark.parametrize(
    "ndim,case",
    [(2, c) for c in CASES_2D.values()] + [(1, c) for c in CASES_1D.values()],
    ids=[f"2d-{k}" for k in CASES_2D] + [f"1d-{k}" for k in CASES_1D],
)
def test_native_matches_xla_outputs_and_gradients(ndim, case):
    args = _operands(case, ndim)
    (_, y_native), grads_native = _value_and_grads(case, ndim, "native")(*args)
    (_, y_xla), grads_xla = _value_and_grads(case, ndim, "xla")(*args)
    assert y_native.shape == y_xla.shape
    _assert_close(y_native, y_xla)
    for got, want in zip(grads_native, grads_xla, strict=True):
        _assert_close(got, want)
    if not case[-1]:  # no bias: its placeholder gets no gradient
        assert not np.any(np.asarray(grads_native[2]))


def _pop_loss(impl):
    def loss(x, w, b):
        y = conv2d(x, w, b, stride=(1, 2), padding="same", groups=2, impl=impl)
        return jnp.sum(jnp.tanh(y))

    return jax.grad(loss, argnums=(0, 1, 2))


@needs_native
@pytest.mark.parametrize("in_axes", [(0, 0, 0), (None, 0, 0), (0, None, None)])
def test_vmap_over_params_and_or_data_matches_xla(in_axes):
    rng = np.random.default_rng(1)
    p = 3
    x = rng.standard_normal((p, 2, 5, 6, 4)).astype(np.float32)
    w = rng.standard_normal((p, 3, 3, 2, 4)).astype(np.float32)
    b = rng.standard_normal((p, 4)).astype(np.float32)
    args = [a if ax == 0 else a[0] for a, ax in zip((x, w, b), in_axes, strict=True)]
    got = jax.jit(jax.vmap(_pop_loss("native"), in_axes=in_axes))(*args)
    want = jax.jit(jax.vmap(_pop_loss("xla"), in_axes=in_axes))(*args)
    for g, h in zip(got, want, strict=True):
        assert g.shape == h.shape
        _assert_close(g, h)


@needs_native
def test_sgd_steps_inside_lax_scan_match_xla():
    x, w, b = _operands(CASES_2D["plain"], 2)

    def train(impl):
        def step(params, _):
            grads = jax.grad(lambda p: jnp.sum(conv2d(x, *p, impl=impl) ** 2))(params)
            return jax.tree.map(lambda p, g: p - 1e-3 * g, params, grads), None

        return jax.jit(lambda p: jax.lax.scan(step, p, None, length=3)[0])

    for got, want in zip(train("native")((w, b)), train("xla")((w, b)), strict=True):
        _assert_close(got, want)
    assert "conv" in native.used()


def test_impl_native_without_the_library_is_one_line_and_auto_uses_xla(monkeypatch):
    monkeypatch.setattr(
        loader, "_STATE", {"available": False, "reason": "disabled by DLCORE_NATIVE=0"}
    )
    x, w, _ = _operands(CASES_2D["plain"], 2)
    with pytest.raises(ValueError) as err:
        jax.eval_shape(Conv2D(4, 3, impl="native").init, jax.random.key(0), x)
    assert str(err.value) == "Conv2D: impl='native' is unavailable (disabled by DLCORE_NATIVE=0)"
    jaxpr = str(jax.make_jaxpr(lambda x, w: conv2d(x, w))(x, w))
    assert "conv_general_dilated" in jaxpr and "dlcore_conv" not in jaxpr


@needs_native
def test_float64_auto_falls_back_to_xla_and_native_refuses_it():
    x, w, _ = _operands(CASES_2D["plain"], 2)
    with jax.enable_x64(True):
        x64, w64 = x.astype(jnp.float64), w.astype(jnp.float64)
        jaxpr = str(jax.make_jaxpr(lambda x, w: conv2d(x, w))(x64, w64))
        assert "conv_general_dilated" in jaxpr and "dlcore_conv" not in jaxpr
        with pytest.raises(ValueError, match=r"^conv: impl='native' needs float32 inputs"):
            conv2d(x64, w64, impl="native")
    jaxpr = str(jax.make_jaxpr(lambda x, w: conv2d(x, w))(x, w))  # float32: native
    assert "dlcore_conv_fwd" in jaxpr and "conv_general_dilated" not in jaxpr


POOLS = {  # (window, stride, padding)
    "lenet-2x2": (2, None, 0),
    "overlap-3x3-s2-pad": (3, 2, 1),
    "asym": ((2, 3), (1, 2), ((0, 1), (1, 0))),
}


@needs_native
@pytest.mark.parametrize("ties", [False, True], ids=["distinct", "ties"])
@pytest.mark.parametrize("pool", POOLS.values(), ids=POOLS)
def test_native_max_pool_matches_xla_select_and_scatter(pool, ties):
    """Values and gradients, ties included: all of dy goes to the first arg-max of a window."""
    x = np.random.default_rng(2).standard_normal((2, 7, 8, 3)).astype(np.float32)
    x = jnp.asarray(np.round(x) if ties else x)

    def grads(x):
        y = max_pool(x, *pool)
        return y, jax.grad(lambda x: jnp.sum(jnp.sin(3 * max_pool(x, *pool))))(x)

    y, dx = jax.jit(grads)(x)
    jaxpr = str(jax.make_jaxpr(grads)(x))
    assert "dlcore_max_pool_bwd" in jaxpr and "select_and_scatter" not in jaxpr
    window, strides, pads = pool_geometry(x, 2, *pool, "max_pool")
    ref = partial(lax.reduce_window, init_value=-jnp.inf, computation=lax.max)
    ref = partial(ref, window_dimensions=(1, *window, 1), window_strides=(1, *strides, 1))
    pad4 = ((0, 0), *pads, (0, 0))
    y_ref, dx_ref = jax.jit(
        lambda x: (
            ref(x, padding=pad4),
            jax.grad(lambda x: jnp.sum(jnp.sin(3 * ref(x, padding=pad4))))(x),
        )
    )(x)
    np.testing.assert_array_equal(np.asarray(y), np.asarray(y_ref))
    _assert_close(dx, dx_ref)


class _TinyCNN(nn.Module):
    @nn.compact
    def __call__(self, x):
        h = nn.relu(Conv2D(4, 3, padding="same", impl="native")(x))
        h = nn.relu(Conv2D(6, 3, stride=2, groups=2, impl="native")(h))
        return nn.Dense(3)(h.reshape(h.shape[0], -1))


@jax.jit
def _sgd_step(params, x, y):
    def loss(p):
        logits = _TinyCNN().apply({"params": p}, x)
        return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(logits), y[:, None], 1))

    return jax.tree.map(lambda a, g: a - 0.1 * g, params, jax.grad(loss)(params))


def _train(params, steps):
    """``steps`` SGD steps of :class:`_TinyCNN` on fixed random data, from ``params``."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal((8, 9, 9, 2)).astype(np.float32)
    y = rng.integers(0, 3, 8).astype(np.int32)
    for _ in range(steps):
        params = _sgd_step(params, x, y)
    return params


def _resume_worker(path: str) -> None:
    """Run in a fresh process: 2 steps from the state saved at ``path`` (new primitives)."""
    saved = np.load(path)
    treedef = jax.tree.structure(_init())
    params = jax.tree.unflatten(treedef, [saved[f"a{i}"] for i in range(len(saved.files))])
    leaves = jax.tree.leaves(_train(params, 2))
    np.savez(path, **{f"a{i}": np.asarray(a) for i, a in enumerate(leaves)})


def _init():
    return jax.jit(_TinyCNN().init)(jax.random.key(0), jnp.zeros((1, 9, 9, 2)))["params"]


@needs_native
def test_training_resumed_in_a_fresh_process_is_bitwise_identical(tmp_path):
    halfway = _train(_init(), 2)
    full = _train(halfway, 2)
    path = tmp_path / "state.npz"
    np.savez(path, **{f"a{i}": np.asarray(a) for i, a in enumerate(jax.tree.leaves(halfway))})
    env = {**os.environ, "PYTHONPATH": str(REPO), "JAX_PLATFORMS": "cpu"}
    code = f"from tests.test_native_conv import _resume_worker; _resume_worker({str(path)!r})"
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    resumed = np.load(path)
    for i, leaf in enumerate(jax.tree.leaves(full)):
        np.testing.assert_array_equal(resumed[f"a{i}"], np.asarray(leaf))
