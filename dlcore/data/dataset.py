"""In-memory data sets: three fixed splits of named arrays, and their description.

A split holds named fields, each ``[N, ...]``: usually ``x`` (inputs) and ``y`` (targets),
but a data set may declare others (``lengths``, ``mask``, ...) or leave ``y`` out (the
unlabelled digits of an autoencoder). Batches are dicts of the same names. A task reads
the fields it declared and checks, through :class:`DataSpec`, that the data provide them.
"""

import dataclasses
import hashlib
from typing import Any, Literal

import numpy as np
from pydantic import Field, model_validator

from dlcore.config.errors import FieldError
from dlcore.config.section import Section

SplitName = Literal["train", "val", "test"]
SPLITS: tuple[SplitName, ...] = ("train", "val", "test")

# What a field holds, as a task or model sees it:
#   features: real-valued inputs or targets of any shape (vectors, images, [T, D] sequences)
#   tokens:   integer ids into a vocabulary (``info["vocab_size"]``)
#   labels:   integer class ids (``num_classes``), one per example or one per step
#   targets:  real-valued regression targets
ROLES = ("features", "tokens", "labels", "targets")


class Split:
    """One split: named arrays of equal length ``N``.

    Example:
      >>> s = Split(x=np.zeros((4, 2), np.float32), y=np.arange(4))
      >>> len(s), sorted(s.fields), s["x"].shape
      (4, ['x', 'y'], (4, 2))
    """

    def __init__(self, x: np.ndarray | None = None, y: np.ndarray | None = None, **fields):
        named = {"x": x, "y": y, **fields}
        self.fields: dict[str, np.ndarray] = {k: v for k, v in named.items() if v is not None}
        if not self.fields:
            raise ValueError("a split needs at least one field")
        lengths = {k: len(v) for k, v in self.fields.items()}
        if len(set(lengths.values())) != 1:
            raise ValueError(f"every field of a split must have the same length; got {lengths}")

    def __len__(self) -> int:
        return len(next(iter(self.fields.values())))

    def __getitem__(self, name: str) -> np.ndarray:
        if name not in self.fields:
            raise KeyError(f"this split has no field {name!r}; it has {', '.join(self.fields)}")
        return self.fields[name]

    def __contains__(self, name: str) -> bool:
        return name in self.fields

    x = property(lambda self: self["x"])
    y = property(lambda self: self["y"])

    def rows(self, index) -> dict[str, np.ndarray]:
        """The batch of the given rows (any NumPy index: ``[B]``, ``[M, B]``, a slice)."""
        return {k: v[index] for k, v in self.fields.items()}

    def map(self, name: str, fn) -> "Split":
        """A copy with field ``name`` replaced by ``fn(field)``."""
        return Split(**{**self.fields, name: fn(self.fields[name])})


@dataclasses.dataclass(frozen=True)
class FieldSpec:
    """One field as seen by a task: per-example ``shape``, ``dtype`` name and ``role``."""

    shape: tuple[int, ...]
    dtype: str
    role: str

    def describe(self) -> str:
        shape = "[" + ", ".join(str(d) for d in self.shape) + "]"
        return f"{self.role} {shape}"


@dataclasses.dataclass(frozen=True)
class DataSpec:
    """What a data set provides, without its arrays: what task and model builders see.

    Attributes:
      name: registry name of the data set.
      fields: ``{field: FieldSpec}``.
      sizes: examples per split.
      num_classes: classes of the ``labels`` field, else None.
      info: generator facts (``vocab_size``, ``targets``, ``image_shape``...).
    """

    name: str
    fields: dict[str, FieldSpec]
    sizes: dict[str, int]
    num_classes: int | None
    info: dict[str, Any]

    def describe(self) -> str:
        """``digits: x features [64], y labels [] (10 classes)``."""
        parts = [f"{k} {f.describe()}" for k, f in self.fields.items()]
        classes = f" ({self.num_classes} classes)" if self.num_classes else ""
        return f"{self.name}: {', '.join(parts)}{classes}"


def default_role(array: np.ndarray, name: str) -> str:
    """Integer inputs are tokens, integer targets labels, real arrays features/targets."""
    integer = np.issubdtype(array.dtype, np.integer)
    if name == "y":
        return "labels" if integer else "targets"
    return "tokens" if integer else "features"


