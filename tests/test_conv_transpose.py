"""ConvTranspose2D: the adjoint of the convolution, against a NumPy scatter loop in float64.

The loop writes out z[n, s i + d a - lo, ...] += y[n, i, ...] W[a, ..., f, c]; the adjoint test
checks <conv(x), y> = <x, convT(y)> with dlcore's conv2d on random x and y.
"""

import itertools
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from dlcore.layers import ConvTranspose2D, conv2d, conv_transpose2d

TOL = 1e-10


def torch_out(n, k, s, lo, hi, d, op):
    """PyTorch's ConvTranspose2d output size, as its documentation writes it."""
    return (n - 1) * s - lo - hi + d * (k - 1) + op + 1


def np_conv_transpose(y, w, b, stride, pads, dilation, output_padding):
    """Scatter every input pixel through the kernel; drop what the padding crops."""
    n, h, wd, _ = y.shape
    kh, kw, f, _ = w.shape
    out = [
        torch_out(size, k, s, p[0], p[1], d, op)
        for size, k, s, p, d, op in zip(
            (h, wd), (kh, kw), stride, pads, dilation, output_padding, strict=True
        )
    ]
    z = np.zeros((n, *out, f))
    for i, j, a, bb in itertools.product(range(h), range(wd), range(kh), range(kw)):
        r = stride[0] * i + dilation[0] * a - pads[0][0]
        c = stride[1] * j + dilation[1] * bb - pads[1][0]
        if 0 <= r < out[0] and 0 <= c < out[1]:
            z[:, r, c] += y[:, i, j] @ w[a, bb].T
    return z + b


CASES = [  # (stride, padding as explicit pairs, dilation, output_padding) on a 3x4 input
    ((1, 1), ((0, 0), (0, 0)), (1, 1), (0, 0)),
    ((2, 2), ((1, 1), (1, 1)), (1, 1), (1, 1)),
    ((2, 3), ((0, 1), (2, 0)), (1, 1), (1, 2)),
    ((2, 1), ((1, 0), (0, 0)), (2, 2), (0, 1)),  # output_padding < dilation with stride 1
    ((3, 2), ((2, 2), (1, 1)), (1, 2), (2, 0)),
]


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    return rng.standard_normal((2, 3, 4, 3)), rng.standard_normal((3, 2, 5, 3)), rng


@pytest.mark.parametrize("impl", ["xla", "gemm"])
@pytest.mark.parametrize(("stride", "pads", "dilation", "output_padding"), CASES)
def test_matches_the_numpy_scatter_loop_and_is_the_adjoint(
    data, stride, pads, dilation, output_padding, impl
):
    """Either lowering of the forward convolution gives the same adjoint."""
    y, w, rng = data
    b = rng.standard_normal(5)
    args = dict(
        stride=stride, padding=pads, dilation=dilation, output_padding=output_padding, impl=impl
    )
    with jax.enable_x64(True):
        z = conv_transpose2d(y, w, b, **args)
        x = rng.standard_normal(z.shape)
        ax = conv2d(x, w, stride=stride, padding=pads, dilation=dilation, impl=impl)
        ax = ax[:, : y.shape[1], : y.shape[2]]  # output_padding >= stride adds a row to crop
        lhs = float(jnp.vdot(ax, y))
        rhs = float(jnp.vdot(x, conv_transpose2d(y, w, **args)))
    expected = np_conv_transpose(y, w, b, stride, pads, dilation, output_padding)
    assert z.shape == expected.shape
    np.testing.assert_allclose(z, expected, rtol=TOL, atol=TOL)
    assert abs(lhs - rhs) <= TOL * max(abs(lhs), 1.0)


def test_gradients_pass_finite_differences(data):
    y, w, _ = data
    with jax.enable_x64(True):
        f = jax.jit(partial(conv_transpose2d, stride=2, padding=1, output_padding=1, dilation=2))
        check_grads(f, (y[:1], w, np.ones(5)), order=2, modes=("rev",))


@pytest.mark.parametrize(
    ("kwargs", "size"),
    [
        (dict(kernel_size=2, stride=2), (8, 10)),
        (dict(kernel_size=3, stride=2, padding="same"), (8, 10)),
        (dict(kernel_size=1, stride=3, padding="same"), (12, 15)),
        (dict(kernel_size=3, stride=2, padding=1, output_padding=1), (8, 10)),
        (dict(kernel_size=3, padding="full"), (2, 3)),
        (dict(kernel_size=(3, 1), stride=(1, 2), dilation=(2, 1), padding=(1, 0)), (6, 9)),
    ],
)
def test_module_output_sizes_follow_pytorchs_formula(kwargs, size):
    layer = ConvTranspose2D(7, **kwargs)
    variables = jax.eval_shape(layer.init, jax.random.key(0), jnp.ones((1, 4, 5, 2)))
    out = jax.eval_shape(layer.apply, variables, jnp.ones((1, 4, 5, 2)))
    assert variables["params"]["kernel"].shape[2:] == (7, 2)
    assert out.shape == (1, *size, 7)


def test_module_applies_its_own_kernel():
    rng = np.random.default_rng(1)
    y = rng.standard_normal((1, 3, 3, 2))
    layer = ConvTranspose2D(4, 2, stride=2, param_dtype=jnp.float64)
    with jax.enable_x64(True):
        shapes = jax.eval_shape(layer.init, jax.random.key(0), y)["params"]
        p = jax.tree.map(lambda leaf: rng.standard_normal(leaf.shape), shapes)
        z = layer.apply({"params": p}, y)
    assert p["kernel"].shape == (2, 2, 4, 2)
    expected = np_conv_transpose(
        y, p["kernel"], p["bias"], (2, 2), ((0, 0), (0, 0)), (1, 1), (0, 0)
    )
    np.testing.assert_allclose(z, expected, rtol=TOL, atol=TOL)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            dict(stride=2, output_padding=2),
            "conv_transpose: output_padding 2 must be smaller than the stride 2 or the dilation 1",
        ),
        (
            dict(padding=3),
            "conv_transpose: 3x3 kernel, stride 1, padding 3 shrinks a 2x2 feature map to -2x-2 "
            "(the padding crops more than the output has)",
        ),
        (dict(padding="same", output_padding=1, stride=2), "padding 'same' fixes the output size"),
        (dict(padding="sme"), "conv padding must be 'same', 'valid', 'full' or an int"),
    ],
)
def test_bad_options_give_one_line_errors(kwargs, message):
    with pytest.raises(ValueError) as info:
        conv_transpose2d(jnp.ones((1, 2, 2, 1)), jnp.ones((3, 3, 1, 1)), **kwargs)
    assert message in str(info.value) and "\n" not in str(info.value)
