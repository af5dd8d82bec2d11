"""PixelCNN: the causal masks exactly, causality of the whole net by its full Jacobian (and its
documented blind spot), bits/dim against the NLL formula, the independent-pixel reference,
the compiled sampler's properties, one compile of the train step, and bad data refused."""

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dlcore.config.loading import ConfigError, validate
from dlcore.experiment import build
from dlcore.layers.masked_conv import MaskedConv2D, causal_mask
from dlcore.models.pixelcnn import PixelCNN
from dlcore.tasks.pixelcnn import check_binary
from dlcore.tasks.pixelcnn_sampling import LN2, independent_pixel_bits

H = W = 8
IMAGES = 4  # random images of the Jacobian test
N_SAMPLES = 10  # as many as the report completes: one compiled sampler serves both
SMALL = {"features": 8, "blocks": 2, "first_kernel": 3, "kernel_size": 3, "head_width": 8}
BINARY_DIGITS = {"name": "digits", "layout": "image", "preprocess": "none", "binarize": True}


def randomized(params, seed: int = 0, scale: float = 0.5, bias: float = 0.0):
    """Parameters shaped like ``params`` (arrays or shapes) drawn with NumPy: kernels from
    N(0, scale^2), biases from N(bias, scale^2), so no zero-initialized kernel hides a path
    (the last kernel starts at zero) and no random-number kernel gets compiled."""
    rng = np.random.default_rng(seed)

    def draw(path, leaf):
        mean = bias if path[-1].key == "bias" else 0.0
        return jnp.asarray(rng.normal(mean, scale, leaf.shape), jnp.float32)

    return jax.tree_util.tree_map_with_path(draw, params)


def shapes(module, x):
    """The parameter shapes of ``module`` on ``x`` (no initializer runs)."""
    return jax.eval_shape(module.init, jax.random.key(0), x)["params"]


# ---- the mask ----------------------------------------------------------------------------


def test_causal_masks_are_exact():
    a = causal_mask(3, 3, 1, 1, "A")[..., 0, 0]
    b = causal_mask(3, 3, 1, 1, "B")[..., 0, 0]
    np.testing.assert_array_equal(a, [[1, 1, 1], [1, 0, 0], [0, 0, 0]])
    np.testing.assert_array_equal(b, [[1, 1, 1], [1, 1, 0], [0, 0, 0]])
    tall = causal_mask(5, 3, 1, 1, "A")[..., 0, 0]
    np.testing.assert_array_equal(tall, [[1, 1, 1], [1, 1, 1], [1, 0, 0], [0, 0, 0], [0, 0, 0]])
    seven = causal_mask(7, 7, 2, 5, "A")  # one channel group: the same mask for every pair
    assert seven.shape == (7, 7, 2, 5) and seven.dtype == np.float32
    assert np.all(seven == seven[..., :1, :1])
    assert seven[..., 0, 0].sum() == 3 * 7 + 3  # rows above, and left of the centre


@pytest.mark.parametrize(
    ("args", "message"),
    [((4, 3, 1, 1, "A"), "odd kernel sides"), ((3, 3, 1, 1, "C"), "mask kind")],
)
def test_causal_mask_refuses_even_sides_and_other_kinds(args, message):
    with pytest.raises(ValueError, match=message):
        causal_mask(*args)


def test_masked_conv_is_the_conv_of_the_masked_kernel_and_masked_taps_learn_nothing():
    layer = MaskedConv2D(3, 5, "B")
    x = jax.random.normal(jax.random.key(1), (2, 6, 6, 2))
    params = randomized(shapes(layer, x), seed=1)
    w_masked = params["kernel"] * causal_mask(5, 5, 2, 3, "B")
    conv = jax.lax.conv_general_dilated(
        x, w_masked, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC")
    )
    expected = np.asarray(conv) + np.asarray(params["bias"])
    np.testing.assert_allclose(layer.apply({"params": params}, x), expected, atol=1e-5)
    g = jax.jit(jax.grad(lambda p: jnp.sum(layer.apply({"params": p}, x) ** 2)))(params)["kernel"]
    mask = causal_mask(5, 5, 2, 3, "B").astype(bool)
    assert np.all(np.asarray(g)[~mask] == 0.0) and np.all(np.asarray(g)[mask] != 0.0)


# ---- causality of the whole network ------------------------------------------------------


@pytest.fixture(scope="module", params=[False, True], ids=["plain", "gated"])
def jacobian(request):
    """|d logit(t) / d x(s)| over raster positions t, s of an 8x8 image ``[IMAGES, 64, 64]``,
    for random images and random parameters. Positive biases keep most ReLUs open, and
    several images make it unlikely that closed ReLUs hide a path in all of them."""
    net = PixelCNN(1, gated=request.param, **SMALL)
    x = jax.random.bernoulli(jax.random.key(2), 0.5, (IMAGES, H, W, 1)).astype(jnp.float32)
    params = randomized(shapes(net, x), bias=0.5)

    @jax.jit
    def per_image(x_HxWx1):
        def logits(x):
            return net.apply({"params": params}, x[None])[0, :, :, 0].reshape(H * W)

        return jax.jacrev(logits)(x_HxWx1).reshape(H * W, H * W)

    return np.abs(np.asarray(jax.vmap(per_image)(x)))


