"""Turning arrays into pictures: scaling to [0, 1], colour maps, tiled grids, PNG files.

Everything here runs on the host in NumPy; the viz tools hand over their JAX results and
get back ``[H, W, 3]`` float RGB images in [0, 1] that :func:`save_png` writes pixel for
pixel (one array element per pixel, so a file's size is exactly the array's).

Grid geometry (N tiles of h x w, ``cols`` columns, integer ``scale``, ``pad`` pixels):

    rows   = ceil(N / cols)
    height = rows * (h * scale + pad) + pad
    width  = cols * (w * scale + pad) + pad
"""

import math
import pathlib

import matplotlib

matplotlib.use("Agg")  # files only; never needs a display
import matplotlib.image  # noqa: E402
import numpy as np  # noqa: E402

PAD_VALUE = 1.0  # white lines between tiles


def to_unit(x: np.ndarray) -> np.ndarray:
    """``(x - min) / (max - min)`` over the whole array; a constant array maps to 0.5.

    Example:
      >>> to_unit(np.array([2.0, 4.0, 3.0])).tolist()
      [0.0, 1.0, 0.5]
    """
    x = np.asarray(x, np.float64)
    lo, hi = float(x.min()), float(x.max())
    if hi - lo <= 1e-12 * max(1.0, abs(hi)):
        return np.full(x.shape, 0.5)
    return (x - lo) / (hi - lo)


def to_unit_symmetric(x: np.ndarray) -> np.ndarray:
    """``0.5 + x / (2 max|x|)``: zero stays mid-grey, so signs can be compared across tiles.

    Example:
      >>> to_unit_symmetric(np.array([-2.0, 0.0, 1.0])).tolist()
      [0.0, 0.5, 0.75]
    """
    x = np.asarray(x, np.float64)
    peak = float(np.abs(x).max())
    return np.full(x.shape, 0.5) if peak == 0.0 else 0.5 + x / (2.0 * peak)


def as_rgb(image_HxWxC: np.ndarray) -> np.ndarray:
    """A [0, 1] image with 1 or 3 channels as ``[H, W, 3]`` (grey is repeated).

    Raises:
      ValueError: for another number of channels.
    """
    image_HxWxC = np.asarray(image_HxWxC, np.float64)
    if image_HxWxC.ndim == 2:
        image_HxWxC = image_HxWxC[..., None]
    channels = image_HxWxC.shape[-1]
    if channels not in (1, 3):
        raise ValueError(f"a picture needs 1 or 3 channels; got shape {image_HxWxC.shape}")
    return np.repeat(image_HxWxC, 3, axis=-1) if channels == 1 else image_HxWxC


def show_input(image_HxWxC: np.ndarray) -> np.ndarray:
    """A model input (any range) as RGB: min-max scaled; channels other than 1 or 3 are
    averaged to grey."""
    image_HxWxC = np.asarray(image_HxWxC)
    if image_HxWxC.shape[-1] not in (1, 3):
        image_HxWxC = image_HxWxC.mean(axis=-1, keepdims=True)
    return as_rgb(to_unit(image_HxWxC))


def heat(map_HxW: np.ndarray, cmap: str = "inferno") -> np.ndarray:
    """A non-negative map, min-max scaled, through a matplotlib colour map: ``[H, W, 3]``."""
    return matplotlib.colormaps[cmap](to_unit(map_HxW))[..., :3]


def grid(
    tiles_NxHxWx3: np.ndarray, cols: int | None = None, scale: int = 1, pad: int = 1
) -> np.ndarray:
    """Tiles side by side in rows, each enlarged ``scale`` times (nearest neighbour).

    Args:
      tiles_NxHxWx3: N RGB tiles in [0, 1].
      cols: tiles per row (default: ceil(sqrt(N)), a near-square grid).
      scale: integer enlargement, so that 5x5 kernels are visible.
      pad: width of the white lines between and around tiles.

    Returns:
      ``[height, width, 3]`` as in the module docstring; unused cells stay white.

    Example:
      >>> grid(np.zeros((5, 4, 4, 3)), cols=3, scale=2).shape
      (19, 28, 3)
    """
    tiles_NxHxWx3 = np.asarray(tiles_NxHxWx3, np.float64)
    n, h, w, _ = tiles_NxHxWx3.shape
    if scale < 1 or pad < 0:
        raise ValueError(f"grid scale must be >= 1 and pad >= 0; got {scale} and {pad}")
    cols = cols or math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    th, tw = h * scale, w * scale
    out = np.full((rows * (th + pad) + pad, cols * (tw + pad) + pad, 3), PAD_VALUE)
    big = tiles_NxHxWx3.repeat(scale, axis=1).repeat(scale, axis=2)
    for i in range(n):
        r, c = divmod(i, cols)
        top, left = pad + r * (th + pad), pad + c * (tw + pad)
        out[top : top + th, left : left + tw] = big[i]
    return out


def save_png(path: pathlib.Path, rgb_HxWx3: np.ndarray) -> pathlib.Path:
    """Writes an RGB image in [0, 1] as a PNG with one pixel per array element."""
    rgb_HxWx3 = np.clip(np.asarray(rgb_HxWx3, np.float64), 0.0, 1.0)
    if rgb_HxWx3.ndim != 3 or rgb_HxWx3.shape[-1] != 3:
        raise ValueError(f"save_png needs an [H, W, 3] image; got {rgb_HxWx3.shape}")
    matplotlib.image.imsave(path, rgb_HxWx3, format="png")
    return path


def save_image_grid(
    path: pathlib.Path,
    images,
    image_shape: tuple[int, int] | None = None,
    cols: int | None = None,
    scale: int = 4,
) -> pathlib.Path:
    """Writes N images with values in [0, 1] as one grid PNG (grey or RGB), making the
    parent directory if needed (a run's ``snapshots/``).

    Args:
      path: the PNG to write.
      images: ``[N, H, W]``, ``[N, H, W, C]`` (C = 1 or 3), or flat ``[N, H*W]`` with
        ``image_shape``; values outside [0, 1] are clipped.
      image_shape: ``(H, W)`` of flat images.
      cols: images per row (default: a near-square grid).
      scale: integer enlargement of every pixel.

    Example:
      >>> import tempfile
      >>> folder = pathlib.Path(tempfile.mkdtemp())
      >>> save_image_grid(folder / "grid.png", np.zeros((6, 64)), image_shape=(8, 8)).name
      'grid.png'
    """
    x = np.asarray(images, np.float64)
    if image_shape is not None:
        x = x.reshape(x.shape[0], *image_shape)
    if x.ndim == 3:
        x = x[..., None]
    if x.ndim != 4 or x.shape[-1] not in (1, 3):
        raise ValueError(
            f"save_image_grid needs [N, H, W], [N, H, W, 1 or 3] or flat images with "
            f"image_shape; got {np.shape(images)}"
        )
    tiles = np.repeat(np.clip(x, 0.0, 1.0), 3 // x.shape[-1], axis=-1)
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return save_png(path, grid(tiles, cols=cols, scale=scale))
