"""``python -m benchmarks mlp lstm cnn attention`` (or ``all``): the benchmark command line.

Examples:
  python -m benchmarks mlp --quick --out /tmp/bench      # seconds: smoke run, tiny shapes
  python -m benchmarks all                               # the full suite (many minutes)
  python -m benchmarks scaling                           # throughput vs devices (~3 min)
  python -m benchmarks bucketing                         # LSTM on length buckets vs full width
  python -m benchmarks --readme                          # README section from the latest JSON
  python -m benchmarks race --tasks mlp,lenet --repeats 3 # dlcore run vs PyTorch vs Keras
"""

import argparse
import pathlib
import sys

from benchmarks import race, report, runner
from dlcore import host_memory


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "suites", nargs="*", help=f"any of {', '.join(runner.SUITES)} or all (not race), or race"
    )
    parser.add_argument("--quick", action="store_true", help="tiny shapes, 1 repeat (smoke run)")
    parser.add_argument("--out", type=pathlib.Path, default=runner.RESULTS_DIR)
    parser.add_argument("--repeats", type=int, default=None, help="timed samples (default 5)")
    parser.add_argument("--warmup", type=int, default=None, help="untimed steps (default 2)")
    parser.add_argument(
        "--readme",
        nargs="?",
        const=pathlib.Path("README.md"),
        type=pathlib.Path,
        help="regenerate the README performance section from the latest full-run JSON in --out",
    )
    race_options(parser)
    args = parser.parse_args(argv)
    if not args.suites and args.readme is None:
        parser.error("name at least one suite (or all), or pass --readme")
    try:
        suites = [s for s in args.suites if s != "race"]
        if "race" in args.suites:  # checked before any suite runs
            shrink = race.Shrink(args.charlm_epochs, args.charlm_train_files)
            tasks = race.parse_tasks(args.tasks)
        if suites:
            # Every candidate shares the process, so every one runs under these settings.
            host_memory.keep_freed_memory()
            runner.run(suites, args.quick, args.out, args.repeats, args.warmup)
        if "race" in args.suites:  # separate processes, so none of the settings above
            race.run(tasks, args.repeats or 3, args.out, shrink, args.torch_threads)
        if args.readme is not None:
            latest = report.latest_json(args.out)
            if latest is None:
                parser.error(f"no full-run results (bench_*.json without _quick) in {args.out}")
            report.update_readme(args.readme, latest)
            print(f"updated {args.readme} from {latest}")
    except ValueError as err:
        parser.error(str(err))
    return 0


def race_options(parser: argparse.ArgumentParser) -> None:
    """The ``race`` suite's options (``--repeats`` is shared: default 3 for the race)."""
    group = parser.add_argument_group("race (dlcore run vs PyTorch eager vs Keras on JAX)")
    group.add_argument("--tasks", default="all", help=f"{','.join(race.TASKS)} or all")
    group.add_argument("--charlm-epochs", type=int, help="shrink the char-LM: epochs (3)")
    group.add_argument(
        "--charlm-train-files", type=int, help="shrink the char-LM: first N training files"
    )
    group.add_argument("--torch-threads", type=int, help="PyTorch intra-op threads (all cores)")


if __name__ == "__main__":
    sys.exit(main())
