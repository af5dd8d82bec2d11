"""Several runs' curves in one PNG (``dlcore runs compare RUN [RUN ...]``).

Each run's ``metrics.jsonl`` gives its curves, x = training step: one colour per run (the
legend names the run directory), a solid line for the training windows and dots joined
by a dashed line for the validation passes; one panel per metric. Values that were not
finite (``null`` in ``metrics.jsonl``) leave a gap.
"""

import pathlib
from typing import Any

from dlcore.runs.run_dir import RunDir

__all__ = ["SPLITS", "compare_runs", "read_curve"]

SPLITS = ("train", "val")  # the splits metrics.jsonl holds curves of
_STYLE = {"train": {"linestyle": "-"}, "val": {"linestyle": "--", "marker": "o", "markersize": 3}}


def _records(run_dir: pathlib.Path) -> list[dict[str, Any]]:
    run = RunDir(run_dir)
    if not run.metrics.is_file():
        raise ValueError(f"{run_dir}: no metrics.jsonl (is it a run directory?)")
    return run.read_metrics()


def _points(records, metric: str, split: str) -> tuple[list, list]:
    points = [(r["step"], r[metric]) for r in records if r.get("split") == split and metric in r]
    steps = [s for s, _ in points]
    return steps, [float("nan") if v is None else v for _, v in points]


def _missing(run_dir: pathlib.Path, records, metric: str, splits) -> str:
    found = sorted({k for r in records for k in r} - {"step", "epoch", "split"})
    return (
        f"{run_dir / 'metrics.jsonl'}: no {' or '.join(splits)} records of {metric!r}; "
        f"it has {', '.join(found) or 'no metrics'}"
    )


def read_curve(run_dir: str | pathlib.Path, metric: str, split: str) -> tuple[list, list]:
    """``(steps, values)`` of ``metric`` in the ``split`` records of a run's metrics.jsonl.

    Raises:
      ValueError: one line naming the run when the file or the metric is missing.

    Example:
      >>> import json, pathlib, tempfile
      >>> run = pathlib.Path(tempfile.mkdtemp())
      >>> record = {"step": 39, "epoch": 1, "split": "val", "loss": 0.5}
      >>> _ = (run / "metrics.jsonl").write_text(json.dumps(record) + "\\n")
      >>> read_curve(run, "loss", "val")
      ([39], [0.5])
    """
    run_dir = pathlib.Path(run_dir)
    records = _records(run_dir)
    steps, values = _points(records, metric, split)
    if not steps:
        raise ValueError(_missing(run_dir, records, metric, (split,)))
    return steps, values


def _labels(run_dirs: list[pathlib.Path]) -> list[str]:
    """Directory names, or whole paths when two runs share a name (``trial-000``)."""
    names = [p.name for p in run_dirs]
    return names if len(set(names)) == len(names) else [str(p) for p in run_dirs]


def compare_runs(
    run_dirs: list[str | pathlib.Path],
    metrics: list[str] | tuple[str, ...] = ("loss",),
    out: str | pathlib.Path = "compare.png",
    splits: list[str] | tuple[str, ...] = SPLITS,
    log_y: bool = False,
    title: str | None = None,
) -> pathlib.Path:
    """Draws the runs' ``metrics`` curves into one PNG (one panel per metric).

    Args:
      run_dirs: run directories (anything holding a ``metrics.jsonl``).
      metrics: the metrics to draw, e.g. ``["loss", "accuracy"]``.
      out: the PNG to write.
      splits: which records to draw: ``train``, ``val`` or both.
      log_y: logarithmic y axes.
      title: the figure's title (default: the metrics).

    Returns:
      ``out``.

    Raises:
      ValueError: one line when a run has no ``metrics.jsonl`` or has none of the
        chosen splits' records of a metric, or a split is unknown; nothing is written.
    """
    run_dirs = [pathlib.Path(p) for p in run_dirs]
    bad = [s for s in splits if s not in SPLITS]
    if bad or not splits:
        raise ValueError(f"split must be one of {', '.join(SPLITS)}; got {bad or 'none'}")
    curves = []  # every run read and checked before anything is drawn
    for run_dir in run_dirs:
        records = _records(run_dir)
        for metric in metrics:
            if not any(_points(records, metric, split)[0] for split in splits):
                raise ValueError(_missing(run_dir, records, metric, splits))
        curves.append({m: {s: _points(records, m, s) for s in splits} for m in metrics})

    import matplotlib  # lazily: a quarter of a second `dlcore --help` need not pay

    matplotlib.use("Agg")  # files only; never needs a display
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(metrics), figsize=(6.4 * len(metrics), 4.0), squeeze=False)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, metric in zip(axes[0], metrics, strict=True):
        for i, (label, curve) in enumerate(zip(_labels(run_dirs), curves, strict=True)):
            for split in splits:
                steps, values = curve[metric][split]
                if steps:
                    colour = colours[i % len(colours)]
                    ax.plot(steps, values, color=colour, label=f"{label} {split}", **_STYLE[split])
        ax.set_xlabel("step")
        ax.set_ylabel(metric)
        if log_y:
            ax.set_yscale("log")
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
        ax.set_title(metric if len(splits) > 1 else f"{splits[0]} {metric}")
    fig.suptitle(title or ", ".join(metrics))
    fig.tight_layout()
    out = pathlib.Path(out)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out
