"""scikit-learn's bundled 8x8 handwritten digits (1797 images, shipped with the package)."""

from typing import Literal

import numpy as np

from dlcore.config_base import Section
from dlcore.data.dataset import Dataset, Split

# The split is part of the data set's definition so results stay comparable across runs.
_SPLIT_SEED = 0
_VAL_FRACTION = 0.15
_TEST_FRACTION = 0.15


class DigitsConfig(Section):
    """8x8 digits as 64 features, standardized with training-split statistics.

    Fixed stratified split: 70% train (1257), 15% validation (270), 15% test (270).
    """

    name: Literal["digits"] = "digits"


def make_digits(cfg: DigitsConfig) -> Dataset:
    del cfg  # no options: the split and preprocessing are fixed
    # Imported here: scikit-learn is slow to import and only this data set needs it.
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    x, y = load_digits(return_X_y=True)
    x = x.astype(np.float64)
    y = y.astype(np.int32)
    x_rest, x_test, y_rest, y_test = train_test_split(
        x, y, test_size=_TEST_FRACTION, stratify=y, random_state=_SPLIT_SEED
    )
    x_train, x_val, y_train, y_val = train_test_split(
        x_rest,
        y_rest,
        test_size=_VAL_FRACTION / (1.0 - _TEST_FRACTION),
        stratify=y_rest,
        random_state=_SPLIT_SEED,
    )
    mean = x_train.mean(axis=0)
    std = x_train.std(axis=0)
    std[std < 1e-8] = 1.0  # border pixels that are always blank in training
    splits = [
        Split(((a - mean) / std).astype(np.float32), b)
        for a, b in ((x_train, y_train), (x_val, y_val), (x_test, y_test))
    ]
    return Dataset("digits", *splits, num_classes=10, info={"image_shape": [8, 8]})
