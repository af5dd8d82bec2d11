"""Building an experiment once: a validated config in, its data and task out, with every
check that needs the data done before anything is written to disk.

    config -> data (and its description) -> task (its models, losses, optax chains)
"""

import dataclasses
from collections.abc import Callable

import jax
import optax

from dlcore.config.errors import ConfigError, FieldError
from dlcore.config.experiment import ExperimentConfig
from dlcore.config.section import Section
from dlcore.data.buckets import bucket_order
from dlcore.data.cache import cached
from dlcore.data.dataset import Dataset
from dlcore.data.needs import first_unmet, fitting
from dlcore.data.registry import load_dataset
from dlcore.engine.sharding import check_data_parallel, device_count
from dlcore.engine.task import Task
from dlcore.experiment import transfer
from dlcore.experiment.memory import check_data, check_model
from dlcore.optim import build_optimizer, find_plateau
from dlcore.optim.freezing import FreezePatternError
from dlcore.tasks.context import BuildContext, check_sections
from dlcore.tasks.registry import TASKS


@dataclasses.dataclass(frozen=True)
class Experiment:
    """A built experiment: what ``dlcore run`` and ``dlcore sweep`` pass on.

    Attributes:
      cfg: the validated config.
      source: the file its errors name.
      data: the data set.
      task: the task, with its models and chains.
    """

    cfg: ExperimentConfig
    source: str
    data: Dataset
    task: Task


def build(
    cfg: ExperimentConfig,
    source: str = "config",
    make_optimizer: Callable[[Section], optax.GradientTransformation] | None = None,
    warm_start: bool = True,
    members: int = 1,
) -> Experiment:
    """Data set and task for a config, after the checks that need the data.

    Args:
      cfg: a validated experiment config.
      source: file name used in error messages.
      make_optimizer: builds each optax chain from its section (population training
        wraps :func:`dlcore.optim.build_optimizer` to give each member its learning rate).
      warm_start: load the ``[init]`` source run's parameters into the task's initial
        state (:mod:`dlcore.experiment.transfer`); False when a checkpoint of this run
        will replace that state anyway (resume, eval).
      members: a population's size (its members, not the batch, are spread over
        ``train.devices``).

    Raises:
      ConfigError: when fields are individually valid but do not fit the data or the task.
    """
    try:
        data = _load_data(cfg.data)
        spec = data.spec()
        if cfg.train.batch_size > len(data.train):
            raise FieldError(
                "train.batch_size",
                f"{cfg.train.batch_size} is larger than the training split "
                f"({len(data.train)} examples of {cfg.data.name})",
            )
        available = jax.device_count()
        devices = device_count(cfg.train.devices, available)
        check_data_parallel(
            devices,
            available,
            cfg.train.batch_size,
            members,
            cfg.train.shard_params,
            jax.process_count(),
        )
        problem = first_unmet(cfg.task.needs(), spec)
        if problem is not None:
            others = fitting({n: e.config().needs for n, e in TASKS.items()}, spec)
            raise FieldError(
                "task.name", f"{cfg.task.name} {problem}; tasks that fit: {', '.join(others)}"
            )
        check_sections(cfg)
        ctx = BuildContext(cfg, spec, make_optimizer or build_optimizer)
        try:
            task = cfg.task.build(ctx)
        except FieldError:
            raise
        except ValueError as err:
            raise FieldError("task", str(err)) from None
        _check_metrics(cfg, task)
        if cfg.train.bucket_by is not None and members > 1:
            raise FieldError("train.bucket_by", "a population's batches need one shape; unset it")
        order = task.make_order(len(data.train), cfg.train.batch_size, cfg.seed)
        bucket_order(order, data, cfg.train.bucket_by, cfg.train.bucket_widths)  # its checks
        model_field = "model" if cfg.model is not None else "models"
        try:  # shapes only: initializes the models (whose layers check their output sizes)
            # and the chains (which check freeze patterns), and sizes the state without
            # allocating it
            check_model(model_field, task, data.train.rows(slice(0, cfg.train.batch_size)))
        except FieldError:
            raise
        except FreezePatternError as err:
            raise FieldError(f"optimizer.{err.field}", str(err)) from None
        except ValueError as err:  # e.g. a layer that shrinks a feature map below 1x1
            named = f"{cfg.model.name} {err}" if cfg.model is not None else str(err)
            raise FieldError(model_field, named) from None
        if cfg.init is not None and warm_start:
            example = data.train.rows(slice(0, cfg.train.batch_size))
            task = transfer.warm_start(cfg.init, task, example, cfg.seed)
    except FieldError as err:
        raise ConfigError(source, [(err.field, err.message)]) from None
    return Experiment(cfg, source, data, task)


def _load_data(data_cfg: Section) -> Dataset:
    """The data set, after checking that it fits in memory; a generator's complaint about
    its settings becomes a config error naming ``data``."""
    check_data(data_cfg)
    try:
        return cached(data_cfg, lambda: load_dataset(data_cfg))
    except FieldError:  # e.g. a split fraction that leaves a split empty
        raise
    except ValueError as err:
        raise FieldError("data", str(err)) from None
    except MemoryError:
        raise FieldError("data", "the data set does not fit in memory") from None


def _check_metrics(cfg: ExperimentConfig, task: Task) -> None:
    """The metrics the config names (best checkpoint, plateau schedule) must exist."""
    reported = ", ".join(sorted(task.metric_modes))
    metric = cfg.train.best_metric
    if metric is not None and metric not in task.metric_modes:
        raise FieldError(
            "train.best_metric", f"unknown metric {metric!r}; {cfg.task.name} reports: {reported}"
        )
    plateau = find_plateau(cfg.optimizer.schedule)
    if plateau is None:
        return
    watched = plateau.metric or cfg.train.best_metric or task.default_metric
    if watched not in task.metric_modes:
        raise FieldError(
            "optimizer.schedule.metric",
            f"unknown metric {watched!r}; {cfg.task.name} reports: {reported}",
        )
    mode = task.metric_modes[watched]
    if plateau.mode != mode:
        raise FieldError(
            "optimizer.schedule.mode",
            f"{watched} is better {'larger' if mode == 'max' else 'smaller'}; set mode = {mode!r}",
        )
