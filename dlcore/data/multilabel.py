"""A generated multi-label data set: bags of words, each document with a set of topics."""

from typing import Literal

import numpy as np
from pydantic import Field, PositiveInt

from dlcore.config.section import Seed
from dlcore.data.dataset import Dataset, SplitFractions, split_fractions

_BYTES_PER_VALUE = 32  # a float64 draw, a temporary, the float32 copy and the split's copy


class MultilabelDataConfig(SplitFractions):
    """scikit-learn's ``make_multilabel_classification`` with a fixed seed (McCallum's
    generative model, the simulated data of Martins & Astudillo, 2016, section 4.1).

    Each example draws a number of labels ~ Poisson(``n_labels``) (redrawn when 0, so every
    label set is non-empty), then its labels, then a document of ~ Poisson(``length``)
    words, each word from one of its labels' word distributions. ``x [n_features]`` holds
    the word counts (standardized by default), ``y [n_classes]`` the 0/1 label indicators.
    """

    name: Literal["multilabel"] = "multilabel"
    n_samples: PositiveInt = 2000
    n_features: PositiveInt = Field(20, description="vocabulary size (x = word counts)")
    n_classes: int = Field(6, ge=2, le=1000, description="number of labels")
    n_labels: PositiveInt = Field(2, description="mean number of labels per example")
    length: PositiveInt = Field(50, description="mean number of words per example")
    seed: Seed = Field(0, description="seed of the generator (not of training)")
    preprocess: Literal["none", "standardize"] = Field(
        "standardize", description="input standardization fitted on the training split"
    )

    def host_bytes(self) -> int:
        return self.n_samples * (self.n_features + self.n_classes) * _BYTES_PER_VALUE


def make_multilabel(cfg: MultilabelDataConfig) -> Dataset:
    # Imported here: scikit-learn is slow to import and only this data set and digits need it.
    from sklearn.datasets import make_multilabel_classification

    x, y = make_multilabel_classification(
        n_samples=cfg.n_samples,
        n_features=cfg.n_features,
        n_classes=cfg.n_classes,
        n_labels=cfg.n_labels,
        length=cfg.length,
        allow_unlabeled=False,
        random_state=cfg.seed,
    )
    rng = np.random.default_rng(cfg.seed)
    train, val, test = split_fractions(
        x.astype(np.float32), y.astype(np.int32), cfg.val_fraction, cfg.test_fraction, rng
    )
    info = {"labels_per_example": float(np.mean(np.sum(y, axis=1)))}
    return Dataset("multilabel", train, val, test, num_classes=cfg.n_classes, info=info)
