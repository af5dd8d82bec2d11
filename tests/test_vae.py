"""The vae task: the KL of two Gaussians against numerical integration, the likelihoods
against scipy, the reparameterisation gradient against E[z^2]'s closed form, a gradient check
of the ELBO, the KL warm-up inside the compiled step, the importance-weighted bound against
the ELBO, the report's PNGs and figures, and config errors."""

import copy
import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from dlcore.config.loading import ConfigError, validate
from dlcore.experiment import build
from dlcore.gradcheck import gradcheck
from dlcore.quality import load_feature_net
from dlcore.tasks.vae_math import (
    bernoulli_log_likelihood,
    gaussian_kl,
    gaussian_log_density,
    importance_weighted_bound,
    kl_warmup_weight,
    reparameterize,
    standard_normal_kl,
)
from dlcore.tasks.vae_report import interpolation_codes, latent_2d
from tests.helpers import run_main, write_toml

TANH8 = {"name": "mlp", "widths": [8], "activation": "tanh"}  # smooth: no kinks for FD
RAW = {
    "name": "t",
    "data": {"name": "digits", "preprocess": "unit"},
    "task": {"name": "vae", "latent_dim": 2, "kl_warmup_steps": 10, "beta": 2.0, "iw_samples": 4},
    "models": {"encoder": TANH8, "decoder": TANH8},
    "optimizer": {"name": "adam", "learning_rate": 0.01},
    "train": {"batch_size": 16},
}


def built(**changes):
    raw = copy.deepcopy(RAW)
    for section, fields in changes.items():  # fields update a section; models replace it
        raw[section] = fields if section == "models" else {**raw[section], **fields}
    return build(validate(raw, "t"), "t")


@pytest.fixture(scope="module")
def setup():
    """The task, its data, a state after 30 compiled steps, and the jitted step (one trace
    counter shared by the tests that use it)."""
    experiment = built()
    task, data = experiment.task, experiment.data
    traces = []

    def step(state, batch):
        traces.append(1)
        return task.train_step(state, batch)

    step = jax.jit(step)
    x = np.asarray(data.train.x[:16])
    state = task.init(jax.random.PRNGKey(0), {"x": x})
    for i in range(30):
        state, _ = step(state, {"x": np.asarray(data.train.x[16 * i : 16 * i + 16])})
    return task, data, state, step, traces


# ---- the pure functions ------------------------------------------------------------------


def test_gaussian_kl_matches_numerical_integration_in_float64():
    rng = np.random.default_rng(0)
    mu1, mu2 = rng.normal(size=3), rng.normal(size=3)
    s1, s2 = rng.uniform(0.3, 2.0, 3), rng.uniform(0.3, 2.0, 3)
    with jax.enable_x64(True):
        kl = float(gaussian_kl(mu1, 2 * np.log(s1), mu2, 2 * np.log(s2)))
        same = float(gaussian_kl(mu1, 2 * np.log(s1), mu1, 2 * np.log(s1)))
        prior = np.asarray(standard_normal_kl(jnp.asarray([mu1]), jnp.asarray([2 * np.log(s1)])))
    # diagonal: the KL is the sum of 1-D KLs, each int p log(p / q) dz on a fine grid
    z = np.linspace(-25.0, 25.0, 100001)
    numeric = 0.0
    for j in range(3):
        log_p = stats.norm.logpdf(z, mu1[j], s1[j])
        log_q = stats.norm.logpdf(z, mu2[j], s2[j])
        numeric += np.trapezoid(np.exp(log_p) * (log_p - log_q), z)
    np.testing.assert_allclose(kl, numeric, rtol=1e-9)
    assert kl > 0 and abs(same) < 1e-12
    np.testing.assert_allclose(prior, [0.5 * np.sum(s1**2 + mu1**2 - 1 - 2 * np.log(s1))])


def test_log_densities_match_scipy_and_stay_finite():
    rng = np.random.default_rng(1)
    z, mu, s = rng.normal(size=(4, 3)), rng.normal(size=(4, 3)), rng.uniform(0.2, 3, (4, 3))
    logits, x = rng.normal(size=(4, 5)) * 3, (rng.uniform(size=(4, 5)) > 0.5).astype(float)
    with jax.enable_x64(True):
        dens = np.asarray(gaussian_log_density(z, mu, 2 * np.log(s)))
        bern = np.asarray(bernoulli_log_likelihood(logits, x))
        far = np.asarray(bernoulli_log_likelihood(jnp.asarray([[-80.0, 80.0]]), np.eye(2)[:1]))
    np.testing.assert_allclose(dens, stats.norm.logpdf(z, mu, s).sum(-1), rtol=1e-12)
    np.testing.assert_allclose(bern, stats.bernoulli.logpmf(x, 1 / (1 + np.exp(-logits))).sum(-1))
    np.testing.assert_allclose(far, [-160.0])  # log sigmoid(-80) + log sigmoid(-80)


