"""Seeing inside a trained image model (dlcore.viz and ``dlcore viz``).

One tiny LeNet-5 run on 16x16 digits is trained once for the module (a real ``dlcore
run``); the pictures are made from it in-process and through the real command line.
"""

import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import jax.test_util
import matplotlib.image
import numpy as np
import pytest

from dlcore.config.loading import validate
from dlcore.experiment import run_experiment
from dlcore.experiment.restore import restore_run
from dlcore.viz import (
    VizOptions,
    conv_kernels,
    deep_dream,
    gaussian_blur,
    grid,
    layer_output,
    layer_shapes,
    maximize_unit,
    pick_kernel,
    saliency,
    save_png,
    smoothgrad,
    total_variation,
    visualize_run,
)
from tests.helpers import run_cli, run_main

SIDE = 16


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("viz")
    config = {
        "name": "viz_lenet",
        "seed": 0,
        "data": {"name": "digits", "layout": "image", "image_size": SIDE},
        "model": {"name": "lenet5", "image_size": SIDE},
        "optimizer": {"name": "adam", "learning_rate": 3e-3},
        "train": {"epochs": 2, "batch_size": 64, "mode": "scan"},
    }
    run_dir = root / "run"
    # In this process: the run is the material here; `dlcore viz` below is the real CLI.
    run_experiment(validate(config, "lenet.toml"), run_dir)
    restored = restore_run(run_dir, "latest")
    model = restored.experiment.task.model
    variables = {"params": restored.state.params, **restored.state.model_state}
    x_test = restored.experiment.data.test["x"]
    return run_dir, root / "c", model, variables, x_test


def grid_size(n: int, h: int, w: int, scale: int, cols: int | None = None) -> tuple[int, int]:
    """The documented geometry of dlcore.viz.images.grid (1-pixel padding)."""
    cols = cols or math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    return rows * (h * scale + 1) + 1, cols * (w * scale + 1) + 1


# kind, options, file stem, expected (height, width) from the grid geometry
PICTURES = [
    ("filters", VizOptions(scale=2), "filters_conv1", grid_size(6, 5, 5, 2)),
    ("features", VizOptions(layer="conv1", scale=1), "features_conv1_test0",
     grid_size(6, 16, 16, 1)),
    ("features", VizOptions(layer="conv2", photo="china", scale=3), "features_conv2_china",
     grid_size(16, 4, 4, 3)),
    ("maximize", VizOptions(unit=3, steps=8, scale=1), "maximize_output_unit3", (18, 18)),
    ("dream", VizOptions(layer="conv2", size=40, octaves=2, steps=3, scale=1),
     "dream_conv2_china", grid_size(2, 40, 40, 1, cols=2)),
    ("saliency", VizOptions(index=2, unit=1, smooth=4, scale=2), "saliency_test2_class1",
     grid_size(3, 16, 16, 2, cols=3)),
]  # fmt: skip


@pytest.mark.parametrize(("kind", "opts", "stem", "size"), PICTURES)
def test_each_kind_writes_a_png_of_the_documented_size(trained, tmp_path, kind, opts, stem, size):
    run_dir = trained[0]
    written, lines = visualize_run(run_dir, kind, opts, out=tmp_path)
    assert [p.name for p in written] == [f"{stem}.png"] and lines
    image = matplotlib.image.imread(written[0])
    assert image.shape[:2] == size
    assert np.isfinite(image).all() and image[..., :3].std() > 0


def test_activation_maximisation_raises_the_unit_and_is_deterministic(trained):
    _, _, model, variables, _ = trained
    x0 = 0.1 * jax.random.normal(jax.random.PRNGKey(1), (SIDE, SIDE, 1))
    args = dict(layer="conv2", unit=5, steps=30, lr=0.1)
    first = maximize_unit(model, variables, x0, jax.random.PRNGKey(2), **args)
    again = maximize_unit(model, variables, x0, jax.random.PRNGKey(2), **args)
    assert float(first.end) > float(first.start) + 0.1
    np.testing.assert_array_equal(np.asarray(first.image), np.asarray(again.image))
    assert first.trace.shape == (30,)


