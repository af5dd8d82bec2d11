"""TensorBoard event files in a run directory, written through tensorboardX.

A run's :class:`EventLog` sits behind :meth:`dlcore.runs.run_dir.RunDir.append_metrics`:
every record that goes to ``metrics.jsonl`` also becomes scalars, tagged
``<split>/<metric>`` (``train/loss``, ``val/accuracy``) at the record's training step. When
the run ends it adds the run's PNGs (``curves.png`` and the task's report figures) as
images, and the hyper-parameters (the resolved config, flattened) with the final and best
metrics for TensorBoard's HParams tab; the resolved config is also a text summary
(``config``) from the first write on. View them with ``tensorboard --logdir runs``.

Values that ``metrics.jsonl`` records as ``null`` (NaN, +-inf) are skipped: a chart has
no point there. A resumed run truncates ``metrics.jsonl`` to its checkpoint's step ``s``;
its new event file starts with ``purge_step = s + 1``, so TensorBoard drops the older
files' events from that step on and no step is shown twice.

Events are written synchronously by tensorboardX's ``EventsWriter`` (no writer thread):
a write that fails (disk full) is a :class:`~dlcore.runs.errors.RunIOError` (exit status
4) at the write, like any other run file's. tensorboardX is imported on the first write
only (``dlcore --help`` never loads it).
"""

import math
import pathlib
import sys
from typing import Any

from dlcore.runs.errors import RunIOError

__all__ = ["EVENTS_GLOB", "EventLog", "flat_hparams", "result_metrics"]

EVENTS_GLOB = "events.out.tfevents.*"  # the files tensorboardX writes (one per process start)
_NOT_METRICS = ("step", "epoch", "split")
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# PNG colour type -> TensorBoard colorspace (1 grey, 2 grey+alpha, 3 RGB, 4 RGBA)
_COLORSPACE = {0: 1, 2: 3, 3: 3, 4: 2, 6: 4}


def _import_tensorboardx() -> None:
    """Imports tensorboardX without torch.

    Importing any part of tensorboardX runs its ``__init__``, whose ``writer`` module tries
    ``import torch`` only to accept torch tensors; dlcore passes floats and bytes, and
    importing torch would add ~1.5 s to every run's start. A ``None`` entry in
    ``sys.modules`` makes that one import fail fast; an already imported torch is kept.
    """
    if "torch" in sys.modules or "tensorboardX" in sys.modules:
        import tensorboardX  # noqa: F401

        return
    sys.modules["torch"] = None  # type: ignore[assignment]
    try:
        import tensorboardX  # noqa: F401
    finally:
        del sys.modules["torch"]


def _finite_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _png_size(data: bytes) -> tuple[int, int, int] | None:
    """``(height, width, colorspace)`` from a PNG's IHDR chunk; None if not a PNG."""
    if len(data) < 26 or not data.startswith(_PNG_SIGNATURE) or data[12:16] != b"IHDR":
        return None
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    return height, width, _COLORSPACE.get(data[25], 3)


def flat_hparams(config: dict[str, Any], prefix: str = "") -> dict[str, bool | int | float | str]:
    """A config dump flattened to ``dotted.key: value`` for TensorBoard's HParams tab.

    Numbers, strings and booleans stay as they are, lists become their JSON-like text, None
    (an unset option) is left out.

    Example:
      >>> flat_hparams({"optimizer": {"name": "adam", "learning_rate": 0.01}, "init": None})
      {'optimizer.name': 'adam', 'optimizer.learning_rate': 0.01}
    """
    out: dict[str, bool | int | float | str] = {}
    for key, value in config.items():
        if isinstance(value, dict):
            out.update(flat_hparams(value, f"{prefix}{key}."))
        elif isinstance(value, list | tuple):
            out[f"{prefix}{key}"] = str(list(value))
        elif value is not None:
            out[f"{prefix}{key}"] = value
    return out


