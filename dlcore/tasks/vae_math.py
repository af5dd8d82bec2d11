"""The pure functions of a variational autoencoder: Gaussian densities and their KL, the
decoder likelihoods, the reparameterised sample, the KL warm-up and the importance-weighted
bound. The VAE task (:mod:`dlcore.tasks.vae`) composes them; tests check each against its
formula.

Gaussians are diagonal, given by a mean ``mu`` and a log-variance ``logvar = log sigma^2``
over the last axis; every function sums over that axis and returns one number per example.
"""

import math

import jax
import jax.numpy as jnp

LOG_2PI = math.log(2.0 * math.pi)


def gaussian_kl(mu1, logvar1, mu2, logvar2) -> jax.Array:
    """KL(N(mu1, diag s1^2) || N(mu2, diag s2^2)) in closed form, summed over the last axis:

        KL = 1/2 sum_j [ log(s2_j^2 / s1_j^2) + (s1_j^2 + (mu1_j - mu2_j)^2) / s2_j^2 - 1 ]

    Args:
      mu1, logvar1: the first Gaussian, ``[..., L]``.
      mu2, logvar2: the second, broadcastable to the first (scalars 0, 0: N(0, I)).

    Returns:
      ``[...]``, >= 0 and 0 only when the two Gaussians are equal.

    Example:
      >>> float(gaussian_kl(jnp.ones(2), jnp.zeros(2), 0.0, 0.0))   # 2 * (1/2 * 1^2)
      1.0
    """
    ratio = jnp.exp(logvar1 - logvar2)  # s1^2 / s2^2, without dividing two exps
    mean_term = (mu1 - mu2) ** 2 * jnp.exp(-logvar2)
    return 0.5 * jnp.sum(ratio + mean_term - 1.0 - (logvar1 - logvar2), axis=-1)


def standard_normal_kl(mu_BxL, logvar_BxL) -> jax.Array:
    """KL(q || p) of a VAE's posterior q = N(mu, diag sigma^2) from the prior p = N(0, I),
    one number per example ``[B]``:

        KL = 1/2 sum_j (sigma_j^2 + mu_j^2 - 1 - log sigma_j^2)
    """
    return gaussian_kl(mu_BxL, logvar_BxL, 0.0, 0.0)


def gaussian_log_density(z, mu, logvar) -> jax.Array:
    """log N(z; mu, diag exp(logvar)) = -1/2 sum_j [log 2 pi + logvar_j + (z_j - mu_j)^2 /
    exp(logvar_j)], summed over the last axis (shapes broadcast)."""
    return -0.5 * jnp.sum(LOG_2PI + logvar + (z - mu) ** 2 * jnp.exp(-logvar), axis=-1)


def reparameterize(mu, logvar, eps) -> jax.Array:
    """z = mu + sigma * eps with sigma = exp(logvar / 2) and eps ~ N(0, I) drawn by the caller:
    a sample of N(mu, sigma^2) that is a differentiable function of (mu, logvar), so the
    pathwise gradient dE[f(z)]/dmu = E[f'(z)], dE[f(z)]/dsigma = E[f'(z) eps] flows into the
    encoder."""
    return mu + jnp.exp(0.5 * logvar) * eps


def bernoulli_log_likelihood(logits_BxD, x_BxD) -> jax.Array:
    """log p(x | z) = sum_d [x_d log sigmoid(l_d) + (1 - x_d) log sigmoid(-l_d)]
    = sum_d [x_d l_d - softplus(l_d)], exact for large |l| (no log of a rounded sigmoid).

    Args:
      logits_BxD: decoder logits l, ``[..., D]``.
      x_BxD: pixels in [0, 1] (0/1 for a proper likelihood of binary images).

    Returns:
      ``[...]``, nats.
    """
    return jnp.sum(x_BxD * logits_BxD - jax.nn.softplus(logits_BxD), axis=-1)


def gaussian_log_likelihood(mean_BxD, log_std, x_BxD) -> jax.Array:
    """log p(x | z) = sum_d log N(x_d; m_d, s^2) with one std s = exp(log_std) for every pixel
    (a scalar, learned or fixed), ``[...]`` nats."""
    return gaussian_log_density(x_BxD, mean_BxD, 2.0 * log_std)


def kl_warmup_weight(step, warmup_steps: int) -> jax.Array:
    """The KL term's weight, ramping linearly from 0 at step 0 to 1 at ``warmup_steps``:

        w(t) = min(1, t / T),   w = 1 throughout when T = 0.

    Example:
      >>> [float(kl_warmup_weight(t, 4)) for t in (0, 2, 4, 9)]
      [0.0, 0.5, 1.0, 1.0]
    """
    if warmup_steps <= 0:
        return jnp.ones((), jnp.float32)
    return jnp.minimum(1.0, jnp.asarray(step, jnp.float32) / warmup_steps)


def importance_weighted_bound(log_w_KxB) -> jax.Array:
    """The IWAE bound (Burda et al. 2016) of log p(x) from K importance samples z_k ~ q(z|x):

        L_K = log (1/K) sum_k w_k,   log w_k = log p(x|z_k) + log p(z_k) - log q(z_k|x)

    computed as logsumexp(log w) - log K (no overflow of exp(log w) ~ exp(-100s)).
    E[L_1] is the ELBO, E[L_K] grows with K, and L_K -> log p(x) as K -> infinity.

    Args:
      log_w_KxB: log importance weights ``[K, ...]``.

    Returns:
      ``[...]``.
    """
    k = log_w_KxB.shape[0]
    return jax.nn.logsumexp(log_w_KxB, axis=0) - math.log(k)
