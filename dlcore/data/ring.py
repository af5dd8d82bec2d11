"""The ring of Gaussians: the 2-D toy target on which GANs show mode collapse.

K isotropic Gaussians with equal weight sit evenly on a circle of radius r:

    p(x) = (1/K) sum_k N(x; mu_k, s^2 I),   mu_k = r (cos(2 pi k / K), sin(2 pi k / K))

With r = 2 and s = 0.02 (Metz et al. 2017, "Unrolled GANs") the modes are far apart
compared with their width, so a generator that drops one is easy to see: a mode is
*covered* when enough generated points fall within 3 s of its centre. The centres and s
are in ``Dataset.info`` (``"modes"``, ``"mode_std"``) so a task can score its samples
without knowing this module.
"""

from typing import Literal

import numpy as np
from pydantic import Field, PositiveFloat, PositiveInt

from dlcore.config.section import Seed
from dlcore.data.dataset import Dataset, Split, SplitFractions, split_sizes


class RingConfig(SplitFractions):
    """K Gaussians on a circle, unlabelled (splits hold ``x`` only, ``[N, 2]`` float32)."""

    name: Literal["ring"] = "ring"
    n_samples: PositiveInt = 10_000
    modes: int = Field(8, ge=1, description="number of Gaussians on the circle")
    radius: PositiveFloat = Field(2.0, description="radius of the circle of centres")
    std: PositiveFloat = Field(0.02, description="std of each Gaussian, per coordinate")
    seed: Seed = Field(0, description="seed of the generator (not of training)")
    # Standardizing would move the centres away from info["modes"]; there is nothing to fit.
    preprocess: Literal["none"] = Field("none", description="no preprocessing (none)")
    val_fraction: float = Field(0.1, gt=0.0, lt=1.0)
    test_fraction: float = Field(0.1, gt=0.0, lt=1.0)

    def host_bytes(self) -> int:
        """About the host memory generating the data takes (checked before it is)."""
        # mode ids, float64 centres and noise, float32 points; the centres' cos and sin
        return self.n_samples * 64 + self.modes * 48


def ring_centres(modes: int, radius: float) -> np.ndarray:
    """The K centres ``mu_k = r (cos(2 pi k / K), sin(2 pi k / K))``, float64 ``[K, 2]``.

    Example:
      >>> ring_centres(4, 1.0).round(6).tolist()
      [[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [-0.0, -1.0]]
    """
    angle_K = 2.0 * np.pi * np.arange(modes) / modes
    return radius * np.stack([np.cos(angle_K), np.sin(angle_K)], axis=1)


def make_ring(cfg: RingConfig) -> Dataset:
    """Draws ``n_samples`` points: a uniform mode index, then its Gaussian.

    The draws are i.i.d., so the splits are consecutive slices (test, val, train) of one
    stream; the same config always gives the same arrays.
    """
    rng = np.random.default_rng(cfg.seed)
    mu_Kx2 = ring_centres(cfg.modes, cfg.radius)
    mode_N = rng.integers(0, cfg.modes, cfg.n_samples)
    x_Nx2 = mu_Kx2[mode_N] + cfg.std * rng.standard_normal((cfg.n_samples, 2))
    x_Nx2 = x_Nx2.astype(np.float32)
    _, n_val, n_test = split_sizes(cfg.n_samples, cfg.val_fraction, cfg.test_fraction)
    test, val, train = np.split(x_Nx2, [n_test, n_test + n_val])
    info = {"modes": mu_Kx2.tolist(), "mode_std": float(cfg.std), "radius": float(cfg.radius)}
    return Dataset("ring", Split(x=train), Split(x=val), Split(x=test), None, info=info)
