"""The four GAN losses against their formulas written out in NumPy float64, their gradients,
one-sided label smoothing, and the refusal to smooth the hinge."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from dlcore.tasks.gan_losses import LOSSES

REAL = np.array([-3.0, -0.5, 0.0, 0.7, 4.0, 1.3])
FAKE = np.array([2.0, -1.0, 0.3, -4.0, 0.0, -0.9])


def log_d(v):
    return np.log(1.0 / (1.0 + np.exp(-v)))  # log D = log sigmoid(l)


def log_1_minus_d(v):
    return np.log(1.0 - 1.0 / (1.0 + np.exp(-v)))  # log(1 - D)


def bce_d(r, f, s):
    return -(1 - s) * log_d(r) - s * log_1_minus_d(r) - log_1_minus_d(f)


# (L_D(l_r, l_f, s), L_G(l_f)) as the papers write them, on D = sigmoid(l) or raw l.
FORMULAS = {
    "minimax": (bce_d, lambda f: log_1_minus_d(f)),
    "non_saturating": (bce_d, lambda f: -log_d(f)),
    "least_squares": (
        lambda r, f, s: 0.5 * (r - (1 - s)) ** 2 + 0.5 * (f - 0.0) ** 2,
        lambda f: 0.5 * (f - 1.0) ** 2,
    ),
    "hinge": (
        lambda r, f, s: np.maximum(0.0, 1 - r) + np.maximum(0.0, 1 + f),
        lambda f: -f,
    ),
}
SMOOTHINGS = {name: (0.0, 0.1, 0.3) if LOSSES[name].smoothable else (0.0,) for name in LOSSES}


def test_every_loss_has_a_formula():
    assert set(FORMULAS) == set(LOSSES)


@pytest.mark.parametrize(
    "name, smoothing", [(n, s) for n, ss in SMOOTHINGS.items() for s in ss], ids=str
)
def test_loss_matches_its_formula_in_float64(name, smoothing):
    loss = LOSSES[name]
    with jax.enable_x64(True):
        real, fake = jnp.asarray(REAL), jnp.asarray(FAKE)
        l_d = np.asarray(loss.discriminator(real, fake, smoothing))
        l_g = np.asarray(loss.generator(fake))
    assert l_d.dtype == l_g.dtype == np.float64 and l_d.shape == l_g.shape == REAL.shape
    want_d, want_g = FORMULAS[name]
    np.testing.assert_allclose(l_d, want_d(REAL, FAKE, smoothing), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(l_g, want_g(FAKE), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("name", ["minimax", "non_saturating"])
def test_cross_entropy_losses_stay_exact_for_large_logits(name):
    # where log(1 - sigmoid(l)) in float64 is log(0)
    loss = LOSSES[name]
    with jax.enable_x64(True):
        far_d = float(loss.discriminator(jnp.asarray([-50.0]), jnp.asarray([50.0]), 0.0)[0])
        far_g = float(loss.generator(jnp.asarray([50.0 if name == "minimax" else -50.0]))[0])
    assert far_d == pytest.approx(100.0, rel=1e-12)
    assert far_g == pytest.approx(-50.0 if name == "minimax" else 50.0, rel=1e-12)


def test_minimax_saturates_where_non_saturating_does_not():
    # D confidently rejects the fakes (l_f = -6): the minimax G gradient is ~sigmoid(-6)
    # times smaller than the non-saturating one, the reason the latter exists
    def slope(generator_loss) -> float:
        return float(jax.grad(lambda f: jnp.sum(generator_loss(f)))(jnp.asarray([-6.0]))[0])

    grads = {name: slope(loss.generator) for name, loss in LOSSES.items()}
    assert grads["minimax"] == pytest.approx(-float(jax.nn.sigmoid(-6.0)), rel=1e-5)
    assert grads["non_saturating"] == pytest.approx(-float(jax.nn.sigmoid(6.0)), rel=1e-5)
    assert abs(grads["minimax"]) < abs(grads["non_saturating"]) / 100


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_losses_have_correct_gradients(name):
    loss = LOSSES[name]
    smoothing = 0.2 if loss.smoothable else 0.0
    # away from the hinge's kinks at +-1, where finite differences straddle two slopes
    with jax.enable_x64(True):
        real, fake = jnp.asarray([-1.5, 0.2, 2.0]), jnp.asarray([0.4, -2.0, 1.3])
        check_grads(
            lambda r, f: jnp.sum(loss.discriminator(r, f, smoothing)), (real, fake), order=1
        )
        check_grads(lambda f: jnp.sum(loss.generator(f)), (fake,), order=1)


@pytest.mark.parametrize("name", [n for n in LOSSES if LOSSES[n].smoothable])
def test_label_smoothing_moves_the_optimal_real_output_to_the_smoothed_target(name):
    # the real term's minimiser over l_r: D(x) = 1 - s (cross-entropy) or l_r = 1 - s (LSGAN)
    s = 0.2
    loss = LOSSES[name]
    with jax.enable_x64(True):  # float32 values are too flat near the minimum
        grid = jnp.linspace(-4.0, 4.0, 80001, dtype=jnp.float64)
        real_terms = loss.discriminator(grid, jnp.full_like(grid, -30.0), s)
        best = float(grid[jnp.argmin(real_terms)])
    target = 1 - s if name == "least_squares" else float(np.log((1 - s) / s))  # logit(1 - s)
    assert best == pytest.approx(target, abs=2e-4)
    # smoothing leaves the fake term alone
    with jax.enable_x64(True):
        zeros, fake = jnp.zeros(2, jnp.float64), jnp.asarray([0.5, -1.0], jnp.float64)
        diff = loss.discriminator(zeros, fake, s) - loss.discriminator(zeros, fake, 0.0)
    np.testing.assert_allclose(diff, diff[0], rtol=1e-12)


def test_hinge_refuses_label_smoothing():
    with pytest.raises(ValueError, match="hinge loss has no targets to smooth"):
        LOSSES["hinge"].discriminator(jnp.zeros(2), jnp.zeros(2), 0.1)
