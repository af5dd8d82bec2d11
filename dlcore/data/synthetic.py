"""Generated data sets: xor, spirals and linearly separable blobs. Nothing is downloaded."""

import math
from typing import Literal

import numpy as np
from pydantic import Field, PositiveInt, model_validator

from dlcore.config.section import Seed
from dlcore.data.dataset import Dataset, SplitFractions, split_fractions

# Host bytes per generated value at the peak: a float64 draw, a temporary, the float32
# copy and the split's copy.
_BYTES_PER_VALUE = 32
MAX_CLASSES = 2**31 - 1  # labels are int32
# Blobs are drawn by rejection; below this acceptance rate the loop would never end.
_MIN_ACCEPTANCE = 1e-5


class _Generated(SplitFractions):
    """What every generated data set takes. Each also says, through ``host_bytes()``, about
    how much host memory generating it takes, so that ``n_samples = 10**12`` is a config
    error before anything is allocated (``dlcore.experiment.memory``)."""

    seed: Seed = Field(0, description="seed of the generator (not of training)")
    preprocess: Literal["none", "standardize"] = Field(
        "none", description="input standardization fitted on the training split"
    )


class XorConfig(_Generated):
    """Noisy XOR: points around the four corners (+-1, +-1); class = sign(x0) != sign(x1)."""

    name: Literal["xor"] = "xor"
    n_samples: PositiveInt = 400
    noise: float = Field(0.2, ge=0.0, description="std of Gaussian noise around each corner")

    def host_bytes(self) -> int:
        return self.n_samples * 2 * _BYTES_PER_VALUE


class SpiralsConfig(_Generated):
    """K interleaved spiral arms in 2-D, one class per arm."""

    name: Literal["spirals"] = "spirals"
    classes: int = Field(3, ge=2, le=MAX_CLASSES)
    n_per_class: PositiveInt = 200
    noise: float = Field(0.2, ge=0.0, description="std of the angular noise")

    def host_bytes(self) -> int:
        return self.classes * self.n_per_class * 4 * _BYTES_PER_VALUE


class BlobsConfig(_Generated):
    """Two classes separated through the origin by a known hyperplane with a set margin.

    Points are uniform in the unit ball; those closer than ``margin`` to the hyperplane
    w*.x = 0 are rejected, so the data is linearly separable with margin >= ``margin``.
    """

    name: Literal["blobs"] = "blobs"
    n_samples: PositiveInt = 400
    dim: int = Field(2, ge=1)
    margin: float = Field(0.1, gt=0.0, lt=1.0)

    @model_validator(mode="after")
    def _margin_leaves_points(self):
        # z.w* of a uniform point in the d-ball has variance 1/(d + 2): nearly Gaussian
        kept = math.erfc(self.margin * math.sqrt((self.dim + 2) / 2))
        if kept < _MIN_ACCEPTANCE:
            raise ValueError(
                f"margin {self.margin} in {self.dim} dimensions rejects nearly every point "
                f"(about {kept:.1e} of them are kept); lower margin or dim"
            )
        return self

    def host_bytes(self) -> int:
        # rejection sampling draws twice the points it needs per round
        return self.n_samples * self.dim * 3 * _BYTES_PER_VALUE


def make_xor(cfg: XorConfig) -> Dataset:
    rng = np.random.default_rng(cfg.seed)
    corners = rng.choice(np.array([-1.0, 1.0]), size=(cfg.n_samples, 2))
    x = corners + cfg.noise * rng.standard_normal((cfg.n_samples, 2))
    y = (corners[:, 0] != corners[:, 1]).astype(np.int32)
    train, val, test = split_fractions(
        x.astype(np.float32), y, cfg.val_fraction, cfg.test_fraction, rng
    )
    return Dataset("xor", train, val, test, num_classes=2)


