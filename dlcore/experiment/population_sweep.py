"""``dlcore sweep --vmap``: every trial of a sweep trained at once, as one compiled program.

A sweep whose trials differ only in values that keep every shape (a seed, a learning
rate, a momentum, a dropout rate, a penalty strength, a schedule's parameters, a
patience...) is one program with different numbers in it. Each trial becomes a member of
a :class:`dlcore.engine.population.PopulationTask`: its swept ``model``, ``models``,
``optimizer``, ``optimizers`` and ``task`` fields are put into a copy of the config as
traced per-member scalars, and the member task is built from that copy inside the
vmapped functions, so the task's modules and optax chains compute with the member's
values. ``seed`` gives the member its initialization, dropout keys and batch order;
``train.early_stopping_patience`` its own patience (a member that stops is frozen); a
plateau schedule keeps one factor per member, fed its own validation metric.

A key whose values would change a shape or the program's structure (a width, a batch
size, a model or optimizer name, a flag, the data) cannot be traced: it is refused with
one line naming it. Everything is checked by tracing once, before anything trains.
"""

import pathlib
import time
import warnings
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from dlcore.config.experiment import ExperimentConfig
from dlcore.config.loading import ConfigError, load_raw
from dlcore.data.dataset import DataSpec
from dlcore.engine.loop import fit
from dlcore.engine.members import select_members, split_active
from dlcore.engine.population import PopulationTask, fit_population
from dlcore.engine.task import Task
from dlcore.experiment.build import build
from dlcore.experiment.run import validation_hook
from dlcore.optim import PlateauState, find_plateau, plateau_observe
from dlcore.runs.run_dir import default_run_path, make_dirs, strict_json, write_atomic
from dlcore.tasks.context import BuildContext

# Sections the task is built from: their numbers may be traced.
TRACED_SECTIONS = ("model", "models", "optimizer", "optimizers", "task")
# Keys the loop itself gives each member (not part of the built task).
MEMBER_KEYS = ("seed", "train.early_stopping_patience")


def config_value(cfg: Any, key: str) -> Any:
    """The value at a dotted key of a validated config (``models.encoder.dropout``)."""
    node = cfg
    for part in key.split("."):
        node = node[part] if isinstance(node, dict) else getattr(node, part)
    return node


def with_values(cfg: Any, values: dict[str, Any]) -> Any:
    """A copy of ``cfg`` with each dotted key set to its value, without validation (so the
    values may be tracers); untouched sections are shared, not copied."""

    def put(node: Any, parts: list[str], value: Any) -> Any:
        if not parts:
            return value
        head, rest = parts[0], parts[1:]
        if isinstance(node, dict):
            return {**node, head: put(node[head], rest, value)}
        return node.model_copy(update={head: put(getattr(node, head), rest, value)})

    for key, value in values.items():
        cfg = put(cfg, key.split("."), value)
    return cfg


def member_builder(cfg: ExperimentConfig, spec: DataSpec):
    """``{key: traced scalar} -> Task``: the task built from ``cfg`` with those values."""

    def build_member(values: dict[str, jax.Array]) -> Task:
        traced = with_values(cfg, values)
        with warnings.catch_warnings():
            # Sections build their modules from model_dump(), which warns that a float
            # field holds a tracer; the tracer is passed on as is, which is the point.
            warnings.filterwarnings("ignore", "Pydantic serializer warnings", UserWarning)
            return traced.task.build(BuildContext(traced, spec))

    return build_member


class PlateauHook:
    """The loop's hook feeding each member's plateau factor its own validation value; a
    frozen member's factor stays (a stopped trial sees no more passes).

    Attributes:
      history: ``(step, [M] factors)`` after each validation pass.
    """

    def __init__(self, watched: str):
        self.watched = watched
        self.observe = jax.jit(jax.vmap(plateau_observe))
        self.history: list[tuple[int, list[float]]] = []

    def __call__(self, state, val):
        seen = state.replace(
            opt_state=self.observe(state.opt_state, jnp.asarray(val[self.watched]))
        )
        active, _ = split_active(state)
        state = seen if active is None else select_members(active, seen, state)
        step = int(np.asarray(state.step).reshape(-1)[0])  # members step together
        self.history.append((step, plateau_factors(state.opt_state)))
        return state

    def member_history(self, m: int, stopped_at: int | None) -> list[float]:
        """Member ``m``'s factor after each pass it saw (up to its early stop)."""
        return [f[m] for s, f in self.history if stopped_at is None or s <= stopped_at]


def plateau_factors(opt_state: Any) -> list[float]:
    """Each member's plateau factor (the first plateau state of a stacked optimizer state)."""
    found = [n for n in jax.tree.leaves(opt_state, is_leaf=_is_plateau) if _is_plateau(n)]
    return np.asarray(found[0].scale, np.float64).reshape(-1).tolist()


def _is_plateau(node: Any) -> bool:
    return isinstance(node, PlateauState)


def population_plateau_hook(cfg: ExperimentConfig, task: Task) -> PlateauHook | None:
    """The per-member plateau hook of a config, or None without a plateau schedule."""
    plateau = find_plateau(cfg.optimizer.schedule)
    if plateau is None:
        return None
    return PlateauHook(plateau.metric or cfg.train.best_metric or task.default_metric)


def _refuse(source: str, field: str, message: str) -> ConfigError:
    return ConfigError(source, [(field, message)])


def _first_untraceable(population: PopulationTask, example: dict) -> Exception | None:
    """The error tracing the population's init, step and evaluation raises, if any."""
    m = population.members
    try:
        state = jax.eval_shape(population.init, jax.random.PRNGKey(0), example)
        stacked = jax.tree.map(lambda x: jax.ShapeDtypeStruct((m, *x.shape), x.dtype), example)
        jax.eval_shape(population.train_step, state, stacked)
        jax.eval_shape(population.eval_step, state, example)
    except Exception as err:  # noqa: BLE001 - any failure to trace means "not batchable"
        return err
    return None


