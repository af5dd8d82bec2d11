"""The image classifiers alexnet, vgg, googlenet and resnet: parameter trees against a golden
file, jit against eager, a residual block against its equation in NumPy (float64, with
gradients), the plain net's missing shortcut, bottleneck and Inception shapes, AlexNet's LRN,
and too-small images as one-line config errors.

Parameter paths are what checkpoints, ``freeze`` globs and ``init_from`` mappings address, so
a rename must be deliberate: ``python -m tests.test_cnn_models`` rewrites
tests/golden/cnn_param_trees.json, to be committed with the change.
"""

import functools
import json
import re
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax.traverse_util import flatten_dict
from jax.test_util import check_grads

from dlcore.config.loading import ConfigError, validate
from dlcore.experiment import build
from dlcore.models import alexnet as alexnet_module
from dlcore.models.alexnet import AlexNet
from dlcore.models.dcgan import DCGANDiscriminator, DCGANGenerator
from dlcore.models.googlenet import GoogLeNet, Inception
from dlcore.models.pixelcnn import PixelCNN
from dlcore.models.resnet import ResidualBlock, ResNet, ResNetConfig
from dlcore.models.vgg import VGG

GOLDEN = Path(__file__).parent / "golden" / "cnn_param_trees.json"
CNN_NAMES = (
    "alexnet",
    "vgg",
    "googlenet",
    "resnet",
    "dcgan_generator",
    "dcgan_discriminator",
    "pixelcnn",
)
TINY_ROW = (2, 2, 3, 1, 2, 2)  # Inception [c1, c3r, c3, c5r, c5, cp] -> 9 channels
# name -> (module, input [B, H, W, C], or [B, D] for a generator); every registry name above
# has at least one entry
MODELS = {
    "alexnet": (AlexNet(3, widths=(4, 4, 6, 6, 4), dense=(8, 8)), (2, 16, 16, 3)),
    "vgg": (VGG(3, stages=((4,), (4, 8)), dense=(8,)), (2, 8, 8, 1)),
    "vgg_batch_norm": (VGG(3, stages=((4,), (8,)), dense=(), batch_norm=True), (2, 8, 8, 1)),
    "googlenet": (GoogLeNet(3, stages=((TINY_ROW,), (TINY_ROW,)), stem_width=4), (2, 8, 8, 3)),
    "googlenet_two_3x3": (
        GoogLeNet(3, stages=((TINY_ROW, TINY_ROW),), stem_width=4, wide_branch="two_3x3"),
        (2, 8, 8, 3),
    ),
    "resnet": (ResNet(3, widths=(4, 8), blocks_per_stage=(2, 1), stem_width=4), (2, 8, 8, 3)),
    "resnet_bottleneck": (
        ResNet(3, widths=(2, 4), blocks_per_stage=(1, 1), stem_width=4, block="bottleneck"),
        (2, 8, 8, 3),
    ),
    "resnet_identity_shortcut": (
        ResNet(3, widths=(4, 8), blocks_per_stage=(1, 1), stem_width=4, shortcut="identity"),
        (2, 8, 8, 3),
    ),
    "resnet_plain": (
        ResNet(3, widths=(4, 8), blocks_per_stage=(1, 1), stem_width=4, plain=True),
        (2, 8, 8, 3),
    ),
    "dcgan_generator": (DCGANGenerator((8, 8), 1, widths=(4, 2)), (2, 3)),
    "dcgan_generator_no_batch_norm": (
        DCGANGenerator((8, 8), 3, widths=(4, 2), batch_norm=False),
        (2, 3),
    ),
    "dcgan_discriminator": (DCGANDiscriminator(1, widths=(2, 4, 4)), (2, 8, 8, 1)),
    "dcgan_discriminator_no_batch_norm": (
        DCGANDiscriminator(1, widths=(2, 4), batch_norm=False),
        (2, 8, 8, 3),
    ),
    "pixelcnn": (PixelCNN(1, features=4, blocks=2, head_width=3), (2, 8, 8, 1)),
    "pixelcnn_gated": (PixelCNN(1, features=4, blocks=1, gated=True, head_width=3), (2, 8, 8, 1)),
}


def param_tree(name: str) -> dict[str, list[int]]:
    model, shape = MODELS[name]
    init = functools.partial(model.init, train=False)
    variables = jax.eval_shape(init, jax.random.key(0), jnp.ones(shape))  # shapes, no compile
    return {"/".join(k): list(v.shape) for k, v in sorted(flatten_dict(variables).items())}


