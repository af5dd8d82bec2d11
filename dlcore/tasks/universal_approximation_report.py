"""The universal-approximation figures: every width's fit over the target, and the test
error against the width on log-log axes."""

import pathlib

import numpy as np


def plot_fits(
    x_N: np.ndarray, y_N: np.ndarray, pred_NxW: np.ndarray, widths: list[int], path: pathlib.Path
) -> None:
    """One panel per width: the target (black) and the network's fit (colour).

    Args:
      x_N: the test grid, sorted.
      y_N: the target on it.
      pred_NxW: each width's prediction on it.
      widths: hidden units of each column of ``pred_NxW``.
      path: the PNG to write.
    """
    # Imported here: matplotlib is slow to import and only the end of a run needs it.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    cols = min(4, len(widths))
    rows = -(-len(widths) // cols)
    fig = Figure(figsize=(3.2 * cols, 2.4 * rows), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(rows, cols, squeeze=False, sharex=True, sharey=True)
    for i, ax in enumerate(axes.ravel()):
        if i >= len(widths):
            ax.set_axis_off()
            continue
        mse = float(np.mean(np.square(pred_NxW[:, i] - y_N)))
        ax.plot(x_N, y_N, color="black", lw=1.5, label="target")
        ax.plot(x_N, pred_NxW[:, i], color="tab:red", lw=1.2, label="fit")
        ax.set_title(f"{widths[i]} hidden unit{'s' if widths[i] > 1 else ''}: MSE {mse:.2g}")
    axes[0, 0].legend(loc="lower right", fontsize="small")
    fig.suptitle("one hidden layer of growing width")
    fig.savefig(path, dpi=90)


def plot_error_vs_width(widths: list[int], mse_W: np.ndarray, path: pathlib.Path) -> None:
    """Test MSE against the number of hidden units, both axes logarithmic."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(4.5, 3.4), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    ax.loglog(widths, np.maximum(mse_W, 1e-12), "o-", color="tab:blue")
    ax.set_xticks(widths, [str(w) for w in widths])  # the widths trained, not decades
    ax.minorticks_off()
    ax.set_xlabel("hidden units")
    ax.set_ylabel("test MSE")
    ax.set_title("error vs width")
    ax.grid(True, which="both", alpha=0.3)
    fig.savefig(path, dpi=90)
