"""``python -m curriculum``: train every shipped experiment and rewrite the README table.

Examples:
  python -m curriculum                        # everything (make curriculum), ~30 min on 2 cores
  python -m curriculum --only xor_mlp spirals_mlp   # rerun some; their rows are merged in
  python -m curriculum --check                # every experiments/*.toml has an entry?
  python -m curriculum --table                # rewrite the README table from results.json
  python -m curriculum --reread --only NAME   # metric path changed: read it again, no training
"""

import argparse
import pathlib
import sys
import time

from curriculum import plan as plans
from curriculum import runner, table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m curriculum", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--only", nargs="+", metavar="NAME", help="run only these experiments")
    parser.add_argument("--check", action="store_true", help="check coverage only; run nothing")
    parser.add_argument("--table", action="store_true", help="rewrite the table only; run nothing")
    parser.add_argument(
        "--reread",
        action="store_true",
        help="train nothing: read the metrics again from the runs (after a metric path changed)",
    )
    parser.add_argument("--plan", type=pathlib.Path, default=plans.PLAN_FILE)
    parser.add_argument("--runs", type=pathlib.Path, default=runner.RUNS_ROOT)
    parser.add_argument("--results", type=pathlib.Path, default=table.RESULTS_FILE)
    parser.add_argument("--readme", type=pathlib.Path, default=table.README)
    parser.add_argument("--no-readme", action="store_true", help="leave the README alone")
    parser.add_argument(
        "--timeout", type=float, default=900.0, help="seconds one experiment may take (900)"
    )
    args = parser.parse_args(argv)
    try:
        plan = plans.load_plan(args.plan)
        entries = plans.select(plan, args.only)
        problems = plans.coverage(plan)
        if problems and not (args.only or args.table):  # a partial rerun only warns
            raise ValueError("; ".join(problems))
        for problem in problems:
            print(f"curriculum: warning: {problem}", file=sys.stderr)
    except ValueError as err:
        print(f"curriculum: {err}", file=sys.stderr)
        return 2
    if args.check:
        print(f"{args.plan}: {len(plan)} experiments, every shipped one covered")
        return 0
    old = table.load_rows(args.results)
    status = 0
    if args.reread:
        done = {r["experiment"]: r for r in old if "exit" in r}  # its process ran
        runs = args.runs.resolve()
        new = [
            runner.read_value(e, done[e.name], runs / e.name)
            for e in entries
            if e.name in done and runner.completed(runs / e.name)
        ]
        old = table.merge(old, new, plan)
        table.save_rows(old, args.results)
    elif not args.table:
        start = time.perf_counter()

        def save(row):  # after every experiment, so a stopped run keeps what it measured
            nonlocal old
            old = table.merge(old, [row], plan)
            table.save_rows(old, args.results)

        rows = runner.run_all(entries, args.runs.resolve(), args.timeout, on_row=save)
        bad = [r["experiment"] for r in rows if r["status"] != "ok"]
        minutes = (time.perf_counter() - start) / 60
        print(f"{len(rows)} experiments in {minutes:.1f} min; not completed: {bad or 'none'}")
        status = 1 if bad else 0
    if not args.no_readme:
        try:
            table.update_readme(table.with_unmeasured(old, plan), args.readme)
        except ValueError as err:
            print(f"curriculum: {err}", file=sys.stderr)
            return 2
        print(f"updated {args.readme} from {args.results}")
    return status


if __name__ == "__main__":
    sys.exit(main())
