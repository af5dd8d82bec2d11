"""Pictures of a GAN's samples: a scatter over the data for 2-D samples, a grid of images
for pixel data (x of rank >= 2, or flat x whose ``info["image_shape"]`` fits).

Pixel values are shown as they are when the data's ``info["pixel_range"]`` is [0, 1] (a
sigmoid generator's range), else min-max scaled over the whole grid, so that the tiles
stay comparable with one another.
"""

import math
import pathlib

import numpy as np

from dlcore.data.dataset import Dataset
from dlcore.viz.images import save_image_grid, to_unit

GRID_TILES = 64
UNIT_RANGE = [0.0, 1.0]


def picture_kind(data: Dataset, x_shape: tuple[int, ...]) -> str | None:
    """``"scatter"`` for 2-D points, ``"grid"`` for images, None for anything else."""
    if x_shape == (2,):
        return "scatter"
    if len(x_shape) >= 2 and (len(x_shape) == 2 or x_shape[-1] in (1, 3)):
        return "grid"
    image_shape = data.info.get("image_shape")
    if image_shape is not None and math.prod(image_shape) == math.prod(x_shape):
        return "grid"
    return None


def save_samples(path: pathlib.Path, samples_Nx, data: Dataset, scores: dict) -> bool:
    """Writes the picture of :func:`picture_kind` for ``samples_Nx`` (``[N, *x_shape]``);
    returns False (and writes nothing) when the samples are neither points nor images.

    Args:
      path: the PNG to write.
      samples_Nx: generated samples in the data's layout.
      data: the data set (its training split is the scatter's background).
      scores: shown in the scatter's title (e.g. the report's mode coverage).
    """
    samples_Nx = np.asarray(samples_Nx)
    kind = picture_kind(data, tuple(samples_Nx.shape[1:]))
    if kind == "scatter":
        plot_samples(np.asarray(data.train.x), samples_Nx, pathlib.Path(path), scores)
        return True
    if kind is None:
        return False
    tiles = samples_Nx[:GRID_TILES]
    if data.info.get("pixel_range") != UNIT_RANGE:
        tiles = to_unit(tiles)
    shape = None if tiles.ndim > 2 else tuple(data.info["image_shape"])
    save_image_grid(path, tiles, image_shape=shape)
    return True


def plot_samples(real_Nx2, fake_Mx2, path: pathlib.Path, scores: dict) -> None:
    """Scatter of generated points (red) over the real data (grey), as a PNG."""
    # The object API with the Agg canvas: no pyplot, no global backend state.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5, 5))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.scatter(real_Nx2[:, 0], real_Nx2[:, 1], s=2, c="0.6", alpha=0.4, label="data")
    ax.scatter(fake_Mx2[:, 0], fake_Mx2[:, 1], s=2, c="tab:red", alpha=0.5, label="generated")
    ax.set_aspect("equal")
    ax.legend(loc="upper right", markerscale=4)
    title = ", ".join(f"{k} {v:.3g}" for k, v in scores.items())
    ax.set_title(title or "GAN samples")
    path.parent.mkdir(parents=True, exist_ok=True)  # a run's snapshots/ folder
    fig.savefig(path, dpi=100)
