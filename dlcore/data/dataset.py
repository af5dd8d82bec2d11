"""In-memory data sets: three fixed splits of (inputs, targets) arrays."""

import dataclasses
import hashlib
from typing import Any, Literal

import numpy as np

SplitName = Literal["train", "val", "test"]
SPLITS: tuple[SplitName, ...] = ("train", "val", "test")


@dataclasses.dataclass(frozen=True)
class Split:
    """One split: inputs ``x`` ``[N, ...]`` (float32) and targets ``y`` ``[N, ...]``."""

    x: np.ndarray
    y: np.ndarray

    def __post_init__(self):
        if len(self.x) != len(self.y):
            raise ValueError(
                f"x and y must have the same length; got {len(self.x)} and {len(self.y)}"
            )

    def __len__(self) -> int:
        return len(self.x)


@dataclasses.dataclass(frozen=True)
class Dataset:
    """A data set with fixed train/val/test splits.

    Attributes:
      name: registry name.
      train, val, test: the splits. Statistics (e.g. standardization) come from train only.
      num_classes: number of classes for classification data, else None.
      info: generator facts worth reporting (e.g. the true margin of ``blobs``).
    """

    name: str
    train: Split
    val: Split
    test: Split
    num_classes: int | None
    info: dict[str, Any] = dataclasses.field(default_factory=dict)

    def split(self, name: SplitName) -> Split:
        if name not in SPLITS:
            raise ValueError(f"split must be one of {', '.join(SPLITS)}; got {name!r}")
        return getattr(self, name)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.train.x.shape[1:])

    def fingerprint(self) -> dict[str, Any]:
        """What identifies these exact splits: sizes and a SHA-256 of every array's bytes.

        A run stores it at creation; resume, eval and sample compare the rebuilt data with
        it, so a data set that came out differently (another Python's standard library,
        another scikit-learn) is an error instead of silently different inputs.
        """
        digest = hashlib.sha256()
        for name in SPLITS:
            for arr in (self.split(name).x, self.split(name).y):
                arr = np.ascontiguousarray(arr)
                digest.update(f"{name}:{arr.dtype.str}:{arr.shape}".encode())
                digest.update(arr.tobytes())
        sizes = {name: len(self.split(name)) for name in SPLITS}
        return {"name": self.name, "sizes": sizes, "sha256": digest.hexdigest()}


def split_fractions(
    x: np.ndarray,
    y: np.ndarray,
    val_fraction: float,
    test_fraction: float,
    rng: np.random.Generator,
) -> tuple[Split, Split, Split]:
    """Shuffles (x, y) with ``rng`` and cuts it into train/val/test by the given fractions."""
    order = rng.permutation(len(x))
    n_test = int(round(test_fraction * len(x)))
    n_val = int(round(val_fraction * len(x)))
    test, val, train = np.split(order, [n_test, n_test + n_val])
    return Split(x[train], y[train]), Split(x[val], y[val]), Split(x[test], y[test])


def apply_preprocessing(data: Dataset, name: str) -> Dataset:
    """Applies ``standardize`` / ``channel_mean`` fitted on ``data.train`` to every split
    (``none`` returns ``data`` unchanged). Test statistics never leak into the inputs."""
    if name == "none":
        return data
    from dlcore.data.preprocess import PREPROCESSORS  # jax-based; imported when used

    fit, apply = PREPROCESSORS[name]
    stats = fit(data.train.x)

    def transformed(split: Split) -> Split:
        return Split(np.asarray(apply(split.x, stats), dtype=np.float32), split.y)

    return dataclasses.replace(
        data,
        train=transformed(data.train),
        val=transformed(data.val),
        test=transformed(data.test),
        info={**data.info, "preprocess": name},
    )
