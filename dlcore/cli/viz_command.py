"""``dlcore viz RUN_DIR KIND``: the sub-command's arguments and what it prints.

The work is :func:`dlcore.viz.from_run.visualize_run`; this module only parses and prints
(moved out of ``dlcore/cli/main.py`` as it is, like ``translate``).
"""

import argparse
import dataclasses
import sys

from dlcore.config.errors import ConfigError
from dlcore.runs.errors import RunDirError


def add_parser(sub) -> argparse.ArgumentParser:
    """Adds the ``viz`` sub-parser to ``sub`` (the main parser's sub-parsers)."""
    viz = sub.add_parser("viz", help="PNGs of what a model learned or attends to (dlcore.viz)")
    viz.add_argument("run_dir")
    viz.add_argument("kind", help="filters, features, maximize, dream, saliency or attention")
    viz.add_argument("--layer", help="layer path, e.g. conv1 (a bad name lists the valid ones)")
    viz.add_argument("--unit", type=int, help="channel or class (maximize: default all)")
    viz.add_argument("--split", default="test", help="split of --index (default test)")
    viz.add_argument("--index", type=int, default=0, help="example to look at (default 0)")
    viz.add_argument("--photo", help="a sample photograph instead: china or flower")
    viz.add_argument("--steps", type=int, help="ascent steps (maximize 200, dream 20 per octave)")
    viz.add_argument("--lr", type=float, help="ascent step length (maximize 0.1, dream 0.02)")
    viz.add_argument("--octaves", type=int, default=3, help="dream scales (default 3)")
    viz.add_argument("--size", type=int, default=128, help="dream image side (default 128)")
    viz.add_argument("--smooth", type=int, default=0, help="saliency: SmoothGrad samples too")
    viz.add_argument("--scale", type=int, help="pixel enlargement of the tiles")
    viz.add_argument("--seed", type=int, default=0, help="noise and jitter seed")
    viz.add_argument("--input", help='attention of a text seq2seq run: e.g. "12 March 2019"')
    viz.add_argument("--out", help="output directory (default RUN_DIR/viz)")
    viz.add_argument("--checkpoint", choices=["latest", "best"], default="latest")
    return viz


def command(args) -> int:
    """Runs ``dlcore viz``; bad input is one line on stderr and exit status 2."""
    from dlcore.viz.from_run import VizOptions, visualize_run

    names = [f.name for f in dataclasses.fields(VizOptions)]
    opts = VizOptions(**{name: getattr(args, name) for name in names})
    try:
        written, lines = visualize_run(args.run_dir, args.kind, opts, args.out, args.checkpoint)
    except ValueError as err:
        if isinstance(err, (ConfigError, RunDirError)):
            raise
        print(f"error: {err}", file=sys.stderr)
        return 2
    for line in lines:
        print(line)
    for path in written:
        print(f"wrote {path}")
    return 0
