"""Conv1D/Conv2D (stride, padding, dilation, groups, flip), LocallyConnected2D and the
param_dtype of every layer, against the equations written out in NumPy loops in float64.

References are independent of dlcore: explicit loops over output positions and kernel taps,
scipy.signal for the true convolution, and the textbook 'same' padding rule.
"""

import itertools
from collections.abc import Callable
from functools import partial

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.signal
from jax.test_util import check_grads

import dlcore.layers as layers
from dlcore.layers import (
    Conv1D,
    Conv2D,
    LocallyConnected2D,
    conv1d,
    conv2d,
    locally_connected2d,
)

TOL = 1e-10


def textbook_pads(padding, size, kernel, stride, dilation):
    """'same': out = ceil(n / s), the odd pixel after; 'full': span - 1; ints and pairs as is."""
    out = []
    for i, (n, k, s, d) in enumerate(zip(size, kernel, stride, dilation, strict=True)):
        span = d * (k - 1) + 1
        if padding == "valid":
            out.append((0, 0))
        elif padding == "full":
            out.append((span - 1, span - 1))
        elif padding == "same":
            total = max((-(-n // s) - 1) * s + span - n, 0)
            out.append((total // 2, total - total // 2))
        elif isinstance(padding, int):
            out.append((padding, padding))
        else:
            p = padding[i]
            out.append((p, p) if isinstance(p, int) else tuple(p))
    return out


def np_conv(x, w, b, stride, pads, dilation, groups=1, flip=False):
    """y[n, o, f] = b_f + sum_{a, c} x_pad[n, s o + d a, g C/G + c] W[a, c, f], by loops."""
    ndim = x.ndim - 2
    if flip:
        w = w[(slice(None, None, -1),) * ndim]
    xp = np.pad(x, ((0, 0), *pads, (0, 0)))
    kernel, cg, f = w.shape[:ndim], w.shape[-2], w.shape[-1]
    out_size = [
        (xp.shape[1 + i] - dilation[i] * (kernel[i] - 1) - 1) // stride[i] + 1 for i in range(ndim)
    ]
    y = np.zeros((x.shape[0], *out_size, f))
    fg = f // groups
    for o in np.ndindex(*out_size):
        for a in np.ndindex(*kernel):
            pos = tuple(stride[i] * o[i] + dilation[i] * a[i] for i in range(ndim))
            for g in range(groups):
                patch = xp[(slice(None), *pos, slice(g * cg, (g + 1) * cg))]  # [N, C/G]
                y[(slice(None), *o, slice(g * fg, (g + 1) * fg))] += (
                    patch @ w[a][:, g * fg : (g + 1) * fg]
                )
    return y + (0 if b is None else b)


def random_params(layer: nn.Module, rng: np.random.Generator, *args) -> dict:
    """Float64 NumPy draws in the shapes ``layer.init`` gives (no initializer compiles)."""
    shapes = jax.eval_shape(layer.init, jax.random.key(0), *args)["params"]
    return jax.tree.map(lambda leaf: rng.standard_normal(leaf.shape), shapes)


def rel_err(a, b) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    scale = max(np.linalg.norm(a), np.linalg.norm(b))
    return float(np.linalg.norm(a - b) / scale) if scale > 0 else 0.0


CASES_2D = [  # (stride, padding, dilation, groups, flip) on a [2, 7, 6, 4] input, 3x2 kernel
    (1, "valid", 1, 1, False),
    ((2, 1), "same", (1, 2), 1, False),
    (2, "full", 1, 2, False),
    ((1, 3), ((2, 0), (1, 3)), 2, 1, True),
    (1, (1, 2), (2, 1), 4, False),
    (3, 1, 1, 2, True),
    (1, "same", 1, 1, True),
]


@pytest.mark.parametrize("impl", ["xla", "gemm"])
@pytest.mark.parametrize(("stride", "padding", "dilation", "groups", "flip"), CASES_2D)
def test_conv2d_matches_the_numpy_loop(impl, stride, padding, dilation, groups, flip):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 7, 6, 4))
    w = rng.standard_normal((3, 2, 4 // groups, 8))
    b = rng.standard_normal(8)
    s2, d2 = (
        (stride,) * 2 if isinstance(stride, int) else stride,
        ((dilation,) * 2 if isinstance(dilation, int) else dilation),
    )
    pads = textbook_pads(padding, (7, 6), (3, 2), s2, d2)
    with jax.enable_x64(True):
        y = conv2d(
            x, w, b, stride=stride, padding=padding, dilation=dilation, groups=groups, flip=flip,
            impl=impl,
        )  # fmt: skip
    assert y.dtype == jnp.float64
    expected = np_conv(x, w, b, s2, pads, d2, groups, flip)
    assert y.shape == expected.shape
    assert rel_err(y, expected) <= TOL


@pytest.mark.parametrize("impl", ["xla", "gemm"])
def test_conv2d_gradients_pass_finite_differences(impl):
    rng = np.random.default_rng(1)
    x, w, b = rng.standard_normal((1, 5, 4, 4)), rng.standard_normal((2, 3, 2, 4)), np.ones(4)
    with jax.enable_x64(True):
        check_grads(
            jax.jit(
                lambda x, w, b: conv2d(
                    x,
                    w,
                    b,
                    stride=(2, 1),
                    padding="same",
                    dilation=(1, 2),
                    groups=2,
                    flip=True,
                    impl=impl,
                )
            ),  # fmt: skip
            (x, w, b),
            order=1,
            modes=("rev",),
        )


def test_grouped_conv_is_the_block_diagonal_dense_conv_and_depthwise_is_per_channel():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((1, 6, 5, 4))
    w = rng.standard_normal((3, 3, 2, 6))  # 2 groups: channels (0, 1) -> 0..2, (2, 3) -> 3..5
    dense = np.zeros((3, 3, 4, 6))
    dense[:, :, :2, :3], dense[:, :, 2:, 3:] = w[..., :3], w[..., 3:]
    wd = rng.standard_normal((3, 3, 1, 4))
    with jax.enable_x64(True):
        grouped = conv2d(x, w, groups=2, padding=1)
        full = conv2d(x, dense, padding=1)
        depthwise = conv2d(x, wd, groups=4)
    assert rel_err(grouped, full) <= TOL
    for c in range(4):
        ref = scipy.signal.correlate2d(x[0, :, :, c], wd[:, :, 0, c], mode="valid")
        assert rel_err(depthwise[0, :, :, c], ref) <= TOL


@pytest.mark.parametrize("mode", ["full", "valid"])
def test_flip_is_scipys_true_convolution_and_default_is_correlation(mode):
    rng = np.random.default_rng(3)
    img, ker = rng.standard_normal((6, 7)), rng.standard_normal((3, 2))
    sig, taps = rng.standard_normal(9), rng.standard_normal(4)
    with jax.enable_x64(True):
        conv = conv2d(img[None, :, :, None], ker[:, :, None, None], padding=mode, flip=True)
        corr = conv2d(img[None, :, :, None], ker[:, :, None, None], padding=mode)
        conv_1d = conv1d(sig[None, :, None], taps[:, None, None], padding=mode, flip=True)
    assert rel_err(conv[0, :, :, 0], scipy.signal.convolve(img, ker, mode=mode)) <= TOL
    assert rel_err(corr[0, :, :, 0], scipy.signal.correlate(img, ker, mode=mode)) <= TOL
    assert rel_err(conv_1d[0, :, 0], np.convolve(sig, taps, mode=mode)) <= TOL


CASES_1D = [  # (stride, padding, dilation, groups) on a [2, 9, 4] input, kernel 3
    (1, "valid", 1, 1),
    (2, "same", 2, 2),
    (1, (3, 1), 1, 4),
    (3, "full", 1, 1),
]


@pytest.mark.parametrize(("stride", "padding", "dilation", "groups"), CASES_1D)
def test_conv1d_module_matches_the_numpy_loop(stride, padding, dilation, groups):
    rng = np.random.default_rng(4)
    x = rng.standard_normal((2, 9, 4))
    layer = Conv1D(
        5 * groups, 3, stride=stride, padding=padding, dilation=dilation, groups=groups,
        param_dtype=jnp.float64,
    )  # fmt: skip
    with jax.enable_x64(True):
        p = random_params(layer, rng, x)
        y = layer.apply({"params": p}, x)
    assert p["kernel"].shape == (3, 4 // groups, 5 * groups)
    pads = [(1, 1) if padding == 1 else tuple(padding)] if isinstance(padding, tuple) else None
    pads = pads or textbook_pads(padding, (9,), (3,), (stride,), (dilation,))
    w, b = np.asarray(p["kernel"]), np.asarray(p["bias"])
    expected = np_conv(x, w, b, (stride,), pads, (dilation,), groups)
    assert rel_err(y, expected) <= TOL


def test_conv2d_module_options_and_one_by_one():
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 5, 5, 6))
    layer = Conv2D(6, 1, groups=3, use_bias=False, param_dtype=jnp.float64)
    with jax.enable_x64(True):
        p = random_params(layer, rng, x)
        y = layer.apply({"params": p}, x)
    k = p["kernel"]
    assert set(p) == {"kernel"} and k.shape == (1, 1, 2, 6)
    # a 1x1 conv is a per-pixel matrix product (here block-diagonal over 3 groups)
    expected = np.concatenate(
        [x[..., 2 * g : 2 * g + 2] @ k[0, 0][:, 2 * g : 2 * g + 2] for g in range(3)], axis=-1
    )
    assert rel_err(y, expected) <= TOL


def np_local(x, w, b, stride, pads):
    xp = np.pad(x, ((0, 0), *pads, (0, 0)))
    oh, ow, kh, kw, _, f = w.shape
    y = np.zeros((x.shape[0], oh, ow, f))
    for i, j, a, bb in itertools.product(range(oh), range(ow), range(kh), range(kw)):
        y[:, i, j] += xp[:, stride[0] * i + a, stride[1] * j + bb] @ w[i, j, a, bb]
    return y + b


@pytest.mark.parametrize(("stride", "padding"), [(1, "valid"), ((2, 1), "same"), (2, 1)])
def test_locally_connected_matches_the_numpy_loop_and_shares_nothing(stride, padding):
    rng = np.random.default_rng(6)
    x = rng.standard_normal((2, 5, 6, 2))
    layer = LocallyConnected2D(3, (3, 2), stride=stride, padding=padding, param_dtype=jnp.float64)
    with jax.enable_x64(True):
        p = random_params(layer, rng, x)
        y = layer.apply({"params": p}, x)
    s2 = (stride,) * 2 if isinstance(stride, int) else stride
    pads = textbook_pads(padding, (5, 6), (3, 2), s2, (1, 1))
    expected = np_local(x, np.asarray(p["kernel"]), np.asarray(p["bias"]), s2, pads)
    assert p["kernel"].shape == (*expected.shape[1:3], 3, 2, 2, 3)
    assert rel_err(y, expected) <= TOL
    # no weight sharing: different positions have different kernels
    assert not np.allclose(p["kernel"][0, 0], p["kernel"][-1, -1])


def test_locally_connected_gradients_pass_finite_differences():
    rng = np.random.default_rng(7)
    x, w = rng.standard_normal((1, 4, 5, 2)), rng.standard_normal((2, 5, 3, 2, 2, 2))
    with jax.enable_x64(True):
        f = jax.jit(partial(locally_connected2d, stride=(2, 1), padding=((1, 0), (0, 1))))
        assert f(x, w).shape == (1, 2, 5, 2)
        check_grads(f, (x, w), order=1, modes=("rev",))


class Stage(nn.Module):
    make: Callable[[str], nn.Module]

    @nn.compact
    def __call__(self, x):
        return self.make("conv1")(x)


class Net(nn.Module):
    make: Callable[[str], nn.Module]

    @nn.compact
    def __call__(self, x):
        return Stage(self.make, name="stage3")(x)


@pytest.mark.parametrize(
    ("layer", "shape", "message"),
    [
        (
            partial(Conv2D, 4, 3, stride=2),
            (1, 2, 2, 1),
            "stage3/conv1: 3x3 kernel, stride 2, padding 'valid' shrinks a 2x2 feature map to "
            "0x0 (stage3/conv1 kernel 3x3 is larger than the padded input 2x2)",
        ),
        (
            partial(Conv1D, 4, 3, dilation=3, padding=(1, 1)),
            (1, 4, 1),
            "stage3/conv1: 3 kernel, stride 1, dilation 3, padding (1, 1) shrinks a 4 feature "
            "map to 0 (stage3/conv1 kernel 7 is larger than the padded input 6)",
        ),
        (
            partial(LocallyConnected2D, 2, (2, 5)),
            (1, 3, 3, 1),
            "stage3/conv1: 2x5 kernel, stride 1, padding 'valid' shrinks a 3x3 feature map to "
            "2x0 (stage3/conv1 kernel 2x5 is larger than the padded input 3x3)",
        ),
    ],
)
def test_a_layer_that_shrinks_the_map_below_1x1_names_its_path(layer, shape, message):
    with pytest.raises(ValueError) as info:
        net = Net(lambda name: layer(name=name))
        jax.eval_shape(net.init, jax.random.key(0), jnp.ones(shape))
    assert str(info.value) == message


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: Conv2D(4, 3, stride=0), r"conv stride must be an int >= 1 or 2 of them"),
        (lambda: Conv2D(4, 3, stride=(1, 2, 3)), r"got \(1, 2, 3\)"),
        (lambda: Conv1D(4, 3, padding=((1, 1), (1, 1))), "one \\(lo, hi\\) pair per axis"),
        (lambda: Conv2D(4, 3, groups=0), "conv groups must be a positive integer"),
        (
            lambda: Conv2D(6, 3, groups=3).init(jax.random.key(0), jnp.ones((1, 5, 5, 4))),
            "Conv2D: input channels 4 must be a multiple of groups=3",
        ),
        (
            lambda: conv2d(jnp.ones((1, 5, 5, 4)), jnp.ones((3, 3, 1, 6)), groups=2),
            r"kernel expects 2 \(1 per group x 2 groups\)",
        ),
        (lambda: conv1d(jnp.ones((1, 5, 5, 4)), jnp.ones((3, 4, 1))), r"\[N, T, C\] \(rank 3\)"),
    ],
)
def test_bad_conv_options_give_one_line_errors(make, message):
    with pytest.raises(ValueError, match=message) as info:
        make()
    assert "\n" not in str(info.value)


X4 = np.ones((2, 6, 6, 2), np.float32)
PARAM_LAYERS = {  # every dlcore layer with parameters: (module, call args, call kwargs)
    "Conv1D": (Conv1D(3, 2), (X4[:, 0],), {}),
    "Conv2D": (Conv2D(4, 2, groups=2, dilation=2), (X4,), {}),
    "ConvTranspose2D": (layers.ConvTranspose2D(3, 2, stride=2), (X4,), {}),
    "LocallyConnected2D": (LocallyConnected2D(3, 2), (X4,), {}),
    "BatchNorm": (layers.BatchNorm(), (X4,), {"train": False}),
    "LayerNorm": (layers.LayerNorm(), (X4,), {}),
    "Maxout": (layers.Maxout(3), (X4[:, 0, 0],), {}),
    "PReLU": (layers.PReLU(per_channel=True), (X4,), {}),
    "DropConnectDense": (layers.DropConnectDense(3), (X4[:, 0, 0],), {"train": False}),
    "GaussianWeightNoiseDense": (
        layers.GaussianWeightNoiseDense(3),
        (X4[:, 0, 0],),
        {"train": False},
    ),
    "AdditiveAttention": (layers.AdditiveAttention(4), (X4[:, 0], X4[:, 1], X4[:, 2]), {}),
    "Attention": (layers.Attention("general"), (X4[:, 0], X4[:, 1], X4[:, 2]), {}),
    "MaskedConv2D": (layers.MaskedConv2D(3, 3, kind="A"), (X4,), {}),
    "MultiHeadAttention": (
        layers.MultiHeadAttention(2),
        (X4[:, 0], X4[:, 1], X4[:, 2]),
        {"train": False},
    ),
}
NO_PARAMS = {
    "Dropout", "LocalResponseNorm", "MaxPool", "AvgPool", "MaxPool1D", "AvgPool1D",
    "GlobalAvgPool", "GlobalMaxPool",
}  # fmt: skip


def test_every_exported_layer_is_classified():
    modules = {
        name
        for name in layers.__all__
        if isinstance(getattr(layers, name), type) and issubclass(getattr(layers, name), nn.Module)
    }
    assert modules == set(PARAM_LAYERS) | NO_PARAMS


@pytest.mark.parametrize("dtype", ["bfloat16", "float64"])
@pytest.mark.parametrize("name", sorted(PARAM_LAYERS))
def test_params_come_out_in_param_dtype(name, dtype):
    module, args, kwargs = PARAM_LAYERS[name]
    with jax.enable_x64(dtype == "float64"):
        init = partial(module.clone(param_dtype=jnp.dtype(dtype)).init, **kwargs)
        variables = jax.eval_shape(init, jax.random.key(0), *args)
    leaves = jax.tree.leaves(variables["params"])
    assert leaves and {leaf.dtype for leaf in leaves} == {jnp.dtype(dtype)}


def test_auto_lowering_inside_the_engines_scan_is_the_loop_table():
    """The engine traces its multi-step scan inside ``loop_body``: on CPU the convolution
    there is patches + GEMM (no conv primitive), while a single compiled step keeps XLA's;
    with the native library (CPU, float32) both run oneDNN's kernel instead."""
    import optax

    import dlcore
    from dlcore import native
    from dlcore.engine.compiled import CompiledTask
    from dlcore.layers.conv_math import AUTO_LOWERING, AUTO_LOWERING_IN_LOOP

    class Flat(nn.Module):
        @nn.compact
        def __call__(self, x, *, train):
            h = Conv2D(features=2, kernel_size=3)(x)
            return h.reshape(h.shape[0], -1)

    task = dlcore.regression(Flat(), optax.sgd(0.1))
    x = jnp.ones((4, 5, 5, 1))
    fields = {"x": x, "y": jnp.zeros((4, 18))}
    state = task.init(jax.random.key(0), {"x": x[:2], "y": fields["y"][:2]})
    compiled = CompiledTask(task)
    step = jax.make_jaxpr(compiled._step)(state, {"x": x[:2], "y": fields["y"][:2]})
    scan = jax.make_jaxpr(compiled._scan)(state, fields, jnp.zeros((2, 2), jnp.int32))
    backend = jax.default_backend()
    if native.auto_native(x):  # the native kernel, in both contexts, instead of the tables
        for jaxpr in (step, scan):
            assert "dlcore_conv_fwd" in str(jaxpr) and "conv_general_dilated" not in str(jaxpr)
        return
    expect_conv = {"xla": True, "gemm": False}
    # The printed jaxpr includes the scan's body (and the gradient's convolutions).
    assert ("conv_general_dilated" in str(step)) == expect_conv[AUTO_LOWERING.get(backend, "xla")]
    in_loop = AUTO_LOWERING_IN_LOOP.get(backend, "xla")
    assert ("conv_general_dilated" in str(scan)) == expect_conv[in_loop]
