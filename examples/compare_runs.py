"""Overlay one metric of several runs in one PNG, e.g. ResNet vs the plain net of its depth.

Each RUN_DIR's ``metrics.jsonl`` gives one line per run (labelled by the directory's name),
x = training step; ``--split`` picks train or val records. The drawing is
:func:`dlcore.runs.compare.compare_runs`, the library behind ``dlcore runs compare``, which
overlays train and val at once. The ResNet-vs-plain figure of the
README was made with:

  python examples/compare_runs.py /tmp/runs/shapes_resnet_deep /tmp/runs/shapes_plain_deep \
      --metric loss --split train --log-y --out experiments/shapes_resnet_vs_plain.png

Run:  python examples/compare_runs.py RUN_DIR [RUN_DIR ...] [--metric loss] [--split train]
      [--out compare.png] [--log-y] [--title TEXT]
"""

import argparse
import pathlib
import sys

from dlcore.runs.compare import compare_runs, read_curve

__all__ = ["main", "read_curve"]  # read_curve: dlcore.runs.compare's, kept for callers


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
        compare_runs(
            args.run_dirs,
            [args.metric],
            args.out,
            splits=[args.split],
            log_y=args.log_y,
            title=args.title or f"{args.split} {args.metric}",
        )
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
