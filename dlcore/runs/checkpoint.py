"""Checkpoints: the one module that talks to orbax-checkpoint.

A checkpoint is a train-state pytree plus a small JSON ``meta`` dict (data position,
pending metrics, best-so-far) plus the content digest of both
(:mod:`dlcore.runs.integrity`), all three items of one orbax save. Orbax writes each step
to a temporary directory and renames it when complete, so a process killed mid-save
leaves the previous checkpoint as the latest committed one, and a committed digest always
describes the values committed with it. Arrays are stored with tensorstore; nothing is
ever pickled.

A restore proves what it returns: the stored shapes must match the state asked for (else
:class:`~dlcore.runs.errors.RunDirError` names each differing path), and the digest of the
values read must equal the committed one (else :class:`DamagedCheckpointError`).
:func:`restore_newest_intact` falls back from a damaged checkpoint to the newest intact
one. A save that fails for an I/O reason raises :class:`~dlcore.runs.errors.RunIOError`
at that save or, when it failed in the background, at the next save or wait. A store made
with ``background=True`` (the training loop's) runs each whole save, digest included, in
a thread of its own (:mod:`dlcore.runs.background`), on a copy of the state taken when
the save starts. Orbax and absl log lines go to ``orbax.log`` beside the checkpoint
directory.
"""

import copy
import os
import pathlib
import re
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import flax.serialization
import jax
import jax.numpy as jnp
import orbax.checkpoint as ocp

from dlcore.engine.distributed import is_writer
from dlcore.runs.background import InFlight, join_running
from dlcore.runs.errors import RunDirError, RunIOError, warn
from dlcore.runs.integrity import (
    DIGEST_ALGORITHM,
    content_digest,
    structure,
    structure_differences,
)
from dlcore.runs.orbax_log import leftovers_collected, log_to

_OS_ERROR_CODE = re.compile(r"os_error_code='(\d+)'")


class DamagedCheckpointError(RunDirError):
    """One committed checkpoint step cannot be used: its files are unreadable or its
    values differ from the ones committed (a structure mismatch is not damage)."""

    def __init__(self, directory: pathlib.Path, step: int, reason: str):
        super().__init__(f"checkpoint step {step} in {directory} is damaged ({reason})")
        self.directory, self.step, self.reason = directory, step, reason


def _os_error_text(err: BaseException) -> str | None:
    """``"[Errno 28] No space left on device"`` for an OS error anywhere in ``err``'s
    chain (tensorstore reports one as ``os_error_code='28'`` in its message), else None."""
    seen = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        if isinstance(err, OSError) and err.errno is not None:
            return f"[Errno {err.errno}] {err.strerror}"
        code = _OS_ERROR_CODE.search(str(err))
        if code:
            return f"[Errno {code[1]}] {os.strerror(int(code[1]))}"
        err = err.__cause__ or err.__context__
    return None


def _short_reason(err: BaseException, step_dir: pathlib.Path) -> str:
    """``"unreadable: NOT_FOUND in state/d/8e4c..."``: the innermost error, with the file a
    tensorstore error names (relative to the step) and its last detail."""
    while (err.__cause__ or err.__context__) is not None:
        err = err.__cause__ or err.__context__
    text = (str(err).strip().splitlines() or [""])[0].split(" [tensorstore_spec=")[0]
    status = re.match(r"([A-Z_]+): (.*)", text)
    if status is None:
        text = f"{type(err).__name__}: {text}" if text else type(err).__name__
    else:
        files = re.findall(r'local file "([^"]+)"', status[2])
        detail = status[2][status[2].rfind('"') + 1 :].lstrip(": ") if files else status[2]
        where = f" in {files[-1].replace(f'{step_dir}/', '')}" if files else ""
        text = status[1] + where + (f": {detail}" if detail else "")
    text = text.replace(";", ",")  # the warning separates steps with "; "
    return "unreadable: " + (text if len(text) <= 200 else text[:197] + "...")


