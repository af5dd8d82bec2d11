"""The run directory: everything one training run leaves behind.

<run>/config.toml           the resolved config (every default explicit); edit it to change
                            a stopped run (``dlcore resume`` applies and reports the edits)
<run>/config.resolved.json  the config the run last trained with, as JSON: written when the
                            run is made and again when a resume has applied edits, so the
                            next resume can name what changed (old -> new)
<run>/dataset.json          the data set's fingerprint (sizes, SHA-256), checked by resume,
                            eval and sample
<run>/metrics.jsonl         one JSON object per logged training window or evaluation
<run>/checkpoints/latest, <run>/checkpoints/best   orbax checkpoints
<run>/summary.json          status, final metrics, best validation, timings
<run>/curves.png            loss and metric curves
<run>/events.out.tfevents.* TensorBoard events: the metrics, PNGs, config and
                            hyper-parameters (``dlcore.runs.tensorboard``; not with
                            ``--no-tensorboard``)
<run>/snapshots/            per-epoch pictures of tasks that draw them (a GAN's samples)
<run>/.lock                 present while a process writes the run (``dlcore.runs.lock``)

Every JSON file here is strict JSON (:func:`strict_json`): a non-finite float is written as
``null``, never as the ``NaN``/``Infinity`` that other parsers reject. Files that are
rewritten (summary, dataset, resolved config, truncated metrics) are replaced atomically.
"""

import datetime
import json
import math
import os
import pathlib
import stat
import tempfile
from typing import Any

from dlcore.runs.errors import RunDirError, warn
from dlcore.runs.lock import LOCK_NAME, lock_holder

__all__ = [
    "CHECKPOINTS",
    "RunDir",
    "RunDirError",
    "config_changes",
    "default_run_path",
    "find_runs",
    "make_dirs",
    "remove_dirs",
    "strict_json",
    "warn",
    "write_atomic",
]

CHECKPOINTS = ("latest", "best")  # the checkpoint directories of a run (RunDir.latest, .best)


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def strict_json(value: Any, indent: int | None = None) -> str:
    """``json.dumps`` that writes NaN and +-inf as ``null`` (strict JSON, RFC 8259).

    Example:
      >>> strict_json({"loss": float("nan"), "acc": [1.0, float("inf")]})
      '{"loss": null, "acc": [1.0, null]}'
    """
    return json.dumps(_finite(value), indent=indent, allow_nan=False)


def write_atomic(path: pathlib.Path, text: str) -> None:
    """Replaces ``path`` with ``text`` so that readers (and a crash) see the old file or
    the new one, never a mix: written to a temporary file beside it, synced, renamed."""
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    tmp.replace(path)


def _stat(path: pathlib.Path, what: str) -> os.stat_result | None:
    """``os.stat`` of an existing path, None for a missing one; other OS errors (a name too
    long, a component that is a file) become a one-line RunDirError."""
    try:
        return path.stat()
    except FileNotFoundError:
        return None
    except OSError as err:
        raise RunDirError(f"{path}: cannot create the {what}: {_reason(err, path)}") from None


def _reason(err: OSError, path: pathlib.Path) -> str:
    name = err.filename
    if name is not None and pathlib.Path(name) != path:
        return f"{err.strerror} ({name})"
    return str(err.strerror or err)


def make_dirs(path: str | pathlib.Path, what: str = "run directory") -> list[pathlib.Path]:
    """Makes ``path`` and its missing parents; returns the directories it made.

    Raises:
      RunDirError: one line naming the path and the OS reason (a path component is a
        file, a name too long, a read-only or immutable parent...); whatever it made
        before failing is removed again.
    """
    path = pathlib.Path(path)
    missing = []
    probe = path
    while (st := _stat(probe, what)) is None and probe != probe.parent:
        missing.append(probe)
        probe = probe.parent
    if st is not None and probe == path and not stat.S_ISDIR(st.st_mode):
        raise RunDirError(f"{path}: cannot create the {what}: a file of that name exists")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        remove_dirs(missing)
        raise RunDirError(f"{path}: cannot create the {what}: {_reason(err, path)}") from None
    return missing


def remove_dirs(made: list[pathlib.Path]) -> None:
    """Removes directories :func:`make_dirs` made (deepest first), if still empty."""
    for directory in made:
        try:
            directory.rmdir()
        except OSError:
            pass  # another process put something there since: it is theirs now


