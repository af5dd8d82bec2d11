"""Bayesian hyper-parameter search with optuna: ``[sweep] method = "tpe"``, "cmaes", "qmc".

Each trial is asked from an optuna study (:mod:`dlcore.experiment.optuna_study`), trained
as a normal run directory ``<sweep dir>/trial-NNN``, and told its best validation value.
After every validation pass the trial reports the sweep's metric at that epoch; when the
pruner judges the curve worse than the other trials' at the same epoch, the run stops as
a ``stop`` request would (a checkpoint is committed), its summary says ``"pruned"`` and
the sweep goes on.

The study lives in ``<sweep dir>/optuna.db`` (SQLite), named after the config. Running the
same sweep again continues it: finished and pruned trials stay as they are; a trial left
``RUNNING`` (its process was stopped or killed) continues from its run directory's
checkpoint with the same parameters; new trials are asked until there are ``trials``.
One process works on a sweep directory at a time (a second one finds the trial locked).
"""

import copy
import dataclasses
import pathlib
import shutil
from typing import Any

from optuna.trial import TrialState

from dlcore.config.experiment import ExperimentConfig
from dlcore.config.loading import ConfigError, set_path, validate
from dlcore.data.buckets import bucket_order
from dlcore.engine.signals import NEVER_STOP
from dlcore.experiment.build import Experiment, build
from dlcore.experiment.optuna_study import PruningHook, TrialStop, next_trial, open_study, suggest
from dlcore.experiment.run import resume_experiment, run_experiment
from dlcore.runs.checkpoint import CheckpointStore
from dlcore.runs.errors import DivergedError, RunDirError, warn
from dlcore.runs.lock import lock_holder
from dlcore.runs.run_dir import RunDir, default_run_path, make_dirs, strict_json, write_atomic
from dlcore.runs.sweep_history import plot_history


def trial_config(raw: dict, base: ExperimentConfig, where: str, number: int, assignment: dict):
    """The validated config of trial ``number``: the raw config with its assignment."""
    trial = copy.deepcopy(raw)
    trial["name"] = f"{base.name}-trial-{number:03d}"
    if base.sweep.metric is not None:
        set_path(trial, ["train", "best_metric"], base.sweep.metric, where)
    for key, value in assignment.items():
        set_path(trial, key.split("."), value, f"{where} [sweep.space] {key}")
    return validate(trial, where)


def check_space(raw: dict, base: ExperimentConfig, source: str) -> Experiment:
    """Validates every choice and both ends of every range (the others at their first
    value), then builds the first point: the checks grid search makes on all its trials,
    made before anything is written. Returns that built experiment.

    Raises:
      ConfigError: naming the field and value that make an invalid config.
    """
    space = base.sweep.space
    corners = {
        key: d.choices if d.choices is not None else list(d.uniform or d.log_uniform)
        for key, d in space.items()
    }
    first = {key: values[0] for key, values in corners.items()}
    for key, values in corners.items():
        for value in values:
            where = f"{source} ([sweep.space] {key} = {value!r})"
            trial_config(raw, base, where, 0, {**first, key: value})
    return build(trial_config(raw, base, source, 0, first), source)


def steps_per_epoch(experiment: Experiment) -> int:
    """Training steps of one epoch of ``experiment`` (as :func:`dlcore.engine.loop.fit`)."""
    cfg, data = experiment.cfg, experiment.data
    order = experiment.task.make_order(len(data.train), cfg.train.batch_size, cfg.seed)
    return bucket_order(order, data, cfg.train.bucket_by, cfg.train.bucket_widths).steps_per_epoch


def _has_checkpoint(run: RunDir, cfg: ExperimentConfig) -> bool:
    if not run.latest.is_dir():
        return False
    store = CheckpointStore(run.latest, keep=cfg.train.keep_checkpoints)
    try:
        return store.latest_step() is not None
    finally:
        store.close()


def _discard(run: RunDir) -> None:
    """Removes a trial's run directory that never committed a checkpoint (nothing to
    continue from): the trial starts again in it."""
    holder = lock_holder(run.path)
    if holder is not None:
        raise RunDirError(f"{run.path}: another dlcore process ({holder}) is writing this trial")
    shutil.rmtree(run.path)


@dataclasses.dataclass
class _Sweep:
    """What every trial of one sweep shares."""

    raw: dict
    base: ExperimentConfig
    source: str
    root: pathlib.Path
    metric: str
    stop: Any
    reporter_for: Any
    tensorboard: bool


