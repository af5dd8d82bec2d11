"""Augmentation inside the compiled step: each transform against its definition, keys from
the step, seg carried with the image, off at evaluation, one compile, and exact resume of a
real process with augmentation on."""

import itertools
import signal

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from dlcore.config.errors import ConfigError, FieldError
from dlcore.config.loading import validate
from dlcore.data.augment import (
    AugmentSection,
    adjust_brightness,
    adjust_contrast,
    adjust_saturation,
    batched,
    color_jitter,
    cutout,
    hflip,
    identity,
    pad_crop,
    random_cutout,
    random_hflip,
    rotate,
)
from dlcore.data.dataset import DataSpec, FieldSpec
from dlcore.engine.compiled import CompiledTask
from dlcore.experiment import build, run_experiment
from dlcore.models.mlp import MLP
from dlcore.tasks.supervised import classification
from tests import helpers
from tests.helpers import committed_steps, run_cli, run_main, write_toml
from tests.test_resume import assert_identical_runs

ALL_ON = AugmentSection(
    crop_padding=2, hflip=True, rotate_degrees=20, brightness=0.3, contrast=0.3, cutout=3
)


def images(b=6, h=7, w=7, c=3, seed=0):
    return np.random.default_rng(seed).uniform(0.0, 1.0, (b, h, w, c)).astype(np.float32)


def square(h, w, top, left, side):
    """The ``[H, W]`` mask of a side x side square at (top, left), clipped."""
    mask = np.zeros((h, w), bool)
    mask[max(top, 0) : max(top + side, 0), max(left, 0) : max(left + side, 0)] = True
    return mask


def keys_for_steps(*steps):
    base = jax.random.PRNGKey(5)
    return [jax.random.fold_in(base, s) for s in steps]


@pytest.fixture(scope="module")
def all_on():
    return jax.jit(ALL_ON.make())


# ---- each transform against its definition --------------------------------------------


def test_hflip_reverses_the_width_axis():
    x = images(1)[0]
    np.testing.assert_array_equal(hflip(jnp.asarray(x), True), x[:, ::-1])
    np.testing.assert_array_equal(hflip(jnp.asarray(x), False), x)
    out, _ = jax.jit(batched(random_hflip()))(jax.random.PRNGKey(0), images(16), None)
    flipped = [
        np.array_equal(o, x[:, ::-1]) for o, x in zip(np.asarray(out), images(16), strict=True)
    ]
    kept = [np.array_equal(o, x) for o, x in zip(np.asarray(out), images(16), strict=True)]
    assert all(f != k for f, k in zip(flipped, kept, strict=True)) and any(flipped) and any(kept)


def test_crop_is_a_window_of_the_zero_padded_image_at_offsets_in_range():
    x, p = images(1, 5, 6, 2)[0], 2
    padded = np.pad(x, ((p, p), (p, p), (0, 0)))
    crop = jax.jit(pad_crop, static_argnums=3)
    for top, left in itertools.product(range(2 * p + 1), repeat=2):
        np.testing.assert_array_equal(crop(x, top, left, p), padded[top : top + 5, left : left + 6])
    out, _ = jax.jit(AugmentSection(crop_padding=p).make())(jax.random.PRNGKey(1), images(8), None)
    offsets = set()
    for o, x in zip(np.asarray(out), images(8), strict=True):
        padded = np.pad(x, ((p, p), (p, p), (0, 0)))
        found = [
            (t, left)
            for t, left in itertools.product(range(2 * p + 1), repeat=2)
            if np.array_equal(o, padded[t : t + 7, left : left + 7])
        ]
        assert found, "a crop must be a window of the padded image"
        offsets.add(found[0])
    assert len(offsets) > 1


@pytest.mark.parametrize("order", [0, 1])
def test_rotation_by_zero_is_identity_and_by_90_degrees_is_rot90(order):
    x = np.arange(5 * 5 * 2, dtype=np.float32).reshape(5, 5, 2)
    seg = np.arange(25, dtype=np.int32).reshape(5, 5)
    a = x if order else seg
    np.testing.assert_allclose(rotate(jnp.asarray(a), 0.0, order), a, atol=1e-5)
    np.testing.assert_allclose(rotate(jnp.asarray(a), jnp.pi / 2, order), np.rot90(a), atol=1e-4)
    np.testing.assert_allclose(
        rotate(jnp.asarray(a), -jnp.pi / 2, order), np.rot90(a, -1), atol=1e-4
    )


