"""Experiments end to end: a validated config in, a finished run directory out.

This is the library behind the CLI: ``dlcore run`` is :func:`run_experiment`,
``dlcore resume`` is :func:`resume_experiment`, ``dlcore eval`` is :func:`evaluate_run`.
"""

import pathlib
import platform
import time
from typing import Any

import jax
import optax

from dlcore import host_memory
from dlcore.checkpoint import CheckpointStore
from dlcore.config import ExperimentConfig
from dlcore.config_loading import ConfigError, load_config, save_config
from dlcore.data import Dataset, SplitName, load_dataset
from dlcore.engine.compiled import CompiledTask, eval_chunks
from dlcore.engine.loop import FitResult, Reporter, evaluate, fit
from dlcore.engine.signals import NEVER_STOP
from dlcore.models import build_model
from dlcore.optim import build_optimizer, find_plateau, plateau_observe
from dlcore.plots import plot_curves
from dlcore.run_dir import RunDir, RunDirError, default_run_path
from dlcore.tasks import Task
from dlcore.tasks.registry import TASKS


def build(
    cfg: ExperimentConfig,
    source: str = "config",
    optimizer: optax.GradientTransformation | None = None,
) -> tuple[Dataset, Task]:
    """Data set and task for a config, after the checks that need the data.

    Args:
      cfg: a validated experiment config.
      source: file name used in error messages.
      optimizer: replaces the chain built from ``cfg.optimizer`` (population training
        wraps it to give each member its own learning rate).

    Raises:
      ConfigError: when fields are individually valid but do not fit the data.
    """
    data = load_dataset(cfg.data)
    if cfg.train.batch_size > len(data.train):
        raise ConfigError(
            source,
            [
                (
                    "train.batch_size",
                    f"{cfg.train.batch_size} is larger than the training split "
                    f"({len(data.train)} examples of {cfg.data.name})",
                )
            ],
        )
    entry = TASKS[cfg.task.name]
    model = None
    if entry.needs_model:
        if cfg.model is None:
            raise ConfigError(
                source, [("model", f"missing; the {cfg.task.name} task needs a [model] section")]
            )
        if cfg.task.name != "regression" and data.num_classes is None:
            raise ConfigError(
                source, [("task.name", f"{cfg.data.name} has no classes; use the regression task")]
            )
        if cfg.task.name == "binary_classification" and data.num_classes != 2:
            raise ConfigError(
                source,
                [("task.name", f"{cfg.data.name} has {data.num_classes} classes; binary needs 2")],
            )
        try:
            model = build_model(cfg.model, entry.out_features(cfg.task, data), data)
        except ValueError as err:
            raise ConfigError(source, [("model", str(err))]) from None

    elif cfg.model is not None:
        raise ConfigError(
            source,
            [
                (
                    "model",
                    f"the {cfg.task.name} task has its own linear "
                    "model; remove the [model] section",
                )
            ],
        )
    optimizer = optimizer or build_optimizer(cfg.optimizer)
    try:
        task = entry.build(cfg.task, model, optimizer, data)
    except ValueError as err:
        raise ConfigError(source, [("task", str(err))]) from None

    if cfg.optimizer.freeze:
        example = {"x": data.train.x[:1], "y": data.train.y[:1]}
        try:  # shapes only: initializes the chain (which checks patterns) without compute
            jax.eval_shape(task.init, jax.random.PRNGKey(0), example)
        except ValueError as err:
            raise ConfigError(source, [("optimizer.freeze", str(err))]) from None
    plateau = find_plateau(cfg.optimizer.schedule)
    if plateau is not None:
        watched = plateau.metric or cfg.train.best_metric or task.default_metric
        if watched not in task.metric_modes:
            raise ConfigError(
                source,
                [
                    (
                        "optimizer.schedule.metric",
                        f"unknown metric {watched!r}; {cfg.task.name} reports: "
                        f"{', '.join(sorted(task.metric_modes))}",
                    )
                ],
            )
        if plateau.mode != task.metric_modes[watched]:
            raise ConfigError(
                source,
                [
                    (
                        "optimizer.schedule.mode",
                        f"{watched} is better "
                        f"{'larger' if task.metric_modes[watched] == 'max' else 'smaller'}; "
                        f"set mode = {task.metric_modes[watched]!r}",
                    )
                ],
            )
    metric = cfg.train.best_metric
    if metric is not None and metric not in task.metric_modes:
        raise ConfigError(
            source,
            [
                (
                    "train.best_metric",
                    f"unknown metric {metric!r}; {cfg.task.name} reports: "
                    f"{', '.join(sorted(task.metric_modes))}",
                )
            ],
        )
    return data, task


