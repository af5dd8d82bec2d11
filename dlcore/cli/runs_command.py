"""``dlcore runs``: the table of runs, and ``dlcore runs compare RUN [RUN ...]``.

The work is :func:`dlcore.cli.listing.print_runs` and
:func:`dlcore.runs.compare.compare_runs`; this module only parses and prints.
"""

import argparse
import sys


def add_parser(sub) -> argparse.ArgumentParser:
    """Adds the ``runs`` sub-parser (and its ``compare``) to the main parser's ``sub``."""
    runs = sub.add_parser(
        "runs", help="table of runs with their final metrics; `runs compare` overlays curves"
    )
    runs.add_argument("--root", default="runs", help="directory holding run directories")
    what = runs.add_subparsers(dest="runs_command", metavar="{compare}")
    cmp = what.add_parser("compare", help="overlay several runs' train and val curves in a PNG")
    cmp.add_argument("run_dirs", nargs="+", metavar="RUN", help="run directories")
    cmp.add_argument(
        "--metric",
        dest="metrics",
        action="append",
        metavar="NAME",
        help="metric to draw, one panel each (repeatable; default loss)",
    )
    cmp.add_argument("--out", default="compare.png", help="the PNG (default compare.png)")
    cmp.add_argument(
        "--split", choices=("train", "val"), help="draw only this split (default both)"
    )
    cmp.add_argument("--log-y", action="store_true", help="logarithmic y axes")
    cmp.add_argument("--title", help="figure title (default: the metrics)")
    return runs


def command(args) -> int:
    """Runs ``dlcore runs [compare]``; a bad run or metric is one line and exit status 2."""
    if args.runs_command != "compare":
        from dlcore.cli.listing import print_runs

        print_runs(args.root)
        return 0
    from dlcore.runs.compare import SPLITS, compare_runs

    try:
        out = compare_runs(
            args.run_dirs,
            args.metrics or ["loss"],
            args.out,
            splits=[args.split] if args.split else SPLITS,
            log_y=args.log_y,
            title=args.title,
        )
    except (ValueError, OSError) as err:  # OSError: an --out that cannot be written
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"wrote {out}")
    return 0
