"""scikit-learn's bundled 8x8 handwritten digits (1797 images, shipped with the package)."""

from typing import Literal

import numpy as np
from pydantic import Field, model_validator

from dlcore.config.section import Section
from dlcore.data.dataset import Dataset, Split

# The split is part of the data set's definition so results stay comparable across runs.
_SPLIT_SEED = 0
_VAL_FRACTION = 0.15
_TEST_FRACTION = 0.15


class DigitsConfig(Section):
    """8x8 digits: 64 features (``layout = "flat"``) or 8x8x1 images (``"image"``).

    Fixed stratified split: 70% train (1257), 15% validation (270), 15% test (270).
    ``preprocess`` is fitted on the training split only: ``standardize`` (per feature),
    ``channel_mean`` (images: subtract the training mean of each channel) or ``none``
    (raw pixel values 0..16).
    """

    name: Literal["digits"] = "digits"
    layout: Literal["flat", "image"] = "flat"
    targets: list[Literal["digit", "parity"]] = Field(
        default_factory=lambda: ["digit"],
        min_length=1,
        description="one target: labels [N]; several (multi-task): columns [N, K]",
    )
    preprocess: Literal["standardize", "channel_mean", "none"] = "standardize"

    @model_validator(mode="after")
    def _channel_mean_needs_images(self):
        if self.preprocess == "channel_mean" and self.layout != "image":
            raise ValueError("preprocess = 'channel_mean' needs layout = 'image'")
        return self


def make_digits(cfg: DigitsConfig) -> Dataset:
    # Imported here: scikit-learn is slow to import and only this data set needs it.
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    x, y = load_digits(return_X_y=True)
    x = x.astype(np.float32)
    if cfg.layout == "image":
        x = x.reshape(-1, 8, 8, 1)
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
    splits = [Split(a, b) for a, b in ((x_train, y_train), (x_val, y_val), (x_test, y_test))]
    info = {"image_shape": [8, 8]}
    if cfg.targets != ["digit"]:
        classes = {"digit": 10, "parity": 2}
        info["targets"] = {t: classes[t] for t in cfg.targets}
        splits = [
            Split(
                s.x,
                np.stack([s.y if t == "digit" else s.y % 2 for t in cfg.targets], axis=1).astype(
                    np.int32
                ),
            )
            for s in splits
        ]
    return Dataset("digits", *splits, num_classes=10, info=info)
