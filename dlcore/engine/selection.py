"""Model selection on the validation metric: best-so-far tracking and early stopping."""

import dataclasses
import math
from typing import Any


@dataclasses.dataclass
class BestTracker:
    """Follows one validation metric across passes.

    A pass improves when its value is strictly better than the best so far (larger for
    ``maximize``, smaller otherwise; the sign of the metric does not matter). With a
    ``patience``, training should stop after that many passes in a row without improvement.
    The tracker's whole state is in :meth:`to_meta`, which goes into every checkpoint, so a
    resumed run stops at exactly the same pass.

    Example:
      >>> t = BestTracker("accuracy", maximize=True, patience=2)
      >>> [t.observe(v, step) for step, v in enumerate([0.5, 0.7, 0.6, 0.65])]
      [True, True, False, False]
      >>> t.should_stop, t.best
      (True, {'metric': 'accuracy', 'value': 0.7, 'step': 1})
    """

    metric: str
    maximize: bool
    patience: int | None = None
    best: dict[str, Any] | None = None
    stale: int = 0

    def observe(self, value: float, step: int) -> bool:
        """Records one validation pass; returns True if it is the new best (a non-finite
        value never is: it counts as a pass without improvement)."""
        if not math.isfinite(value):
            self.stale += 1
            return False
        if self.best is None or (
            value > self.best["value"] if self.maximize else value < self.best["value"]
        ):
            self.best = {"metric": self.metric, "value": value, "step": step}
            self.stale = 0
            return True
        self.stale += 1
        return False

    @property
    def should_stop(self) -> bool:
        return self.patience is not None and self.stale >= self.patience

    def to_meta(self) -> dict[str, Any]:
        return {"best": self.best, "stale": self.stale}

    def load_meta(self, meta: dict[str, Any]) -> None:
        self.best = meta.get("best")
        self.stale = meta.get("stale", 0)
