"""The four GAN losses on the 8-Gaussian ring: which ones cover the modes.

For each loss (``minimax``, ``non_saturating``, ``least_squares``, ``hinge``) and each
seed, trains ``experiments/ring_gan.toml`` with ``task.loss`` set (and any further
``--set`` overrides, e.g. ``train.epochs=50`` for a quick look) and reads the report: the
modes covered (of 8; a mode is covered when >= 1% of 2000 samples lie within 3 std of its
centre), the high-quality fraction (samples within 3 std of some centre) and the run's wall
time (``summary["timing"]["wall_s"]``: compile, training, evaluation, checkpoints).

Run:  python examples/gan_losses_table.py [--root runs/gan_losses] [--seeds 0 1 2]
          [--losses hinge minimax] [--set train.epochs=50]
"""

import argparse
import json
import pathlib
import time

import numpy as np

from dlcore.config.loading import load_config
from dlcore.experiment import build, run_experiment
from dlcore.tasks.gan_losses import LOSSES

EXPERIMENT = pathlib.Path(__file__).resolve().parent.parent / "experiments" / "ring_gan.toml"
COLUMNS = ("modes_covered", "high_quality", "wall_s")


def run_table(root: pathlib.Path, losses: list[str], seeds: list[int], sets: list[str]) -> dict:
    """Trains one run per (loss, seed); returns ``{loss: {column: [one value per seed]}}``."""
    rows = {}
    for loss in losses:
        row = {c: [] for c in COLUMNS}
        for seed in seeds:
            cfg = load_config(EXPERIMENT, [f"task.loss={loss}", f"seed={seed}", *sets])
            summary = run_experiment(build(cfg, str(EXPERIMENT)), root / f"{loss}-seed{seed}")
            for column in COLUMNS[:2]:
                row[column].append(summary["report"][column])
            row["wall_s"].append(summary["timing"]["wall_s"])
        rows[loss] = row
    return rows


def markdown(rows: dict) -> str:
    """The table: mean (± std over seeds when there are several) of every column."""

    def cell(values, digits: int) -> str:
        values = np.asarray(values, np.float64)
        spread = f" ± {values.std():.{digits}f}" if len(values) > 1 else ""
        return f"{values.mean():.{digits}f}{spread}"

    lines = [
        "| loss | modes covered (of 8) | high-quality fraction | wall time (s) |",
        "|---|---:|---:|---:|",
    ]
    for loss, row in rows.items():
        cells = (cell(row[c], d) for c, d in zip(COLUMNS, (1, 3, 0), strict=True))
        lines.append(f"| {loss} | {' | '.join(cells)} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", type=pathlib.Path, default=pathlib.Path("runs/gan_losses"))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--losses", nargs="+", choices=sorted(LOSSES), default=list(LOSSES))
    parser.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args()
    if args.root.exists() and any(args.root.iterdir()):
        parser.error(f"{args.root} is not empty; remove it or pick another --root")
    start = time.perf_counter()
    rows = run_table(args.root, args.losses, args.seeds, args.sets)
    wall = time.perf_counter() - start
    spread = " (mean ± std over seeds)" if len(args.seeds) > 1 else ""
    overrides = f", overrides {args.sets}" if args.sets else ""
    text = f"{markdown(rows)}\n\nexperiments/ring_gan.toml{spread}, seeds {args.seeds}"
    text += f"{overrides}; total wall time {wall:.0f} s."
    print(text)
    (args.root / "table.md").write_text(text + "\n")
    record = {"rows": rows, "seeds": args.seeds, "sets": args.sets, "wall_s": wall}
    (args.root / "table.json").write_text(json.dumps(record, indent=1) + "\n")


if __name__ == "__main__":
    main()
