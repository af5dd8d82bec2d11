"""Attention maps as pictures: arrays in, an RGB picture ``[H, W, 3]`` in [0, 1] out, drawn
with matplotlib's object API (no pyplot) and written by :func:`dlcore.viz.images.save_png`.

* :func:`caption_attention_picture` - for image captioning: per scene, the image and, for each
  word of its caption, the attention over the L = h w locations upsampled to the image and laid
  over it (Xu et al. 2015, Fig. 3).
* :func:`attention_matrix_picture` - for text: per example, the alignment matrix
  alpha[t, s] of the target tokens (rows) against the source tokens (columns), tokens as
  tick labels (Bahdanau et al. 2015, Fig. 3).

The upsampling is bilinear between pixel centres: a map value belongs to the centre of its
cell, so an ``h x w`` map over an ``H x W`` image places value (i, j) at image coordinates

    y_i = (i + 1/2) H / h - 1/2,    x_j = (j + 1/2) W / w - 1/2

and every image pixel interpolates linearly between the nearest centres (clamped at edges).
"""

from collections.abc import Sequence

import numpy as np

from dlcore.viz.images import show_input, to_unit

OVERLAY_ALPHA = 0.6  # how much of the heat map covers the image
DPI = 100


def upsample(map_hxw: np.ndarray, height: int, width: int) -> np.ndarray:
    """A map ``[h, w]`` bilinearly resized to ``[height, width]`` (see the module docstring).

    Example:
      >>> upsample(np.array([[0.0, 1.0]]), 1, 4).tolist()
      [[0.0, 0.25, 0.75, 1.0]]
    """
    map_hxw = np.asarray(map_hxw, np.float64)
    h, w = map_hxw.shape

    def axis_weights(n_in: int, n_out: int) -> np.ndarray:
        # [n_out, n_in]: each output pixel's linear weights on the input cells' centres.
        pos = np.clip((np.arange(n_out) + 0.5) * n_in / n_out - 0.5, 0.0, n_in - 1.0)
        lo = np.floor(pos).astype(int)
        hi = np.minimum(lo + 1, n_in - 1)
        frac = pos - lo
        weights = np.zeros((n_out, n_in))
        np.add.at(weights, (np.arange(n_out), lo), 1.0 - frac)
        np.add.at(weights, (np.arange(n_out), hi), frac)
        return weights

    return axis_weights(h, height) @ map_hxw @ axis_weights(w, width).T


def _figure(width_in: float, height_in: float):
    # Imported here: matplotlib is slow to import and only drawing needs it.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width_in, height_in), dpi=DPI)
    FigureCanvasAgg(fig)
    return fig


def _rgb(fig) -> np.ndarray:
    """The figure rendered to an RGB array in [0, 1]."""
    fig.canvas.draw()
    return np.asarray(fig.canvas.buffer_rgba())[..., :3] / 255.0


