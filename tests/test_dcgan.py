"""The DCGAN generator and discriminator: images of the data's size, the output ranges,
batch statistics (updated in training mode only, also inside the gan task's step), jit
against eager, float64 gradient checks, config errors, and a tiny DCGAN on digits whose
state goes through a checkpoint bit-identically. Parameter trees: tests/test_cnn_models.py."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax.traverse_util import flatten_dict

from dlcore.config.loading import ConfigError, validate
from dlcore.data.dataset import DataSpec, FieldSpec
from dlcore.experiment import build, template_state
from dlcore.gradcheck import gradcheck
from dlcore.models.dcgan import (
    DCGANDiscriminator,
    DCGANDiscriminatorConfig,
    DCGANGenerator,
    DCGANGeneratorConfig,
)
from dlcore.runs.checkpoint import CheckpointStore

TINY_G = {"name": "dcgan_generator", "widths": [4, 2]}
TINY_D = {"name": "dcgan_discriminator", "widths": [2, 4]}
RAW = {
    "data": {"name": "digits", "layout": "image", "preprocess": "unit", "train_per_class": 4},
    "task": {"name": "gan", "latent_dim": 3},
    "models": {"generator": TINY_G, "discriminator": TINY_D},
    "optimizer": {"name": "adam", "learning_rate": 2e-4, "b1": 0.5},
    "train": {"batch_size": 8},
}


def spec(x_shape, info=None) -> DataSpec:
    return DataSpec(
        "imgs", {"x": FieldSpec(tuple(x_shape), "float32", "features")}, {}, None, info or {}
    )


def out_shape(module, x_shape):
    """Output shape without compiling: ``eval_shape`` of init and apply."""
    x = jax.ShapeDtypeStruct(x_shape, jnp.float32)
    variables = jax.eval_shape(functools.partial(module.init, train=False), jax.random.key(0), x)
    return jax.eval_shape(functools.partial(module.apply, train=False), variables, x).shape


@pytest.mark.parametrize("side", [8, 16, 32])
@pytest.mark.parametrize("channels", [1, 3])
def test_the_generator_draws_the_data_s_image_shape(side, channels):
    data = spec((side, side, channels))
    g = DCGANGeneratorConfig().make(side * side * channels, data)
    assert out_shape(g, (5, 7)) == (5, side, side, channels)
    d = DCGANDiscriminatorConfig().make(1, data)
    assert out_shape(d, (5, side, side, channels)) == (5, 1)


def test_flat_data_give_their_image_shape_and_extra_outputs_give_channels():
    flat = spec((64,), {"image_shape": [8, 8]})  # digits, layout = "flat"
    assert out_shape(DCGANGeneratorConfig().make(64, flat), (2, 4)) == (2, 8, 8, 1)
    # e.g. a decoder's mean and log-variance maps
    assert out_shape(DCGANGeneratorConfig().make(128, flat), (2, 4)) == (2, 8, 8, 2)


@pytest.mark.parametrize(
    ("output", "low", "high"), [("sigmoid", 0.0, 1.0), ("tanh", -1.0, 1.0), ("linear", None, None)]
)
def test_the_output_activation_bounds_the_pixels(output, low, high):
    g = DCGANGenerator((8, 8), 1, widths=(4, 2), output=output)
    z = 30.0 * jax.random.normal(jax.random.key(1), (16, 3))  # large z: saturate the output
    variables = g.init(jax.random.key(0), z, train=False)
    x = np.asarray(g.apply(variables, z, train=False))
    if low is None:
        assert x.min() < 0.0 < x.max()  # logits: both signs
    else:
        assert low <= x.min() and x.max() <= high and x.min() < (low + high) / 2 < x.max()


# ---- batch statistics --------------------------------------------------------------------


@pytest.mark.parametrize("role", ["generator", "discriminator"])
def test_batch_statistics_move_in_training_mode_only(role):
    if role == "generator":
        model, x = DCGANGenerator((8, 8), 1, widths=(4, 2)), jnp.ones((6, 3))
        x = x * jnp.arange(6.0)[:, None]
    else:
        model = DCGANDiscriminator(1, widths=(2, 4))
        x = jax.random.uniform(jax.random.key(2), (6, 8, 8, 1))
    variables = model.init(jax.random.key(0), x, train=False)
    stats = variables["batch_stats"]
    _, moved = model.apply(variables, x, train=True, mutable=["batch_stats"])
    for old, new in zip(jax.tree.leaves(stats), jax.tree.leaves(moved["batch_stats"]), strict=True):
        assert not np.array_equal(old, new)
    _, kept = model.apply(variables, x, train=False, mutable=["batch_stats"])
    for old, new in zip(jax.tree.leaves(stats), jax.tree.leaves(kept["batch_stats"]), strict=True):
        np.testing.assert_array_equal(old, new)
    # eval mode normalizes with the running averages: an example's output is its own
    alone = model.apply(variables, x[:1], train=False)
    np.testing.assert_allclose(model.apply(variables, x, train=False)[:1], alone, rtol=1e-5)


def test_the_first_discriminator_layer_has_no_batch_norm_and_the_option_drops_all():
    def names(module):
        shapes = jax.eval_shape(
            functools.partial(module.init, train=False),
            jax.random.key(0),
            jax.ShapeDtypeStruct((2, 8, 8, 1), jnp.float32),
        )
        return {"/".join(k) for k in flatten_dict(shapes)}

    with_bn = names(DCGANDiscriminator(1, widths=(2, 4, 4)))
    assert {n.split("/")[1] for n in with_bn if n.startswith("batch_stats")} == {"bn2", "bn3"}
    assert "params/conv1/bias" in with_bn and "params/conv2/bias" not in with_bn
    plain = names(DCGANDiscriminator(1, widths=(2, 4, 4), batch_norm=False))
    assert not any(n.startswith("batch_stats") for n in plain)
    assert {"params/conv2/bias", "params/conv3/bias"} <= plain


@pytest.fixture(scope="module")
def gan():
    """A tiny DCGAN on 8x8 digits: the experiment, its compiled step, and 4 steps' states."""
    experiment = build(validate(RAW, "t"), "t")
    # committed to the device, as restored checkpoints are: one compiled step serves both
    state = jax.device_put(template_state(experiment), jax.devices()[0])
    step = jax.jit(experiment.task.train_step)
    batches = [experiment.data.train.rows(slice(8 * i, 8 * i + 8)) for i in range(4)]
    states = [state]
    for batch in batches:
        states.append(step(states[-1], batch)[0])
    return experiment, step, batches, states


