"""Sample quality measured the same way for every generative model.

A task's report draws samples and calls :func:`sample_quality`, which gives

- ``frechet_distance``: the Fréchet distance (:mod:`dlcore.quality.frechet`) between the
  features of n samples and of the second half of the test split, in the feature space of
  a digits classifier run (``[task] quality_classifier``), n = half the test split;
- ``frechet_floor``: the same distance between the two halves of the test split, what a
  perfect generator would score with samples of that size (the estimate's own bias);
- ``modes_covered`` / ``high_quality`` for data with known modes (the 8-Gaussian ring).
"""

import math
import pathlib
from typing import Any

import numpy as np
from pydantic import BaseModel, Field

from dlcore.config.errors import FieldError
from dlcore.quality.classifier import FeatureNet, load_feature_net
from dlcore.quality.frechet import frechet_distance
from dlcore.quality.modes import mode_scores

UNIT_RANGE = [0.0, 1.0]


class QualityFields(BaseModel):
    """The config field every generative task section shares (mix it into the section)."""

    quality_classifier: str | None = Field(
        None,
        description="run directory of a digits classifier (experiments/digits_classifier.toml);"
        " when set, the report gives a Fréchet distance in its features",
    )


def quality_net(section: QualityFields, spec: Any) -> FeatureNet | None:
    """The classifier named by ``section.quality_classifier``, checked against the data
    (``spec``: a :class:`dlcore.data.dataset.DataSpec`), or None when the field is unset.

    Raises:
      FieldError: naming ``task.quality_classifier``: no such run, not a classifier, or
        data whose pixels are not in [0, 1] or whose size differs from the classifier's.
    """
    path = section.quality_classifier
    if path is None:
        return None
    field = "task.quality_classifier"
    if spec.info.get("pixel_range") != UNIT_RANGE:
        raise FieldError(
            field,
            "the Fréchet distance needs images with pixels in [0, 1] (digits preprocess = "
            f"'unit' or binarize = true); data {spec.name!r} have no such range",
        )
    if not pathlib.Path(path).exists():
        raise FieldError(
            field,
            f"no run directory {path!r}; train the classifier first: dlcore run "
            f"experiments/digits_classifier.toml --run-dir {path} (16x16 images: "
            "digits16_classifier.toml)",
        )
    from dlcore.runs.errors import RunDirError  # the runs package is not needed otherwise

    try:
        net = load_feature_net(path)
    except (RunDirError, ValueError) as err:
        reason = str(err).splitlines()[0]
        raise FieldError(field, f"cannot use {path!r} as the classifier: {reason}") from None
    pixels = math.prod(spec.fields["x"].shape)
    if pixels != math.prod(net.x_shape):
        raise FieldError(
            field,
            f"the classifier at {path} reads {math.prod(net.x_shape)} pixels "
            f"{list(net.x_shape)}; these data have {pixels} {list(spec.fields['x'].shape)}",
        )
    return net


def sample_quality(samples, data, net: FeatureNet | None) -> dict[str, float]:
    """The scores of the module docstring for ``samples`` ``[N, ...]`` (in the data's
    layout) against ``data`` (a :class:`dlcore.data.dataset.Dataset`).

    Raises:
      ValueError: fewer samples than half the test split when ``net`` is given.
    """
    samples = np.asarray(samples, np.float64)
    out: dict[str, float] = {}
    if net is not None:
        test_x = np.asarray(data.test.x)
        half = len(test_x) // 2
        if len(samples) < half:
            raise ValueError(f"sample_quality needs {half} samples (half the test split)")
        first, second = net.features(test_x[:half]), net.features(test_x[half : 2 * half])
        out["frechet_distance"] = frechet_distance(net.features(samples[:half]), second)
        out["frechet_floor"] = frechet_distance(first, second)
        out["frechet_samples"] = float(half)
    modes = data.info.get("modes")
    if modes is not None:
        flat = samples.reshape(len(samples), -1)
        out.update(mode_scores(flat, np.asarray(modes), float(data.info["mode_std"])))
    return out
