"""PNG curves of a run's metrics.jsonl: loss, and every other metric, train vs val."""

import pathlib
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only; never needs a display
import matplotlib.pyplot as plt  # noqa: E402


def plot_curves(records: list[dict[str, Any]], path: pathlib.Path, title: str) -> None:
    """One panel per metric (loss first), x = training step, one line per split."""
    names = sorted(
        {k for r in records for k in r} - {"step", "epoch", "split"}, key=lambda k: (k != "loss", k)
    )
    if not names:
        return
    fig, axes = plt.subplots(1, len(names), figsize=(5 * len(names), 3.6), squeeze=False)
    for ax, name in zip(axes[0], names, strict=True):
        for split, style in (("train", "-"), ("val", "o-")):
            points = [(r["step"], r[name]) for r in records if r["split"] == split and name in r]
            if points:
                xs, ys = zip(*points, strict=True)
                ax.plot(xs, ys, style, label=split, markersize=3)
        ax.set_xlabel("step")
        ax.set_title(name)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