def test_each_logit_ignores_its_pixel_and_later_ones_and_reads_earlier_ones(jacobian):
    later_or_same = np.triu(np.ones((H * W, H * W), bool))  # s >= t
    assert np.all(jacobian[:, later_or_same] == 0.0)  # exactly, not approximately
    seen = jacobian.sum(axis=0)  # [64, 64]: nonzero where some image's logit reads the pixel
    for t in range(1, H * W):
        assert np.any(seen[t, :t] != 0.0), f"logit {divmod(t, W)} reads no earlier pixel"


def test_the_masked_stack_has_the_documented_blind_spot(jacobian):
    # first_kernel 3, 3x3 blocks: the logit at (i, j) sees row i - 1 up to column j + 1 only
    i, j = 4, 2
    row_above = jacobian.sum(axis=0)[i * W + j, (i - 1) * W : i * W]  # d l(4, 2) / d x(3, :)
    assert np.all(row_above[j + 2 :] == 0.0)  # earlier pixels never seen: the blind spot
    assert np.all(row_above[: j + 2] != 0.0)


# ---- the task ---------------------------------------------------------------------------


def experiment(model=None, data=None, task=None):
    raw = {
        "data": data or BINARY_DIGITS,
        "model": {"name": "pixelcnn", **SMALL, **(model or {})},
        "task": {"name": "pixelcnn", **(task or {})},
        "train": {"batch_size": 16},
    }
    return build(validate(raw, "t.toml"), "t.toml")


@pytest.fixture(scope="module")
def trained():
    """The task built from a config, three compiled train steps, then random parameters
    (so that samples and likelihoods are far from the initial p = 1/2)."""
    built = experiment()
    task, data = built.task, built.data
    state = jax.jit(task.init)(jax.random.PRNGKey(0), data.train.rows(slice(0, 16)))
    traces = []

    @jax.jit
    def step(state, batch):
        traces.append(1)  # runs only while tracing
        return task.train_step(state, batch)

    losses = []
    for n in range(3):  # new values, same shapes: no retrace
        state, sums = step(state, data.train.rows(slice(16 * n, 16 * n + 16)))
        losses.append(float(sums["nll"] / sums["count"]))
    state = state.replace(params=randomized(state.params, seed=3, scale=0.3))
    return task, data, state, traces, losses


def test_train_step_compiles_once_and_starts_at_one_bit_per_pixel(trained):
    task, _, _, traces, losses = trained
    assert len(traces) == 1
    assert losses[0] == pytest.approx(task.dims * LN2, rel=1e-6)  # zero last kernel: p = 1/2
    assert losses[2] < losses[0]


def test_bits_per_dim_is_the_summed_bernoulli_nll_over_d_ln2(trained):
    task, data, state, _, _ = trained
    x = np.asarray(data.test.x[:10], np.float32)
    mask = np.array([1.0] * 7 + [0.0] * 3, np.float32)
    sums = jax.jit(task.eval_step)(state, {"x": x, "mask": mask})
    with jax.enable_x64(True):
        logits = np.asarray(task.logits(state.params, x), np.float64)
        log_p = x * -np.logaddexp(0.0, -logits) + (1.0 - x) * -np.logaddexp(0.0, logits)
        nll = -log_p.reshape(10, -1).sum(axis=1)
    expected = float(np.sum(nll * mask))
    assert float(sums["count"]) == 7
    assert float(sums["nll"]) == pytest.approx(expected, rel=1e-5)
    assert float(sums["bits_per_dim"]) == pytest.approx(expected / (H * W * math.log(2)), rel=1e-5)
    means = task.summarize(jax.device_get(sums), training_window=False)
    assert means["bits_per_dim"] == pytest.approx(means["nll"] / (64 * math.log(2)), rel=1e-6)


def test_independent_pixel_reference():
    rng = np.random.default_rng(0)
    train = (rng.random((500, 6)) < [0.1, 0.5, 0.9, 0.3, 0.0, 1.0]).astype(np.float64)
    # on its own training data the bits/dim are the mean cross-entropy of the pixel means p
    # and the clipped means q the model uses: -(p log2 q + (1 - p) log2(1 - q))
    p = train.mean(axis=0)
    q = np.clip(p, 1e-3, 1 - 1e-3)
    cross_entropy_bits = -(p * np.log2(q) + (1 - p) * np.log2(1 - q)).mean()
    assert independent_pixel_bits(train, train) == pytest.approx(cross_entropy_bits, rel=1e-12)
    # a pixel never inked in training costs log2(1000) bits, not infinity
    test = np.zeros((1, 6))
    test[0, 4] = 1.0
    assert np.isfinite(independent_pixel_bits(train, test))
    assert independent_pixel_bits([[0.0, 1.0], [1.0, 0.0]], [[0.0, 1.0]]) == pytest.approx(1.0)