class CheckpointStore:
    """Committed checkpoints in one directory; the newest ``keep`` are kept.

    Example:
      >>> store = CheckpointStore(run_dir / "checkpoints" / "latest", keep=3)
      >>> store.save(100, state, {"epoch": 2})
      >>> state, meta = store.restore(template_state)
    """

    def __init__(self, directory: pathlib.Path, keep: int, background: bool = False):
        self.shown = pathlib.Path(directory)  # as given, for messages
        self.directory = self.shown.absolute()
        self._in_flight: int | None = None  # the step whose save may still be running
        # Several processes hash and save in collectives, in the order of their main
        # threads: only a single process may move the whole save to a thread.
        one = background and jax.process_count() == 1
        name = f"dlcore save {self.directory}"
        join_running(name)  # a store left behind by an error may still be writing here
        self._saves = InFlight(name) if one else None
        self.log_file = self.directory.parent / "orbax.log"
        if is_writer():
            try:
                self.directory.mkdir(parents=True, exist_ok=True)
            except OSError as err:
                text = _os_error_text(err) or str(err)
                raise RunIOError(f"{self.shown}: could not create it: {text}") from None
        # Processes 1, 2, ... of a multi-process run write no file but their shards; orbax
        # (which makes the step directories from process 0) logs the same steps there.
        log_to(self.log_file if is_writer() else pathlib.Path(os.devnull))
        self._manager = ocp.CheckpointManager(
            self.directory,
            options=ocp.CheckpointManagerOptions(
                max_to_keep=keep,
                create=True,
                # A directory that cannot be made fails the save call itself, and leaves
                # no background writer waiting (minutes) for a signal that never comes.
                async_options=ocp.AsyncOptions(create_directories_asynchronously=False),
                # A run saves into two stores (latest, best) at the same step; in a
                # multi-process run their barriers must not answer each other.
                multiprocessing_options=ocp.options.MultiprocessingOptions(
                    barrier_sync_key_prefix=f"dlcore-{self.directory.name}"
                ),
            ),
            item_handlers={
                "state": ocp.StandardCheckpointHandler(),
                "meta": ocp.JsonCheckpointHandler(),
                "digest": ocp.JsonCheckpointHandler(),
            },
        )

    def latest_step(self) -> int | None:
        return self._manager.latest_step()

    def all_steps(self) -> list[int]:
        return sorted(self._manager.all_steps())

    def save(self, step: int, state: Any, meta: dict) -> None:
        """Starts saving ``state`` at ``step`` (device-to-host copy now, disk write async;
        in the background, everything but a device copy of the state).

        Saving a step that already exists (a replay after a crash) replaces it.

        Raises:
          RunIOError: if this save, or the previous one still running in the background,
            failed to write (disk full, permissions, a file where a directory should be).
        """
        target = flax.serialization.to_state_dict(state)
        if self._saves is None:
            self._settle()
            self._write(step, target, meta)
            return
        # The loop donates ``state`` to its next step: the thread saves a copy of it.
        target, meta = jax.tree.map(jnp.copy, target), copy.deepcopy(meta)
        self._saves.start(lambda: (self._write(step, target, meta), self._settle()))

    def _write(self, step: int, target: Any, meta: dict) -> None:
        digest = {"algorithm": DIGEST_ALGORITHM, "content": content_digest(target, meta)}
        try:
            if step in self._manager.all_steps():
                self._manager.delete(step)
            self._manager.save(
                step,
                args=ocp.args.Composite(
                    state=ocp.args.StandardSave(target),
                    meta=ocp.args.JsonSave(meta),
                    digest=ocp.args.JsonSave(digest),
                ),
                force=True,
            )
        except Exception as err:
            self._raise_io_error(step, err)
        self._in_flight = step

    def wait(self) -> None:
        """Blocks until every started save is committed to disk.

        Raises:
          RunIOError: if a started save failed to write.
        """
        if self._saves is not None:
            self._saves.wait()
        self._settle()

    def _settle(self) -> None:
        try:
            self._manager.wait_until_finished()
        except Exception as err:
            self._raise_io_error(self._in_flight, err)
        self._in_flight = None

    def _raise_io_error(self, step: int | None, err: Exception) -> None:
        text = _os_error_text(err)
        if text is None:
            raise err  # not an I/O failure: a bug, with its traceback
        # The run stops now; the coroutines orbax abandoned are collected at exit.
        warnings.filterwarnings("ignore", "coroutine .* was never awaited", RuntimeWarning)
        what = "save" if step is None else f"save step {step}"
        raise RunIOError(f"{self.shown}: could not {what}: {text}") from None

    def restore(self, template: Any, step: int | None = None) -> tuple[Any, dict]:
        """Loads ``step`` (default: latest) into the structure and dtypes of ``template``
        and proves the values are the ones committed.

        A checkpoint written before digests were recorded (no ``digest`` item in its
        commit) is accepted when it restores without error: nothing can prove its bytes.

        Raises:
          FileNotFoundError: if the directory holds no committed checkpoint.
          RunDirError: if the checkpoint's stored shapes differ from ``template``'s (one
            line naming every differing path and both shapes).
          DamagedCheckpointError: if it cannot be read or its digest differs.
        """
        if self._saves is not None:
            self.wait()  # a save still in flight is committed before anything is read
        step = self.latest_step() if step is None else step
        if step is None:
            raise FileNotFoundError(f"no committed checkpoint in {self.shown}")
        step_dir = self.directory / str(step)
        if not step_dir.is_dir() or not any(step_dir.iterdir()):
            raise DamagedCheckpointError(self.shown, step, "empty step directory")
        target = flax.serialization.to_state_dict(template)
        abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, target)
        self._check_structure(step, abstract)
        restored = self._read(step, abstract)
        if "digest" in restored:
            stored = restored["digest"]
            actual = content_digest(restored["state"], restored["meta"])
            if not isinstance(stored, Mapping) or stored.get("content") != actual:
                raise DamagedCheckpointError(self.shown, step, "content digest differs")
        state = flax.serialization.from_state_dict(template, restored["state"])
        return state, dict(restored["meta"])

    def _check_structure(self, step: int, abstract: Any) -> None:
        reason = None
        with leftovers_collected():
            try:
                stored = self._manager.item_metadata(step)["state"]
                stored = structure(getattr(stored, "tree", stored))
            except Exception as err:
                reason = _short_reason(err, self.directory / str(step))
        if reason is not None:
            raise DamagedCheckpointError(self.shown, step, reason)
        differences = structure_differences(stored, structure(abstract))
        if differences:
            raise RunDirError(
                f"{self.shown}: the config no longer matches checkpoint step {step}: "
                + "; ".join(differences)
            )

    def _read(self, step: int, abstract: Any) -> dict:
        step_dir = self.directory / str(step)
        reason, restored = None, None
        with leftovers_collected():
            try:
                handlers = self._manager.metadata(step).item_handlers or {}
            except Exception:
                handlers = {}  # unreadable commit metadata: the item directories decide
            has_digest = (step_dir / "digest").is_dir()
            if "digest" in handlers and not has_digest:
                reason = "content digest missing"
            else:
                items = {
                    "state": ocp.args.StandardRestore(abstract),
                    "meta": ocp.args.JsonRestore(),
                }
                if has_digest:
                    items["digest"] = ocp.args.JsonRestore()
                try:
                    restored = dict(self._manager.restore(step, args=ocp.args.Composite(**items)))
                except Exception as err:
                    reason = _short_reason(err, step_dir)
        if reason is not None:
            raise DamagedCheckpointError(self.shown, step, reason)
        return restored

    def close(self) -> None:
        """Waits for started saves (see :meth:`wait`) and releases the directory."""
        try:
            self.wait()
        finally:
            self._manager.close()