def test_reparameterisation_gives_the_pathwise_gradient_of_e_z_squared():
    # E[z^2] = mu^2 + sigma^2 for z ~ N(mu, sigma^2): d/dmu = 2 mu, d/dsigma = 2 sigma
    mu, sigma = 0.7, 1.3
    eps = jax.random.normal(jax.random.PRNGKey(0), (200000,))

    def estimate(mu, sigma):
        return jnp.mean(reparameterize(mu, 2 * jnp.log(sigma), eps) ** 2)

    g_mu, g_sigma = jax.jit(jax.grad(estimate, argnums=(0, 1)))(mu, sigma)
    # per-sample gradients 2z and 2 z eps: standard errors of their means
    z = mu + sigma * np.asarray(eps)
    se_mu, se_sigma = (np.std(2 * z), np.std(2 * z * np.asarray(eps)))
    se_mu, se_sigma = se_mu / np.sqrt(eps.size), se_sigma / np.sqrt(eps.size)
    assert abs(float(g_mu) - 2 * mu) < 5 * se_mu
    assert abs(float(g_sigma) - 2 * sigma) < 5 * se_sigma
    assert float(g_sigma) != pytest.approx(2 * mu, abs=0.1)  # the two are told apart


def test_kl_warmup_weight_ramps_linearly():
    weights = [float(kl_warmup_weight(t, 10)) for t in (0, 1, 5, 10, 11, 1000)]
    assert weights == pytest.approx([0.0, 0.1, 0.5, 1.0, 1.0, 1.0])
    assert float(kl_warmup_weight(0, 0)) == 1.0


def test_importance_weighted_bound_is_a_stable_log_mean_exp():
    log_w = np.array([[-1000.0, 2.0], [-1001.0, 2.0]])
    bound = np.asarray(importance_weighted_bound(jnp.asarray(log_w)))
    np.testing.assert_allclose(bound, [-1000.0 + np.log((1 + np.exp(-1)) / 2), 2.0], rtol=1e-6)


def test_report_helpers():
    codes = interpolation_codes(np.zeros((2, 2)), np.ones((2, 2)) * [[1.0], [3.0]], 3)
    np.testing.assert_allclose(codes[:, 0], [0, 0.5, 1, 0, 1.5, 3])
    points, _ = latent_2d(np.random.default_rng(0).normal(size=(50, 5)) * [3, 2, 0.1, 0.1, 0.1])
    assert points.shape == (50, 2) and points[:, 0].std() > points[:, 1].std() > 1.0


# ---- the task ---------------------------------------------------------------------------


def test_elbo_gradient_matches_finite_differences(setup):
    task, data, state, *_ = setup
    x = np.asarray(data.train.x[:4])
    eps = np.random.default_rng(0).normal(size=(4, 2))

    def loss(params, x, eps):
        terms = task.terms(params, {}, x, eps, train=False)
        return jnp.mean(terms.reconstruction + 0.7 * terms.kl)

    gradcheck(loss, state.params, x, eps).assert_ok(1e-6)


def test_the_compiled_step_weighs_the_kl_by_the_warmup_and_compiles_once(setup):
    task, data, state, step, traces = setup
    batch = {"x": np.asarray(data.train.x[:16])}
    for t, weight in ((0, 0.0), (5, 0.5), (10, 1.0), (25, 1.0)):
        _, sums = step(state.replace(step=jnp.asarray(t, jnp.int32)), batch)
        kl_part = (sums["loss"] - sums["reconstruction"]) / sums["count"]
        np.testing.assert_allclose(kl_part, 2.0 * weight * sums["kl"] / sums["count"], atol=1e-4)
        np.testing.assert_allclose(sums["elbo"], -(sums["reconstruction"] + sums["kl"]), rtol=1e-6)
    assert len(traces) == 1
    assert int(state.step) == 30 and float(sums["kl"]) > 0


