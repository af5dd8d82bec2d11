"""Deep belief net pretraining vs random initialisation of the same sigmoid MLP, over label
budgets, measured.

For each seed, a DBN (``experiments/digits_dbn.toml``: two RBMs trained greedily by CD-1 on
the binarized digits, labels unused) is pretrained once on every training image. Then for
each label budget (labelled training images per class) the sigmoid MLP of the same widths
(``experiments/digits_dbn_finetune.toml``) is trained on that many labelled images per class,
from random initialisation and warm-started from that seed's DBN through ``[init]``
(``map = {"" = "encoder"}``: Dense_l <- W_l and the hidden biases c_l; a new head; the
visible biases unused), each in two regimes: fine-tune every layer (discriminative
fine-tuning), or train only the head on the frozen hidden layers (a linear probe: the DBN's
features against random ones). All get the same optimizer and about the same number of
steps in every budget (full batches of the small budgets, more epochs).

The reported figure is the test accuracy (all 270 test digits) after the last step, as
mean +- std over the seeds; the line below the table gives the bottom RBM's test
pseudo-log-likelihood and the stack's test reconstruction error after pretraining.

Run:  python examples/dbn_table.py [--root runs/dbn_table] [--seeds 0 1 2]
"""

import argparse
import json
import pathlib
import time

import numpy as np

from dlcore.config.loading import load_raw, validate
from dlcore.experiment import run_experiment

EXPERIMENTS = pathlib.Path(__file__).resolve().parent.parent / "experiments"
PRETRAIN = EXPERIMENTS / "digits_dbn.toml"
FINETUNE = EXPERIMENTS / "digits_dbn_finetune.toml"
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
    """The ``[init]`` overrides that load the DBN's weights and hidden biases into the MLP."""
    return [
        f"init.run={pretrained}",
        "init.checkpoint=latest",  # the stack after its last stage
        'init.map={"" = "encoder"}',
        f'init.exclude=["Dense_{num_hidden}"]',  # the classifier's head
        "init.allow_unused=true",  # the visible biases
    ]


def run_table(root: pathlib.Path, seeds: list[int], common: list[str] = ()) -> dict:
    """Pretrains once per seed and trains every (budget, init, seed) cell; ``common``
    overrides both experiments."""
    widths = load_raw(PRETRAIN, [])[0]["task"]["widths"]
    if load_raw(FINETUNE, [])[0]["model"]["widths"] != widths:
        raise ValueError(f"{FINETUNE.name}'s widths must be {PRETRAIN.name}'s ({widths})")
    pretraining, cells = {}, {}
    for seed in seeds:
        summary = train(PRETRAIN, [*common, f"seed={seed}"], root / f"pretrain-{seed}")
        report, test = summary["report"], summary["final"]["test"]
        pretraining[seed] = {
            "test_pll": report["test_pll"],
            "test_stack_recon_mse": test["stack_recon_mse"],
        }
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
                    summary = train(FINETUNE, overrides, root / name, budget)
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
    parser.add_argument("--root", type=pathlib.Path, default=pathlib.Path("runs/dbn_table"))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override applied to both experiments (valid in both; repeatable)",
    )
    args = parser.parse_args()
    if args.root.exists() and any(args.root.iterdir()):
        parser.error(f"{args.root} is not empty; remove it or pick another --root")
    start = time.perf_counter()
    result = run_table(args.root, args.seeds, args.set)
    wall = time.perf_counter() - start
    reports = list(result["pretraining"].values())
    errors = ", ".join(
        f"{key.removeprefix('test_')} {_mean_std([r[key] for r in reports], digits=4)}"
        for key in reports[0]
    )
    text = f"{markdown(result)}\n\nTest accuracy (%) on the digits' test split, seeds "
    text += f"{args.seeds} (difference: pretrained - random, paired by seed); after "
    text += f"pretraining: {errors}; wall time {wall:.0f} s."
    print(text)
    (args.root / "table.md").write_text(text + "\n")
    cells = {f"{b or 'all'} / {r} / {i}": v for (b, r, i), v in result["cells"].items()}
    record = {
        "pretraining": {str(k): v for k, v in result["pretraining"].items()},
        "cells": cells,
        "wall_s": wall,
        "seeds": args.seeds,
        "set": args.set,
    }
    (args.root / "table.json").write_text(json.dumps(record, indent=1) + "\n")


if __name__ == "__main__":
    main()