def test_layer_output_stops_at_the_layer_and_matches_flax_capture(trained):
    _, _, model, variables, x_test = trained
    x = jnp.asarray(x_test[:2])
    _, state = model.apply(
        variables, x, train=False, capture_intermediates=True, mutable=["intermediates"]
    )
    for layer in ("conv1", "conv2", "dense0"):
        np.testing.assert_allclose(
            layer_output(model, variables, x, layer),
            state["intermediates"][layer]["__call__"][0],
            rtol=1e-6,
        )
    # conv layers read any size because the dense head never runs
    wide = jnp.zeros((1, 40, 24, 1))
    assert layer_output(model, variables, wide, "conv2").shape == (1, 16, 8, 16)
    assert list(layer_shapes(model, variables, x)) == [
        "conv1", "conv2", "dense0", "dense1", "dense2", "output"
    ]  # fmt: skip


def test_unknown_layer_lists_the_valid_ones(trained):
    _, _, model, variables, _ = trained
    x0 = jnp.zeros((SIDE, SIDE, 1))
    with pytest.raises(ValueError, match="unknown layer 'conv9'") as err:
        maximize_unit(model, variables, x0, jax.random.PRNGKey(0), layer="conv9", unit=0)
    assert "conv1 [16, 16, 6], conv2 [4, 4, 16]" in str(err.value)
    assert "output [10]" in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(ValueError, match="unit 16 is out of range: layer 'conv2' has 16 chan"):
        maximize_unit(model, variables, x0, jax.random.PRNGKey(0), layer="conv2", unit=16)


def test_dream_needs_a_layer_that_reads_the_size(trained):
    _, _, model, variables, _ = trained
    photo = jnp.zeros((48, 48, 1))
    with pytest.raises(ValueError, match=r"cannot read an input of shape \[34, 34, 1\] up to"):
        deep_dream(model, variables, photo, jax.random.PRNGKey(0), layer="dense0", octaves=2)
    image, values = deep_dream(
        model, variables, photo + 0.5, jax.random.PRNGKey(0), layer="conv1", octaves=2, steps=4
    )
    assert image.shape == (48, 48, 1) and values.shape == (8,)
    assert float(values[-1]) > float(values[0])


class Linear(nn.Module):
    """scores = W vec(x) + b on [B, H, W, C] images: the saliency map is known exactly."""

    classes: int = 3

    @nn.compact
    def __call__(self, x, *, train):
        del train
        return nn.Dense(self.classes)(x.reshape(x.shape[0], -1))


def test_saliency_is_the_max_abs_weight_of_a_linear_model():
    with jax.enable_x64(True):
        model = Linear()
        x = jax.random.normal(jax.random.PRNGKey(0), (4, 5, 2), jnp.float64)
        variables = model.init(jax.random.PRNGKey(1), x[None], train=False)
        kernel = np.asarray(variables["params"]["Dense_0"]["kernel"], np.float64)
        expected = np.abs(kernel[:, 2].reshape(4, 5, 2)).max(axis=-1)
        got = saliency(model, variables, x, 2)
        assert got.dtype == jnp.float64
        np.testing.assert_allclose(got, expected, rtol=1e-12)
        # central differences of the score agree with the gradient behind the map
        score = lambda x: float(model.apply(variables, x[None], train=False)[0, 2])  # noqa: E731
        e = np.zeros(x.shape)
        e[1, 3, 1] = 1e-6
        fd = (score(x + e) - score(x - e)) / 2e-6
        assert abs(fd) == pytest.approx(abs(kernel[(1 * 5 + 3) * 2 + 1, 2]), rel=1e-6)
        # the gradient of a linear score is the same everywhere: SmoothGrad changes nothing
        smooth = smoothgrad(model, variables, x, 2, jax.random.PRNGKey(3), samples=5)
        np.testing.assert_allclose(smooth, expected, rtol=1e-12)
        with pytest.raises(ValueError, match="class 3 is out of range: the model has 3"):
            saliency(model, variables, x, 3)
        with pytest.raises(ValueError, match="no convolution layer"):
            pick_kernel(conv_kernels(model, variables, x[None]))