def validation_hook(cfg: ExperimentConfig, task: Task):
    """What the loop does after each validation pass: feed the plateau schedule, if any."""
    plateau = find_plateau(cfg.optimizer.schedule)
    if plateau is None:
        return None
    watched = plateau.metric or cfg.train.best_metric or task.default_metric
    observe = jax.jit(plateau_observe)
    return lambda state, val: state.replace(opt_state=observe(state.opt_state, val[watched]))


def run_experiment(
    cfg: ExperimentConfig,
    run_dir: str | pathlib.Path | None = None,
    source: str = "config",
    stop=NEVER_STOP,
    reporter: Reporter | None = None,
) -> dict[str, Any]:
    """Trains ``cfg`` in a new run directory and returns its summary."""
    data, task = build(cfg, source)  # config errors surface before a run directory exists
    run = RunDir.create(run_dir or default_run_path(cfg.name))
    save_config(cfg, run.config)
    run.write_dataset(data.fingerprint())
    return _train(cfg, data, task, run, resume=False, stop=stop, reporter=reporter, previous=None)


def resume_experiment(
    run_dir: str | pathlib.Path, stop=NEVER_STOP, reporter: Reporter | None = None
) -> dict[str, Any]:
    """Continues a stopped run from its latest committed checkpoint.

    The result is bit-identical (on CPU) to a run that was never interrupted.

    Raises:
      RunDirError: if the run has no checkpoint to resume from.
    """
    run = RunDir.existing(run_dir)
    cfg = load_config(run.config)
    previous = run.read_summary()
    if previous is not None and previous.get("status") == "completed":
        return previous
    if CheckpointStore(run.latest, keep=cfg.train.keep_checkpoints).latest_step() is None:
        raise RunDirError(
            f"{run.path}: no committed checkpoint yet; start it again with "
            f"`dlcore run {run.config}`"
        )
    data, task = build(cfg, str(run.config))
    run.check_dataset(data.fingerprint())
    return _train(
        cfg, data, task, run, resume=True, stop=stop, reporter=reporter, previous=previous
    )


def _train(cfg, data, task, run, *, resume, stop, reporter, previous) -> dict[str, Any]:
    """Trains (fresh or resumed) in ``run`` and writes its summary and curves."""
    result = fit(
        task,
        data,
        cfg.train,
        cfg.seed,
        run=run,
        resume=resume,
        stop=stop,
        reporter=reporter,
        on_validation=validation_hook(cfg, task),
    )
    return _finish(run, cfg, result, previous)


def evaluate_run(
    run_dir: str | pathlib.Path, split: SplitName = "test", checkpoint: str = "latest"
) -> dict[str, float]:
    """Metric means of a run's ``latest`` or ``best`` checkpoint on one split."""
    run = RunDir.existing(run_dir)
    cfg = load_config(run.config)
    data, task = build(cfg, str(run.config))
    run.check_dataset(data.fingerprint())
    store = CheckpointStore({"latest": run.latest, "best": run.best}[checkpoint], keep=1)
    example = {"x": data.train.x[: cfg.train.batch_size], "y": data.train.y[: cfg.train.batch_size]}
    template = task.init(jax.random.PRNGKey(cfg.seed), example)
    try:
        state, _ = store.restore(template)
    except FileNotFoundError:
        raise RunDirError(f"{run.path}: no {checkpoint} checkpoint to evaluate") from None
    finally:
        store.close()
    target = data.split(split)
    chunk = min(cfg.train.eval_batch_size, len(target))
    return evaluate(CompiledTask(task), state, eval_chunks(target.x, target.y, chunk))


def _finish(run: RunDir, cfg: ExperimentConfig, result: FitResult, previous) -> dict[str, Any]:
    processes = (previous or {}).get("processes", [])
    processes = [*processes, result.timing]
    summary = {
        "name": cfg.name,
        "run_dir": str(run.path),
        "status": result.status,
        "step": int(result.state.step),
        "final": result.final,
        "best": result.best,
        "early_stopping": result.early_stopping,
        "timing": result.timing,
        "processes": processes,
        "traces": result.traces,
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "platform": {
            "devices": [str(d) for d in jax.devices()],
            "python": platform.python_version(),
            "jax": jax.__version__,
            "host_malloc": host_memory.applied(),
        },
    }
    run.write_summary(summary)
    plot_curves(run.read_metrics(), run.curves, title=cfg.name)
    return summary
