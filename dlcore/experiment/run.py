"""Experiments end to end: a built experiment in, a finished run directory out.

This is the library behind the CLI: ``dlcore run`` is :func:`run_experiment`,
``dlcore resume`` is :func:`resume_experiment`, ``dlcore eval`` is :func:`evaluate_run`.
"""

import pathlib
import platform
import time
from typing import Any

import jax

from dlcore import host_memory
from dlcore.config.experiment import ExperimentConfig
from dlcore.config.loading import save_config
from dlcore.data.dataset import SplitName
from dlcore.engine.compiled import CompiledTask, eval_chunks
from dlcore.engine.loop import FitResult, Reporter, evaluate, fit
from dlcore.engine.signals import NEVER_STOP
from dlcore.engine.task import Task
from dlcore.experiment.build import Experiment, build
from dlcore.experiment.restore import restore_run
from dlcore.optim import find_plateau, plateau_observe
from dlcore.runs.checkpoint import CheckpointStore
from dlcore.runs.plots import plot_curves
from dlcore.runs.run_dir import RunDir, RunDirError, default_run_path


def validation_hook(cfg: ExperimentConfig, task: Task):
    """What the loop does after each validation pass: feed the plateau schedule, if any."""
    plateau = find_plateau(cfg.optimizer.schedule)
    if plateau is None:
        return None
    watched = plateau.metric or cfg.train.best_metric or task.default_metric
    observe = jax.jit(plateau_observe)
    return lambda state, val: state.replace(opt_state=observe(state.opt_state, val[watched]))


def run_experiment(
    experiment: Experiment | ExperimentConfig,
    run_dir: str | pathlib.Path | None = None,
    source: str = "config",
    stop=NEVER_STOP,
    reporter: Reporter | None = None,
) -> dict[str, Any]:
    """Trains an experiment (built, or a config to build) in a new run directory and
    returns its summary. Config errors surface before the run directory exists."""
    if isinstance(experiment, ExperimentConfig):
        experiment = build(experiment, source)
    cfg = experiment.cfg
    run = RunDir.create(run_dir or default_run_path(cfg.name))
    save_config(cfg, run.config)
    run.write_dataset(experiment.data.fingerprint())
    return _train(experiment, run, resume=False, stop=stop, reporter=reporter, previous=None)


def resume_experiment(
    run_dir: str | pathlib.Path, stop=NEVER_STOP, reporter: Reporter | None = None
) -> dict[str, Any]:
    """Continues a stopped run from its latest committed checkpoint.

    The result is bit-identical (on CPU) to a run that was never interrupted.

    Raises:
      RunDirError: if the run has no checkpoint to resume from.
    """
    run = RunDir.existing(run_dir)
    previous = run.read_summary()
    if previous is not None and previous.get("status") == "completed":
        return previous
    restored = restore_run(run.path, checkpoint=None)
    keep = restored.experiment.cfg.train.keep_checkpoints
    if CheckpointStore(run.latest, keep=keep).latest_step() is None:
        raise RunDirError(
            f"{run.path}: no committed checkpoint yet; start it again with "
            f"`dlcore run {run.config}`"
        )
    return _train(
        restored.experiment, run, resume=True, stop=stop, reporter=reporter, previous=previous
    )


def _train(experiment: Experiment, run, *, resume, stop, reporter, previous) -> dict[str, Any]:
    """Trains (fresh or resumed) in ``run`` and writes its summary and curves."""
    cfg = experiment.cfg
    result = fit(
        experiment.task,
        experiment.data,
        cfg.train,
        cfg.seed,
        run=run,
        resume=resume,
        stop=stop,
        reporter=reporter,
        on_validation=validation_hook(cfg, experiment.task),
    )
    report = (previous or {}).get("report", {})
    if result.status == "completed":  # the task's own figures and PNGs
        report = experiment.task.report(result.state, experiment.data, run.path)
    return _finish(run, cfg, result, previous, report)


def evaluate_run(
    run_dir: str | pathlib.Path, split: SplitName = "test", checkpoint: str = "latest"
) -> dict[str, float]:
    """Metric means of a run's ``latest`` or ``best`` checkpoint on one split."""
    restored = restore_run(run_dir, checkpoint)
    experiment = restored.experiment
    target = experiment.data.split(split)
    chunk = min(experiment.cfg.train.eval_batch_size, len(target))
    chunks = eval_chunks(target.fields, chunk)
    return evaluate(CompiledTask(experiment.task), restored.state, chunks)


def _finish(
    run: RunDir, cfg: ExperimentConfig, result: FitResult, previous, report: dict
) -> dict[str, Any]:
    processes = (previous or {}).get("processes", [])
    processes = [*processes, result.timing]
    summary = {
        "name": cfg.name,
        "run_dir": str(run.path),
        "status": result.status,
        "step": int(result.state.step),
        "final": result.final,
        "best": result.best,
        "report": report,
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
