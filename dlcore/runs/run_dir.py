"""The run directory: everything one training run leaves behind.

<run>/config.toml       the resolved config (every default explicit)
<run>/dataset.json      the data set's fingerprint (sizes, SHA-256), checked on resume/eval/sample
<run>/metrics.jsonl     one JSON object per logged training window or evaluation
<run>/checkpoints/latest, <run>/checkpoints/best   orbax checkpoints
<run>/summary.json      status, final metrics, best validation, timings
<run>/curves.png        loss and metric curves
"""

import datetime
import json
import os
import pathlib
from typing import Any


class RunDirError(ValueError):
    """A run directory that cannot be used as asked (exists, missing, incomplete)."""


class RunDir:
    """Paths and small file operations of one run directory."""

    def __init__(self, path: str | pathlib.Path):
        self.path = pathlib.Path(path)

    config = property(lambda self: self.path / "config.toml")
    metrics = property(lambda self: self.path / "metrics.jsonl")
    summary = property(lambda self: self.path / "summary.json")
    dataset = property(lambda self: self.path / "dataset.json")
    curves = property(lambda self: self.path / "curves.png")
    latest = property(lambda self: self.path / "checkpoints" / "latest")
    best = property(lambda self: self.path / "checkpoints" / "best")

    @classmethod
    def create(cls, path: str | pathlib.Path) -> "RunDir":
        """Makes a fresh run directory; refuses one that already holds a run."""
        run = cls(path)
        if run.path.exists() and any(run.path.iterdir()):
            raise RunDirError(
                f"{run.path}: run directory already exists and is not empty; "
                f"continue it with `dlcore resume {run.path}` or pick another --run-dir"
            )
        run.path.mkdir(parents=True, exist_ok=True)
        return run

    @classmethod
    def existing(cls, path: str | pathlib.Path) -> "RunDir":
        """Opens a run directory made by `dlcore run`."""
        run = cls(path)
        if not run.config.is_file():
            raise RunDirError(f"{run.path}: not a dlcore run directory (no config.toml)")
        return run

    def append_metrics(self, records: list[dict[str, Any]]) -> None:
        """Appends records durably: a crash right after returns loses none of them."""
        if not records:
            return
        with self.metrics.open("a") as f:
            f.writelines(json.dumps(r) + "\n" for r in records)
            f.flush()
            os.fsync(f.fileno())

    def read_metrics(self) -> list[dict[str, Any]]:
        """All complete records (a line cut short by a kill is ignored)."""
        if not self.metrics.exists():
            return []
        records = []
        for line in self.metrics.read_text().splitlines():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                break
        return records

    def truncate_metrics(self, last_step: int) -> None:
        """Keeps only records up to ``last_step``: those after it will be logged again."""
        kept = [r for r in self.read_metrics() if r["step"] <= last_step]
        tmp = self.metrics.with_suffix(".tmp")
        tmp.write_text("".join(json.dumps(r) + "\n" for r in kept))
        tmp.replace(self.metrics)

    def write_dataset(self, fingerprint: dict[str, Any]) -> None:
        """Records the data set the run trains on (see ``Dataset.fingerprint``)."""
        self.dataset.write_text(json.dumps(fingerprint, indent=2) + "\n")

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

    def write_summary(self, summary: dict[str, Any]) -> None:
        tmp = self.summary.with_suffix(".tmp")
        tmp.write_text(json.dumps(summary, indent=2) + "\n")
        tmp.replace(self.summary)

    def read_summary(self) -> dict[str, Any] | None:
        return json.loads(self.summary.read_text()) if self.summary.exists() else None


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