def numpy_init(model, x, seed: int = 0) -> dict:
    """Variables of ``model`` drawn with NumPy: He-normal kernels, zero biases, batch norm at
    its initial identity (scale 1, bias 0, mean 0, var 1). Only ``eval_shape`` runs the
    model, so no per-parameter random-number kernels get compiled (the slow part of init)."""
    shapes = jax.eval_shape(functools.partial(model.init, train=False), jax.random.key(0), x)
    rng = np.random.default_rng(seed)

    def fill(path, leaf):
        name = path[-1].key
        if name in ("scale", "var"):
            return jnp.ones(leaf.shape, leaf.dtype)
        if name in ("bias", "mean"):
            return jnp.zeros(leaf.shape, leaf.dtype)
        fan_in = int(np.prod(leaf.shape[:-1]))
        return jnp.asarray(rng.normal(0.0, np.sqrt(2.0 / fan_in), leaf.shape), leaf.dtype)

    return jax.tree_util.tree_map_with_path(fill, shapes)


def test_golden_file_covers_every_model():
    golden = json.loads(GOLDEN.read_text())
    assert set(golden) == set(MODELS)
    assert set(CNN_NAMES) <= set(golden)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_param_tree_matches_golden(name):
    assert param_tree(name) == json.loads(GOLDEN.read_text())[name]


