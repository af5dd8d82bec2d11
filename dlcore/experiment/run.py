"""Experiments end to end: a built experiment in, a finished run directory out.

This is the library behind the CLI: ``dlcore run`` is :func:`run_experiment`,
``dlcore resume`` is :func:`resume_experiment`, ``dlcore eval`` is :func:`evaluate_run`.
Running and resuming hold the run directory's writer lock (``dlcore.runs.lock``) from
before the first write to after the last; evaluating only reads and takes none.
"""

import contextlib
import copy
import pathlib
import platform
import time
from typing import Any

import jax

from dlcore import host_memory, native
from dlcore.config.errors import ConfigError
from dlcore.config.experiment import ExperimentConfig
from dlcore.config.loading import load_config, save_config, validate
from dlcore.data.buckets import bucket_order
from dlcore.data.dataset import SplitName
from dlcore.engine.compiled import CompiledTask, eval_chunks
from dlcore.engine.distributed import agree_on_text, barrier, host_local, is_writer
from dlcore.engine.loop import FitResult, Reporter, evaluate, fit
from dlcore.engine.signals import NEVER_STOP
from dlcore.engine.task import Task
from dlcore.experiment.build import Experiment, build
from dlcore.experiment.restore import restore_run
from dlcore.optim import find_plateau, plateau_observe
from dlcore.runs.checkpoint import CheckpointStore
from dlcore.runs.errors import DivergedError, warn
from dlcore.runs.lock import RunLock
from dlcore.runs.run_dir import (
    FollowerRunDir,
    RunDir,
    RunDirError,
    config_changes,
    default_run_path,
)
from dlcore.runs.tensorboard import EventLog, flat_hparams, result_metrics


def plot_curves(records: list[dict[str, Any]], path: pathlib.Path, title: str) -> None:
    """:func:`dlcore.runs.plots.plot_curves`, whose matplotlib is imported only when a run
    ends (importing it costs a quarter of a second that ``resume`` or ``eval`` need not pay
    before they start)."""
    from dlcore.runs import plots

    plots.plot_curves(records, path, title)


def validation_hook(cfg: ExperimentConfig, task: Task, then=None):
    """What the loop does after each validation pass: feed the plateau schedule, if any,
    then call ``then`` (the caller's own ``(state, val) -> state``, e.g. a sweep's pruner)."""
    plateau = find_plateau(cfg.optimizer.schedule)
    if plateau is None:
        return then
    watched = plateau.metric or cfg.train.best_metric or task.default_metric
    observe = jax.jit(plateau_observe)

    def hook(state, val):
        state = state.replace(opt_state=observe(state.opt_state, val[watched]))
        return state if then is None else then(state, val)

    return hook


def run_experiment(
    experiment: Experiment | ExperimentConfig,
    run_dir: str | pathlib.Path | None = None,
    source: str = "config",
    stop=NEVER_STOP,
    reporter: Reporter | None = None,
    tensorboard: bool = True,
    on_validation=None,
) -> dict[str, Any]:
    """Trains an experiment (built, or a config to build) in a new run directory and
    returns its summary. Config errors surface before the run directory exists.
    ``on_validation`` (``(state, val metrics) -> state``) runs after every validation pass.

    ``tensorboard`` writes TensorBoard event files beside ``metrics.jsonl``
    (:mod:`dlcore.runs.tensorboard`); the choice belongs to this call (``dlcore run
    --no-tensorboard``), not to the config: it changes no result.

    In a multi-process run (:mod:`dlcore.engine.distributed`) every process calls this;
    process 0 makes and writes the directory, the others wait for it and then train
    with it, writing only their checkpoint shards.

    Raises:
      RunDirError: the directory holds a run, is being written by another process, or
        cannot be made or written (nothing is left behind then).
    """
    if isinstance(experiment, ExperimentConfig):
        experiment = build(experiment, source)
    cfg = experiment.cfg
    path = agree_on_text(str(run_dir or default_run_path(cfg.name)))
    if not is_writer():
        barrier("dlcore: run directory made")
        run = FollowerRunDir(path)
        return _train(
            experiment,
            run,
            resume=False,
            stop=stop,
            reporter=reporter,
            previous=None,
            on_validation=on_validation,
        )
    run = RunDir.create(path)
    with RunLock(run.path):
        if run.config.exists():  # another process started a run here since `create` looked
            raise RunDirError(f"{run.path}: run directory already holds a run; pick another")
        save_config(cfg, run.config)
        run.write_resolved(cfg.model_dump(mode="json"))
        run.write_dataset(experiment.data.fingerprint())
        barrier("dlcore: run directory made")
        _attach_events(run, tensorboard)
        return _train(
            experiment,
            run,
            resume=False,
            stop=stop,
            reporter=reporter,
            previous=None,
            on_validation=on_validation,
        )


