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
import time
from typing import Any

import optax

from dlcore.config.experiment import ExperimentConfig
from dlcore.config.loading import ConfigError, load_raw, set_path, validate
from dlcore.engine.loop import fit
from dlcore.engine.population import fit_population, member_scale
from dlcore.engine.signals import NEVER_STOP
from dlcore.experiment import build, resume_experiment, run_experiment
from dlcore.optim import build_optimizer, find_plateau
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
) -> dict[str, Any]:
    """Runs (or continues) every trial; returns the ranked results (also in sweep.json).

    Args:
      path: experiment TOML with a ``[sweep]`` table.
      overrides: ``--set`` overrides applied to every trial.
      sweep_dir: where trials go (default ``runs/<name>-sweep-<time>``).
      stop: polled by each trial; a stop ends the sweep after checkpointing.
      reporter_for: ``(title) -> Reporter`` for each trial's progress.
    """
    raw, _ = load_raw(path, overrides)
    trials = trial_configs(raw, str(path))
    # Every trial is built (and checked against its data) once, before any trains.
    built = [build(cfg, str(path)) for _, cfg in trials]
    base = trials[0][1]
    root = pathlib.Path(sweep_dir or default_run_path(f"{raw['name']}-sweep"))
    make_dirs(root, "sweep directory")  # an existing one is continued
    rows, status = [], "completed"
    for i, ((assignment, _), experiment) in enumerate(zip(trials, built, strict=True)):
        run = RunDir(root / f"trial-{i:03d}")
        reporter = reporter_for(f"trial {i + 1}/{len(trials)}") if reporter_for else None
        if run.config.exists():
            summary = resume_experiment(run.path, stop=stop, reporter=reporter)
        else:
            summary = run_experiment(experiment, run.path, stop=stop, reporter=reporter)
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


VMAP_FIELDS = ("seed", "optimizer.learning_rate")


def run_population_sweep(
    path: str | pathlib.Path,
    overrides: list[str] = (),
    sweep_dir: str | pathlib.Path | None = None,
    compare: bool = False,
) -> dict[str, Any]:
    """Trains every trial of a seeds/learning-rates sweep at once with ``vmap``.

    With ``compare``, the same trials are then trained one after another in this process
    and both wall times are reported, so the speed-up is measured in one run.

    Raises:
      ConfigError: if the space varies anything but seed and learning rate, or the config
        uses a feature population training does not support.
    """
    raw, _ = load_raw(path, overrides)
    source = str(path)
    trials = trial_configs(raw, source)
    base = trials[0][1]
    others = [k for k in base.sweep.space if k not in VMAP_FIELDS]
    if others:
        raise ConfigError(
            source,
            [
                (
                    "sweep.space",
                    f"--vmap trains many {' and '.join(VMAP_FIELDS)}"
                    f" values at once; {others[0]!r} changes the "
                    "program (run it without --vmap)",
                )
            ],
        )
    if base.train.early_stopping_patience is not None:
        raise ConfigError(
            source,
            [
                (
                    "train.early_stopping_patience",
                    "not supported with --vmap (members stop together)",
                )
            ],
        )
    if find_plateau(base.optimizer.schedule) is not None:
        raise ConfigError(source, [("optimizer.schedule", "plateau is not supported with --vmap")])
    seeds = [cfg.seed for _, cfg in trials]
    rates = [cfg.optimizer.learning_rate for _, cfg in trials]

    def unit_rate_chain(section):  # each member's rate comes in through member_scale
        unit = section.model_copy(update={"learning_rate": 1.0})
        return optax.chain(build_optimizer(unit), member_scale())

    # The members are spread over the devices: build checks that they divide, not the batch.
    experiment = build(base, source, make_optimizer=unit_rate_chain, members=len(trials))
    task = experiment.task
    # Made before training, so a directory that cannot be made costs no training.
    root = pathlib.Path(sweep_dir or default_run_path(f"{raw['name']}-vmap"))
    make_dirs(root, "sweep directory")
    population = fit_population(task, experiment.data, base.train, seeds, rates)
    metric = base.train.best_metric or task.default_metric
    maximize = task.metric_modes[metric] == "max"
    rows = [
        {"trial": i, "assignment": a, "status": "completed", **m}
        for i, ((a, _), m) in enumerate(zip(trials, population.members, strict=True))
    ]
    result = {
        "status": "completed",
        "method": f"{base.sweep.method} (vmap)",
        "metric": metric,
        "maximize": maximize,
        "trials": sorted(rows, key=lambda r: r["best"]["value"], reverse=maximize),
        "total_trials": len(trials),
        "timing": {"vmap": population.timing},
        "traces": population.traces,
    }
    if compare:
        t0 = time.perf_counter()
        sequential = []
        for _, cfg in trials:
            trial = build(cfg, source)
            sequential.append(fit(trial.task, trial.data, cfg.train, cfg.seed))
        seq_wall = time.perf_counter() - t0
        seq_train = sum(r.timing["train_s"] for r in sequential)
        result["timing"]["sequential"] = {"wall_s": seq_wall, "train_s": seq_train}
        result["timing"]["speedup_wall"] = seq_wall / population.timing["wall_s"]
        result["timing"]["speedup_train"] = seq_train / population.timing["train_s"]
        for row, r in zip(rows, sequential, strict=True):
            row["sequential_val"] = r.final["val"]
    result["sweep_dir"] = str(root)
    write_atomic(root / "sweep.json", strict_json(result, indent=2) + "\n")
    return result
