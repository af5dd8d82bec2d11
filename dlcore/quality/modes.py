"""Mode coverage of samples from data with known modes (the 8-Gaussian ring).

A generator that collapses onto a few modes can still make good-looking samples; counting
the modes it reaches (Metz et al. 2017, unrolled GANs) shows the collapse.
"""

import jax
import jax.numpy as jnp
import numpy as np

# A mode counts as covered when at least this fraction of samples lies within 3 std of it.
COVERED_FRACTION = 0.01


def near_modes(x_BxD: jax.Array, modes_KxD: jax.Array, std: float) -> jax.Array:
    """``[B, K]`` booleans: sample b lies within 3 std of mode k, ``||x_b - mu_k|| <= 3 s``.

    For an isotropic 2-D Gaussian the distance to its centre is Rayleigh distributed, so
    a true sample passes with probability 1 - exp(-9/2) ~ 0.989.
    """
    diff_BxKxD = x_BxD[:, None, :] - modes_KxD[None, :, :]
    return jnp.sqrt(jnp.sum(diff_BxKxD**2, axis=-1)) <= 3.0 * std


def mode_scores(x_BxD: jax.Array, modes_KxD: jax.Array, std: float) -> dict[str, float]:
    """``high_quality`` (fraction of samples within 3 std of some mode) and
    ``modes_covered`` (modes holding at least ``COVERED_FRACTION`` of the samples)."""
    near_BxK = np.asarray(near_modes(x_BxD, modes_KxD, std))
    per_mode_K = near_BxK.mean(axis=0)
    return {
        "modes_covered": float(np.sum(per_mode_K >= COVERED_FRACTION)),
        "high_quality": float(np.mean(near_BxK.any(axis=1))),
    }
