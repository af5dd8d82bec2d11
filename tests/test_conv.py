"""Conv2D's two lowerings, pooling and LeNet5 against the hand-derived NumPy baseline.

All comparisons run in float64 with a relative error bound of 1e-6 (norm of the difference over
the larger norm), outputs and gradients alike.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from benchmarks.numpy_ref import conv as np_conv
from dlcore.config.loading import ConfigError, load_config
from dlcore.layers.conv import Conv2D, conv2d, conv_pads
from dlcore.layers.pooling import avg_pool, max_pool
from dlcore.losses import softmax_cross_entropy
from dlcore.models.lenet import LeNet5
from dlcore.models.registry import MODELS

TOL = 1e-6
IMPLS = ["gemm", "xla"]


def rel_err(a, b) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    scale = max(np.linalg.norm(a), np.linalg.norm(b))
    return float(np.linalg.norm(a - b) / scale) if scale > 0 else 0.0


def numpy_conv_and_grads(x, W, b, g, stride, pads):
    """The baseline on an explicitly padded input (it only pads symmetrically itself)."""
    xp = np.pad(x, ((0, 0), *pads, (0, 0)))
    y, cache = np_conv.conv2d_forward(xp, W, b, stride=stride, pad=0)
    dxp, dW, db = np_conv.conv2d_backward(g, cache)
    (top, _), (left, _) = pads
    dx = dxp[:, top : top + x.shape[1], left : left + x.shape[2]]
    return y, dx, dW, db


CONV_CASES = [  # (stride, padding), on a 7x6 input with a 3x2 kernel
    (1, "valid"),
    (1, "same"),
    (1, "full"),
    (2, "same"),
    (2, 1),
    (3, "same"),
]


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize(("stride", "padding"), CONV_CASES)
def test_conv2d_matches_numpy_outputs_and_gradients(impl, stride, padding):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 7, 6, 3))
    W = rng.standard_normal((3, 2, 3, 4))
    b = rng.standard_normal(4)
    pads = conv_pads(padding, (7, 6), (3, 2), stride)
    with jax.enable_x64(True):

        def f(x, W, b):
            return conv2d(x, W, b, stride=stride, padding=padding, impl=impl)

        y = f(x, W, b)
        assert y.dtype == jnp.float64
        g = rng.standard_normal(y.shape)
        dx, dW, db = jax.grad(lambda *a: jnp.sum(f(*a) * g), argnums=(0, 1, 2))(x, W, b)
    y_np, dx_np, dW_np, db_np = numpy_conv_and_grads(x, W, b, g, stride, pads)
    assert y.shape == y_np.shape
    for ours, theirs in ((y, y_np), (dx, dx_np), (dW, dW_np), (db, db_np)):
        assert rel_err(ours, theirs) <= TOL


@pytest.mark.parametrize(("stride", "padding"), CONV_CASES)
def test_both_lowerings_agree(stride, padding):
    rng = np.random.default_rng(1)
    x, W = rng.standard_normal((1, 7, 6, 2)), rng.standard_normal((3, 2, 2, 3))
    with jax.enable_x64(True):
        ys = {i: conv2d(x, W, stride=stride, padding=padding, impl=i) for i in IMPLS}
    assert rel_err(ys["gemm"], ys["xla"]) <= TOL


def test_gemm_lowering_passes_numerical_gradient_check():
    rng = np.random.default_rng(2)
    x, W = rng.standard_normal((1, 5, 5, 2)), rng.standard_normal((3, 3, 2, 2))
    with jax.enable_x64(True):
        check_grads(
            lambda x, W: conv2d(x, W, stride=2, padding="same", impl="gemm"),
            (jnp.asarray(x), jnp.asarray(W)),
            order=1,
            modes=("rev",),
        )


def test_same_padding_keeps_ceil_size_and_auto_picks_a_lowering():
    y = conv2d(jnp.ones((1, 7, 8, 1)), jnp.ones((3, 3, 1, 2)), stride=2, padding="same")
    assert y.shape == (1, 4, 4, 2)
    layer = Conv2D(features=5, kernel_size=(3, 2), stride=2, padding="same")
    y, variables = jax.jit(lambda x: layer.init_with_output(jax.random.key(0), x))(
        jnp.ones((2, 7, 8, 3))
    )
    assert variables["params"]["kernel"].shape == (3, 2, 3, 5)
    assert variables["params"]["bias"].shape == (5,)
    assert y.shape == (2, 4, 4, 5)


def test_max_pool_gradient_routes_to_the_argmax():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 6, 4, 3))
    with jax.enable_x64(True):
        y = max_pool(x)
        g = rng.standard_normal(y.shape)
        dx = jax.grad(lambda x: jnp.sum(max_pool(x) * g))(x)
    y_np, cache = np_conv.maxpool_forward(x)
    assert rel_err(y, y_np) <= TOL
    assert rel_err(dx, np_conv.maxpool_backward(g, cache)) <= TOL
    # Exactly one input per (non-overlapping) window receives the window's gradient.
    assert np.count_nonzero(np.asarray(dx)) == y.size


def test_overlapping_max_pool_adds_gradients_of_shared_maxima():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((1, 5, 5, 2))
    with jax.enable_x64(True):
        y = max_pool(x, size=3, stride=1)
        g = rng.standard_normal(y.shape)
        dx = jax.grad(lambda x: jnp.sum(max_pool(x, size=3, stride=1) * g))(x)
    _, cache = np_conv.maxpool_forward(x, size=3, stride=1)
    assert rel_err(dx, np_conv.maxpool_backward(g, cache)) <= TOL


def test_avg_pool_is_the_window_mean_and_spreads_gradient_evenly():
    x = np.arange(32.0).reshape(1, 4, 4, 2)
    with jax.enable_x64(True):
        y = avg_pool(x)
        dx = jax.grad(lambda x: jnp.sum(avg_pool(x)))(x)
    expected = x.reshape(1, 2, 2, 2, 2, 2).mean(axis=(2, 4))
    assert rel_err(y, expected) <= TOL
    np.testing.assert_array_equal(dx, np.full(x.shape, 0.25))


def to_flax(params: dict) -> dict:
    """``numpy_ref.conv.lenet5_init`` names -> LeNet5's parameter tree."""
    tree = {
        f"conv{i}": {"kernel": params[f"conv{i}_W"], "bias": params[f"conv{i}_b"]} for i in (1, 2)
    }
    tree |= {f"dense{i}": {"kernel": params[f"W{i}"], "bias": params[f"b{i}"]} for i in range(3)}
    return tree


