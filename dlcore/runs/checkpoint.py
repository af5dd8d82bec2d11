"""Checkpoints: the one module that talks to orbax-checkpoint.

A checkpoint is a train-state pytree plus a small JSON ``meta`` dict (data position,
pending metrics, best-so-far). Orbax writes each step to a temporary directory and renames
it when complete, so a process killed mid-save leaves the previous checkpoint as the latest
committed one. Arrays are stored with tensorstore; nothing is ever pickled.
"""

import pathlib
from typing import Any

import flax.serialization
import jax
import orbax.checkpoint as ocp


class CheckpointStore:
    """Committed checkpoints in one directory; the newest ``keep`` are kept.

    Example:
      >>> store = CheckpointStore(run_dir / "checkpoints" / "latest", keep=3)
      >>> store.save(100, state, {"epoch": 2})
      >>> state, meta = store.restore(template_state)
    """

    def __init__(self, directory: pathlib.Path, keep: int):
        self.directory = pathlib.Path(directory).absolute()
        self._manager = ocp.CheckpointManager(
            self.directory,
            options=ocp.CheckpointManagerOptions(max_to_keep=keep, create=True),
        )

    def latest_step(self) -> int | None:
        return self._manager.latest_step()

    def save(self, step: int, state: Any, meta: dict) -> None:
        """Starts saving ``state`` at ``step`` (device-to-host copy now, disk write async).

        Saving a step that already exists (a replay after a crash) replaces it.
        """
        if step in self._manager.all_steps():
            self._manager.wait_until_finished()
            self._manager.delete(step)
        self._manager.save(
            step,
            args=ocp.args.Composite(
                state=ocp.args.StandardSave(flax.serialization.to_state_dict(state)),
                meta=ocp.args.JsonSave(meta),
            ),
            force=True,
        )

    def restore(self, template: Any, step: int | None = None) -> tuple[Any, dict]:
        """Loads ``step`` (default: latest) into the structure and dtypes of ``template``.

        Raises:
          FileNotFoundError: if the directory holds no committed checkpoint.
        """
        step = self.latest_step() if step is None else step
        if step is None:
            raise FileNotFoundError(f"no committed checkpoint in {self.directory}")
        target = flax.serialization.to_state_dict(template)
        abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, target)
        restored = self._manager.restore(
            step,
            args=ocp.args.Composite(
                state=ocp.args.StandardRestore(abstract), meta=ocp.args.JsonRestore()
            ),
        )
        state = flax.serialization.from_state_dict(template, restored["state"])
        return state, dict(restored["meta"])

    def wait(self) -> None:
        """Blocks until every started save is committed to disk."""
        self._manager.wait_until_finished()

    def close(self) -> None:
        self._manager.close()
