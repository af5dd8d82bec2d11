"""scikit-learn's bundled 8x8 handwritten digits (1797 images, shipped with the package)."""

from typing import Literal

import numpy as np
from pydantic import Field, PositiveInt, model_validator

from dlcore.config.section import Section
from dlcore.data.dataset import Dataset, Split
from dlcore.data.subsets import cap_per_class, select_classes

# The split is part of the data set's definition so results stay comparable across runs.
_SPLIT_SEED = 0
_VAL_FRACTION = 0.15
_TEST_FRACTION = 0.15
_HALF_INK = 8.0  # pixel values run 0..16


def _without(split: Split, digits: list[int]) -> Split:
    """The examples of ``split`` whose label is not in ``digits`` (order kept)."""
    keep = ~np.isin(split.y, digits)
    return Split(split.x[keep], split.y[keep])


class DigitsConfig(Section):
    """8x8 digits: 64 features (``layout = "flat"``) or 8x8x1 images (``"image"``), the
    images optionally resized (bilinear) to 16x16 or 32x32 with ``image_size``.

    Fixed stratified split: 70% train (1257), 15% validation (270), 15% test (270).
    ``classes`` keeps some digits, relabelled 0..k-1 in the order given (digits 5-9 as a
    transfer-learning target: ``classes = [5, 6, 7, 8, 9]``), and ``train_per_class`` keeps
    the first n training images of each (the small-target-data regime); the split itself is
    unchanged, so validation and test stay comparable. ``holdout_classes`` removes digits
    from training and validation only, labels unchanged: the test split then holds digits
    no model has seen (novelty detection); ``info["holdout_classes"]`` names them.
    ``binarize`` turns pixels into 0/1 (at half ink, 8 of 16), for RBMs and other
    binary-visible models; it needs ``preprocess = "none"``.
    ``preprocess`` is fitted on the training split only: ``standardize`` (per feature),
    ``channel_mean`` (images: subtract the training mean of each channel), ``unit`` (pixels
    / 16, in [0, 1]: for generative models) or ``none`` (raw pixel values 0..16).
    ``unit`` and ``binarize`` record ``info["pixel_range"] = [0.0, 1.0]``; ``binarize``
    also ``info["binary"] = True``.
    """

    name: Literal["digits"] = "digits"
    layout: Literal["flat", "image"] = "flat"
    targets: list[Literal["digit", "parity"]] = Field(
        default_factory=lambda: ["digit"],
        min_length=1,
        description="one target: labels [N]; several (multi-task): columns [N, K]",
    )
    preprocess: Literal["standardize", "channel_mean", "unit", "none"] = "standardize"
    image_size: Literal[8, 16, 32] = Field(8, description="image side (layout = 'image')")
    classes: list[int] | None = Field(
        None, min_length=2, description="digits to keep, relabelled 0..k-1 in this order"
    )
    train_per_class: PositiveInt | None = Field(
        None, description="keep the first n training images of each class"
    )
    binarize: bool = Field(
        False, description="pixels >= 8 (half ink) become 1.0, others 0.0 (needs preprocess none)"
    )
    holdout_classes: list[int] = Field(
        default_factory=list,
        description="digits left out of training and validation; the test split keeps them",
    )

    @model_validator(mode="after")
    def _consistent(self):
        if self.preprocess == "channel_mean" and self.layout != "image":
            raise ValueError("preprocess = 'channel_mean' needs layout = 'image'")
        if self.image_size != 8 and self.layout != "image":
            raise ValueError(f"image_size = {self.image_size} needs layout = 'image'")
        if self.classes is not None:
            if any(not 0 <= c <= 9 for c in self.classes) or len(set(self.classes)) != len(
                self.classes
            ):
                raise ValueError(f"classes must be distinct digits 0-9; got {self.classes}")
            if self.targets != ["digit"]:
                raise ValueError("classes needs targets = ['digit']")
        if self.train_per_class is not None and self.targets != ["digit"]:
            raise ValueError("train_per_class needs targets = ['digit']")
        if self.binarize and self.preprocess != "none":
            raise ValueError("binarize = true needs preprocess = 'none' (pixels become 0 or 1)")
        if self.holdout_classes:
            held = self.holdout_classes
            if any(not 0 <= c <= 9 for c in held) or len(set(held)) != len(held):
                raise ValueError(f"holdout_classes must be distinct digits 0-9; got {held}")
            if len(held) > 8:
                raise ValueError("holdout_classes must leave at least two digits to train on")
            if self.classes is not None or self.targets != ["digit"]:
                raise ValueError("holdout_classes needs classes unset and targets = ['digit']")
        return self


def resize_matrix(n_in: int, n_out: int) -> np.ndarray:
    """``[n_out, n_in]`` linear interpolation between pixel centres (edges clamped), so that
    ``A @ img @ A.T`` resizes a square image bilinearly.

    Example:
      >>> resize_matrix(2, 4).round(2).tolist()
      [[1.0, 0.0], [0.75, 0.25], [0.25, 0.75], [0.0, 1.0]]
    """
    pos = np.clip((np.arange(n_out) + 0.5) * n_in / n_out - 0.5, 0, n_in - 1)
    lo = np.floor(pos).astype(int)
    hi = np.minimum(lo + 1, n_in - 1)
    frac = pos - lo
    a = np.zeros((n_out, n_in))
    a[np.arange(n_out), lo] += 1 - frac
    a[np.arange(n_out), hi] += frac
    return a


def make_digits(cfg: DigitsConfig) -> Dataset:
    # Imported here: scikit-learn is slow to import and only this data set needs it.
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    x, y = load_digits(return_X_y=True)
    x = x.astype(np.float32)
    if cfg.layout == "image":
        x = x.reshape(-1, 8, 8, 1)
        if cfg.image_size != 8:
            a = resize_matrix(8, cfg.image_size)
            x = np.einsum("ih,nhwc,jw->nijc", a, x, a).astype(np.float32)
    if cfg.binarize:
        x = (x >= _HALF_INK).astype(np.float32)
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
    num_classes = 10
    if cfg.classes is not None:
        splits = [select_classes(s, cfg.classes) for s in splits]
        num_classes = len(cfg.classes)
    if cfg.holdout_classes:
        splits[:2] = [_without(s, cfg.holdout_classes) for s in splits[:2]]
    if cfg.train_per_class is not None:
        splits[0] = cap_per_class(splits[0], cfg.train_per_class)
    info = {"image_shape": [cfg.image_size] * 2 if cfg.layout == "image" else [8, 8]}
    if cfg.binarize:
        info["pixel_range"] = [0.0, 1.0]
        info["binary"] = True  # pixels only 0 or 1 (a PixelCNN's Bernoulli checks this)
    if cfg.holdout_classes:
        info["holdout_classes"] = list(cfg.holdout_classes)
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
    return Dataset("digits", *splits, num_classes=num_classes, info=info)