def resume_experiment(
    run_dir: str | pathlib.Path,
    stop=NEVER_STOP,
    reporter: Reporter | None = None,
    devices: int | str | None = None,
    tensorboard: bool = True,
    on_validation=None,
) -> dict[str, Any]:
    """Continues a stopped run from its latest committed checkpoint (``on_validation``:
    as in :func:`run_experiment`).

    ``tensorboard`` (``dlcore resume --no-tensorboard``: False) goes on writing the run's
    TensorBoard events in a new file that purges the steps logged after the checkpoint.

    ``devices`` (N or ``"all"``; None: the config's ``train.devices``) may differ from the
    device count the run trained on: the checkpoint loads into this process's shardings,
    and the result equals the uninterrupted run's within float32 rounding (bit-identical
    when the device count is the same).

    The result is bit-identical (on CPU) to a run that was never interrupted. Edits made
    to its ``config.toml`` since it last trained that keep the state's structure (learning
    rate, epochs, ...) are applied and named in one warning line. A run whose checkpoint
    is already at or past the configured end (``train.epochs`` lowered) trains nothing
    and is finished: the returned summary then has ``nothing_to_train: {step, end}``.

    Raises:
      RunDirError: if another process is writing the run, or it has no checkpoint to
        resume from.
    """
    run = RunDir.existing(run_dir)
    if not is_writer():  # process 0 holds the lock and writes; see run_experiment
        run = FollowerRunDir(run.path)
    with RunLock(run.path) if run.writer else contextlib.nullcontext():
        previous = run.read_summary()
        if previous is not None and previous.get("status") == "completed":
            return previous
        experiment = restore_run(run.path, checkpoint=None, devices=devices).experiment
        cfg = experiment.cfg
        store = CheckpointStore(run.latest, keep=cfg.train.keep_checkpoints)
        step = store.latest_step()
        store.close()
        if step is None:
            raise RunDirError(
                f"{run.path}: no committed checkpoint yet; start it again with "
                f"`dlcore run {run.config}`"
            )
        order = bucket_order(
            experiment.task.make_order(len(experiment.data.train), cfg.train.batch_size, cfg.seed),
            experiment.data,
            cfg.train.bucket_by,
            cfg.train.bucket_widths,
        )
        end = cfg.train.epochs * order.steps_per_epoch
        resolved = cfg.model_dump(mode="json")
        if devices is not None:  # this process's device count is not an edit of the run
            resolved["train"]["devices"] = load_config(run.config).train.devices
        edits = _ConfigEdits(run, resolved, reporter)
        _attach_events(run, tensorboard)
        summary = _train(
            experiment,
            run,
            resume=True,
            stop=stop,
            reporter=edits,
            previous=previous,
            on_validation=on_validation,
        )
        if step >= end:
            summary["nothing_to_train"] = {"step": step, "end": end}
        return summary


def _as_today(recorded: dict[str, Any]) -> dict[str, Any]:
    """A config recorded by an older dlcore, resolved by this one: fields added since then
    take their defaults, so they are not reported as edits (a field the user set in
    ``config.toml`` since then still is). Unchanged when it no longer validates."""
    try:
        return validate(copy.deepcopy(recorded), "recorded").model_dump(mode="json")
    except ConfigError:
        return recorded


