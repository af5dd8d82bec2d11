"""Opening a finished or stopped run: its config rebuilt, its data checked against the
recorded fingerprint, and its state at the ``latest`` or ``best`` checkpoint.

``dlcore resume``, ``dlcore eval`` and ``dlcore sample`` all come through
:func:`restore_run`, so they agree on what a run directory holds.
"""

import dataclasses
import pathlib
from typing import Any

import jax

from dlcore.config.loading import load_config
from dlcore.engine.state import TrainState
from dlcore.experiment.build import Experiment, build
from dlcore.runs.checkpoint import CheckpointStore, restore_newest_intact
from dlcore.runs.run_dir import CHECKPOINTS, RunDir, RunDirError

__all__ = ["CHECKPOINTS", "RestoredRun", "load_checkpoint", "restore_run", "template_state"]


@dataclasses.dataclass(frozen=True)
class RestoredRun:
    """A run directory opened for reading or continuing.

    Attributes:
      run: its files.
      experiment: the experiment rebuilt from its ``config.toml``.
      state: the state of the asked checkpoint (None when none was asked for).
      meta: that checkpoint's metadata (data position, best so far...).
    """

    run: RunDir
    experiment: Experiment
    state: TrainState | None
    meta: dict[str, Any]


def template_state(experiment: Experiment) -> TrainState:
    """A freshly initialised state: the structure, shapes and dtypes checkpoints load into."""
    cfg, data = experiment.cfg, experiment.data
    example = data.train.rows(slice(0, cfg.train.batch_size))
    return experiment.task.init(jax.random.PRNGKey(cfg.seed), example)


def load_checkpoint(
    run: RunDir, experiment: Experiment, checkpoint: str = "latest"
) -> tuple[TrainState, dict[str, Any]]:
    """The state and metadata of a run's newest intact ``latest`` or ``best`` checkpoint.

    The asked directory's newest step is tried first; if it is damaged (unreadable, or its
    values differ from the committed digest) one warning line names it and the newest
    intact step of either directory is used (see
    :func:`dlcore.runs.checkpoint.restore_newest_intact`).

    Raises:
      RunDirError: if that checkpoint directory holds no committed checkpoint, none of
        the run's checkpoints is intact, or the config no longer builds the state the
        checkpoint holds (naming each differing parameter and both shapes).
    """
    keep = experiment.cfg.train.keep_checkpoints
    paths = {"latest": run.latest, "best": run.best}
    primary = CheckpointStore(paths[checkpoint], keep=keep)
    others = [
        CheckpointStore(path, keep=keep)
        for name, path in paths.items()
        if name != checkpoint and path.is_dir()
    ]
    try:
        return restore_newest_intact(primary, template_state(experiment), others)
    except FileNotFoundError:
        raise RunDirError(f"{run.path}: no committed {checkpoint} checkpoint") from None
    finally:
        for store in (primary, *others):
            store.close()


def restore_run(
    run_dir: str | pathlib.Path,
    checkpoint: str | None = "latest",
    devices: int | str | None = 1,
) -> RestoredRun:
    """Opens ``run_dir``: config, data fingerprint check, and state at ``checkpoint``.

    Args:
      run_dir: a directory made by ``dlcore run``.
      checkpoint: ``"latest"``, ``"best"``, or None for config and data only.
      devices: ``train.devices`` for this process (N, ``"all"``), whatever the run trained
        on; checkpoints load onto any device count. None keeps the config's. Reading a
        run (eval, sample, viz) uses the default, 1 device; the state is then whole on it.

    Raises:
      RunDirError: not a run directory, data that differ from the recorded ones, or no
        such checkpoint.
      ConfigError: if its config no longer validates or builds.
    """
    run = RunDir.existing(run_dir)
    cfg = load_config(run.config, [f"train.devices={devices}"] if devices is not None else [])
    experiment = build(cfg, str(run.config), warm_start=False)  # its checkpoints hold the state
    run.check_dataset(experiment.data.fingerprint())
    if checkpoint is None:
        return RestoredRun(run, experiment, None, {})
    state, meta = load_checkpoint(run, experiment, checkpoint)
    return RestoredRun(run, experiment, state, meta)
