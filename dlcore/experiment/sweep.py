"""Hyper-parameter search: every trial is a normal run directory, ranked on validation.

``dlcore sweep CONFIG`` reads the ``[sweep]`` section, builds one config per trial (the
base file, its ``--set`` overrides, then the trial's values), trains them one after another
under ``<sweep dir>/trial-NNN``, and writes ``sweep.json`` with the trials ranked by their
best validation metric. Test metrics are recorded per trial but never used to rank.
Running the same command with the same ``--sweep-dir`` again skips finished trials and
resumes an interrupted one, so a stopped sweep loses no work.
"""

import copy
import pathlib
from typing import Any

from dlcore.config.experiment import ExperimentConfig
from dlcore.config.loading import ConfigError, load_raw, set_path, validate
from dlcore.config.sweep_space import OPTUNA_METHODS
from dlcore.engine.signals import NEVER_STOP
from dlcore.experiment import build, resume_experiment, run_experiment
from dlcore.runs.errors import RunDirError
from dlcore.runs.run_dir import RunDir, default_run_path, make_dirs, strict_json, write_atomic


def trial_configs(raw: dict, source: str) -> list[tuple[dict[str, Any], ExperimentConfig]]:
    """(assignment, validated config) for every trial of the raw config's ``[sweep]``.

    Raises:
      ConfigError: if there is no ``[sweep]`` section or a trial's config is invalid.
    """
    base_cfg = validate(copy.deepcopy(raw), source)
    if base_cfg.sweep is None:
        raise ConfigError(
            source,
            [("sweep", "missing; `dlcore sweep` needs a [sweep] table with a [sweep.space]")],
        )
    if base_cfg.sweep.method in OPTUNA_METHODS:  # dlcore.experiment.optuna_sweep runs them
        problem = f"{base_cfg.sweep.method!r} picks each trial from the finished ones (no --vmap)"
        raise ConfigError(source, [("sweep.method", problem)])
    trials = []
    for i, assignment in enumerate(base_cfg.sweep.assignments()):
        trial = copy.deepcopy(raw)
        trial["name"] = f"{base_cfg.name}-trial-{i:03d}"
        if base_cfg.sweep.metric is not None:
            set_path(trial, ["train", "best_metric"], base_cfg.sweep.metric, source)
        for key, value in assignment.items():
            set_path(trial, key.split("."), value, f"{source} [sweep.space] {key}")
        cfg = validate(trial, f"{source} (sweep trial {i}: {assignment})")
        trials.append((assignment, cfg))
    return trials


def run_sweep(
    path: str | pathlib.Path,
    overrides: list[str] = (),
    sweep_dir: str | pathlib.Path | None = None,
    stop=NEVER_STOP,
    reporter_for=None,
    tensorboard: bool = True,
) -> dict[str, Any]:
    """Runs (or continues) every trial; returns the ranked results (also in sweep.json).

    Args:
      path: experiment TOML with a ``[sweep]`` table.
      overrides: ``--set`` overrides applied to every trial.
      sweep_dir: where trials go (default ``runs/<name>-sweep-<time>``).
      stop: polled by each trial; a stop ends the sweep after checkpointing.
      reporter_for: ``(title) -> Reporter`` for each trial's progress.
      tensorboard: write TensorBoard events in every trial's run directory.
    """
    raw, _ = load_raw(path, overrides)
    sweep = validate(copy.deepcopy(raw), str(path)).sweep
    if sweep is not None and sweep.method in OPTUNA_METHODS:
        from dlcore.experiment.optuna_sweep import run_optuna_sweep  # imports optuna

        return run_optuna_sweep(raw, str(path), sweep_dir, stop, reporter_for, tensorboard)
    trials = trial_configs(raw, str(path))
    # Every trial is built (and checked against its data) once, before any trains.
    built = [build(cfg, str(path)) for _, cfg in trials]
    base = trials[0][1]
    root = pathlib.Path(sweep_dir or default_run_path(f"{raw['name']}-sweep"))
    if (root / "optuna.db").exists():  # its trial-NNN hold other assignments
        raise RunDirError(f"{root}: holds an optuna sweep (optuna.db); pick another --sweep-dir")
    make_dirs(root, "sweep directory")  # an existing one is continued
    rows, status = [], "completed"
    for i, ((assignment, _), experiment) in enumerate(zip(trials, built, strict=True)):
        run = RunDir(root / f"trial-{i:03d}")
        reporter = reporter_for(f"trial {i + 1}/{len(trials)}") if reporter_for else None
        if run.config.exists():
            summary = resume_experiment(
                run.path, stop=stop, reporter=reporter, tensorboard=tensorboard
            )
        else:
            summary = run_experiment(
                experiment, run.path, stop=stop, reporter=reporter, tensorboard=tensorboard
            )
        rows.append(
            {
                "trial": i,
                "assignment": assignment,
                "run_dir": str(run.path),
                "status": summary["status"],
                "best": summary["best"],
                "val": summary["final"].get("val"),
                "test": summary["final"].get("test"),
            }
        )
        if summary["status"] != "completed":
            status = "interrupted"
            break
    task = built[0].task
    metric = base.sweep.metric or base.train.best_metric or task.default_metric
    maximize = task.metric_modes[metric] == "max"
    done = [r for r in rows if r["best"] is not None]
    ranked = sorted(done, key=lambda r: r["best"]["value"], reverse=maximize)
    result = {
        "status": status,
        "sweep_dir": str(root),
        "metric": metric,
        "maximize": maximize,
        "method": base.sweep.method,
        "trials": ranked + [r for r in rows if r["best"] is None],
        "total_trials": len(trials),
    }
    write_atomic(root / "sweep.json", strict_json(result, indent=2) + "\n")
    return result


# `--vmap` lives in its own module; imported here so `dlcore.experiment.sweep` offers both.
from dlcore.experiment.population_sweep import run_population_sweep  # noqa: E402, F401
