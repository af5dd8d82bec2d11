"""The lecture's transfer-learning table, measured: target data size x source similarity.

Target: digits 5-9 (relabelled 0-4) as 16x16 grey images, with 5 training images per class
("very little data") or all of them, ~125 per class ("quite a lot of data"). Sources, both
LeNet-5 trained first with the same seed:

- similar: digits 0-4 (``experiments/transfer_digits04.toml``);
- different: the generated ``shapes`` images (``experiments/transfer_shapes.toml``), RGB;
  its first kernel is summed over the colour channels (``sum_in_channels``), which is the
  same as showing it the grey digit as three equal channels.

Each cell trains ``experiments/transfer_digits59.toml`` four ways: from scratch; a linear
probe (load the source, new head ``dense2``, train only the head); fine-tune the last two
layers (``dense1``, ``dense2``); fine-tune all. Every regime gets the same optimizer and about
500 steps in both sizes (the small set: 500 full-batch steps on its 25 images). The
reported figure is the test accuracy (digits 5-9 test split, 134 images) after the last
step, as mean +- std over the seeds.

Caveat for the different source: shapes pixels lie in [0, 1], the digits' in [0, 16] (both
minus their mean), so its loaded filters see inputs 16 times larger than in training.

Run:  python examples/transfer_table.py [--root runs/transfer_table] [--seeds 0 1 2]
"""

import argparse
import json
import pathlib
import time

import numpy as np

from dlcore.config.loading import load_config
from dlcore.experiment import run_experiment

EXPERIMENTS = pathlib.Path(__file__).resolve().parent.parent / "experiments"
SOURCES = {  # similarity -> (source experiment, extra [init] settings)
    "similar": ("transfer_digits04.toml", []),
    "different": ("transfer_shapes.toml", ['init.sum_in_channels=["conv1/kernel"]']),
}
SIZES = {  # target data -> overrides; both train about 500 steps (12 x 39 batches of 16)
    # 25 images: one full batch per step (a batch of 16 would drop 9 images each epoch).
    "small (5 per class)": [
        "data.train_per_class=5",
        "train.batch_size=25",
        "train.epochs=500",
        "train.eval_every=20",
    ],
    "large (all, ~125 per class)": ["train.epochs=12"],
}
HEAD = "dense2"  # LeNet-5's output layer: replaced (excluded from loading) in every transfer
REGIMES = {  # column -> optimizer overrides (None: no [init], trained from scratch)
    "scratch": None,
    "linear probe": ['optimizer.train_only=["dense2"]'],
    "fine-tune last 2": ['optimizer.train_only=["dense1", "dense2"]'],
    "fine-tune all": [],
}
LECTURE = {  # the lecture's advice for each cell
    ("small (5 per class)", "similar"): "linear classifier on top layer",
    ("small (5 per class)", "different"): "in trouble: try linear classifiers from stages",
    ("large (all, ~125 per class)", "similar"): "fine-tune a few layers",
    ("large (all, ~125 per class)", "different"): "fine-tune a larger number of layers",
}


def train(config: pathlib.Path, overrides: list[str], run_dir: pathlib.Path) -> dict:
    cfg = load_config(config, overrides)
    return run_experiment(cfg, run_dir, source=str(config))


def run_table(root: pathlib.Path, seeds: list[int]) -> dict:
    """Trains the sources and every target cell; returns the accuracies by cell."""
    sources = {}
    for similarity, (toml, _) in SOURCES.items():
        run_dir = root / f"source-{similarity}"
        summary = train(EXPERIMENTS / toml, [], run_dir)
        sources[similarity] = {"run_dir": str(run_dir), "test": summary["final"]["test"]}
    target = EXPERIMENTS / "transfer_digits59.toml"
    cells = {}
    for size, size_overrides in SIZES.items():
        for similarity, (_, init_extra) in SOURCES.items():
            for regime, optimizer in REGIMES.items():
                if optimizer is None and similarity != "similar":
                    cells[(size, similarity, regime)] = cells[(size, "similar", regime)]
                    continue  # scratch does not read the source: one run serves both rows
                accuracies = []
                for seed in seeds:
                    overrides = [*size_overrides, f"seed={seed}"]
                    if optimizer is not None:
                        overrides += [
                            f"init.run={sources[similarity]['run_dir']}",
                            f'init.exclude=["{HEAD}"]',
                            *init_extra,
                            *optimizer,
                        ]
                    name = f"{size.split()[0]}-{similarity}-{regime.replace(' ', '_')}-{seed}"
                    summary = train(target, overrides, root / name)
                    accuracies.append(summary["final"]["test"]["accuracy"])
                cells[(size, similarity, regime)] = accuracies
    return {"sources": sources, "cells": cells}


def markdown(result: dict, seeds: list[int]) -> str:
    columns = list(REGIMES)
    lines = [
        "| target data | source | " + " | ".join(columns) + " | lecture's advice |",
        "|---|---|" + "---:|" * len(columns) + "---|",
    ]
    for size in SIZES:
        for similarity in SOURCES:
            cells = []
            for regime in columns:
                acc = np.asarray(result["cells"][(size, similarity, regime)]) * 100
                spread = f" ± {acc.std():.1f}" if len(seeds) > 1 else ""
                cells.append(f"{acc.mean():.1f}{spread}")
            best = max(
                range(len(columns)),
                key=lambda i: np.mean(result["cells"][(size, similarity, columns[i])]),
            )
            cells[best] = f"**{cells[best]}**"
            advice = LECTURE[(size, similarity)]
            lines.append(f"| {size} | {similarity} | " + " | ".join(cells) + f" | {advice} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", type=pathlib.Path, default=pathlib.Path("runs/transfer_table"))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = parser.parse_args()
    if args.root.exists() and any(args.root.iterdir()):
        parser.error(f"{args.root} is not empty; remove it or pick another --root")
    start = time.perf_counter()
    result = run_table(args.root, args.seeds)
    wall = time.perf_counter() - start
    table = markdown(result, args.seeds)
    sources = ", ".join(
        f"{k} source test accuracy {v['test']['accuracy'] * 100:.1f}%"
        for k, v in result["sources"].items()
    )
    text = f"{table}\n\nTest accuracy (%) on digits 5-9, seeds {args.seeds}; {sources}; "
    text += f"wall time {wall:.0f} s."
    print(text)
    (args.root / "table.md").write_text(text + "\n")
    cells = {" / ".join(k): v for k, v in result["cells"].items()}
    record = {"sources": result["sources"], "cells": cells, "wall_s": wall, "seeds": args.seeds}
    (args.root / "table.json").write_text(json.dumps(record, indent=1) + "\n")


if __name__ == "__main__":
    main()