def config_changes(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """``dotted.field: old -> new`` for every field that differs between two config dumps.

    Example:
      >>> config_changes({"optimizer": {"learning_rate": 0.01}},
      ...                {"optimizer": {"learning_rate": 0.001}})
      ['optimizer.learning_rate: 0.01 -> 0.001']
    """

    def flat(tree: dict, prefix: str = "") -> dict[str, Any]:
        out = {}
        for key, value in tree.items():
            if isinstance(value, dict):
                out.update(flat(value, f"{prefix}{key}."))
            else:
                out[f"{prefix}{key}"] = value
        return out

    a, b = flat(old), flat(new)
    shown = lambda key, tree: json.dumps(tree[key]) if key in tree else "(unset)"  # noqa: E731
    return [
        f"{key}: {shown(key, a)} -> {shown(key, b)}"
        for key in sorted(a.keys() | b.keys())
        if a.get(key, ...) != b.get(key, ...)
    ]


class RunDir:
    """Paths and small file operations of one run directory.

    Attributes:
      writer: whether this process writes the run's files (see :class:`FollowerRunDir`).
      events: where metrics records also go, or None: a
        :class:`dlcore.runs.tensorboard.EventLog` (``scalars``, ``truncate``, ``flush``)
        that ``dlcore run`` attaches unless ``--no-tensorboard``.
    """

    writer = True
    events = None

    def __init__(self, path: str | pathlib.Path):
        self.path = pathlib.Path(path)

    config = property(lambda self: self.path / "config.toml")
    resolved = property(lambda self: self.path / "config.resolved.json")
    metrics = property(lambda self: self.path / "metrics.jsonl")
    summary = property(lambda self: self.path / "summary.json")
    dataset = property(lambda self: self.path / "dataset.json")
    curves = property(lambda self: self.path / "curves.png")
    latest = property(lambda self: self.path / "checkpoints" / "latest")
    best = property(lambda self: self.path / "checkpoints" / "best")
    # per-epoch pictures of tasks that draw them (Task.snapshot); made by the first writer
    snapshots = property(lambda self: self.path / "snapshots")

    @classmethod
    def create(cls, path: str | pathlib.Path) -> "RunDir":
        """Makes a fresh run directory (an existing empty one is fine) that can be written.

        Raises:
          RunDirError: one line naming the path and why: it holds a run (or another
            process is writing it), it is a file, or it cannot be made or written (the
            OS reason). Nothing is left behind.
        """
        run = cls(path)
        st = _stat(run.path, "run directory")
        is_dir = st is not None and stat.S_ISDIR(st.st_mode)
        if is_dir and any(p.name != LOCK_NAME for p in run.path.iterdir()):
            holder = lock_holder(run.path)
            if holder is not None:
                raise RunDirError(
                    f"{run.path}: another dlcore process ({holder}) is writing this run directory"
                )
            raise RunDirError(
                f"{run.path}: run directory already exists and is not empty; "
                f"continue it with `dlcore resume {run.path}` or pick another --run-dir"
            )
        made = make_dirs(run.path)
        try:  # a directory that exists is not yet one that can be written (chattr +i, ro)
            tempfile.TemporaryFile(dir=run.path).close()
        except OSError as err:
            remove_dirs(made)
            raise RunDirError(
                f"{run.path}: cannot write the run directory: {err.strerror}"
            ) from None
        return run

    @classmethod
    def existing(cls, path: str | pathlib.Path) -> "RunDir":
        """Opens a run directory made by `dlcore run`."""
        run = cls(path)
        if not run.config.is_file():
            raise RunDirError(f"{run.path}: not a dlcore run directory (no config.toml)")
        return run

    def append_metrics(self, records: list[dict[str, Any]], durable: bool = True) -> None:
        """Appends records durably: a crash right after returns loses none of them.

        ``durable=False`` leaves the records in the OS's cache (a killed process loses
        none; a crashed machine may) until :meth:`sync_metrics`: the loop syncs before
        each checkpoint, so the lines a resume keeps are on disk, without an fsync per line.
        """
        if not records:
            return
        with self.metrics.open("a") as f:
            f.writelines(strict_json(r) + "\n" for r in records)
            f.flush()
            if durable:
                os.fsync(f.fileno())
        if self.events is not None:
            self.events.scalars(records)

    def sync_metrics(self) -> None:
        """Makes every appended record durable (see :meth:`append_metrics`)."""
        if self.metrics.exists():
            with self.metrics.open("a") as f:
                os.fsync(f.fileno())
        if self.events is not None:
            self.events.flush()

    def scan_metrics(self) -> tuple[list[dict[str, Any]], list[int]]:
        """Every readable record, and the numbers (from 1) of the lines that are not.

        A line is unreadable when it is not a JSON object with an integer ``step``: cut
        short by a kill, or damaged. Records after it are still read.
        """
        if not self.metrics.exists():
            return [], []
        records, bad = [], []
        for number, line in enumerate(self.metrics.read_text().splitlines(), 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                record = None
            if isinstance(record, dict) and isinstance(record.get("step"), int):
                records.append(record)
            else:
                bad.append(number)
        return records, bad

    def read_metrics(self) -> list[dict[str, Any]]:
        """All readable records, in file order (see :meth:`scan_metrics`)."""
        return self.scan_metrics()[0]

    def truncate_metrics(self, last_step: int) -> list[int]:
        """Keeps only readable records up to ``last_step`` (those after it will be logged
        again) and drops unreadable lines, naming them in one warning line.

        Returns:
          The numbers of the lines that could not be read.
        """
        records, bad = self.scan_metrics()
        if bad:
            s = "s" if len(bad) > 1 else ""
            numbers = ", ".join(map(str, bad))
            warn(f"{self.metrics}: skipped {len(bad)} unreadable line{s} (line{s} {numbers})")
        kept = [r for r in records if r["step"] <= last_step]
        write_atomic(self.metrics, "".join(strict_json(r) + "\n" for r in kept))
        if self.events is not None:
            self.events.truncate(last_step)
        return bad

    def write_dataset(self, fingerprint: dict[str, Any]) -> None:
        """Records the data set the run trains on (see ``Dataset.fingerprint``)."""
        write_atomic(self.dataset, strict_json(fingerprint, indent=2) + "\n")

    def check_dataset(self, fingerprint: dict[str, Any]) -> None:
        """Raises if the rebuilt data differ from the recorded ones (older runs: no record)."""
        if not self.dataset.is_file():
            return
        recorded = json.loads(self.dataset.read_text())
        if recorded.get("sha256") != fingerprint["sha256"]:
            raise RunDirError(
                f"{self.path}: the {fingerprint['name']!r} data rebuilt here differ from the "
                f"ones this run trained on (sizes {recorded.get('sizes')} -> "
                f"{fingerprint['sizes']}, sha256 {str(recorded.get('sha256'))[:12]} -> "
                f"{fingerprint['sha256'][:12]}); use the Python and packages that made the run"
            )

    def write_resolved(self, config: dict[str, Any]) -> None:
        """Records the config (a ``model_dump(mode="json")``) the run now trains with."""
        write_atomic(self.resolved, strict_json(config, indent=2) + "\n")

    def read_resolved(self) -> dict[str, Any] | None:
        """The config the run last trained with; None for runs made before it was kept."""
        return json.loads(self.resolved.read_text()) if self.resolved.is_file() else None

    def write_summary(self, summary: dict[str, Any]) -> None:
        write_atomic(self.summary, strict_json(summary, indent=2) + "\n")

    def read_summary(self) -> dict[str, Any] | None:
        return json.loads(self.summary.read_text()) if self.summary.exists() else None


class FollowerRunDir(RunDir):
    """A run directory as processes 1, 2, ... of a multi-process run see it: they read it
    and take part in its checkpoints (orbax writes each process's shards), but every
    other file is process 0's to write, so these writes do nothing."""

    writer = False

    def append_metrics(self, records: list[dict[str, Any]], durable: bool = True) -> None:
        pass

    def sync_metrics(self) -> None:
        pass

    def truncate_metrics(self, last_step: int) -> list[int]:
        return []

    def write_dataset(self, fingerprint: dict[str, Any]) -> None:
        pass

    def write_resolved(self, config: dict[str, Any]) -> None:
        pass

    def write_summary(self, summary: dict[str, Any]) -> None:
        pass


def default_run_path(name: str, root: str | pathlib.Path = "runs") -> pathlib.Path:
    """``runs/<name>-<UTC timestamp>``, unique to the second (a suffix breaks ties)."""
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%d-%H%M%S")
    path = pathlib.Path(root) / f"{name}-{stamp}"
    n = 1
    while path.exists():
        n += 1
        path = pathlib.Path(root) / f"{name}-{stamp}-{n}"
    return path


def find_runs(root: str | pathlib.Path = "runs") -> list[RunDir]:
    """Run directories under ``root``, oldest first."""
    root = pathlib.Path(root)
    if not root.is_dir():
        return []
    runs = [RunDir(p) for p in root.iterdir() if (p / "config.toml").is_file()]
    return sorted(runs, key=lambda r: r.config.stat().st_mtime)
