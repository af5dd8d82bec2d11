"""What ``dlcore list`` and ``dlcore runs`` print."""

import pathlib

from rich.console import Console
from rich.table import Table

from dlcore import native
from dlcore.activations import ACTIVATIONS
from dlcore.config.loading import ConfigError, load_config
from dlcore.data.registry import DATASETS
from dlcore.models.registry import MODELS
from dlcore.optim import OPTIMIZERS
from dlcore.runs.run_dir import find_runs
from dlcore.tasks.registry import TASKS


def print_listing(experiments_dir: str | pathlib.Path = "experiments") -> None:
    console = Console()
    table = Table(title=f"experiments ({experiments_dir}/)")
    paths = sorted(pathlib.Path(experiments_dir).glob("*.toml"))
    # File names are what a user copies: narrow terminals shorten the other columns instead.
    table.add_column("file", no_wrap=True, min_width=max((len(str(p)) for p in paths), default=4))
    for col in ("data", "model", "optimizer", "epochs"):
        table.add_column(col)
    for path in paths:
        try:
            cfg = load_config(path)
        except ConfigError as err:
            table.add_row(str(path), f"[red]invalid: {err.problems[0][1]}", "", "", "")
            continue
        if cfg.model is not None:
            model = cfg.model.name
        elif cfg.models:  # tasks with several: "generator=mlp, discriminator=mlp"
            model = ", ".join(f"{role}={m.name}" for role, m in cfg.models.items())
        else:
            model = f"({cfg.task.name})"
        table.add_row(str(path), cfg.data.name, model, cfg.optimizer.name, str(cfg.train.epochs))

    console.print(table)
    for title, registry in (("models", MODELS), ("data sets", DATASETS), ("tasks", TASKS)):
        console.print(
            f"[bold]{title}:[/] "
            + ", ".join(f"{name} ({entry.summary})" for name, entry in registry.items())
        )
    console.print("[bold]optimizers:[/] " + ", ".join(OPTIMIZERS))
    console.print("[bold]activations:[/] " + ", ".join(ACTIVATIONS))
    console.print("[bold]native CPU kernels:[/] " + native_line(native.status()))


def native_line(status: dict) -> str:
    """One line on the native kernels: where the library is, or why XLA runs instead."""
    if not status["available"]:
        return f"unavailable ({status['reason']}); conv, max pooling and LSTM/GRU use XLA"
    return (
        f"available (oneDNN {status['onednn'].split('+')[0]}, {status['threads']} threads): "
        "impl='auto' conv, 2-D max pooling and LSTM/GRU run them on CPU in float32"
    )


def print_runs(root: str | pathlib.Path = "runs") -> None:
    runs = find_runs(root)
    if not runs:
        print(f"no runs under {root}/")
        return
    table = Table(title=f"runs ({root}/)")
    for col in ("run", "status", "step", "best val", "test", "train s", "steps/s"):
        table.add_column(col)
    for run in runs:
        s = run.read_summary()
        if s is None:
            table.add_row(run.path.name, "running or killed", "", "", "", "", "")
            continue
        best = s.get("best") or {}
        best_txt = f"{best['metric']} {best['value']:.4f}" if best else ""
        test = s.get("final", {}).get("test", {})
        test_txt = " ".join(f"{k} {v:.4f}" for k, v in test.items())
        t = s["timing"]
        table.add_row(
            run.path.name,
            s["status"],
            str(s["step"]),
            best_txt,
            test_txt,
            f"{t['train_s']:.1f}",
            f"{t['steps_per_s']:.0f}",
        )
    Console().print(table)


def print_sweep(result: dict) -> None:
    """The ranked trial table of a sweep (validation metric only: test never ranks)."""
    direction = "higher" if result["maximize"] else "lower"
    method = result["method"]
    if result.get("pruner", "none") != "none":  # optuna methods
        method += f", {result['pruner']} pruning"
    table = Table(
        title=f"sweep {result['sweep_dir']} ({method}, ranked by val "
        f"{result['metric']}, {direction} is better)"
    )
    for col in ("rank", "trial", "assignment", f"best val {result['metric']}", "at step", "status"):
        table.add_column(col)
    for rank, row in enumerate(result["trials"], 1):
        best = row["best"] or {}
        assignment = ", ".join(
            f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
            for k, v in row["assignment"].items()
        )
        table.add_row(
            str(rank),
            str(row["trial"]),
            assignment,
            f"{best['value']:.4f}" if best else "",
            str(best.get("step", "")),
            row["status"],
        )
    Console().print(table)
    print(
        f"{len(result['trials'])} of {result['total_trials']} trials; results in "
        f"{result['sweep_dir']}/sweep.json"
    )
