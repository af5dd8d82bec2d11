"""Sparsity penalties on an autoencoder's code, and the activations that shape the code.

With codes z_i = a(f(x_i)) in R^K (a the code activation), real-example mask m_i and
n = sum_i m_i, the penalty added to the reconstruction loss is

    Omega(z) = lambda (1/n) sum_i m_i sum_j |z_ij|                 (L1 on activations)
             + beta sum_j KL(rho || rho_hat_j),                    (KL to a target rate)

    rho_hat_j = (1/n) sum_i m_i z_ij,
    KL(rho || rho_hat) = rho log(rho / rho_hat) + (1 - rho) log((1 - rho) / (1 - rho_hat)),

the KL between Bernoulli(rho) and Bernoulli(rho_hat) (Ng's sparse autoencoder). The KL term
needs activations in (0, 1), hence ``code_activation = "sigmoid"``; rho_hat is a batch
statistic, so unlike the L1 term it is not a sum over examples.
"""

import dataclasses
from collections.abc import Callable

import jax
import jax.numpy as jnp

# "none" keeps the encoder's linear output (the plain autoencoder); sigmoid gives rates in
# (0, 1) for the KL penalty; relu gives non-negative codes that L1 can push to exactly 0.
CODE_ACTIVATIONS: dict[str, Callable[[jax.Array], jax.Array]] = {
    "none": lambda z: z,
    "sigmoid": jax.nn.sigmoid,
    "relu": jax.nn.relu,
}
# rho_hat is clipped away from 0 and 1: a float32 sigmoid saturates to exactly 1.0, where
# log(1 - rho_hat) is -inf. Inside the clip range the gradient is exact.
_RATE_EPS = 1e-6


def real_count(z_BxK: jax.Array, mask_B: jax.Array | None) -> tuple[jax.Array, jax.Array]:
    """``(mask_B, n)``: the mask (all ones when None) and the number of real examples,
    at least 1 so that an all-padding batch divides by 1 instead of 0."""
    if mask_B is None:
        mask_B = jnp.ones(z_BxK.shape[:1], z_BxK.dtype)
    return mask_B, jnp.maximum(jnp.sum(mask_B), 1.0)


def mean_activation(z_BxK: jax.Array, mask_B: jax.Array | None = None) -> jax.Array:
    """rho_hat_j = (1/n) sum_i m_i z_ij, the masked batch mean of each code unit.

    Returns:
      ``[K]``.
    """
    mask_B, n = real_count(z_BxK, mask_B)
    return jnp.sum(z_BxK * mask_B[:, None], axis=0) / n


def bernoulli_kl(rho: float, rho_hat_K: jax.Array) -> jax.Array:
    """KL(Bernoulli(rho) || Bernoulli(rho_hat)) per unit (see the module docstring).

    Args:
      rho: target rate, 0 < rho < 1.
      rho_hat_K: observed rates ``[K]`` (clipped to [1e-6, 1 - 1e-6]).

    Returns:
      ``[K]``, >= 0, zero where rho_hat = rho.
    """
    rho_hat_K = jnp.clip(rho_hat_K, _RATE_EPS, 1.0 - _RATE_EPS)
    return rho * jnp.log(rho / rho_hat_K) + (1.0 - rho) * jnp.log((1.0 - rho) / (1.0 - rho_hat_K))


def kl_sparsity(z_BxK: jax.Array, mask_B: jax.Array | None, rho: float) -> jax.Array:
    """sum_j KL(rho || rho_hat_j) over the K code units, rho_hat from the real examples."""
    return jnp.sum(bernoulli_kl(rho, mean_activation(z_BxK, mask_B)))


def l1_activation(z_BxK: jax.Array, mask_B: jax.Array | None = None) -> jax.Array:
    """(1/n) sum_i m_i sum_j |z_ij|: the mean over real examples of the code's L1 norm."""
    mask_B, n = real_count(z_BxK, mask_B)
    return jnp.sum(jnp.sum(jnp.abs(z_BxK), axis=1) * mask_B) / n


@dataclasses.dataclass(frozen=True)
class Sparsity:
    """Omega(z) = l1 * L1(z) + kl * sum_j KL(target || rho_hat_j) (module docstring).

    Attributes:
      l1: lambda, the strength of the L1 term (0 leaves it out).
      kl: beta, the weight of the KL term (0 leaves it out; > 0 needs codes in (0, 1)).
      target: rho, the target mean activation of each code unit.

    Example:
      >>> Sparsity(kl=3.0, target=0.05)(jax.nn.sigmoid(z_BxK), mask_B)   # scalar
    """

    l1: float = 0.0
    kl: float = 0.0
    target: float = 0.05

    def __call__(self, z_BxK: jax.Array, mask_B: jax.Array | None = None) -> jax.Array:
        penalty = jnp.zeros((), z_BxK.dtype)
        if self.l1 > 0:
            penalty = penalty + self.l1 * l1_activation(z_BxK, mask_B)
        if self.kl > 0:
            penalty = penalty + self.kl * kl_sparsity(z_BxK, mask_B, self.target)
        return penalty