@dataclasses.dataclass(frozen=True)
class Dataset:
    """A data set with fixed train/val/test splits.

    Attributes:
      name: registry name.
      train, val, test: the splits. Statistics (e.g. standardization) come from train only.
      num_classes: number of classes for classification data, else None.
      info: generator facts worth reporting (e.g. the true margin of ``blobs``).
      roles: ``{field: role}`` where the default (:func:`default_role`) does not fit.
    """

    name: str
    train: Split
    val: Split
    test: Split
    num_classes: int | None
    info: dict[str, Any] = dataclasses.field(default_factory=dict)
    roles: dict[str, str] = dataclasses.field(default_factory=dict)

    def split(self, name: SplitName) -> Split:
        if name not in SPLITS:
            raise ValueError(f"split must be one of {', '.join(SPLITS)}; got {name!r}")
        return getattr(self, name)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.train.x.shape[1:])

    def spec(self) -> DataSpec:
        """The description tasks and models are built from (see :class:`DataSpec`)."""
        fields = {
            k: FieldSpec(tuple(v.shape[1:]), v.dtype.name, self.roles.get(k, default_role(v, k)))
            for k, v in self.train.fields.items()
        }
        sizes = {s: len(self.split(s)) for s in SPLITS}
        return DataSpec(self.name, fields, sizes, self.num_classes, dict(self.info))

    def fingerprint(self) -> dict[str, Any]:
        """What identifies these exact splits: sizes and a SHA-256 of every array's bytes.

        A run stores it at creation; resume, eval and sample compare the rebuilt data with
        it, so a data set that came out differently (another Python's standard library,
        another scikit-learn) is an error instead of silently different inputs.
        """
        digest = hashlib.sha256()
        for name in SPLITS:
            fields = self.split(name).fields
            # x and y first (the order of older runs' fingerprints), then the rest by name
            order = [k for k in ("x", "y") if k in fields] + sorted(set(fields) - {"x", "y"})
            for key in order:
                arr = np.ascontiguousarray(fields[key])
                digest.update(f"{name}:{arr.dtype.str}:{arr.shape}".encode())
                digest.update(arr.tobytes())
        sizes = {name: len(self.split(name)) for name in SPLITS}
        return {"name": self.name, "sizes": sizes, "sha256": digest.hexdigest()}


def split_sizes(n: int, val_fraction: float, test_fraction: float) -> tuple[int, int, int]:
    """Examples in (train, val, test) when the val and test fractions of ``n`` are rounded.

    Raises:
      FieldError: when a split would be empty (every split needs an example; an empty
        validation split has no metrics to pick a best checkpoint by).

    Example:
      >>> split_sizes(400, 0.15, 0.15)
      (280, 60, 60)
    """
    n_test = int(round(test_fraction * n))
    n_val = int(round(val_fraction * n))
    sizes = {"training": n - n_val - n_test, "validation": n_val, "test": n_test}
    for split, field in (("validation", "val"), ("test", "test"), ("training", "val")):
        if sizes[split] < 1:
            fraction = val_fraction if field == "val" else test_fraction
            raise FieldError(
                f"data.{field}_fraction",
                f"{fraction} of {n} examples (val_fraction {val_fraction}, test_fraction "
                f"{test_fraction}) leaves the {split} split empty; every split needs at "
                "least one example: change the fractions or generate more examples",
            )
    return sizes["training"], n_val, n_test


def split_fractions(
    x: np.ndarray,
    y: np.ndarray,
    val_fraction: float,
    test_fraction: float,
    rng: np.random.Generator,
) -> tuple[Split, Split, Split]:
    """Shuffles (x, y) with ``rng`` and cuts it into train/val/test by the given fractions.

    Raises:
      FieldError: naming ``data.val_fraction`` or ``data.test_fraction`` when a split
        would be empty (see :func:`split_sizes`).
    """
    _, n_val, n_test = split_sizes(len(x), val_fraction, test_fraction)
    order = rng.permutation(len(x))
    test, val, train = np.split(order, [n_test, n_test + n_val])
    return Split(x[train], y[train]), Split(x[val], y[val]), Split(x[test], y[test])


def apply_preprocessing(data: Dataset, name: str) -> Dataset:
    """Applies ``standardize`` / ``channel_mean`` / ``unit`` fitted on ``data.train`` to every
    split's ``x`` (``none`` returns ``data`` unchanged). Test statistics never leak into the
    inputs. ``unit`` also records ``info["pixel_range"] = [0.0, 1.0]``."""
    if name == "none":
        return data
    from dlcore.data.preprocess import PREPROCESSORS  # jax-based; imported when used

    fit, apply = PREPROCESSORS[name]
    stats = fit(data.train.x)

    def transformed(split: Split) -> Split:
        return split.map("x", lambda x: np.asarray(apply(x, stats), dtype=np.float32))

    return dataclasses.replace(
        data,
        train=transformed(data.train),
        val=transformed(data.val),
        test=transformed(data.test),
        info={
            **data.info,
            "preprocess": name,
            **({"pixel_range": [0.0, 1.0]} if name == "unit" else {}),
        },
    )


class SplitFractions(Section):
    """The config fields of a generated data set that cuts its own validation and test
    splits; both > 0, since every split needs an example (``split_sizes`` also checks the
    rounded counts)."""

    val_fraction: float = Field(0.15, gt=0.0, lt=1.0)
    test_fraction: float = Field(0.15, gt=0.0, lt=1.0)

    @model_validator(mode="after")
    def _fractions_leave_training_data(self):
        if self.val_fraction + self.test_fraction >= 1.0:
            raise ValueError("val_fraction + test_fraction must be < 1 to leave training data")
        return self
