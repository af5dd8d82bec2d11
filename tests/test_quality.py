"""Sample quality: the Fréchet distance against its closed forms, the classifier's
features, the checks of ``quality_classifier``, the ``unit`` pixel range, and the loop's
per-epoch ``snapshot`` hook."""

import dataclasses

import jax
import numpy as np
import pytest
import scipy.linalg

from dlcore.config.errors import FieldError
from dlcore.config.loading import validate
from dlcore.data.ring import RingConfig, make_ring
from dlcore.engine.loop import fit
from dlcore.experiment import build
from dlcore.models import MLP
from dlcore.quality import (
    QualityFields,
    frechet_distance,
    gaussian_frechet,
    head_input,
    load_feature_net,
    quality_net,
    sample_quality,
)
from dlcore.runs.run_dir import RunDir


def digits(**changes):
    raw = {"data": {"name": "digits", **changes}, "model": {"name": "mlp", "widths": [8]}}
    return build(validate(raw, "t"), "t").data


@pytest.fixture(scope="module")
def unit_digits():
    return digits(layout="image", preprocess="unit")


# ---- the distance ------------------------------------------------------------------------


def test_gaussian_frechet_matches_the_sqrtm_formula():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(5, 5)), rng.normal(size=(5, 5))
    s1, s2 = a @ a.T + 0.1 * np.eye(5), b @ b.T
    m1, m2 = rng.normal(size=5), rng.normal(size=5)
    cross = scipy.linalg.sqrtm(s1 @ s2).real
    expected = np.sum((m1 - m2) ** 2) + np.trace(s1 + s2 - 2 * cross)
    assert gaussian_frechet(m1, s1, m2, s2) == pytest.approx(expected, rel=1e-10)


def test_one_dimensional_gaussians_give_the_wasserstein_closed_form():
    # W2^2(N(m1, s1^2), N(m2, s2^2)) = (m1 - m2)^2 + (s1 - s2)^2
    d2 = gaussian_frechet(np.array([1.0]), np.array([[4.0]]), np.array([-0.5]), np.array([[0.25]]))
    assert d2 == pytest.approx(1.5**2 + (2.0 - 0.5) ** 2, rel=1e-12)


def test_frechet_distance_is_zero_on_equal_sets_symmetric_and_rotation_invariant():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(200, 4)), rng.normal(size=(150, 4)) * [1, 2, 1, 0.5] + 0.3
    q, _ = np.linalg.qr(rng.normal(size=(4, 4)))
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-9)
    assert frechet_distance(a, b) == pytest.approx(frechet_distance(b, a), rel=1e-9)
    assert frechet_distance(a @ q, b @ q) == pytest.approx(frechet_distance(a, b), rel=1e-9)
    with pytest.raises(ValueError, match="different widths"):
        frechet_distance(a, b[:, :3])


# ---- the classifier's features -----------------------------------------------------------


def test_head_input_is_the_last_hidden_layer_after_its_activation():
    model = MLP(widths=(6, 5), out_features=3)
    x = jax.random.normal(jax.random.PRNGKey(0), (4, 7))
    variables = model.init(jax.random.PRNGKey(1), x, train=False)
    p = variables["params"]
    h = jax.nn.relu(x @ p["Dense_0"]["kernel"] + p["Dense_0"]["bias"][None])
    h = jax.nn.relu(h @ p["Dense_1"]["kernel"] + p["Dense_1"]["bias"][None])
    np.testing.assert_allclose(head_input(model, variables, x), h, rtol=1e-6)


def test_feature_net_reads_any_layout_of_its_pixels(digits_classifier_run, unit_digits):
    net = load_feature_net(digits_classifier_run)
    assert net.width == 32 and net.x_shape == (8, 8, 1)
    x = unit_digits.test.x[:600]  # fewer than one chunk, padded inside
    flat = net.features(x.reshape(len(x), 64))
    np.testing.assert_array_equal(flat, net.features(x))
    assert flat.shape == (len(x), 32) and np.all(np.isfinite(flat))
    with pytest.raises(ValueError, match="reads \\[8, 8, 1\\] \\(64 pixels\\)"):
        net.features(np.zeros((2, 16, 16, 1)))