def check_population(
    trials: list, source: str, experiment
) -> tuple[dict[str, tuple], list[int | None]]:
    """The traced values per key and the patience per member, after refusing every key
    that changes shapes or structure.

    Raises:
      ConfigError: naming the first key that cannot be batched.
    """
    base = trials[0][1]
    keys = list(base.sweep.space)
    if base.init is not None:
        raise _refuse(source, "init", "--vmap does not warm-start members; remove [init]")
    for key in keys:
        values = [config_value(cfg, key) for _, cfg in trials]
        numeric = all(isinstance(v, int | float) and not isinstance(v, bool) for v in values)
        if key in MEMBER_KEYS:
            if key != "seed" and not all(isinstance(v, int) for v in values):
                raise _refuse(source, "sweep.space", f"{key!r}: --vmap needs integer values")
            continue
        if key.split(".")[0] not in TRACED_SECTIONS or not numeric:
            raise _refuse(source, "sweep.space", _not_batchable(key))
    traced = [k for k in keys if k not in MEMBER_KEYS]
    hyper = {k: tuple(config_value(cfg, k) for _, cfg in trials) for k in traced}
    seeds = tuple(cfg.seed for _, cfg in trials)
    example = experiment.data.train.rows(slice(0, base.train.batch_size))
    build_member = member_builder(base, experiment.data.spec())
    whole = PopulationTask(experiment.task, seeds, None, hyper, build_member)
    if _first_untraceable(whole, example) is not None:
        for key in traced:  # name the key: trace each alone
            alone = PopulationTask(experiment.task, seeds, None, {key: hyper[key]}, build_member)
            err = _first_untraceable(alone, example)
            if err is not None:
                raise _refuse(source, "sweep.space", f"{_not_batchable(key)}: {_reason(err)}")
        raise _refuse(source, "sweep.space", "these keys together cannot be batched by --vmap")
    return hyper, [cfg.train.early_stopping_patience for _, cfg in trials]


def _not_batchable(key: str) -> str:
    return (
        f"{key!r} changes shapes or the program's structure, so --vmap cannot train its "
        "values at once (run the sweep without --vmap)"
    )


def _reason(err: Exception) -> str:
    return f"{type(err).__name__}: {str(err).strip().splitlines()[0][:120]}"


def run_population_sweep(
    path: str | pathlib.Path,
    overrides: list[str] = (),
    sweep_dir: str | pathlib.Path | None = None,
    compare: bool = False,
) -> dict[str, Any]:
    """Trains every trial of a sweep at once with ``vmap`` (see the module docstring).

    With ``compare``, the same trials are then trained one after another in this process
    and both wall times are reported, so the speed-up is measured in one run.

    Raises:
      ConfigError: if a swept key changes shapes or structure, or the config uses a
        feature population training does not support.
    """
    from dlcore.experiment.sweep import trial_configs  # sweep.py re-exports this module

    raw, _ = load_raw(path, overrides)
    source = str(path)
    trials = trial_configs(raw, source)
    base = trials[0][1]
    # The members are spread over the devices: build checks that they divide, not the batch.
    experiment = build(base, source, members=len(trials))
    hyper, patience = check_population(trials, source, experiment)
    task = experiment.task
    plateau = population_plateau_hook(base, task)
    # Made before training, so a directory that cannot be made costs no training.
    root = pathlib.Path(sweep_dir or default_run_path(f"{raw['name']}-vmap"))
    make_dirs(root, "sweep directory")
    population = fit_population(
        task,
        experiment.data,
        base.train,
        [cfg.seed for _, cfg in trials],
        hyper=hyper,
        build_member=member_builder(base, experiment.data.spec()),
        member_patience=patience,
        on_validation=plateau,
    )
    metric = base.train.best_metric or task.default_metric
    maximize = task.metric_modes[metric] == "max"
    rows = [
        {
            "trial": i,
            "assignment": a,
            "status": "completed",
            "learning_rate": cfg.optimizer.learning_rate,
            **m,
            **(
                {}
                if plateau is None
                else {"plateau_factors": plateau.member_history(i, _stopped_at(m))}
            ),
        }
        for i, ((a, cfg), m) in enumerate(zip(trials, population.members, strict=True))
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
        _compare(trials, source, rows, result["timing"], population.timing)
    result["sweep_dir"] = str(root)
    write_atomic(root / "sweep.json", strict_json(result, indent=2) + "\n")
    return result


def _stopped_at(member: dict) -> int | None:
    stop = member["early_stopping"]
    return None if stop is None else stop["early_stopped_at"]


def _compare(trials: list, source: str, rows: list, timing: dict, vmap: dict) -> None:
    """Trains the trials one by one (as ``dlcore run`` would, without a run directory)
    and adds their wall time, the speed-ups and each trial's val metrics."""
    t0 = time.perf_counter()
    sequential = []
    for _, cfg in trials:
        trial = build(cfg, source)
        hook = validation_hook(cfg, trial.task)
        sequential.append(fit(trial.task, trial.data, cfg.train, cfg.seed, on_validation=hook))
    seq_wall = time.perf_counter() - t0
    seq_train = sum(r.timing["train_s"] for r in sequential)
    timing["sequential"] = {"wall_s": seq_wall, "train_s": seq_train}
    timing["speedup_wall"] = seq_wall / vmap["wall_s"]
    timing["speedup_train"] = seq_train / vmap["train_s"]
    for row, r in zip(rows, sequential, strict=True):
        row["sequential_val"] = r.final["val"]
