"""The gan task's options: d_steps D updates (same real batch, fresh noise) before one G
update, written out by hand, in one compile; a sigmoid generator on flat and image-shaped
digits; per-epoch sample pictures from fixed noise; the Fréchet distance in the report;
config errors of the options."""

import types

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from dlcore.config.loading import ConfigError
from dlcore.data.ring import RingConfig, make_ring
from dlcore.engine.compiled import CompiledTask
from dlcore.tasks.gan_pictures import picture_kind
from tests.test_gan import built

PNG = b"\x89PNG\r\n\x1a\n"
DIGITS = {"name": "digits", "preprocess": "unit"}


def gan(**task):
    return {"name": "gan", "latent_dim": 2, **task}


def assert_trees_close(a, b):
    jax.tree.map(lambda u, v: np.testing.assert_allclose(u, v, rtol=1e-5, atol=1e-6), a, b)


def test_d_steps_reuse_the_real_batch_with_fresh_noise_then_update_g_once():
    s, k = 0.1, 3
    task = built(task=gan(loss="least_squares", label_smoothing=s, d_steps=k)).task
    x = jnp.asarray(make_ring(RingConfig(n_samples=100)).train.x[:16])
    state = task.init(jax.random.PRNGKey(1), {"x": x})
    new, sums = jax.jit(task.train_step)(state, {"x": x})

    def gen(p, z):
        return task.generator.apply({"params": p}, z, train=True)

    def disc(p, v):
        return task.discriminator.apply({"params": p}, v, train=True)[:, 0]

    @jax.jit  # the loop below, unrolled: one compile instead of many eager ops
    def by_hand(state):
        g0, d_params = state.params["generator"], state.params["discriminator"]
        d_opt, d_losses = state.opt_state["discriminator"], []
        # LSGAN, smoothed: L_D = 1/2 (l_r - (1 - s))^2 + 1/2 l_f^2, on the same x each time
        for key in jax.random.split(state.step_key("d_noise"), k):
            fake = gen(g0, jax.random.normal(key, (16, 2)))

            def d_objective(p, fake=fake):
                return jnp.mean(0.5 * (disc(p, x) - (1 - s)) ** 2 + 0.5 * disc(p, fake) ** 2)

            loss, grads = jax.value_and_grad(d_objective)(d_params)
            updates, d_opt = task.d_optimizer.update(grads, d_opt, d_params)
            d_params = optax.apply_updates(d_params, updates)
            d_losses.append(loss)
        z_g = jax.random.normal(state.step_key("g_noise"), (16, 2))
        g_grads = jax.grad(lambda p: jnp.mean(0.5 * (disc(d_params, gen(p, z_g)) - 1) ** 2))(g0)
        updates, g_opt = task.g_optimizer.update(g_grads, state.opt_state["generator"], g0)
        params = {"generator": optax.apply_updates(g0, updates), "discriminator": d_params}
        return params, {"generator": g_opt, "discriminator": d_opt}, jnp.stack(d_losses)

    params, opt_state, d_losses = jax.device_get(by_hand(state))
    assert_trees_close(new.params, params)
    assert_trees_close(new.opt_state, opt_state)
    assert len(set(d_losses.tolist())) == k  # fresh noise per D step
    # d_loss reports the mean over the D steps
    assert float(sums["d_loss"]) / 16 == pytest.approx(np.mean(d_losses), rel=1e-5)
    assert int(new.step) == 1


def test_d_steps_compile_once_and_count_d_updates():
    experiment = built(task=gan(d_steps=2, loss="hinge"))
    data, task = experiment.data, experiment.task
    compiled = CompiledTask(task)
    batches = [{"x": data.train.x[i : i + 16]} for i in (0, 16, 32)]
    state = task.init(jax.random.PRNGKey(0), batches[0])
    for batch in batches:
        state, sums, _ = compiled.train_step(state, batch)
    assert compiled.traces["train_step"] == 1 and int(state.step) == 3
    counts = {r: int(optax.tree_utils.tree_get(state.opt_state[r], "count")) for r in state.params}
    assert counts == {"generator": 3, "discriminator": 6}


@pytest.fixture(scope="module")
def image_gan():
    """A sigmoid MLP generator on 8x8x1 digit images, after two steps."""
    experiment = built(
        data={**DIGITS, "layout": "image"},
        task=gan(latent_dim=4, generator_output="sigmoid"),
    )
    data, task = experiment.data, experiment.task
    batch = {"x": data.train.x[:16]}
    state = jax.jit(task.init)(jax.random.PRNGKey(0), batch)
    step = jax.jit(task.train_step)
    trained = step(step(state, batch)[0], batch)[0]
    return data, task, state, trained


