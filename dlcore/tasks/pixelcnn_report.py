"""What a PixelCNN run reports after training: test likelihood, the independent-pixel
reference, sample quality, and pictures.

Figures (``summary.json`` under ``"report"``):

- ``test_nll`` (nats per image) and ``test_bits_per_dim`` = NLL / (D ln 2), exact;
- ``independent_pixel_bits_per_dim``: the test bits/dim of the independent-pixel Bernoulli
  model fitted on train (per-pixel means, :func:`independent_pixel_bits`): what a model of
  no dependence between pixels gets, the reference to beat;
- ``sample_bits_per_dim``: the mean over ``max(64, len(test) // 2)`` samples of
  -log p(sample) / (D ln 2), as recorded while sampling: a Monte Carlo estimate of the
  model's entropy per pixel;
- :func:`dlcore.quality.sample_quality` of those samples (Fréchet distance with a
  ``quality_classifier``).

PNGs: ``samples.png`` (the first 64 samples) and ``completions.png`` (rows: test images,
their top halves with the rest grey, and the model's completions of the bottom halves).
"""

import math
import pathlib

import numpy as np

from dlcore.data.dataset import Dataset
from dlcore.engine.state import TrainState
from dlcore.quality import sample_quality
from dlcore.tasks.pixelcnn_sampling import LN2, independent_pixel_bits
from dlcore.viz.images import save_image_grid

_GRID = 64  # samples drawn in samples.png
_COMPLETIONS = 10
_CHUNK = 512  # test images per compiled NLL call
_UNKNOWN = 0.5  # grey: the pixels a completion has to draw
GRID_STREAM, QUALITY_STREAM, COMPLETION_STREAM = 1, 2, 3


def test_nll(task, state: TrainState, x: np.ndarray) -> np.ndarray:
    """NLL of every image of ``x`` ``[N]`` (nats), in chunks of ``_CHUNK``."""
    run = task.jitted_nll
    return np.concatenate(
        [np.asarray(run(state.params, x[i : i + _CHUNK])) for i in range(0, len(x), _CHUNK)]
    ).astype(np.float64)


def sample_grid(task, state: TrainState, n: int, path: pathlib.Path) -> None:
    """Writes ``n`` samples drawn with a fixed key (the same for every call) as a grid."""
    images, _ = task.jitted_sample(state, n, task.report_key(state, GRID_STREAM), None, 0)
    save_image_grid(path, np.asarray(images), cols=math.ceil(math.sqrt(n)))


def completions(task, state: TrainState, x_NxHxWxC: np.ndarray) -> np.ndarray:
    """Rows of ``len(x)`` tiles: the images, their top halves (bottom grey), the model's
    completions of the bottom halves: ``[3 N, H, W, C]``."""
    h, w = task.image_shape[:2]
    start = (h // 2) * w  # the first pixel of the bottom half
    key = task.report_key(state, COMPLETION_STREAM)
    done, _ = task.jitted_sample(state, len(x_NxHxWxC), key, x_NxHxWxC, start)
    top = np.array(x_NxHxWxC, np.float64)
    top[:, h // 2 :] = _UNKNOWN
    return np.concatenate([x_NxHxWxC, top, np.asarray(done)])


def pixelcnn_report(task, state: TrainState, data: Dataset, directory: pathlib.Path) -> dict:
    """The figures and PNGs of the module docstring."""
    x_test = np.asarray(data.test.x, np.float32)
    nll_N = test_nll(task, state, x_test)
    # Half the test split is what the Fréchet distance compares (sample_quality): each
    # sample costs H W model passes, so no more are drawn.
    n = max(_GRID, len(x_test) // 2)
    samples, log_p_N = task.jitted_sample(state, n, task.report_key(state, QUALITY_STREAM), None, 0)
    samples = np.asarray(samples)
    figures = {
        "test_nll": float(nll_N.mean()),
        "test_bits_per_dim": float(nll_N.mean() / (task.dims * LN2)),
        "independent_pixel_bits_per_dim": independent_pixel_bits(data.train.x, x_test),
        "sample_bits_per_dim": float(-np.asarray(log_p_N, np.float64).mean() / (task.dims * LN2)),
    }
    figures.update(sample_quality(samples, data, task.quality))
    save_image_grid(directory / "samples.png", samples[:_GRID], cols=8)
    k = min(_COMPLETIONS, len(x_test))
    save_image_grid(directory / "completions.png", completions(task, state, x_test[:k]), cols=k)
    return figures
