"""``dlcore translate RUN_DIR "text"``: the sub-command's arguments and what it prints.

The work is :func:`dlcore.experiment.translate.translate_runs`; this module only parses and
prints (greedy: the output line; ``--beam K``: K lines ``score<TAB>text``, best first).
"""

import argparse
import sys

from dlcore.config.errors import ConfigError
from dlcore.runs.errors import RunDirError


def add_parser(sub) -> argparse.ArgumentParser:
    """Adds the ``translate`` sub-parser to ``sub`` (the main parser's sub-parsers)."""
    tr = sub.add_parser("translate", help="decode text with a seq2seq run (or an ensemble)")
    tr.add_argument("run_dir")
    tr.add_argument("text", help="the input, one character per token")
    tr.add_argument("--beam", type=int, default=None, help="beam width K (default: greedy)")
    tr.add_argument("--alpha", type=float, default=None, help="beam length normalisation")
    tr.add_argument(
        "--ensemble", nargs="+", default=[], metavar="RUN_DIR", help="more runs to average"
    )
    tr.add_argument("--checkpoint", choices=["latest", "best"], default="latest")
    return tr


def command(args) -> int:
    """Runs ``dlcore translate``; bad input is one line on stderr and exit status 2."""
    from dlcore.experiment.translate import check_translate_args, translate_runs

    try:
        check_translate_args(args.text, args.beam, args.alpha)  # before anything is opened
        runs = [args.run_dir, *args.ensemble]
        hyps = translate_runs(runs, args.text, args.beam, args.alpha, args.checkpoint)
    except ValueError as err:
        if isinstance(err, (ConfigError, RunDirError)):
            raise  # main() reports these
        print(f"error: {err}", file=sys.stderr)
        return 2
    if args.beam is None:
        print(hyps[0].text)
    else:  # the K beams, best first, with their scores
        for h in hyps:
            print(f"{h.score:.4f}\t{h.text}")
    return 0
