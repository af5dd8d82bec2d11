"""The GAN losses, as pure per-example functions of the discriminator's raw outputs.

The discriminator outputs one number l per sample (a logit for the cross-entropy losses,
a score for least squares and hinge); D(x) = sigmoid(l(x)). Writing l_r = l(x) for a real
sample and l_f = l(G(z)) for a fake, each loss is a pair (L_D, L_G), both minimised:

    minimax         L_D = -log sigmoid(l_r) - log sigmoid(-l_f)
                    L_G = log(1 - D(G(z))) = log sigmoid(-l_f)         (saturates)
    non_saturating  L_D as minimax
                    L_G = -log D(G(z)) = -log sigmoid(l_f)
    least_squares   L_D = 1/2 (l_r - 1)^2 + 1/2 l_f^2                  (LSGAN, a=0 b=1 c=1)
                    L_G = 1/2 (l_f - 1)^2
    hinge           L_D = relu(1 - l_r) + relu(1 + l_f)
                    L_G = -l_f

Minimax is Goodfellow et al.'s original game; its G gradient vanishes while D rejects the
fakes (log(1 - D) is flat near D = 0), which the non-saturating G avoids with the same
fixed point. Least squares is Mao et al. (2017), hinge the geometric GAN / SN-GAN loss.

One-sided label smoothing s (Salimans et al. 2016) sets the real target to 1 - s in L_D:
the cross-entropy's real term becomes -(1 - s) log sigmoid(l_r) - s log sigmoid(-l_r) and
least squares' 1/2 (l_r - (1 - s))^2. Fakes keep their target 0. The hinge loss has no
targets (its margin plays that part), so it refuses smoothing (``smoothable`` False).
"""

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp


def cross_entropy_discriminator_loss(
    real_logits_B: jax.Array, fake_logits_B: jax.Array, smoothing: float = 0.0
) -> jax.Array:
    """Per-example ``L_D = -log sigmoid(l_r) - log sigmoid(-l_f)``, shape ``[B]``; with
    smoothing s the real term is ``-(1 - s) log sigmoid(l_r) - s log sigmoid(-l_r)``.

    Written with ``log_sigmoid``, exact for large |l| where ``log(sigmoid(l))`` would
    underflow to ``log(0)``.

    Args:
      real_logits_B: l(x) of real samples.
      fake_logits_B: l(G(z)) of fakes.
      smoothing: one-sided label smoothing s (a Python float; 0 leaves the graph as is).

    Returns:
      the per-example loss ``[B]``.
    """
    real_B = -jax.nn.log_sigmoid(real_logits_B)
    if smoothing:  # a Python branch: s = 0 traces exactly the unsmoothed loss
        real_B = (1.0 - smoothing) * real_B - smoothing * jax.nn.log_sigmoid(-real_logits_B)
    return real_B - jax.nn.log_sigmoid(-fake_logits_B)


def minimax_generator_loss(fake_logits_B: jax.Array) -> jax.Array:
    """Per-example saturating ``L_G = log(1 - sigmoid(l_f)) = log sigmoid(-l_f)``, ``[B]``."""
    return jax.nn.log_sigmoid(-fake_logits_B)


def non_saturating_generator_loss(fake_logits_B: jax.Array) -> jax.Array:
    """Per-example non-saturating ``L_G = -log sigmoid(l_f)``, shape ``[B]``."""
    return -jax.nn.log_sigmoid(fake_logits_B)


def least_squares_discriminator_loss(
    real_logits_B: jax.Array, fake_logits_B: jax.Array, smoothing: float = 0.0
) -> jax.Array:
    """Per-example LSGAN ``L_D = 1/2 (l_r - (1 - s))^2 + 1/2 l_f^2`` on the raw outputs,
    shape ``[B]`` (s: one-sided label smoothing, default 0)."""
    return 0.5 * jnp.square(real_logits_B - (1.0 - smoothing)) + 0.5 * jnp.square(fake_logits_B)


def least_squares_generator_loss(fake_logits_B: jax.Array) -> jax.Array:
    """Per-example LSGAN ``L_G = 1/2 (l_f - 1)^2``, shape ``[B]``."""
    return 0.5 * jnp.square(fake_logits_B - 1.0)


def hinge_discriminator_loss(
    real_logits_B: jax.Array, fake_logits_B: jax.Array, smoothing: float = 0.0
) -> jax.Array:
    """Per-example ``L_D = relu(1 - l_r) + relu(1 + l_f)``, shape ``[B]``.

    Raises:
      ValueError: for smoothing other than 0 (the hinge has no targets to smooth).
    """
    if smoothing:
        raise ValueError("the hinge loss has no targets to smooth; use label_smoothing = 0")
    return jax.nn.relu(1.0 - real_logits_B) + jax.nn.relu(1.0 + fake_logits_B)


def hinge_generator_loss(fake_logits_B: jax.Array) -> jax.Array:
    """Per-example ``L_G = -l_f``, shape ``[B]``."""
    return -fake_logits_B


class GANLoss(NamedTuple):
    """One row of the module docstring's table.

    Attributes:
      discriminator: ``(l_real [B], l_fake [B], smoothing) -> L_D [B]``.
      generator: ``l_fake [B] -> L_G [B]``.
      smoothable: whether one-sided label smoothing means anything for it.
    """

    discriminator: Callable[[jax.Array, jax.Array, float], jax.Array]
    generator: Callable[[jax.Array], jax.Array]
    smoothable: bool


LOSSES: dict[str, GANLoss] = {
    "minimax": GANLoss(cross_entropy_discriminator_loss, minimax_generator_loss, True),
    "non_saturating": GANLoss(
        cross_entropy_discriminator_loss, non_saturating_generator_loss, True
    ),
    "least_squares": GANLoss(least_squares_discriminator_loss, least_squares_generator_loss, True),
    "hinge": GANLoss(hinge_discriminator_loss, hinge_generator_loss, False),
}