def caption_attention_picture(
    images_NxHxWxC: np.ndarray,
    captions: Sequence[Sequence[str]],
    attention: Sequence[np.ndarray],
    titles: Sequence[str] | None = None,
    tile_inches: float = 1.4,
) -> np.ndarray:
    """One row per image: the image, then one tile per word with its attention laid over it.

    Args:
      images_NxHxWxC: N model inputs (any range: min-max scaled for display).
      captions: N word lists (the caption each row explains; ``<eos>`` may be one word).
      attention: N arrays ``[T_n, h, w]``: the weights over the feature map while emitting
        each word (T_n = len(captions[n])).
      titles: a line over each row's image (e.g. the reference caption); default none.
      tile_inches: side of one tile (drawn at DPI pixels per inch).

    Returns:
      The picture, RGB ``[H, W, 3]`` in [0, 1].

    Raises:
      ValueError: if the counts or the per-word maps do not match the captions.
    """
    images_NxHxWxC = np.asarray(images_NxHxWxC)
    n = len(images_NxHxWxC)
    if not (len(captions) == len(attention) == n) or (titles is not None and len(titles) != n):
        raise ValueError(
            f"caption_attention_picture needs one caption and one attention array per image; got "
            f"{n} images, {len(captions)} captions, {len(attention)} attention arrays"
        )
    for words, maps in zip(captions, attention, strict=True):
        if np.ndim(maps) != 3 or len(maps) != len(words):
            raise ValueError(
                f"attention must be [T, h, w] with T = {len(words)} words; "
                f"got shape {np.shape(maps)}"
            )
    cols = 1 + max((len(words) for words in captions), default=0)
    # Each row: a word above every tile, the tiles, then the row's title below them.
    word_in, title_in = 0.25, 0.25 if titles is not None else 0.05
    row_in = word_in + tile_inches + title_in
    fig = _figure(tile_inches * cols * 1.05, row_in * max(n, 1))
    fig.subplots_adjust(left=0.005, right=0.995, bottom=title_in / row_in / max(n, 1))
    fig.subplots_adjust(top=1 - word_in / row_in / max(n, 1), wspace=0.05)
    fig.subplots_adjust(hspace=(word_in + title_in) / tile_inches)
    height, width = images_NxHxWxC.shape[1:3]
    for row in range(n):
        picture = show_input(images_NxHxWxC[row])
        ax = fig.add_subplot(n, cols, row * cols + 1)
        ax.imshow(picture, interpolation="nearest")
        ax.set_title("image", fontsize=8)
        if titles is not None:
            ax.text(0.0, -0.04, titles[row], transform=ax.transAxes, fontsize=8, va="top")
        ax.set_axis_off()
        for t, word in enumerate(captions[row]):
            ax = fig.add_subplot(n, cols, row * cols + 2 + t)
            ax.imshow(picture, interpolation="nearest")
            heat_HxW = upsample(attention[row][t], height, width)
            ax.imshow(to_unit(heat_HxW), cmap="inferno", alpha=OVERLAY_ALPHA, vmin=0.0, vmax=1.0)
            ax.set_title(word, fontsize=8)
            ax.set_axis_off()
    return _rgb(fig)


def attention_matrix_picture(
    weights: Sequence[np.ndarray],
    sources: Sequence[Sequence[str]],
    targets: Sequence[Sequence[str]],
    titles: Sequence[str] | None = None,
) -> np.ndarray:
    """Alignment heat maps side by side, one per example, tokens as tick labels.

    Args:
      weights: N arrays ``[T_n, S_n]``: row t is the attention over the source tokens while
        emitting target token t (rows sum to 1 for softmax attention).
      sources: N source token lists (column labels, ``S_n`` each).
      targets: N target token lists (row labels, ``T_n`` each).
      titles: a title per example; default none.

    Returns:
      The picture, RGB ``[H, W, 3]`` in [0, 1].

    Raises:
      ValueError: if a matrix's shape does not match its token lists.
    """
    n = len(weights)
    if not (len(sources) == len(targets) == n) or (titles is not None and len(titles) != n):
        raise ValueError(
            f"attention_matrix_picture needs sources and targets per matrix; got {n} matrices, "
            f"{len(sources)} sources, {len(targets)} targets"
        )
    for w, src, tgt in zip(weights, sources, targets, strict=True):
        if np.shape(w) != (len(tgt), len(src)):
            raise ValueError(
                f"an attention matrix must be [targets, sources] = [{len(tgt)}, {len(src)}]; "
                f"got shape {np.shape(w)}"
            )
    # About a quarter inch per token, so tick labels do not overlap.
    widths = [max(2.0, 0.25 * len(src) + 1.0) for src in sources]
    height = max([2.0] + [0.25 * len(tgt) + 1.2 for tgt in targets])
    fig = _figure(sum(widths), height)
    for i, (w, src, tgt) in enumerate(zip(weights, sources, targets, strict=True)):
        ax = fig.add_subplot(1, n, i + 1)
        ax.imshow(np.asarray(w, np.float64), cmap="viridis", vmin=0.0, vmax=1.0, aspect="auto")
        ax.set_xticks(range(len(src)), list(src), fontsize=7, rotation=90)
        ax.set_yticks(range(len(tgt)), list(tgt), fontsize=7)
        ax.set_xlabel("source", fontsize=7)
        ax.set_ylabel("output", fontsize=7)
        if titles is not None:
            ax.set_title(titles[i], fontsize=7)
    fig.tight_layout(pad=0.4)
    return _rgb(fig)