def test_samples_equal_to_real_data_score_the_floor_and_noise_scores_far_above(
    digits_classifier_run, unit_digits
):
    net = load_feature_net(digits_classifier_run)
    half = len(unit_digits.test) // 2
    real = sample_quality(unit_digits.test.x[:half], unit_digits, net)
    assert real["frechet_samples"] == half
    assert real["frechet_distance"] == pytest.approx(real["frechet_floor"], rel=1e-12)
    noise = np.random.default_rng(0).uniform(size=(half, 8, 8, 1))
    scores = sample_quality(noise, unit_digits, net)
    assert scores["frechet_distance"] > 5 * scores["frechet_floor"] > 0
    with pytest.raises(ValueError, match=f"needs {half} samples"):
        sample_quality(noise[:10], unit_digits, net)


def test_mode_scores_come_with_ring_data():
    ring = make_ring(RingConfig(n_samples=400))
    scores = sample_quality(ring.train.x[:300], ring, None)
    assert scores["modes_covered"] == 8 and scores["high_quality"] > 0.95
    one_mode = np.repeat(np.asarray(ring.info["modes"])[:1], 300, axis=0)
    assert sample_quality(one_mode, ring, None)["modes_covered"] == 1


class Fields(QualityFields):
    pass


def test_quality_classifier_is_checked_against_the_run_and_the_data(
    digits_classifier_run, unit_digits, tmp_path
):
    assert quality_net(Fields(), unit_digits.spec()) is None
    net = quality_net(Fields(quality_classifier=str(digits_classifier_run)), unit_digits.spec())
    assert net.width == 32
    cases = [
        (str(tmp_path / "nothing"), unit_digits, "no run directory .*train the classifier first"),
        (str(tmp_path), unit_digits, "cannot use"),
        (str(digits_classifier_run), digits(layout="image"), "pixels in \\[0, 1\\]"),
        (
            str(digits_classifier_run),
            digits(layout="image", preprocess="unit", image_size=16),
            "reads 64 pixels \\[8, 8, 1\\]; these data have 256",
        ),
    ]
    for path, data, message in cases:
        with pytest.raises(FieldError, match=message) as err:
            quality_net(Fields(quality_classifier=path), data.spec())
        assert err.value.field == "task.quality_classifier"


def test_a_classifier_trained_without_unit_pixels_is_refused(tmp_path):
    from dlcore.experiment import run_experiment

    raw = {
        "data": {"name": "digits"},  # standardized pixels
        "model": {"name": "mlp", "widths": [8]},
        "train": {"epochs": 1, "batch_size": 64},
    }
    run_experiment(validate(raw, "t"), tmp_path / "std")
    with pytest.raises(ValueError, match="trained on pixels in \\[0, 1\\]"):
        load_feature_net(tmp_path / "std")


# ---- data ----------------------------------------------------------------------------------


def test_unit_preprocessing_maps_the_training_range_onto_0_1(unit_digits):
    raw = digits(layout="image", preprocess="none")
    np.testing.assert_allclose(unit_digits.train.x, raw.train.x / 16.0, rtol=1e-6)
    np.testing.assert_allclose(unit_digits.test.x, raw.test.x / 16.0, rtol=1e-6)
    assert unit_digits.info["pixel_range"] == [0.0, 1.0]
    assert digits(preprocess="none", binarize=True).info["pixel_range"] == [0.0, 1.0]
    assert "pixel_range" not in raw.info


# ---- the snapshot hook -----------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Recording:
    """A task that forwards everything and records its snapshot calls."""

    task: object
    calls: list

    def __getattr__(self, name):
        return getattr(self.task, name)

    def snapshot(self, state, data, directory, epoch):
        self.calls.append((epoch, int(state.step), directory.name))


def test_the_loop_calls_snapshot_after_each_validation_pass_of_a_run(tmp_path):
    raw = {
        "data": {"name": "xor", "n_samples": 64},
        "model": {"name": "mlp", "widths": [4]},
        "train": {"epochs": 5, "batch_size": 16, "eval_every": 2},
    }
    cfg = validate(raw, "t")
    experiment = build(cfg, "t")
    task = Recording(experiment.task, [])
    spe = len(experiment.data.train) // 16
    run = RunDir.create(tmp_path / "run")
    fit(task, experiment.data, cfg.train, cfg.seed, run=run)
    assert task.calls == [
        (2, 2 * spe, "snapshots"),
        (4, 4 * spe, "snapshots"),
        (5, 5 * spe, "snapshots"),
    ]
    task.calls.clear()
    fit(task, experiment.data, cfg.train, cfg.seed)  # no run directory: nothing to draw into
    assert task.calls == []