@pytest.mark.parametrize("name", ["alexnet", "vgg_batch_norm", "googlenet", "resnet"])
def test_jit_equals_eager_in_training_mode(name):
    # training mode runs everything eval mode does, plus dropout and batch statistics
    model, shape = MODELS[name]
    x = jax.random.normal(jax.random.key(1), shape)
    variables = numpy_init(model, x)

    def run(v, x):
        return model.apply(
            v, x, train=True, rngs={"dropout": jax.random.key(2)}, mutable=["batch_stats"]
        )

    eager = run(variables, x)
    jitted = jax.jit(run)(variables, x)
    for a, b in zip(jax.tree.leaves(eager), jax.tree.leaves(jitted), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


# ---- the residual block against its equation ---------------------------------------------


def np_conv_same(x, w, stride):
    """'same' cross-correlation as dlcore pads it: out = ceil(in / s), extra pixel low-right."""
    kh, kw, _, f = w.shape
    pads = []
    for size, k in ((x.shape[1], kh), (x.shape[2], kw)):
        out = -(-size // stride)
        total = max((out - 1) * stride + k - size, 0)
        pads.append((total // 2, total - total // 2))
    xp = np.pad(x, ((0, 0), *pads, (0, 0)))
    oh, ow = -(-x.shape[1] // stride), -(-x.shape[2] // stride)
    y = np.zeros((x.shape[0], oh, ow, f))
    for a in range(kh):
        for b in range(kw):
            window = xp[
                :, a : a + stride * (oh - 1) + 1 : stride, b : b + stride * (ow - 1) + 1 : stride
            ]
            y += np.einsum("nhwc,cf->nhwf", window, w[a, b])
    return y


def np_bn_train(x, p):
    """Batch norm with batch statistics (biased variance, eps 1e-5)."""
    mu, var = x.mean(axis=(0, 1, 2)), x.var(axis=(0, 1, 2))
    return p["scale"] * (x - mu) / np.sqrt(var + 1e-5) + p["bias"]


def flat_bn(tree):
    """``{scale, bias}`` of a batch-norm layer, however deep the layer nests them."""
    return {k[-1]: np.asarray(v, np.float64) for k, v in flatten_dict(tree).items()}


def np_basic_block(x, p, stride):
    """relu(BN(W2 * relu(BN(W1 * x))) + shortcut(x)), shortcut = x or BN(Ws * x)."""
    h = np.maximum(np_bn_train(np_conv_same(x, p["conv1"]["kernel"], stride), flat_bn(p["bn1"])), 0)
    h = np_bn_train(np_conv_same(h, p["conv2"]["kernel"], 1), flat_bn(p["bn2"]))
    short = x
    if "shortcut" in p:
        s = p["shortcut"]
        short = np_bn_train(np_conv_same(x, s["conv"]["kernel"], stride), flat_bn(s["bn"]))
    return np.maximum(h + short, 0.0)


@pytest.mark.parametrize(
    ("stride", "in_channels"), [(1, 4), (2, 3)], ids=["identity", "projection"]
)
def test_basic_block_is_its_equation_in_float64_with_gradients(stride, in_channels):
    with jax.enable_x64(True):
        block = ResidualBlock(width=4, stride=stride)
        x = jax.random.normal(jax.random.key(1), (2, 5, 5, in_channels), jnp.float64)
        variables = numpy_init(block, x)
        params = jax.tree.map(lambda a: jnp.asarray(a, jnp.float64), variables["params"])
        # random BN affine parameters, so a wrong scale/shift cannot hide behind 1 and 0
        leaves, treedef = jax.tree.flatten(params)
        keys = jax.random.split(jax.random.key(3), len(leaves))
        params = jax.tree.unflatten(
            treedef,
            [
                a + 0.3 * jax.random.normal(k, a.shape, a.dtype)
                for a, k in zip(leaves, keys, strict=True)
            ],
        )
        assert ("shortcut" in params) == (stride != 1)

        @jax.jit  # one compile serves the forward check and every check_grads probe
        def apply(params, x):
            out, _ = block.apply(
                {"params": params, "batch_stats": variables["batch_stats"]},
                x,
                train=True,
                mutable=["batch_stats"],
            )
            return out

        got = apply(params, x)
        want = np_basic_block(np.asarray(x), jax.tree.map(np.asarray, params), stride)
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10)
        check_grads(apply, (params, x), order=1, modes=["rev"], atol=1e-5, rtol=1e-5)


# ---- shortcuts, bottlenecks, Inception, LRN -----------------------------------------------


def zero_residual_branch(params):
    """The block's params with the last conv of F zeroed: F(x) = BN(0) = beta = 0."""
    last = max(k for k in params if k.startswith("conv"))
    return {**params, last: {"kernel": jnp.zeros_like(params[last]["kernel"])}}


@pytest.mark.parametrize("block", ["basic", "bottleneck"])
def test_plain_block_has_no_shortcut_and_resnet_block_passes_x(block):
    x = jax.random.uniform(jax.random.key(1), (2, 4, 4, 8))  # >= 0, so relu(x) = x
    outs = {}
    for plain in (False, True):
        model = ResidualBlock(width=8 if block == "basic" else 2, block=block, plain=plain)
        variables = numpy_init(model, x)
        params = zero_residual_branch(variables["params"])
        outs[plain] = model.apply({**variables, "params": params}, x, train=False)
        assert "shortcut" not in params  # same shape in and out: identity shortcut
    np.testing.assert_allclose(outs[False], x, atol=1e-6)  # relu(0 + x) = x
    np.testing.assert_allclose(outs[True], 0.0, atol=1e-6)  # relu(0): nothing bypasses F


def test_identity_shortcut_subsamples_and_zero_pads_channels():
    x = jax.random.uniform(jax.random.key(1), (2, 6, 6, 3))
    model = ResidualBlock(width=5, stride=2, shortcut="identity")
    variables = numpy_init(model, x)
    assert "shortcut" not in variables["params"]  # option A has no parameters
    params = zero_residual_branch(variables["params"])
    out = model.apply({**variables, "params": params}, x, train=False)
    np.testing.assert_allclose(out[..., :3], x[:, ::2, ::2, :], atol=1e-6)
    np.testing.assert_allclose(out[..., 3:], 0.0)


def test_bottleneck_reduces_then_expands():
    x = jnp.ones((2, 6, 6, 8))
    model = ResidualBlock(width=4, stride=2, block="bottleneck", expansion=4)
    variables = numpy_init(model, x)
    shapes = {k: v["kernel"].shape for k, v in variables["params"].items() if "kernel" in v}
    assert shapes == {"conv1": (1, 1, 8, 4), "conv2": (3, 3, 4, 4), "conv3": (1, 1, 4, 16)}
    assert variables["params"]["shortcut"]["conv"]["kernel"].shape == (1, 1, 8, 16)
    assert model.apply(variables, x, train=False).shape == (2, 3, 3, 16)


def test_inception_concatenates_1x1_3x3_5x5_pool_branches_in_that_order():
    c1, c3r, c3, c5r, c5, cp = 1, 2, 3, 1, 2, 4
    model = Inception((c1, c3r, c3, c5r, c5, cp))
    x = jax.random.normal(jax.random.key(1), (1, 5, 5, 6))
    params = numpy_init(model, x)["params"]
    # Each branch's last conv: zero kernel, bias = branch number, so its channels read 1..4.
    last = {"branch1x1": "conv", "branch3x3": "conv", "branch5x5": "conv", "branch_pool": "proj"}
    for number, (branch, conv) in enumerate(last.items(), start=1):
        layer = params[branch][conv]
        params[branch][conv] = {
            "kernel": jnp.zeros_like(layer["kernel"]),
            "bias": jnp.full_like(layer["bias"], number),
        }
    out = model.apply({"params": params}, x, train=False)
    assert out.shape == (1, 5, 5, c1 + c3 + c5 + cp)
    want = np.repeat([1.0, 2.0, 3.0, 4.0], [c1, c3, c5, cp])
    np.testing.assert_allclose(out[0, 2, 2], want)


@pytest.mark.parametrize("lrn", [True, False])
def test_alexnet_normalizes_the_responses_of_conv1_and_conv2(lrn, monkeypatch):
    seen = []
    original = alexnet_module.local_response_norm

    def recording_lrn(x, *args, **kwargs):
        seen.append(x.shape)
        return original(x, *args, **kwargs)

    monkeypatch.setattr(alexnet_module, "local_response_norm", recording_lrn)
    model = AlexNet(3, widths=(4, 5, 6, 6, 4), dense=(8,), lrn=lrn)
    jax.eval_shape(
        functools.partial(model.init, train=False), jax.random.key(0), jnp.ones((1, 16, 16, 3))
    )
    assert seen == ([(1, 16, 16, 4), (1, 7, 7, 5)] if lrn else [])


# ---- configuration --------------------------------------------------------------------------


def config_error(model: dict, data: dict) -> str:
    raw = {"name": "t", "data": data, "model": model, "task": {"name": "classification"}}
    with pytest.raises(ConfigError) as info:
        build(validate(raw, "t.toml"), "t.toml")
    lines = info.value.lines()
    assert len(lines) == 1, lines
    return lines[0]


DIGITS = {"name": "digits", "layout": "image"}


@pytest.mark.parametrize(
    ("model", "phrases"),
    [
        (
            {"name": "resnet", "widths": [4, 4, 4, 4, 4], "blocks_per_stage": [1] * 5},
            [
                "t.toml: model: resnet: stage5/block0 (3x3, stride 2, pad 1)",
                "8x8 -> 4x4 -> 2x2 -> 1x1",
            ],
        ),
        (
            {"name": "alexnet"},
            [
                "t.toml: model: alexnet: pool3 (3x3, stride 2, pad 0) needs",
                "digits images shrink to 8x8 -> 3x3 -> 1x1",
            ],
        ),
        ({"name": "vgg", "stages": [[4]] * 4}, ["vgg: stage4/pool", "8x8 -> 4x4 -> 2x2 -> 1x1"]),
    ],
    ids=["resnet", "alexnet", "vgg"],
)
def test_too_small_images_are_one_line_config_errors(model, phrases):
    line = config_error(model, DIGITS)
    for phrase in phrases:
        assert phrase in line, line


def test_flat_inputs_are_refused_with_the_fix():
    line = config_error({"name": "vgg"}, {"name": "digits"})
    assert "vgg needs x as images [H, W, C]" in line and "digits has x features [64]" in line


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"depth": 21}, "depth 21 is not 2 x 3 stages x n blocks + 2 for basic blocks"),
        ({"depth": 20, "blocks_per_stage": [3, 3, 3]}, "give depth or blocks_per_stage, not both"),
        ({"blocks_per_stage": [3, 3]}, "blocks_per_stage has 2 stages but widths has 3"),
    ],
)
def test_resnet_depth_fields_are_checked(fields, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        ResNetConfig(**fields)


@pytest.mark.parametrize(
    ("block", "depth", "blocks"), [("basic", 20, 3), ("basic", 56, 9), ("bottleneck", 29, 3)]
)
def test_resnet_depth_counts_weighted_layers(block, depth, blocks):
    model = ResNetConfig(block=block, depth=depth).make(10)
    assert model.blocks_per_stage == (blocks,) * 3
    per_block = {"basic": 2, "bottleneck": 3}[block]
    assert per_block * sum(model.blocks_per_stage) + 2 == depth


def regenerate() -> None:
    """Rewrites the golden file from the models above (review the diff before committing)."""
    models = []
    for name in sorted(MODELS):
        rows = [f"    {json.dumps(k)}: {json.dumps(v)}" for k, v in param_tree(name).items()]
        models.append(f"  {json.dumps(name)}: {{\n" + ",\n".join(rows) + "\n  }")
    GOLDEN.write_text("{\n" + ",\n".join(models) + "\n}\n")


if __name__ == "__main__":
    regenerate()