class EventLog:
    """The TensorBoard events of one run directory (process 0 only: followers get none).

    The event file is opened on the first write, so a run that writes nothing leaves none
    behind, and :meth:`truncate` (called by a resume before training) can still set where
    the new file takes over.

    Args:
      path: the run directory; the event files go directly into it, so
        ``tensorboard --logdir runs`` names each run by its directory.
      config_text: the resolved ``config.toml``, shown as text at the first step written.

    Raises:
      RunIOError: from any method that writes, when the file cannot be written.
    """

    def __init__(self, path: str | pathlib.Path, config_text: str = ""):
        self.path = pathlib.Path(path)
        self.config_text = config_text
        self._file = None
        self._purge_step: int | None = None

    def _write(self, summary, step: int) -> None:
        """One event holding ``summary`` (a tensorboardX ``Summary``) at ``step``."""
        from tensorboardX.proto.event_pb2 import Event

        self._event(Event(summary=summary, step=step))

    def _event(self, event) -> None:
        import time

        event.wall_time = time.time()
        try:
            self._open().write_event(event)
        except OSError as err:
            raise RunIOError(f"{self.path}: cannot write TensorBoard events: {err}") from None

    def _open(self):
        if self._file is not None:
            return self._file
        _import_tensorboardx()
        from tensorboardX.event_file_writer import EventsWriter
        from tensorboardX.proto.event_pb2 import Event, SessionLog
        from tensorboardX.summary import text

        start = self._purge_step or 0  # a fresh run starts at step 0
        # One file per start, named so that two files of one second sort in order.
        try:
            self._file = EventsWriter(str(self.path / "events"), f".step{start:010d}")
        except OSError as err:
            raise RunIOError(f"{self.path}: cannot write TensorBoard events: {err}") from None
        if self._purge_step is not None:  # TensorBoard drops older events from here on
            self._event(Event(step=start, session_log=SessionLog(status=SessionLog.START)))
        if self.config_text:
            fenced = "    " + self.config_text.replace("\n", "\n    ")  # Markdown code
            self._write(text("config", fenced), start)
        return self._file

    def truncate(self, last_step: int) -> None:
        """Events after ``last_step`` will be logged again: the next file purges them."""
        if self._file is None:
            self._purge_step = last_step + 1

    def scalars(self, records: list[dict[str, Any]]) -> None:
        """``<split>/<metric>`` scalars of metrics records at their ``step``; a list value
        (per class) gives ``<split>/<metric>/<i>``; non-finite values are skipped."""
        self._open()
        from tensorboardX.proto.summary_pb2 import Summary

        for record in records:
            split, values = record.get("split", "train"), []
            for name, value in record.items():
                if name in _NOT_METRICS:
                    continue
                items = enumerate(value) if isinstance(value, list) else [(None, value)]
                for i, v in items:
                    tag = f"{split}/{name}" if i is None else f"{split}/{name}/{i}"
                    if _finite_number(v):
                        values.append(Summary.Value(tag=tag, simple_value=float(v)))
            if values:
                self._write(Summary(value=values), int(record["step"]))

    def images(self, paths: list[pathlib.Path], step: int) -> None:
        """The PNG files as images tagged ``figures/<stem>`` (``figures/curves``), stored
        as they are (no decoding: TensorBoard shows the PNG bytes)."""
        self._open()
        from tensorboardX.proto.summary_pb2 import Summary

        for path in paths:
            data = path.read_bytes()
            size = _png_size(data)
            if size is None:
                continue
            height, width, colorspace = size
            image = Summary.Image(
                height=height, width=width, colorspace=colorspace, encoded_image_string=data
            )
            self._write(
                Summary(value=[Summary.Value(tag=f"figures/{path.stem}", image=image)]), step
            )

    def hparams(
        self, hparams: dict[str, bool | int | float | str], metrics: dict[str, Any], step: int
    ) -> None:
        """The run's hyper-parameters and its result metrics (HParams tab); each finite
        metric is also a scalar at ``step`` (tags ``hparams/...``), which the tab reads."""
        self._open()
        from tensorboardX.proto.summary_pb2 import Summary
        from tensorboardX.summary import hparams as hparams_summaries

        finite = {k: float(v) for k, v in metrics.items() if _finite_number(v)}
        for summary in hparams_summaries(hparams, finite):  # experiment, start, end
            self._write(summary, step)
        values = [Summary.Value(tag=tag, simple_value=v) for tag, v in finite.items()]
        if values:
            self._write(Summary(value=values), step)

    def flush(self) -> None:
        """Puts what was written on disk (the loop calls it before each checkpoint)."""
        if self._file is not None:
            try:
                self._file.flush()
            except OSError as err:
                raise RunIOError(f"{self.path}: cannot write TensorBoard events: {err}") from None

    def close(self) -> None:
        """Writes everything out and closes the file (the next write opens a new one)."""
        if self._file is not None:
            file, self._file = self._file, None
            try:
                file.close()
            except OSError as err:
                raise RunIOError(f"{self.path}: cannot write TensorBoard events: {err}") from None


def result_metrics(summary: dict[str, Any]) -> dict[str, Any]:
    """The HParams tab's metrics of a run summary: ``hparams/best_<split>_<metric>`` of
    the best validation pass and ``hparams/<split>_<metric>`` of the final evaluation."""
    out: dict[str, Any] = {}
    best = summary.get("best")
    if isinstance(best, dict) and best.get("metric") is not None:
        out[f"hparams/best_val_{best['metric']}"] = best.get("value")
    for split, values in (summary.get("final") or {}).items():
        for name, value in values.items():
            out[f"hparams/{split}_{name}"] = value
    return out