def test_a_sigmoid_generator_makes_images_in_the_unit_range(image_gan):
    data, task, _, trained = image_gan
    assert data.train.x.shape[1:] == (8, 8, 1) and task.x_shape == (8, 8, 1)
    x = np.asarray(task.sample(trained, 32, jax.random.PRNGKey(3)))
    assert x.shape == (32, 8, 8, 1)
    assert 0.0 < x.min() and x.max() < 1.0 and x.std() > 0


def test_snapshots_are_pictures_of_fixed_noise_and_leave_the_state_alone(image_gan, tmp_path):
    data, task, state, trained = image_gan
    before = jax.device_get(trained)
    task.snapshot(trained, data, tmp_path / "a", 10)
    task.snapshot(trained, data, tmp_path / "b", 10)
    task.snapshot(state, data, tmp_path / "c", 0)
    a = (tmp_path / "a" / "samples_epoch0010.png").read_bytes()
    assert a[:8] == PNG and a == (tmp_path / "b" / "samples_epoch0010.png").read_bytes()
    assert (tmp_path / "c" / "samples_epoch0000.png").read_bytes() != a  # another generator
    jax.tree.map(np.testing.assert_array_equal, jax.device_get(trained), before)


@pytest.mark.parametrize("data", [{"name": "ring", "n_samples": 200}, DIGITS], ids=str)
def test_snapshots_are_grids_of_images_only(data, tmp_path):
    # flat digits are images through info["image_shape"]; 2-D points get no per-epoch file
    experiment = built(data=data)
    state = jax.jit(experiment.task.init)(jax.random.PRNGKey(0), {"x": experiment.data.train.x[:4]})
    experiment.task.snapshot(state, experiment.data, tmp_path, 3)
    written = [p.name for p in tmp_path.iterdir()]
    assert written == ([] if data["name"] == "ring" else ["samples_epoch0003.png"])
    for path in tmp_path.iterdir():
        assert path.read_bytes()[:8] == PNG


def test_picture_kinds():
    info = types.SimpleNamespace(info={"image_shape": [8, 8]})
    none = types.SimpleNamespace(info={})
    assert picture_kind(none, (2,)) == "scatter"
    assert picture_kind(none, (16, 16, 1)) == picture_kind(info, (64,)) == "grid"
    assert picture_kind(none, (64,)) is picture_kind(info, (5,)) is None


def test_report_gives_the_frechet_distance_with_a_classifier(digits_classifier_run, tmp_path):
    experiment = built(
        data=DIGITS,
        task=gan(generator_output="sigmoid", quality_classifier=str(digits_classifier_run)),
    )
    data, task = experiment.data, experiment.task
    state = task.init(jax.random.PRNGKey(0), {"x": data.train.x[:4]})
    report = task.report(state, data, tmp_path)
    assert set(report) == {"frechet_distance", "frechet_floor", "frechet_samples"}
    assert all(np.isfinite(v) for v in report.values())
    # an untrained generator is far from the digits, further than real from real
    assert report["frechet_distance"] > report["frechet_floor"] > 0
    assert (tmp_path / "samples.png").read_bytes()[:8] == PNG


BAD = [
    (
        gan(loss="wasserstein"),
        "t: task.loss: unknown GAN loss 'wasserstein'; valid: hinge, least_squares, minimax, "
        "non_saturating",
    ),
    (
        gan(loss="hinge", label_smoothing=0.1),
        "t: task.label_smoothing: the hinge loss has no targets to smooth; set "
        "label_smoothing = 0 or use minimax, non_saturating or least_squares",
    ),
    (gan(label_smoothing=1.0), "t: task.label_smoothing: "),
    (gan(d_steps=0), "t: task.d_steps: "),
    (gan(generator_output="tanh"), "t: task.generator_output: unknown generator_output 'tanh'"),
    (gan(quality_classifier="/nonexistent"), "t: task.quality_classifier: "),
]


@pytest.mark.parametrize("task, start", BAD, ids=lambda v: str(v)[:40])
def test_a_bad_gan_option_is_a_one_line_error(task, start):
    with pytest.raises(ConfigError) as info:
        built(task=task)
    (line,) = info.value.lines()
    assert line.startswith(start), line


def test_a_second_sigmoid_on_a_generator_with_its_own_output_is_refused():
    with pytest.raises(ConfigError) as info:
        built(
            data={**DIGITS, "layout": "image"},
            task=gan(generator_output="sigmoid"),
            models={
                "generator": {"name": "dcgan_generator", "widths": [8]},
                "discriminator": {"name": "dcgan_discriminator", "widths": [8]},
            },
        )
    (line,) = info.value.lines()
    assert line.startswith("t: task.generator_output: the generator already applies output"), line