def from_flax(tree: dict) -> dict:
    out = {
        f"conv{i}_{k}": tree[f"conv{i}"][n]
        for i in (1, 2)
        for k, n in (("W", "kernel"), ("b", "bias"))
    }
    out |= {
        f"{k}{i}": tree[f"dense{i}"][n]
        for i in range(3)
        for k, n in (("W", "kernel"), ("b", "bias"))
    }
    return out


@pytest.fixture(scope="module")
def lenet_case():
    rng = np.random.default_rng(5)
    params = np_conv.lenet5_init(rng, np.float64)
    x = rng.standard_normal((2, 28, 28, 1))
    labels = rng.integers(0, 10, 2)
    return params, x, labels, np_conv.lenet5_loss_and_grads(params, x, labels)


@pytest.mark.parametrize("impl", IMPLS)
def test_lenet5_loss_and_gradients_match_numpy(lenet_case, impl):
    params, x, labels, (loss_np, grads_np) = lenet_case
    model = LeNet5(conv_impl=impl)
    with jax.enable_x64(True):
        tree = jax.tree.map(jnp.asarray, to_flax(params))
        init = jax.eval_shape(model.init, jax.random.key(0), jnp.zeros((1, 784)), train=False)
        assert jax.tree.map(jnp.shape, tree) == jax.tree.map(jnp.shape, init["params"])

        def loss(tree):
            logits = model.apply({"params": tree}, x, train=False)
            return jnp.mean(softmax_cross_entropy(logits, labels))

        value, grads = jax.jit(jax.value_and_grad(loss))(tree)
    assert rel_err(value, loss_np) <= TOL
    grads = from_flax(grads)
    assert set(grads) == set(grads_np)
    for name in grads_np:
        assert rel_err(grads[name], grads_np[name]) <= TOL, name


