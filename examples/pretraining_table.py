"""Unsupervised layer-wise pretraining vs random initialisation, over label budgets, measured.

Two families (``--family``), both trained greedily one layer at a time on every training
image of the digits, labels unused, once per seed:

- ``autoencoder``: a stack of denoising autoencoders
  (``experiments/digits_stacked_autoencoder.toml``), fine-tuned as the ReLU MLP of
  ``experiments/digits_pretrained_mlp.toml``;
- ``dbn``: a deep belief net, two RBMs trained by CD-1 on the binarized digits
  (``experiments/digits_dbn.toml``), fine-tuned as the sigmoid MLP of
  ``experiments/digits_dbn_finetune.toml`` (Dense_l <- W_l and the hidden biases c_l).

Then for each label budget (labelled training images per class) the MLP of the same widths
is trained on that many labelled images per class, from random initialisation and
warm-started from that seed's stack through ``[init]`` (``map = {"" = "encoder"}``, a new
head, the decoders or visible biases unused), each in two regimes: fine-tune every layer, or
train only the head on the frozen hidden layers (a linear probe: pretrained features against
random ones). All get the same optimizer and about the same number of steps in every budget
(full batches of the small budgets, more epochs).

The figure is the test accuracy (digits test split, 270 images) after the last step, as
mean +- std over the seeds; the line below the table gives the pretraining's test figures
(reconstruction errors; for the DBN also the bottom RBM's pseudo-log-likelihood).

Run:  python examples/pretraining_table.py [--family autoencoder|dbn] [--root DIR]
      [--seeds 0 1 2] [--set data.preprocess=none]
"""

import argparse
import json
import pathlib
import time

import numpy as np

from dlcore.config.loading import load_raw, validate
from dlcore.experiment import run_experiment

EXPERIMENTS = pathlib.Path(__file__).resolve().parent.parent / "experiments"


def _autoencoder_figures(summary: dict) -> dict:
    return summary["report"]  # every layer's and the whole stack's test reconstruction error


def _dbn_figures(summary: dict) -> dict:
    return {
        "test_pll": summary["report"]["test_pll"],
        "test_stack_recon_mse": summary["final"]["test"]["stack_recon_mse"],
    }


FAMILIES = {  # name -> (pretraining experiment, fine-tuning experiment, pretraining figures)
    "autoencoder": (
        EXPERIMENTS / "digits_stacked_autoencoder.toml",
        EXPERIMENTS / "digits_pretrained_mlp.toml",
        _autoencoder_figures,
    ),
    "dbn": (
        EXPERIMENTS / "digits_dbn.toml",
        EXPERIMENTS / "digits_dbn_finetune.toml",
        _dbn_figures,
    ),
}
BUDGETS = {  # labelled images per class (None: all, ~126) -> overrides; ~500 steps each
    10: ["train.batch_size=100", "train.epochs=500", "train.eval_every=50"],
    50: ["train.batch_size=100", "train.epochs=100", "train.eval_every=10"],
    None: ["train.batch_size=100", "train.epochs=42", "train.eval_every=5"],
}
INITS = ("random", "pretrained")
REGIMES = {  # column group -> optimizer overrides ({head}: the classifier's head)
    "fine-tune all": [],
    "head only": ['optimizer.train_only=["{head}"]'],  # a linear probe of frozen features
}


def train(config: pathlib.Path, overrides: list[str], run_dir: pathlib.Path, budget="keep"):
    """Runs ``config`` with ``overrides``; ``budget`` sets ``data.train_per_class`` (None
    removes it: every labelled image), ``"keep"`` leaves the file's value."""
    raw, applied = load_raw(config, overrides)
    if budget is None:
        raw["data"].pop("train_per_class", None)
    elif budget != "keep":
        raw["data"]["train_per_class"] = budget
    cfg = validate(raw, str(config), applied)
    return run_experiment(cfg, run_dir, source=str(config))


def warm_start(pretrained: pathlib.Path, num_hidden: int) -> list[str]:
    """The ``[init]`` overrides that load the stack's encoder (``params["encoder"]``, the
    MLP's layer names) into the MLP."""
    return [
        f"init.run={pretrained}",
        "init.checkpoint=latest",  # the stack after its last stage
        'init.map={"" = "encoder"}',
        f'init.exclude=["Dense_{num_hidden}"]',  # the classifier's head
        "init.allow_unused=true",  # the decoders or the visible biases
    ]