def test_training_moves_both_players_batch_statistics(gan):
    experiment, _, batches, states = gan
    task, state = experiment.task, states[-1]
    assert set(state.model_state) == {"generator", "discriminator"}
    for role in ("generator", "discriminator"):
        for old, new in zip(
            jax.tree.leaves(states[0].model_state[role]),
            jax.tree.leaves(state.model_state[role]),
            strict=True,
        ):
            assert not np.array_equal(old, new), role
    metrics = jax.jit(task.eval_step)(state, {**batches[0], "mask": np.ones(8, np.float32)})
    samples = jax.jit(task.sample, static_argnums=1)(state, 4, jax.random.PRNGKey(3))
    assert samples.shape == (4, 8, 8, 1)
    assert np.all((samples >= 0) & (samples <= 1))  # the sigmoid output
    for leaf in jax.tree.leaves((state, metrics)):
        assert np.all(np.isfinite(np.asarray(leaf, np.float64)))


def test_a_checkpointed_state_resumes_bit_identically(gan, tmp_path):
    """Both parameter trees, both optimizer states and both models' batch statistics go
    through a checkpoint and on: 2 steps, save, restore, 2 steps == 4 steps."""
    experiment, step, batches, states = gan
    store = CheckpointStore(tmp_path / "latest", keep=1)
    store.save(2, states[2], {"epoch": 0})
    store.wait()
    restored, _ = store.restore(template_state(experiment))
    store.close()
    for batch in batches[2:]:
        restored = step(restored, batch)[0]
    for a, b in zip(jax.tree.leaves(restored), jax.tree.leaves(states[-1]), strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("role", ["generator", "discriminator"])
def test_jit_equals_eager_in_training_mode(gan, role):
    experiment, _, _, states = gan
    task, state = experiment.task, states[-1]
    module = getattr(task, role)
    if role == "generator":
        x = jnp.ones((8, 3)) * jnp.linspace(-1, 1, 8)[:, None]
    else:
        x = experiment.data.train.x[:8]
    variables = {"params": state.params[role], **state.model_state[role]}

    def run(v, x):
        return module.apply(v, x, train=True, mutable=["batch_stats"])

    eager, jitted = run(variables, x), jax.jit(run)(variables, x)
    for a, b in zip(jax.tree.leaves(eager), jax.tree.leaves(jitted), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


# ---- gradients in float64 ------------------------------------------------------------------


@pytest.mark.parametrize("role", ["generator", "discriminator"])
def test_gradients_match_finite_differences_in_float64(role):
    """Training mode (batch statistics in the graph), through every layer of a tiny net."""
    key = jax.random.key(4)
    if role == "generator":
        module = DCGANGenerator((4, 4), 1, widths=(2, 2), kernel_size=3)
        x = jax.random.normal(key, (3, 2))
    else:
        module = DCGANDiscriminator(1, widths=(2, 2), kernel_size=3)
        x = jax.random.uniform(key, (3, 4, 4, 1))
    variables = module.init(jax.random.key(5), x, train=False)
    # weights of N(0, 0.02^2) make every pre-activation tiny; larger ones test more
    params = jax.tree.map(lambda p: p + 0.3 * jnp.sign(p), variables["params"])
    weights = np.linspace(-1.0, 1.0, int(np.prod(out_shape(module, x.shape))))

    def loss(p, x, stats):
        out, _ = module.apply({"params": p, **stats}, x, train=True, mutable=["batch_stats"])
        return jnp.sum(out.ravel() * weights)

    stats = {k: v for k, v in variables.items() if k != "params"}
    result = gradcheck(loss, params, x, stats)
    result.assert_ok(1e-5)


# ---- config errors ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            {"models.generator.widths": [4, 2, 2, 2]},
            "t: models.generator: dcgan_generator doubles its map 4 times (one per width), so "
            "the image sides must be multiples of 16; digits has 8x8 images",
        ),
        (
            {"models.generator.output": "tanh", "data.preprocess": "none", "data.binarize": True},
            None,  # tanh reaches [0, 1]: fine
        ),
        ({"models.generator.output": "relu"}, "models.generator.output: unknown output 'relu'"),
        ({"models.discriminator.leaky_slope": 1.0}, "models.discriminator.leaky_slope"),
        (
            {"data.layout": "flat"},
            "t: models.discriminator.name: dcgan_discriminator needs x as images",
        ),
    ],
)
def test_config_errors_are_one_line(changes, message):
    raw = {k: dict(v) for k, v in RAW.items()}
    for path, value in changes.items():
        section, *rest = path.split(".")
        target = raw[section]
        for part in rest[:-1]:
            target[part] = dict(target[part])
            target = target[part]
        target[rest[-1]] = value
    if message is None:
        build(validate(raw, "t"), "t")
        return
    with pytest.raises(ConfigError) as err:
        build(validate(raw, "t"), "t")
    assert message in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize(
    ("out_features", "data", "message"),
    [
        (64, None, "dcgan_generator draws images of the data's size: build it with the data"),
        (10, spec((8, 8, 1)), "10 outputs are not a whole number of 8x8 channels"),
        (64, spec((64,)), "imgs has no images (x [64], no info['image_shape'])"),
    ],
)
def test_the_generator_needs_the_data_s_image_size(out_features, data, message):
    with pytest.raises(ValueError) as err:
        DCGANGeneratorConfig().make(out_features, data)
    assert message in str(err.value)


def test_a_sigmoid_generator_refuses_pixels_outside_0_1():
    data = spec((8, 8, 1), {"pixel_range": [-1.0, 1.0]})
    with pytest.raises(ValueError, match=r"output = 'sigmoid' .* \[-1.0, 1.0\]; use output = "):
        DCGANGeneratorConfig().make(64, data)
    DCGANGeneratorConfig(output="tanh").make(64, data)


def test_the_generator_is_not_a_classifier_of_images():
    raw = {
        "data": {"name": "digits", "layout": "image"},
        "model": {"name": "dcgan_generator"},
        "task": {"name": "classification"},
    }
    with pytest.raises(ConfigError, match="dcgan_generator needs x as noise or code vectors"):
        build(validate(raw, "t"), "t")