# ---- sampling -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def samples(trained):
    task, _, state, _, _ = trained
    run = task.jitted_sample
    first = run(state, N_SAMPLES, jax.random.key(5), None, 0)
    again = run(state, N_SAMPLES, jax.random.key(5), None, 0)
    other = run(state, N_SAMPLES, jax.random.key(6), None, 0)
    return first, again, other


def test_samples_are_binary_and_a_pure_function_of_the_key(samples):
    (x, log_p), (x_again, log_p_again), (x_other, _) = samples
    assert x.shape == (N_SAMPLES, H, W, 1) and set(np.unique(x)) <= {0.0, 1.0}
    np.testing.assert_array_equal(x, x_again)
    np.testing.assert_array_equal(log_p, log_p_again)
    assert np.any(np.asarray(x) != np.asarray(x_other))


def test_the_teacher_forced_likelihood_of_a_sample_is_what_sampling_recorded(trained, samples):
    task, _, state, _, _ = trained
    x, log_p = samples[0]
    np.testing.assert_allclose(-task.jitted_nll(state.params, x), log_p, rtol=1e-5, atol=1e-4)


def test_completion_reads_only_the_given_pixels_before_start(trained, samples):
    task, data, state, _, _ = trained
    x, _ = samples[0]
    run = task.jitted_sample
    start = (H // 2) * W  # the report's completions: the same compiled sampler
    # the sample's own first pixels, with the same key, give the sample back
    redrawn, _ = run(state, N_SAMPLES, jax.random.key(5), x, start)
    np.testing.assert_array_equal(redrawn, x)
    # garbage at and after start is never read
    noise = jax.random.bernoulli(jax.random.key(7), 0.5, x.shape).astype(jnp.float32)
    flat = np.asarray(x).reshape(N_SAMPLES, -1).copy()
    flat[:, start:] = np.asarray(noise).reshape(N_SAMPLES, -1)[:, start:]
    garbage, _ = run(state, N_SAMPLES, jax.random.key(5), flat.reshape(x.shape), start)
    np.testing.assert_array_equal(garbage, x)


def test_report_and_snapshot_write_pictures_and_finite_figures(trained, tmp_path):
    task, data, state, _, _ = trained
    figures = task.report(state, data, tmp_path)
    assert {"test_bits_per_dim", "independent_pixel_bits_per_dim"} <= set(figures)
    assert all(np.isfinite(v) for v in figures.values())
    assert figures["test_bits_per_dim"] == pytest.approx(
        figures["test_nll"] / (H * W * LN2), rel=1e-9
    )
    assert (tmp_path / "samples.png").exists() and (tmp_path / "completions.png").exists()
    before = jax.tree.map(np.asarray, state)
    dataclasses.replace(task, snapshot_samples=4).snapshot(state, data, tmp_path / "s", 3)
    assert (tmp_path / "s" / "samples_epoch0003.png").exists()
    jax.tree.map(np.testing.assert_array_equal, before, jax.tree.map(np.asarray, state))


# ---- bad data and models --------------------------------------------------------------------


def config_error(**kwargs) -> str:
    with pytest.raises(ConfigError) as info:
        experiment(**kwargs)
    lines = info.value.lines()
    assert len(lines) == 1, lines
    return lines[0]


@pytest.mark.parametrize(
    ("kwargs", "phrases"),
    [
        (
            {"data": {"name": "digits", "layout": "image", "preprocess": "unit"}},
            ["t.toml: data: pixelcnn models binary images", "binarize = true"],
        ),
        (
            {"data": {"name": "digits", "preprocess": "none", "binarize": True}},
            ["task.name: pixelcnn needs x as binary images", "digits has x features [64]"],
        ),
        ({"model": {"first_kernel": 4}}, ["model.first_kernel", "must be odd"]),
    ],
    ids=["non_binary", "flat_layout", "even_kernel"],
)
def test_bad_data_and_models_are_one_line_config_errors(kwargs, phrases):
    line = config_error(**kwargs)
    for phrase in phrases:
        assert phrase in line, line


def test_a_model_that_is_not_causal_is_refused():
    raw = {
        "data": BINARY_DIGITS,
        "model": {"name": "unet", "widths": [2]},
        "task": {"name": "pixelcnn"},
    }
    with pytest.raises(ConfigError) as info:
        build(validate(raw, "t.toml"), "t.toml")
    (line,) = info.value.lines()
    assert "model.name" in line and "'unet' is not one: use pixelcnn" in line


def test_research_code_refuses_non_binary_images(trained):
    task = trained[0]
    with pytest.raises(ValueError, match=r"values other than 0 and 1, e.g. 0.5"):
        check_binary(np.array([0.0, 0.5, 1.0]))
    with pytest.raises(ValueError, match="binary images"):
        task.init(jax.random.PRNGKey(0), {"x": np.full((2, H, W, 1), 0.25, np.float32)})
