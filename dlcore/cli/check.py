"""``dlcore check CONFIG --overfit N``: the sub-command's arguments and what it prints.

The work is :func:`dlcore.experiment.overfit.check_overfit`; this module parses, prints
the loss curve and the verdict, and returns 0 (the loss went to ~0) or
:data:`dlcore.runs.errors.EXIT_NOT_FITTED` (it did not). Nothing is written to disk.
"""

import argparse

from dlcore.runs.errors import EXIT_NOT_FITTED


def add_parser(sub) -> argparse.ArgumentParser:
    """Adds the ``check`` sub-parser to ``sub`` (the main parser's sub-parsers)."""
    ck = sub.add_parser(
        "check", help="check that the model can overfit N training examples (no run dir)"
    )
    ck.add_argument("config", help="experiment TOML file")
    ck.add_argument(
        "--overfit",
        type=int,
        required=True,
        metavar="N",
        help="train full-batch on the first N training examples, regularisation off; "
        f"pass (exit 0) if the loss reaches ~0, else exit {EXIT_NOT_FITTED}",
    )
    ck.add_argument("--steps", type=int, default=500, help="training steps (default 500)")
    ck.add_argument(
        "--threshold", type=float, help="final loss that passes (default 0.01: LOSS_THRESHOLD)"
    )
    ck.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config field, e.g. --set optimizer.learning_rate=0.1",
    )
    return ck


def command(args) -> int:
    """Runs ``dlcore check``; config errors reach ``main`` (one line each, exit 2)."""
    from dlcore.config.loading import load_config
    from dlcore.experiment.overfit import check_overfit

    cfg = load_config(args.config, args.overrides)
    given = {} if args.threshold is None else {"threshold": args.threshold}
    report = check_overfit(cfg, args.overfit, args.steps, source=args.config, **given)
    off = "; ".join(report.turned_off) or "nothing to turn off"
    print(f"overfit {report.examples} examples, {report.steps} full-batch steps ({off})")
    print("step  training loss")
    for step, loss in report.curve:
        print(f"{step:>4}  {loss:.6g}")
    final = ", ".join(f"{k} {v:.6g}" for k, v in report.final.items())
    print(f"final on the {report.examples} examples: {final}")
    loss, accuracy = report.final.get("loss"), report.final.get("accuracy")
    if report.passed:
        fitted = loss is not None and loss <= report.threshold
        print(f"PASS: loss {loss:.4g} <= {report.threshold:g}" if fitted else "PASS: accuracy 1.0")
        return 0
    if loss is None:  # halted on a non-finite loss: there is no final evaluation
        print("FAIL: training halted on non-finite values; lower the learning rate (deck 003)")
        return EXIT_NOT_FITTED
    print(
        f"FAIL: loss {loss:.4g} > {report.threshold:g}"
        + (f" and accuracy {accuracy:.4f} < 1" if accuracy is not None else "")
        + "; look for saturated units, a bad learning rate or too small a model (deck 003)"
    )
    return EXIT_NOT_FITTED