def restore_newest_intact(
    primary: CheckpointStore,
    template: Any,
    fallbacks: Sequence[CheckpointStore] = (),
    warn=warn,
) -> tuple[Any, dict]:
    """The newest checkpoint that proves intact: ``primary``'s newest step, else every
    other step of ``primary`` and ``fallbacks``, newest first (``primary`` first on ties).

    Each damaged step skipped is named, with its reason, in one ``warn`` line that also
    names the step used, e.g. ``checkpoint step 400 in runs/x/checkpoints/latest is
    damaged (content digest differs); using step 300``.

    Raises:
      FileNotFoundError: if ``primary`` holds no committed checkpoint.
      RunDirError: if none is intact (one line naming each step and why), or the newest
        readable one does not match ``template``'s structure (never skipped: an older
        checkpoint would not match either).
    """
    newest = primary.latest_step()
    if newest is None:
        raise FileNotFoundError(f"no committed checkpoint in {primary.shown}")
    stores = [primary, *fallbacks]
    rest = sorted((-step, i) for i, store in enumerate(stores) for step in store.all_steps())
    order = [(newest, primary)]
    order += [(-s, stores[i]) for s, i in rest if (-s, i) != (newest, 0)]
    damaged: list[DamagedCheckpointError] = []
    for step, store in order:
        try:
            state, meta = store.restore(template, step)
        except DamagedCheckpointError as err:
            damaged.append(err)
            continue
        if damaged:
            where = "" if store is primary else f" in {store.shown}"
            warn("; ".join(str(d) for d in damaged) + f"; using step {step}{where}")
        return state, meta
    raise RunDirError(
        f"{primary.shown}: no intact checkpoint: "
        + "; ".join(f"step {d.step} in {d.directory} ({d.reason})" for d in damaged)
    )
