"""Overlay one metric of several runs in one PNG, e.g. ResNet vs the plain net of its depth.

Each RUN_DIR's ``metrics.jsonl`` gives one line per run (labelled by the directory's name),
x = training step; ``--split`` picks train or val records. The ResNet-vs-plain figure of the
README was made with:

  python examples/compare_runs.py /tmp/runs/shapes_resnet_deep /tmp/runs/shapes_plain_deep \
      --metric loss --split train --log-y --out experiments/shapes_resnet_vs_plain.png

Run:  python examples/compare_runs.py RUN_DIR [RUN_DIR ...] [--metric loss] [--split train]
      [--out compare.png] [--log-y] [--title TEXT]
"""

import argparse
import json
import pathlib
import sys

import matplotlib

matplotlib.use("Agg")  # files only; never needs a display
import matplotlib.pyplot as plt  # noqa: E402


def read_curve(run_dir: pathlib.Path, metric: str, split: str) -> tuple[list, list]:
    """``(steps, values)`` of ``metric`` in ``split`` records of the run's metrics.jsonl.

    Raises:
      ValueError: one line naming the run when the file or the metric is missing.
    """
    path = run_dir / "metrics.jsonl"
    if not path.is_file():
        raise ValueError(f"{run_dir}: no metrics.jsonl (is it a run directory?)")
    records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    points = [(r["step"], r[metric]) for r in records if r.get("split") == split and metric in r]
    if not points:
        found = sorted({k for r in records for k in r} - {"step", "epoch", "split"})
        raise ValueError(f"{path}: no {split} records of {metric!r}; it has {', '.join(found)}")
    steps, values = zip(*points, strict=True)
    return list(steps), list(values)


def plot_runs(
    run_dirs: list[pathlib.Path], metric: str, split: str, out: pathlib.Path, log_y: bool, title
) -> None:
    """Draws one line per run into ``out``."""
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    for run_dir in run_dirs:
        steps, values = read_curve(run_dir, metric, split)
        ax.plot(steps, values, label=run_dir.name)
    ax.set_xlabel("step")
    ax.set_ylabel(f"{split} {metric}")
    if log_y:
        ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend()
    ax.set_title(title or f"{split} {metric}")
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dirs", nargs="+", type=pathlib.Path)
    parser.add_argument("--metric", default="loss")
    parser.add_argument("--split", default="train", choices=("train", "val"))
    parser.add_argument("--out", type=pathlib.Path, default=pathlib.Path("compare.png"))
    parser.add_argument("--log-y", action="store_true", help="logarithmic y axis")
    parser.add_argument("--title", default=None)
    args = parser.parse_args(argv)
    try:
        plot_runs(args.run_dirs, args.metric, args.split, args.out, args.log_y, args.title)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