class _ConfigEdits:
    """A reporter that, when ``fit`` starts reporting, names the config edits and records
    the config as applied, then passes everything on to ``reporter``.

    ``fit`` starts its reporter once the checkpoint has loaded into the state the edited
    config builds; an edit that changes that structure fails the load first, with its
    own error, so it is never announced as applied nor recorded.
    """

    def __init__(self, run: RunDir, resolved: dict[str, Any], reporter: Reporter | None):
        self.run, self.resolved, self.reporter = run, resolved, reporter

    def start(self, total_steps: int, done_steps: int) -> None:
        recorded = self.run.read_resolved()
        changes = config_changes(_as_today(recorded), self.resolved) if recorded is not None else []
        if changes and self.run.writer:
            warn(
                f"{self.run.config}: edited since the run last trained; applying "
                + "; ".join(changes)
            )
        if recorded != self.resolved:  # runs made before it was kept get one now
            self.run.write_resolved(self.resolved)
        if self.reporter is not None:
            self.reporter.start(total_steps, done_steps)

    def advance(self, step: int) -> None:
        if self.reporter is not None:
            self.reporter.advance(step)

    def log(self, record: dict[str, Any]) -> None:
        if self.reporter is not None:
            self.reporter.log(record)

    def close(self) -> None:
        if self.reporter is not None:
            self.reporter.close()


def _attach_events(run: RunDir, tensorboard: bool) -> None:
    """Sends ``run``'s metrics records to TensorBoard too (the writer only)."""
    if tensorboard and run.writer:
        run.events = EventLog(run.path, config_text=run.config.read_text())


def _train(
    experiment: Experiment, run, *, resume, stop, reporter, previous, on_validation=None
) -> dict[str, Any]:
    """Trains (fresh or resumed) in ``run`` and writes its summary and curves."""
    try:
        return _train_and_finish(experiment, run, resume, stop, reporter, previous, on_validation)
    finally:
        if run.events is not None:  # what was logged is on disk, whatever ended the run
            run.events.close()


def _train_and_finish(experiment: Experiment, run, resume, stop, reporter, previous, on_validation):
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
        on_validation=validation_hook(cfg, experiment.task, then=on_validation),
    )
    report = (previous or {}).get("report", {})
    if result.status == "completed":  # the task's own figures and PNGs
        state = host_local(result.state)  # (a collective: every process is here)
        if run.writer:
            report = experiment.task.report(state, experiment.data, run.path)
    summary = _finish(run, cfg, result, previous, report)
    if result.status == "diverged":
        raise DivergedError(_diverged_line(run, result.health))
    return summary


def _diverged_line(run: RunDir, health: dict[str, Any]) -> str:
    last = health["last_checkpoint"]
    where = (
        f"the last good checkpoint is step {last}; lower the learning rate in {run.config} "
        f"and `dlcore resume {run.path}`"
        if last is not None
        else "no checkpoint was committed"
    )
    return f"{run.path}: {health['halted']}; nothing non-finite was saved, {where}"


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
        "health": result.health,
        "timing": result.timing,
        "processes": processes,
        "traces": result.traces,
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "platform": {
            "devices": [str(d) for d in jax.devices()],
            "python": platform.python_version(),
            "jax": jax.__version__,
            "host_malloc": host_memory.applied(),
            # Which kernels ran natively (oneDNN through XLA's FFI) rather than through XLA.
            "native": native.report(),
        },
    }
    run.write_summary(summary)
    if run.writer:
        plot_curves(run.read_metrics(), run.curves, title=cfg.name)
    if run.events is not None and result.status == "completed":
        run.events.images(sorted(run.path.glob("*.png")), summary["step"])
        run.events.hparams(
            flat_hparams(cfg.model_dump(mode="json", exclude={"sweep"})),
            result_metrics(summary),
            summary["step"],
        )
    return summary