def test_rotation_by_45_degrees_reads_outside_pixels_as_zero():
    out = np.asarray(rotate(jnp.ones((9, 9, 1)), jnp.pi / 4, order=0))
    assert out[4, 4, 0] == 1 and out[0, 0, 0] == 0 and out[0, 4, 0] == 1


def test_cutout_zeroes_exactly_a_square_clipped_at_the_borders():
    x = np.ones((7, 6, 2), np.float32)
    for top, left in [(1, 2), (-1, 4), (5, -2)]:
        want = np.where(square(7, 6, top, left, 3)[..., None], 0.0, x)
        np.testing.assert_array_equal(cutout(jnp.asarray(x), top, left, 3), want)
    side, h, w = 4, 7, 6
    out, _ = jax.jit(batched(random_cutout(side)))(
        jax.random.PRNGKey(2), jnp.ones((32, h, w, 2)), None
    )
    clipped = 0
    for o in np.asarray(out):
        zero = o[..., 0] == 0
        assert np.array_equal(zero, o[..., 1] == 0)
        squares = [
            (t, left)
            for t, left in itertools.product(range(-(side // 2), h), range(-(side // 2), w))
            if t + side // 2 < h
            and left + side // 2 < w
            and np.array_equal(zero, square(h, w, t, left, side))
        ]
        assert squares, "the zeroed pixels must be a square of the given side, clipped"
        clipped += zero.sum() < side * side
    assert 0 < clipped < 32


def test_colour_adjustments_match_their_equations_in_float64():
    with jax.enable_x64(True):
        x = np.random.default_rng(3).uniform(0, 1, (4, 5, 3))
        grey = x @ np.array([0.299, 0.587, 0.114])
        np.testing.assert_allclose(adjust_brightness(jnp.asarray(x), 1.3), 1.3 * x, rtol=1e-12)
        m = grey.mean()
        np.testing.assert_allclose(
            adjust_contrast(jnp.asarray(x), 0.6), m + 0.6 * (x - m), rtol=1e-12
        )
        np.testing.assert_allclose(
            adjust_saturation(jnp.asarray(x), 0.0), np.repeat(grey[..., None], 3, -1), rtol=1e-12
        )
        one = x[..., :1]  # a grey image's grey level is its channel mean
        np.testing.assert_allclose(adjust_saturation(jnp.asarray(one), 0.2), one, rtol=1e-12)


def test_jitter_keeps_shape_dtype_and_range_and_strength_zero_is_identity():
    x = images(8)
    assert AugmentSection().make() is identity
    same, _ = jax.jit(batched(color_jitter(0.0, 0.0, 0.0)))(jax.random.PRNGKey(0), x, None)
    np.testing.assert_array_equal(same, x)
    jitter = AugmentSection(brightness=0.5, contrast=0.5, saturation=0.5).make()
    out, _ = jax.jit(jitter)(jax.random.PRNGKey(0), x, None)
    assert out.shape == x.shape and out.dtype == x.dtype
    lo, hi = x.min(axis=(1, 2, 3)), x.max(axis=(1, 2, 3))
    assert np.all(np.asarray(out).min(axis=(1, 2, 3)) >= lo)
    assert np.all(np.asarray(out).max(axis=(1, 2, 3)) <= hi)
    assert not np.allclose(out, x)
    # brightness alone: out = clip(f x, min x, max x) with one f in [0.5, 1.5] per image
    bright, _ = jax.jit(AugmentSection(brightness=0.5).make())(jax.random.PRNGKey(1), x, None)
    for o, xi in zip(np.asarray(bright), x, strict=True):
        free = (o < xi.max()) & (o > xi.min())
        ratio = o[free] / xi[free]
        np.testing.assert_allclose(ratio, ratio[0], rtol=1e-5)
        assert 0.5 <= ratio[0] <= 1.5


# ---- keys, seg, compilation -------------------------------------------------------------


def test_same_key_same_augmentation_other_steps_differ(all_on):
    x = images(4)
    k1, k1_again, k2 = keys_for_steps(1, 1, 2)
    a, b, c = (np.asarray(all_on(k, x, None)[0]) for k in (k1, k1_again, k2))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert all(not np.array_equal(a[i], c[i]) for i in range(4))


def test_spatial_transforms_carry_seg_with_the_image_colour_and_cutout_do_not():
    rng = np.random.default_rng(4)
    seg = rng.integers(0, 5, (6, 8, 8)).astype(np.int32)
    x = np.stack([seg.astype(np.float32), rng.uniform(0, 1, (6, 8, 8))], -1).astype(np.float32)
    key = jax.random.PRNGKey(7)
    spatial = AugmentSection(crop_padding=2, hflip=True).make()
    sx, sseg = jax.jit(spatial)(key, x, seg)
    assert sseg.dtype == jnp.int32
    np.testing.assert_array_equal(sx[..., 0], sseg.astype(np.float32))
    assert not np.array_equal(sseg, seg)
    everything = AugmentSection(crop_padding=2, hflip=True, brightness=0.4, cutout=3).make()
    _, eseg = jax.jit(everything)(key, x, seg)
    np.testing.assert_array_equal(eseg, sseg)


def test_rotation_carries_seg_by_nearest_neighbour():
    seg = np.zeros((8, 9, 9), np.int32)
    seg[:, 2:6, 3:7] = 1
    x = seg[..., None].astype(np.float32)
    out, oseg = jax.jit(AugmentSection(rotate_degrees=40).make())(jax.random.PRNGKey(3), x, seg)
    out, oseg = np.asarray(out)[..., 0], np.asarray(oseg)
    # all bilinear neighbours agree where the image is 0 or 1: nearest must read the same
    np.testing.assert_array_equal(oseg[np.abs(out - 1) < 1e-5], 1)
    np.testing.assert_array_equal(oseg[np.abs(out) < 1e-5], 0)
    assert np.any((out > 0.01) & (out < 0.99)) and not np.array_equal(oseg, seg)


def test_batch_shapes_are_checked():
    with pytest.raises(ValueError, match=r"\[B, H, W, C\]; got \(4, 64\)"):
        ALL_ON.make()(jax.random.PRNGKey(0), jnp.ones((4, 64)), None)
    with pytest.raises(ValueError, match=r"seg must be \[B, H, W\] = \(2, 5, 5\)"):
        ALL_ON.make()(jax.random.PRNGKey(0), jnp.ones((2, 5, 5, 1)), jnp.ones((2, 5), jnp.int32))


@pytest.fixture(scope="module")
def tasks():
    model = MLP(widths=(8,), out_features=3)
    plain = classification(model, optax.sgd(0.1))
    augmented = classification(model, optax.sgd(0.1), augment=ALL_ON.make())
    batch = {"x": images(6), "y": np.arange(6, dtype=np.int32) % 3}
    return plain, augmented, batch, plain.init(jax.random.PRNGKey(0), batch)


def test_augmentation_is_off_at_evaluation_and_on_in_training(tasks):
    plain, augmented, batch, state = tasks
    ev_plain, ev_aug = (
        jax.jit(plain.eval_step)(state, batch),
        jax.jit(augmented.eval_step)(state, batch),
    )
    assert jax.tree.map(float, ev_plain) == jax.tree.map(float, ev_aug)
    plain_step, aug_step = jax.jit(plain.train_step), jax.jit(augmented.train_step)
    later = state.replace(step=state.step + 1)  # same parameters, the next step's key
    plain_losses = [float(plain_step(s, batch)[1]["loss"]) for s in (state, later)]
    aug_losses = [float(aug_step(s, batch)[1]["loss"]) for s in (state, later)]
    assert plain_losses[0] == plain_losses[1]
    assert len({plain_losses[0], *aug_losses}) == 3, "augmented inputs change with the step"


def test_one_compile_for_every_step(tasks):
    _, augmented, batch, state = tasks
    compiled = CompiledTask(augmented)
    losses = []
    for _ in range(3):
        state, metrics, _ = compiled.train_step(state, batch)
        losses.append(float(metrics["loss"]))
    assert compiled.traces["train_step"] == 1 and int(state.step) == 3


# ---- configuration ---------------------------------------------------------------------


def spec_of(x_shape, **fields):
    named = {"x": FieldSpec(x_shape, "float32", "features"), "y": FieldSpec((), "int32", "labels")}
    named.update({k: FieldSpec(v, "int32", "labels") for k, v in fields.items()})
    return DataSpec("demo", named, {"train": 10}, 3, {})


@pytest.mark.parametrize(
    "section, spec, message",
    [
        (
            AugmentSection(hflip=True),
            spec_of((64,)),
            "task.augment: augmentation needs x as images [H, W, C] (e.g. digits with "
            "layout = 'image'); demo has x features [64]",
        ),
        (
            AugmentSection(saturation=0.2),
            spec_of((8, 8, 1)),
            "task.augment.saturation: needs RGB images (3 channels); demo has 1",
        ),
        (
            AugmentSection(crop_padding=8),
            spec_of((8, 8, 1)),
            "task.augment.crop_padding: must be smaller than the image side; got 8 for 8x8 images",
        ),
        (
            AugmentSection(cutout=9),
            spec_of((8, 8, 1)),
            "task.augment.cutout: must be at most the image side; got 9 for 8x8 images",
        ),
    ],
)
def test_section_refuses_data_it_cannot_augment(section, spec, message):
    with pytest.raises(FieldError) as err:
        section.check(spec)
    assert str(err.value) == message


def test_section_checks_a_seg_map_and_passes_when_off():
    AugmentSection().check(spec_of((64,)))  # nothing on: nothing to check
    AugmentSection(hflip=True).check(spec_of((8, 8, 3), seg=(8, 8)), seg="seg")
    with pytest.raises(FieldError, match=r"needs seg as a per-pixel map \[8, 8\]; demo has none"):
        AugmentSection(hflip=True).check(spec_of((8, 8, 3)), seg="seg")


def test_toml_fields_are_validated():
    base = {"data": {"name": "digits", "layout": "image"}, "model": {"name": "mlp"}}
    cfg = validate({**base, "task": {"name": "classification", "augment": {"hflip": True}}}, "t")
    assert cfg.task.augment == AugmentSection(hflip=True)
    for bad, field in [({"rotate_degrees": 200}, "rotate_degrees"), ({"flip": True}, "flip")]:
        with pytest.raises(ConfigError) as err:
            validate({**base, "task": {"name": "classification", "augment": bad}}, "t")
        assert f"task.augment.{field}" in str(err.value)
    flat = validate({**base, "data": {"name": "digits"}, "task": cfg.task.model_dump()}, "t")
    with pytest.raises(ConfigError, match="t: task.augment: augmentation needs x as images"):
        build(flat, "t")


# ---- real processes --------------------------------------------------------------------

RUN = {
    "name": "augment",
    "seed": 1,
    "data": {"name": "digits", "layout": "image"},
    "model": {"name": "mlp", "widths": [16]},
    "optimizer": {"name": "adam", "learning_rate": 0.01},
    "task": {"name": "classification", "augment": ALL_ON.model_dump()},
    "train": {
        "epochs": 4,
        "batch_size": 8,
        "mode": "step",
        "log_every": 10,
        "checkpoint_every": 50,
        "keep_checkpoints": 2,
    },
}


def test_augment_on_non_image_data_is_one_line_exit_2_and_no_run_dir(tmp_path):
    cfg = write_toml(tmp_path / "flat.toml", {**RUN, "data": {"name": "digits"}})
    proc = run_main("run", str(cfg), "--run-dir", str(tmp_path / "run"))
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"error: {cfg}: task.augment: augmentation needs x as images [H, W, C] (e.g. digits "
        "with layout = 'image'); digits has x features [64]"
    ]
    assert not (tmp_path / "run").exists()


def test_sigkill_then_resume_with_augmentation_is_bit_identical(tmp_path):
    cfg = write_toml(tmp_path / "augment.toml", RUN)
    cache = tmp_path / "xla-cache"
    run_experiment(validate(RUN, str(cfg)), tmp_path / "ref")  # uninterrupted: in this process
    run_dir = tmp_path / "killed"
    code, _ = helpers.start_and_interrupt(
        cfg, run_dir, cache, signal.SIGKILL, lambda d: any(s >= 200 for s in committed_steps(d))
    )
    assert code == -signal.SIGKILL and not (run_dir / "summary.json").exists()
    resumed = run_cli("resume", str(run_dir), "--quiet", cache_dir=cache)
    assert resumed.returncode == 0, resumed.stderr
    assert_identical_runs(run_dir, tmp_path / "ref", cfg, processes=1)
