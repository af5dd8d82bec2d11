"""The ``dlcore`` command: a thin layer that parses, validates and calls the library.

Exit status: 0 done, 2 bad config or usage (one line per problem, no traceback),
130 stopped by SIGINT, 143 stopped by SIGTERM (a checkpoint was committed first).
"""

import argparse
import json
import os
import pathlib
import sys

from dlcore.config_loading import ConfigError, load_config
from dlcore.run_dir import RunDirError

DEFAULT_CACHE = pathlib.Path.home() / ".cache" / "dlcore" / "xla"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="dlcore", description=__doc__.splitlines()[0])
    p.add_argument(
        "--no-compile-cache",
        action="store_true",
        help="do not use the persistent XLA compilation cache "
        f"(default dir: $DLCORE_COMPILE_CACHE or {DEFAULT_CACHE})",
    )
    sub = p.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="train an experiment in a new run directory")
    run.add_argument("config", help="experiment TOML file, e.g. experiments/digits_mlp.toml")
    run.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config field, e.g. --set train.epochs=5 (repeatable)",
    )
    run.add_argument("--run-dir", help="where to write the run (default runs/<name>-<time>)")
    run.add_argument("--quiet", action="store_true", help="log lines instead of a progress bar")

    sweep = sub.add_parser("sweep", help="hyper-parameter search over the config's [sweep]")
    sweep.add_argument("config", help="experiment TOML with a [sweep] table")
    sweep.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a field in every trial",
    )
    sweep.add_argument("--sweep-dir", help="where trials go; an existing one is continued")
    sweep.add_argument("--quiet", action="store_true")
    sweep.add_argument(
        "--vmap",
        action="store_true",
        help="train all seeds/learning rates at once in one compiled program",
    )
    sweep.add_argument(
        "--compare",
        action="store_true",
        help="with --vmap: also train the trials one by one and report the measured speed-up",
    )

    resume = sub.add_parser("resume", help="continue a stopped run from its last checkpoint")
    resume.add_argument("run_dir")
    resume.add_argument("--quiet", action="store_true")

    ev = sub.add_parser("eval", help="evaluate a run's checkpoint on a split")
    ev.add_argument("run_dir")
    ev.add_argument("--split", choices=["val", "test"], default="val")
    ev.add_argument("--checkpoint", choices=["latest", "best"], default="latest")

    sub.add_parser("list", help="list experiments, models, data sets and optimizers")

    runs = sub.add_parser("runs", help="table of runs with their final metrics")
    runs.add_argument("--root", default="runs", help="directory holding run directories")
    return p


def _enable_compile_cache() -> None:
    import jax

    path = os.environ.get("DLCORE_COMPILE_CACHE", str(DEFAULT_CACHE))
    if path:
        jax.config.update("jax_compilation_cache_dir", path)
        # Small models compile in well under a second; cache them too.
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)


def _train(args, start) -> int:
    from dlcore.engine.signals import GracefulStop
    from dlcore.progress import make_reporter

    with GracefulStop() as stop:
        summary = start(stop, make_reporter("training", args.quiet))
    if summary["status"] != "completed":
        print(
            f"stopped at step {summary['step']}; checkpoint committed. Continue with:\n"
            f"  dlcore resume {summary['run_dir']}",
            file=sys.stderr,
        )
        return stop.exit_code
    for split in ("train", "val", "test"):
        values = ", ".join(f"{k} {v:.4f}" for k, v in summary["final"][split].items())
        print(f"{split}: {values}")
    best = summary["best"]
    print(f"best val {best['metric']} {best['value']:.4f} at step {best['step']}")
    print(f"run directory: {summary['run_dir']}")
    return 0


def _cmd_run(args) -> int:
    from dlcore.experiment import build, run_experiment

    cfg = load_config(args.config, args.overrides)
    build(cfg, args.config)  # data-dependent checks before any output directory exists
    return _train(
        args,
        lambda stop, rep: run_experiment(
            cfg, args.run_dir, source=args.config, stop=stop, reporter=rep
        ),
    )


def _cmd_sweep(args) -> int:
    from dlcore.engine.signals import GracefulStop
    from dlcore.listing import print_sweep
    from dlcore.progress import make_reporter
    from dlcore.sweep import run_sweep

    if args.vmap:
        from dlcore.sweep import run_population_sweep

        result = run_population_sweep(args.config, args.overrides, args.sweep_dir, args.compare)
        print_sweep(result)
        timing = result["timing"]
        print(
            f"vmap: {result['total_trials']} members in {timing['vmap']['wall_s']:.1f} s "
            f"(compile {timing['vmap']['compile_s']:.1f} s, training "
            f"{timing['vmap']['train_s']:.2f} s)"
        )
        if "sequential" in timing:
            print(
                f"sequential: {timing['sequential']['wall_s']:.1f} s (training "
                f"{timing['sequential']['train_s']:.2f} s); speed-up "
                f"{timing['speedup_wall']:.1f}x wall, {timing['speedup_train']:.1f}x training"
            )
        return 0
    with GracefulStop() as stop:
        result = run_sweep(
            args.config,
            args.overrides,
            args.sweep_dir,
            stop,
            lambda title: make_reporter(title, args.quiet),
        )
    print_sweep(result)
    if result["status"] != "completed":
        print(
            f"sweep stopped; continue it with:\n  dlcore sweep {args.config} "
            f"--sweep-dir {result['sweep_dir']}",
            file=sys.stderr,
        )
        return stop.exit_code
    return 0


def _cmd_resume(args) -> int:
    from dlcore.experiment import resume_experiment

    return _train(args, lambda stop, rep: resume_experiment(args.run_dir, stop, rep))


def _cmd_eval(args) -> int:
    from dlcore.experiment import evaluate_run

    metrics = evaluate_run(args.run_dir, args.split, args.checkpoint)
    print(json.dumps({"split": args.split, "checkpoint": args.checkpoint, **metrics}))
    return 0


def _cmd_list(args) -> int:
    from dlcore.listing import print_listing

    print_listing()
    return 0


def _cmd_runs(args) -> int:
    from dlcore.listing import print_runs

    print_runs(args.root)
    return 0


COMMANDS = {
    "run": _cmd_run,
    "sweep": _cmd_sweep,
    "resume": _cmd_resume,
    "eval": _cmd_eval,
    "list": _cmd_list,
    "runs": _cmd_runs,
}


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command in ("run", "sweep", "resume", "eval") and not args.no_compile_cache:
        _enable_compile_cache()
    try:
        return COMMANDS[args.command](args)
    except ConfigError as err:
        for line in err.lines():
            print(f"error: {line}", file=sys.stderr)
        return 2
    except RunDirError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
