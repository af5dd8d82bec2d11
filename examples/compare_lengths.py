"""Exact match over the source length for several seq2seq runs, in one PNG.

Each RUN_DIR is a finished run of the ``seq2seq`` task on token sources; its report wrote
``exact_match_by_length.json`` (greedy decoding on the test split). The with/without-attention
figure of the README was made with:

  dlcore run experiments/reversal_plain.toml --run-dir /tmp/runs/reversal_plain
  dlcore run experiments/reversal_attention.toml --run-dir /tmp/runs/reversal_attention
  python examples/compare_lengths.py /tmp/runs/reversal_plain /tmp/runs/reversal_attention \
      --out experiments/reversal_attention_vs_plain.png \
      --title "reversal, test split: with and without attention"

Run:  python examples/compare_lengths.py RUN_DIR [RUN_DIR ...] [--out lengths.png] [--title T]
"""

import argparse
import json
import pathlib
import sys

from dlcore.tasks.seq2seq_report import plot_by_length


def read_by_length(run_dir: pathlib.Path) -> dict[int, float]:
    """``{source length: exact match}`` of a run.

    Raises:
      ValueError: one line naming the run when its report has no per-length figures.
    """
    path = run_dir / "exact_match_by_length.json"
    if not path.is_file():
        raise ValueError(f"{run_dir}: no exact_match_by_length.json (a finished seq2seq run?)")
    return {int(k): v["exact_match"] for k, v in json.loads(path.read_text()).items()}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run_dirs", nargs="+", type=pathlib.Path)
    p.add_argument("--out", type=pathlib.Path, default=pathlib.Path("lengths.png"))
    p.add_argument("--title", default="exact match (greedy) over the source length")
    args = p.parse_args(argv)
    try:
        curves = {d.name: read_by_length(d) for d in args.run_dirs}
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    plot_by_length(curves, args.out, args.title)
    for name, curve in curves.items():
        cells = ", ".join(f"{k}: {v:.3f}" for k, v in sorted(curve.items()))
        print(f"{name}: {cells}")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