def _run_trial(study, trial, reported, ctx: _Sweep) -> str:
    """Trains (or continues) one trial and tells optuna how it ended; returns its status."""
    base, sweep = ctx.base, ctx.base.sweep
    number = trial.number
    assignment = {key: suggest(trial, key, d) for key, d in sweep.space.items()}
    trial.set_user_attr("assignment", assignment)
    run = RunDir(ctx.root / f"trial-{number:03d}")
    where = f"{ctx.source} (sweep trial {number}: {assignment})"
    try:
        cfg = trial_config(ctx.raw, base, where, number, assignment)
        experiment = build(cfg, ctx.source)
    except ConfigError:
        study.tell(trial, state=TrialState.FAIL)  # a rerun asks a new trial instead
        raise
    previous = run.read_summary() if run.summary.exists() else None
    if previous is not None and previous["status"] == "pruned":  # killed before `tell`
        study.tell(trial, state=TrialState.PRUNED)
        return "pruned"
    hook = PruningHook(trial, ctx.metric, steps_per_epoch(experiment), reported)
    stop = TrialStop(ctx.stop, hook)
    reporter_for = ctx.reporter_for
    reporter = reporter_for(f"trial {number + 1}/{sweep.trials}") if reporter_for else None
    try:
        if run.config.exists() and _has_checkpoint(run, cfg):
            summary = resume_experiment(
                run.path, stop, reporter, tensorboard=ctx.tensorboard, on_validation=hook
            )
        else:
            if run.config.exists():
                _discard(run)
            summary = run_experiment(
                experiment,
                run.path,
                stop=stop,
                reporter=reporter,
                tensorboard=ctx.tensorboard,
                on_validation=hook,
            )
    except DivergedError as err:  # a bad region of the space: the search goes on
        warn(str(err))
        study.tell(trial, state=TrialState.FAIL)
        return "diverged"
    if summary["status"] == "completed":
        if summary["best"] is None:
            study.tell(trial, state=TrialState.FAIL)
            return "failed"
        study.tell(trial, summary["best"]["value"])
        return "completed"
    if hook.pruned:
        summary["status"] = "pruned"
        run.write_summary(summary)
        study.tell(trial, state=TrialState.PRUNED)
        return "pruned"
    return "interrupted"  # left RUNNING: the next `dlcore sweep` continues it


def _row(trial, root: pathlib.Path) -> dict[str, Any]:
    run = RunDir(root / f"trial-{trial.number:03d}")
    summary = (run.read_summary() if run.summary.exists() else None) or {}
    state = trial.state.name.lower()
    default = {"running": "interrupted", "fail": "failed"}.get(state, state)
    final = summary.get("final", {})
    return {
        "trial": trial.number,
        "assignment": trial.user_attrs.get("assignment", trial.params),
        "run_dir": str(run.path),
        "status": summary.get("status", default),
        "state": state,
        "best": summary.get("best"),
        "val": final.get("val"),
        "test": final.get("test"),
        "intermediate": {str(k): v for k, v in sorted(trial.intermediate_values.items())},
    }


def ranked(rows: list[dict[str, Any]], maximize: bool) -> list[dict[str, Any]]:
    """Finished trials by best val value, then pruned ones (best before they stopped),
    then the rest in trial order."""

    def by_value(status):
        group = [r for r in rows if r["status"] == status and r["best"] is not None]
        return sorted(group, key=lambda r: r["best"]["value"], reverse=maximize)

    first = by_value("completed") + by_value("pruned")
    return first + [r for r in rows if r not in first]


def run_optuna_sweep(
    raw: dict,
    source: str,
    sweep_dir: str | pathlib.Path | None = None,
    stop=NEVER_STOP,
    reporter_for=None,
    tensorboard: bool = True,
) -> dict[str, Any]:
    """Runs (or continues) an optuna sweep; returns the ranked results (also in sweep.json).

    Args:
      raw: the experiment's raw config (``--set`` applied) with an optuna ``[sweep]``.
      source: where it came from, for error lines.
      sweep_dir: where trials, ``optuna.db``, ``sweep.json`` and ``history.png`` go
        (default ``runs/<name>-sweep-<time>``); an existing one is continued.
      stop: polled by each trial; a stop ends the sweep after checkpointing.
      reporter_for: ``(title) -> Reporter`` for each trial's progress.
      tensorboard: write TensorBoard events in every trial's run directory.

    Raises:
      ConfigError: a bad space, metric or value, before the sweep directory is made.
    """
    base = validate(copy.deepcopy(raw), source)
    sweep = base.sweep
    task = check_space(raw, base, source).task
    # (build checked it: sweep.metric is each trial's train.best_metric)
    metric = sweep.metric or base.train.best_metric or task.default_metric
    maximize = task.metric_modes[metric] == "max"
    root = pathlib.Path(sweep_dir or default_run_path(f"{base.name}-sweep"))
    if not (root / "optuna.db").exists() and any(root.glob("trial-*")):
        raise RunDirError(f"{root}: holds a grid or random sweep; pick another --sweep-dir")
    make_dirs(root, "sweep directory")  # an existing one is continued
    study = open_study(root, base, metric, maximize, source)
    ctx = _Sweep(raw, base, source, root, metric, stop, reporter_for, tensorboard)
    while (nxt := None if stop.requested else next_trial(study, sweep)) is not None:
        if _run_trial(study, *nxt, ctx) == "interrupted":
            break
    trials = study.get_trials(deepcopy=False)
    unfinished = len(trials) < sweep.trials or any(t.state == TrialState.RUNNING for t in trials)
    rows = ranked([_row(t, root) for t in trials], maximize)
    result = {
        "status": "interrupted" if unfinished else "completed",
        "sweep_dir": str(root),
        "metric": metric,
        "maximize": maximize,
        "method": sweep.method,
        "sampler": type(study.sampler).__name__,
        "pruner": sweep.pruner_name,
        "storage": str(root / "optuna.db"),
        "study": base.name,
        "trials": rows,
        "total_trials": sweep.trials,
        "history": str(root / "history.png"),
    }
    title = f"{base.name}: {sweep.method} sweep, {sweep.pruner_name} pruning"
    plot_history(rows, root / "history.png", metric, maximize, title)
    write_atomic(root / "sweep.json", strict_json(result, indent=2) + "\n")
    return result