def run_table(
    root: pathlib.Path, seeds: list[int], common: list[str] = (), family: str = "autoencoder"
) -> dict:
    """Pretrains once per seed and trains every (budget, init, seed) cell; ``common``
    overrides both experiments (e.g. ``data.preprocess=none``)."""
    pretrain, finetune, figures = FAMILIES[family]
    widths = load_raw(pretrain, [])[0]["task"]["widths"]
    if load_raw(finetune, [])[0]["model"]["widths"] != widths:
        raise ValueError(f"{finetune.name}'s widths must be {pretrain.name}'s ({widths})")
    pretraining, cells = {}, {}
    for seed in seeds:
        summary = train(pretrain, [*common, f"seed={seed}"], root / f"pretrain-{seed}")
        pretraining[seed] = figures(summary)
    head = f"Dense_{len(widths)}"
    for budget, budget_overrides in BUDGETS.items():
        for regime, optimizer in REGIMES.items():
            for init in INITS:
                accuracies = []
                for seed in seeds:
                    overrides = [*common, *budget_overrides, f"seed={seed}"]
                    overrides += [o.format(head=head) for o in optimizer]
                    if init == "pretrained":
                        overrides += warm_start(root / f"pretrain-{seed}", len(widths))
                    name = f"{budget or 'all'}-{regime.replace(' ', '_')}-{init}-{seed}"
                    summary = train(finetune, overrides, root / name, budget)
                    accuracies.append(summary["final"]["test"]["accuracy"])
                cells[(budget, regime, init)] = accuracies
    return {"pretraining": pretraining, "cells": cells}


def _mean_std(values, scale: float = 1.0, digits: int = 1) -> str:
    v = np.asarray(values, np.float64) * scale
    spread = f" ± {v.std():.{digits}f}" if len(v) > 1 else ""
    return f"{v.mean():.{digits}f}{spread}"


def markdown(result: dict) -> str:
    columns = [f"{regime}: {c}" for regime in REGIMES for c in (*INITS, "difference")]
    lines = ["| labels per class | " + " | ".join(columns) + " |", "|---|" + "---:|" * len(columns)]
    for budget in BUDGETS:
        cells = []
        for regime in REGIMES:
            acc = {init: result["cells"][(budget, regime, init)] for init in INITS}
            diff = np.asarray(acc["pretrained"]) - np.asarray(acc["random"])
            cells += [*(_mean_std(acc[init], 100) for init in INITS), _mean_std(diff, 100)]
        label = budget if budget is not None else "all (~126)"
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--family", choices=tuple(FAMILIES), default="autoencoder")
    parser.add_argument("--root", type=pathlib.Path, default=None, help="runs/<family>_table")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override for both experiments, e.g. data.preprocess=none (repeatable)",
    )
    args = parser.parse_args()
    args.root = args.root or pathlib.Path(f"runs/{args.family}_table")
    if args.root.exists() and any(args.root.iterdir()):
        parser.error(f"{args.root} is not empty; remove it or pick another --root")
    start = time.perf_counter()
    result = run_table(args.root, args.seeds, args.set, args.family)
    wall = time.perf_counter() - start
    reports = list(result["pretraining"].values())
    errors = ", ".join(
        f"{key.removeprefix('test_')} {_mean_std([r[key] for r in reports], digits=4)}"
        for key in reports[0]
    )
    text = f"{markdown(result)}\n\nTest accuracy (%) on the digits' test split, seeds "
    text += f"{args.seeds} (difference: pretrained - random, paired by seed); after "
    text += f"pretraining ({args.family}): {errors}; wall time {wall:.0f} s."
    print(text)
    (args.root / "table.md").write_text(text + "\n")
    cells = {f"{b or 'all'} / {r} / {i}": v for (b, r, i), v in result["cells"].items()}
    record = {
        "pretraining": {str(k): v for k, v in result["pretraining"].items()},
        "cells": cells,
        "wall_s": wall,
        "family": args.family,
        "seeds": args.seeds,
        "set": args.set,
    }
    (args.root / "table.json").write_text(json.dumps(record, indent=1) + "\n")


if __name__ == "__main__":
    main()