def test_lenet5_reads_flat_grey_and_channel_inputs_alike():
    model = LeNet5(out_features=3, conv_impl="xla")  # the reshape is under test, not the conv
    x = np.random.default_rng(6).standard_normal((2, 28, 28)).astype(np.float32)

    @jax.jit
    def three_ways(x):
        variables = model.init(jax.random.key(0), x, train=False)
        return [
            model.apply(variables, v, train=False) for v in (x.reshape(2, 784), x, x[..., None])
        ]

    outs = three_ways(x)
    assert outs[0].shape == (2, 3)
    np.testing.assert_array_equal(outs[0], outs[1])
    np.testing.assert_array_equal(outs[0], outs[2])


def test_lenet5_is_registered_and_built_from_config():
    entry = MODELS["lenet5"]
    cfg = entry.config(conv_impl="xla", activation="tanh")
    model = cfg.make(7)
    assert isinstance(model, nn.Module)
    assert (model.conv_impl, model.activation, model.out_features) == ("xla", "tanh", 7)
    with pytest.raises(ValueError, match="unknown conv impl 'fft'; valid: auto, gemm, native, xla"):
        entry.config(conv_impl="fft")


def test_lenet5_experiment_section_is_validated(tmp_path):
    text = 'name = "t"\n[data]\nname = "xor"\n[model]\nname = "lenet5"\nconv_impl = "{}"\n'
    (tmp_path / "good.toml").write_text(text.format("gemm"))
    model = load_config(tmp_path / "good.toml").model
    assert (model.name, model.conv_impl, model.image_size) == ("lenet5", "gemm", 28)
    (tmp_path / "bad.toml").write_text(text.format("fft"))
    with pytest.raises(ConfigError, match="model.conv_impl: unknown conv impl 'fft'"):
        load_config(tmp_path / "bad.toml")


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (
            lambda: Conv2D(4, 3, padding="sme"),
            "conv padding must be 'same', 'valid', 'full' or an int",
        ),
        (lambda: Conv2D(4, 3, padding=-1), "got -1"),
        (
            lambda: Conv2D(4, 3, impl="cudnn"),
            "unknown conv impl 'cudnn'; valid: auto, gemm, native, xla",
        ),
        (
            lambda: conv2d(jnp.ones((1, 5, 5, 2)), jnp.ones((3, 3, 1, 4))),
            r"conv input has 2 channels but the kernel expects 1",
        ),
        (
            lambda: conv2d(jnp.ones((1, 2, 2, 1)), jnp.ones((3, 3, 1, 4))),
            r"conv kernel 3x3 is larger than the padded input 2x2",
        ),
        (lambda: conv2d(jnp.ones((5, 5, 1)), jnp.ones((3, 3, 1, 4))), r"got shape \(5, 5, 1\)"),
        (lambda: max_pool(jnp.ones((1, 1, 4, 1))), "max_pool window 2x2 is larger than the input"),
        (
            lambda: LeNet5().init(jax.random.key(0), jnp.ones((2, 64)), train=False),
            r"image_size\*\*2 = 784 features; got shape \(2, 64\)",
        ),
        (
            lambda: LeNet5().init(jax.random.key(0), jnp.ones((2, 8, 8)), train=False),
            "LeNet5 needs images of at least 12x12",
        ),
    ],
)
def test_bad_arguments_give_one_line_errors(make, message):
    with pytest.raises(ValueError, match=message) as info:
        make()
    assert "\n" not in str(info.value)


def test_benchmark_slot_builds_a_dlcore_lenet5_step():
    from benchmarks import suite_cnn

    rng = np.random.default_rng(7)
    x = rng.standard_normal((2, 28, 28, 1), dtype=np.float32)
    y = rng.integers(0, 10, 2).astype(np.int32)
    auto, *others = suite_cnn.conv_lowerings()
    assert sorted([auto, *others]) == ["gemm", "native", "xla"]
    # impl="xla": the gemm LeNet already compiles in test_lenet5_loss_and_gradients_match_numpy
    cand = suite_cnn.dlcore_lenet5(x, y, "xla", name="dlcore conv=xla")
    assert cand.step is not None, cand.note
    assert cand.name == "dlcore conv=xla" and cand.compile.compile_s > 0
    assert np.isfinite(float(cand.step()["loss"]))