def make_spirals(cfg: SpiralsConfig) -> Dataset:
    rng = np.random.default_rng(cfg.seed)
    n, k = cfg.n_per_class, cfg.classes
    radius = np.tile(np.linspace(0.0, 1.0, n), k)
    arm = np.repeat(np.arange(k), n)
    # Each arm sweeps 4 radians, offset by its index; noise perturbs the angle.
    angle = np.linspace(0.0, 4.0, n)[None, :] + 4.0 * np.arange(k)[:, None]
    angle = angle.reshape(-1) + cfg.noise * rng.standard_normal(n * k)
    x = np.stack([radius * np.sin(angle), radius * np.cos(angle)], axis=1)
    train, val, test = split_fractions(
        x.astype(np.float32), arm.astype(np.int32), cfg.val_fraction, cfg.test_fraction, rng
    )
    return Dataset("spirals", train, val, test, num_classes=k)


def make_blobs(cfg: BlobsConfig) -> Dataset:
    rng = np.random.default_rng(cfg.seed)
    w_star = rng.standard_normal(cfg.dim)
    w_star /= np.linalg.norm(w_star)
    kept: list[np.ndarray] = []
    n_kept = 0
    while n_kept < cfg.n_samples:
        # Uniform in the unit ball: Gaussian direction, radius ~ U^(1/d).
        z = rng.standard_normal((2 * cfg.n_samples, cfg.dim))
        z /= np.linalg.norm(z, axis=1, keepdims=True)
        z *= rng.uniform(size=(len(z), 1)) ** (1.0 / cfg.dim)
        z = z[np.abs(z @ w_star) >= cfg.margin]
        kept.append(z)
        n_kept += len(z)
    x = np.concatenate(kept)[: cfg.n_samples]
    y = (x @ w_star > 0).astype(np.int32)
    train, val, test = split_fractions(
        x.astype(np.float32), y, cfg.val_fraction, cfg.test_fraction, rng
    )
    info = {
        "w_star": w_star.tolist(),
        "margin": float(np.min(np.abs(x @ w_star))),
        "radius": float(np.max(np.linalg.norm(x, axis=1))),
    }
    return Dataset("blobs", train, val, test, num_classes=2, info=info)


class RandomConfig(_Generated):
    """Random features with random labels (the classic framework-snippet data).

    ``features = "normal"`` draws N(0, 1), ``"uniform"`` draws U[0, 1). Labels carry no
    signal, so only training accuracy can rise above chance (by memorization).
    """

    name: Literal["random"] = "random"
    n_samples: PositiveInt = 400
    dim: PositiveInt = 784
    classes: int = Field(2, ge=2, le=MAX_CLASSES)
    features: Literal["normal", "uniform"] = "normal"

    def host_bytes(self) -> int:
        return self.n_samples * (self.dim + 1) * _BYTES_PER_VALUE


class LineConfig(_Generated):
    """Regression data on a line: x ~ U[0, 1), y = slope * x + intercept (+ noise)."""

    name: Literal["line"] = "line"
    n_samples: PositiveInt = 100
    slope: float = 0.1
    intercept: float = 0.3
    noise: float = Field(0.0, ge=0.0)

    def host_bytes(self) -> int:
        return self.n_samples * 2 * _BYTES_PER_VALUE


def make_random(cfg: RandomConfig) -> Dataset:
    rng = np.random.default_rng(cfg.seed)
    shape = (cfg.n_samples, cfg.dim)
    x = rng.standard_normal(shape) if cfg.features == "normal" else rng.uniform(size=shape)
    y = rng.integers(0, cfg.classes, cfg.n_samples).astype(np.int32)
    train, val, test = split_fractions(
        x.astype(np.float32), y, cfg.val_fraction, cfg.test_fraction, rng
    )
    return Dataset("random", train, val, test, num_classes=cfg.classes)


def make_line(cfg: LineConfig) -> Dataset:
    rng = np.random.default_rng(cfg.seed)
    x = rng.uniform(size=(cfg.n_samples, 1))
    y = cfg.slope * x + cfg.intercept + cfg.noise * rng.standard_normal(x.shape)
    train, val, test = split_fractions(
        x.astype(np.float32), y.astype(np.float32), cfg.val_fraction, cfg.test_fraction, rng
    )
    info = {"slope": cfg.slope, "intercept": cfg.intercept}
    return Dataset("line", train, val, test, num_classes=None, info=info)
