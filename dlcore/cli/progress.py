"""Progress display for the CLI: a live rich progress bar, or plain log lines."""

import sys
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn


def format_record(record: dict[str, Any]) -> str:
    """``val step 120 | accuracy 0.9630 | loss 0.1234``."""
    values = " | ".join(
        f"{k} {v:.4f}" for k, v in record.items() if k not in ("step", "epoch", "split")
    )
    return f"{record['split']:5s} step {record['step']:>6d} (epoch {record['epoch']}) | {values}"


class BarReporter:
    """A rich progress bar whose description shows the latest train and val metrics."""

    def __init__(self, title: str):
        self._progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            TextColumn("{task.fields[metrics]}"),
            console=Console(stderr=True),
        )
        self._title = title
        self._latest: dict[str, str] = {}
        self._task = None

    def start(self, total_steps: int, done_steps: int) -> None:
        self._progress.start()
        self._task = self._progress.add_task(
            self._title, total=total_steps, completed=done_steps, metrics=""
        )

    def advance(self, step: int) -> None:
        self._progress.update(self._task, completed=step)

    def log(self, record: dict[str, Any]) -> None:
        shown = {k: v for k, v in record.items() if k not in ("step", "epoch", "split")}
        self._latest[record["split"]] = " ".join(f"{k}={v:.4f}" for k, v in shown.items())
        self._progress.update(
            self._task, metrics="  ".join(f"{s}: {m}" for s, m in self._latest.items())
        )

    def close(self) -> None:
        self._progress.stop()


class LineReporter:
    """One line per logged record on stderr (``--quiet`` or when stderr is not a terminal):
    validation passes always, training windows only when ``verbose``."""

    def __init__(self, verbose: bool = False):
        self._verbose = verbose

    def start(self, total_steps: int, done_steps: int) -> None:
        print(f"training: step {done_steps} of {total_steps}", file=sys.stderr, flush=True)

    def advance(self, step: int) -> None: ...

    def log(self, record: dict[str, Any]) -> None:
        if record["split"] != "train" or self._verbose:
            print(format_record(record), file=sys.stderr, flush=True)

    def close(self) -> None: ...


def make_reporter(title: str, quiet: bool):
    if quiet or not sys.stderr.isatty():
        return LineReporter(verbose=not quiet)
    return BarReporter(title)