def test_total_variation_and_blur_match_numpy():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((6, 7, 2))
    with jax.enable_x64(True):
        tv = float(total_variation(jnp.asarray(x)))
        blurred = np.asarray(gaussian_blur(jnp.asarray(x), 0.8))
    expected_tv = 0.5 * (np.sum(np.diff(x, axis=0) ** 2) + np.sum(np.diff(x, axis=1) ** 2))
    assert tv == pytest.approx(expected_tv, rel=1e-12)
    t = np.arange(-3, 4)
    k = np.exp(-0.5 * (t / 0.8) ** 2)
    k /= k.sum()
    padded = np.pad(x, ((3, 3), (3, 3), (0, 0)), mode="edge")
    rows = np.apply_along_axis(lambda v: np.convolve(v, k, "valid"), 0, padded)
    expected = np.apply_along_axis(lambda v: np.convolve(v, k, "valid"), 1, rows)
    np.testing.assert_allclose(blurred, expected, rtol=1e-10)
    # gradient of TV against central differences
    with jax.enable_x64(True):
        jax.test_util.check_grads(total_variation, (jnp.asarray(x),), order=1, modes=["rev"])


def test_png_round_trip_keeps_pixels(tmp_path):
    tiles = np.linspace(0, 1, 2 * 3 * 3 * 3).reshape(2, 3, 3, 3)
    image = grid(tiles, cols=2, scale=2)
    read = matplotlib.image.imread(save_png(tmp_path / "g.png", image))
    assert read.shape[:2] == image.shape[:2] == grid_size(2, 3, 3, 2, cols=2)
    np.testing.assert_allclose(read[..., :3], image, atol=1 / 255)


def test_cli_writes_filters_and_names_bad_input_in_one_line(trained, tmp_path):
    run_dir, cache, *_ = trained
    ok = run_cli("viz", str(run_dir), "filters", "--out", str(tmp_path / "a"), cache_dir=cache)
    assert ok.returncode == 0, ok.stderr
    assert (tmp_path / "a" / "filters_conv1.png").is_file()
    assert "conv1: kernel [5, 5, 1, 6]" in ok.stdout
    cases = [
        (str(tmp_path / "nowhere"), "features", "--layer", "conv1"),
        (str(run_dir), "features", "--layer", "conv9"),
    ]
    expected = [
        "not a dlcore run directory",
        "unknown layer 'conv9'; the model's layers: conv1 [16, 16, 6]",
    ]
    for args, message in zip(cases, expected, strict=True):
        out = tmp_path / "bad"
        proc = run_main("viz", *args, "--out", str(out))  # bad input: in this process
        assert proc.returncode == 2, proc.stderr
        assert proc.stderr.count("\n") == 1 and message in proc.stderr, proc.stderr
        assert not out.exists()


@pytest.mark.parametrize(
    ("kind", "opts", "message"),
    [
        ("looking", VizOptions(), "unknown viz kind 'looking'; kinds: filters, features"),
        ("saliency", VizOptions(unit=10), "class 10 is out of range: the model has 10 classes"),
        ("features", VizOptions(index=270), "index 270 is out of range: the test split has 270"),
        ("features", VizOptions(layer="dense0"), "'dense0' gives [120], not feature maps"),
        ("dream", VizOptions(photo="moon"), "unknown photo 'moon'; photos: china, flower"),
        ("filters", VizOptions(layer="dense1"), "'dense1' is not a convolution layer; conv"),
    ],
)
def test_bad_requests_are_one_line_and_write_nothing(trained, tmp_path, kind, opts, message):
    with pytest.raises(ValueError) as err:
        visualize_run(trained[0], kind, opts, out=tmp_path / "out")
    assert message in str(err.value) and "\n" not in str(err.value)
    assert not (tmp_path / "out").exists()