def test_importance_weighted_bound_against_the_elbo(setup):
    task, data, state, *_ = setup
    x = jnp.asarray(data.test.x[:32])
    run = jax.jit(task.importance_weighted, static_argnums=3)
    # k = 1: L_1 is the single-sample ELBO estimate log p(x|z) + log p(z) - log q(z|x)
    key = jax.random.PRNGKey(3)
    bound1, elbo1 = run(state, x, key, 1)
    np.testing.assert_array_equal(np.asarray(bound1), np.asarray(elbo1))

    @jax.jit
    def by_hand(eps):  # the same draws as importance_weighted's
        terms = task.terms(state.params, state.model_state, x, eps, train=False)
        mu, logvar, _ = task.encode(state.params, state.model_state, x)
        z = reparameterize(mu, logvar, eps)
        mc_kl = gaussian_log_density(z, mu, logvar) - gaussian_log_density(z, 0.0, 0.0)
        return -(terms.reconstruction + mc_kl)

    expected = by_hand(jax.random.normal(key, (1, 32, 2))[0])
    np.testing.assert_allclose(bound1, expected, rtol=1e-5, atol=1e-4)

    # E[L_1] is the ELBO with the closed-form KL: compare on the same 400 draws per example
    k = 400
    eps = jax.random.normal(jax.random.PRNGKey(4), (k, 32, 2))
    log_w = np.asarray(jax.jit(task.log_weights)(state, x, eps)).ravel()
    terms = jax.jit(lambda e: task.terms(state.params, {}, jnp.tile(x, (k, 1)), e, False))(
        eps.reshape(-1, 2)
    )
    elbo = -np.asarray(terms.reconstruction + terms.kl)
    diff = log_w - elbo  # log p(z) - log q(z|x) + KL: mean 0
    assert abs(diff.mean()) < 5 * diff.std() / np.sqrt(diff.size)
    # the K-sample bound lies above: per example above the mean of its own log weights
    # (Jensen), and on average above the ELBO by far more than the estimates' noise, and
    # it grows with K (4 disjoint groups of draws per K)
    log_w_KxB = log_w.reshape(k, 32)
    bounds = {}
    for size in (1, 10, 100):
        groups_KxGxB = log_w_KxB[: 4 * size].reshape(4, size, 32).transpose(1, 0, 2)
        bounds[size] = np.asarray(importance_weighted_bound(jnp.asarray(groups_KxGxB)))
        assert np.all(bounds[size] >= groups_KxGxB.mean(axis=0) - 1e-4)
    assert bounds[100].mean() > bounds[10].mean() > bounds[1].mean()
    assert bounds[100].mean() > elbo.mean() + 10 * elbo.std() / np.sqrt(elbo.size)


def test_report_writes_its_pictures_and_finite_figures(setup, tmp_path):
    task, data, state, *_ = setup
    figures = task.report(state, data, tmp_path)
    names = {"samples.png", "reconstructions.png", "interpolations.png", "latent_space.png"}
    assert names <= {p.name for p in tmp_path.iterdir()}
    assert set(figures) == {"test_log_likelihood", "test_elbo", "iw_samples", "test_bits_per_dim"}
    assert all(np.isfinite(v) for v in figures.values())
    assert figures["test_log_likelihood"] >= figures["test_elbo"]
    # the snapshot is a pure function of the state: the same picture twice
    task.snapshot(state, data, tmp_path / "snapshots", 3)
    first = (tmp_path / "snapshots" / "samples_epoch0003.png").read_bytes()
    task.snapshot(state, data, tmp_path / "snapshots", 3)
    assert (tmp_path / "snapshots" / "samples_epoch0003.png").read_bytes() == first


def test_report_gives_a_frechet_distance_with_a_classifier(setup, digits_classifier_run, tmp_path):
    task, data, state, *_ = setup
    # quality is not part of the task's identity: the report's compiled functions are reused
    task = dataclasses.replace(task, quality=load_feature_net(digits_classifier_run))
    figures = task.report(state, data, tmp_path)
    assert figures["frechet_distance"] > figures["frechet_floor"] > 0


def test_a_learned_gaussian_std_is_a_parameter():
    experiment = built(task={"likelihood": "gaussian"}, data={"preprocess": "standardize"})
    task, data = experiment.task, experiment.data
    state = task.init(jax.random.PRNGKey(0), {"x": np.asarray(data.train.x[:8])})
    assert float(state.params["likelihood"]["log_std"]) == 0.0
    fixed = built(task={"likelihood": "gaussian", "gaussian_std": 0.5}).task
    assert "likelihood" not in fixed.init(jax.random.PRNGKey(0), {"x": data.train.x[:8]}).params


# ---- config errors ----------------------------------------------------------------------

BAD = [
    ({"task": {"iw_samples": 0}}, "t: task.iw_samples: "),
    ({"task": {"beta": -1.0}}, "t: task.beta: "),
    ({"task": {"gaussian_std": 0.1}}, "t: task: gaussian_std is the Gaussian decoder's std"),
    (
        {"data": {"preprocess": "standardize"}},
        "t: task.likelihood: 'bernoulli' needs pixels in [0, 1]",
    ),
    (
        {"models": {"encoder": TANH8, "decoder": {"name": "rnn", "features": 4}}},
        "t: models.decoder.name: rnn needs",
    ),
    ({"models": {"encoder": TANH8}}, "t: models.decoder: missing; the vae task needs"),
    (
        {"models": {"encoder": TANH8, "decoder": {"name": "dcgan_generator", "widths": [4]}}},
        "t: models.decoder.output: the Bernoulli likelihood reads logits",
    ),
]


@pytest.mark.parametrize("changes, start", BAD, ids=lambda v: str(v)[:30])
def test_a_bad_vae_config_is_a_one_line_error(changes, start):
    with pytest.raises(ConfigError) as info:
        built(**changes)
    (line,) = info.value.lines()
    assert line.startswith(start), line


def test_a_bad_vae_config_exits_2_through_the_cli_without_a_run_dir(tmp_path):
    raw = copy.deepcopy(RAW)
    raw["task"]["iw_samples"] = 0
    toml = write_toml(tmp_path / "t.toml", raw)
    proc = run_main("run", str(toml), "--run-dir", str(tmp_path / "run"))
    assert proc.returncode == 2, proc.stderr
    assert "task.iw_samples" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "run").exists()
