"""A 1-D function on [-1, 1] sampled on fixed grids: regression data for the universal
approximation demo. Nothing is random: the same config always gives the same arrays.

Splits: ``train`` is ``n_train`` evenly spaced points including both ends, ``val`` the
midpoints between neighbouring training points (where an interpolant is least pinned
down), ``test`` a finer grid of ``n_test`` points (for plots and the reported error).
``x`` and ``y`` are ``[N, 1]`` float32.
"""

from collections.abc import Callable
from typing import Literal

import numpy as np
from pydantic import Field

from dlcore.config.section import Section, one_of
from dlcore.data.dataset import Dataset, Split

# Targets, each smooth (or, for ``abs``, continuous) on [-1, 1] with a range of about [-1, 1].
FUNCTIONS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    # three periods plus a slow trend and a narrow bump: needs many units to follow
    "wiggly": lambda x: (
        np.sin(3 * np.pi * x) * (1 - 0.5 * x**2) + 0.3 * x + 0.5 * np.exp(-40 * (x - 0.3) ** 2)
    ),
    "sine": lambda x: np.sin(np.pi * x),
    "bump": lambda x: np.exp(-10 * x**2),
    "abs": np.abs,  # continuous, not differentiable at 0: still approximable
}
_BYTES_PER_POINT = 4 * 8  # float64 x and y, their float32 copies


class Function1DConfig(Section):
    """y = f(x) on [-1, 1]: ``function`` picks f (``wiggly``, ``sine``, ``bump``, ``abs``)."""

    name: Literal["function_1d"] = "function_1d"
    function: one_of(FUNCTIONS, "function") = "wiggly"
    n_train: int = Field(128, ge=2, description="evenly spaced training points, ends included")
    n_test: int = Field(512, ge=2, description="points of the test grid (plots, error)")
    preprocess: Literal["none", "standardize"] = Field(
        "none", description="input standardization fitted on the training split"
    )

    def host_bytes(self) -> int:
        return (2 * self.n_train + self.n_test) * _BYTES_PER_POINT


def _split(f: Callable[[np.ndarray], np.ndarray], x: np.ndarray) -> Split:
    x_Nx1 = x.reshape(-1, 1)
    return Split(x_Nx1.astype(np.float32), f(x_Nx1).astype(np.float32))


def make_function_1d(cfg: Function1DConfig) -> Dataset:
    """The three grids of ``cfg.function`` (see the module docstring).

    Example:
      >>> data = make_function_1d(Function1DConfig(n_train=5, n_test=9))
      >>> data.train.x.ravel().tolist(), len(data.val), data.test.y.shape
      ([-1.0, -0.5, 0.0, 0.5, 1.0], 4, (9, 1))
    """
    f = FUNCTIONS[cfg.function]
    grid = np.linspace(-1.0, 1.0, cfg.n_train)
    train = _split(f, grid)
    val = _split(f, (grid[:-1] + grid[1:]) / 2)
    test = _split(f, np.linspace(-1.0, 1.0, cfg.n_test))
    return Dataset(
        "function_1d", train, val, test, num_classes=None, info={"function": cfg.function}
    )
