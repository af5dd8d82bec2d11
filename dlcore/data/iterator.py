"""Shuffled mini-batch order that is a pure function of (seed, epoch).

Because the order never depends on how far a previous process got, a run resumed from a
checkpoint at (epoch, index) sees exactly the batches an uninterrupted run would.
"""

import dataclasses
from collections.abc import Callable, Iterator
from typing import ClassVar

import numpy as np

from dlcore.data.dataset import Split


def _all(rows: np.ndarray) -> np.ndarray:
    return rows


@dataclasses.dataclass(frozen=True)
class Position:
    """Where training stands in the data: batch ``index`` of ``epoch`` is the next to run."""

    epoch: int
    index: int


@dataclasses.dataclass(frozen=True)
class BatchOrder:
    """Mini-batch indices for each epoch; the incomplete last batch is dropped.

    Attributes:
      num_examples: size of the training split.
      batch_size: examples per batch.
      seed: shuffling seed.
      order: "shuffled" (a fresh permutation every epoch) or "streams": the examples are
        read as ``batch_size`` contiguous streams and batch n holds the n-th example of
        every stream, the same in every epoch (truncated BPTT carries state from batch n
        to batch n + 1 of the same stream).

    Example:
      >>> order = BatchOrder(num_examples=10, batch_size=4, seed=0)
      >>> order.steps_per_epoch
      2
      >>> order.indices(epoch=3).shape
      (2, 4)
    """

    num_examples: int
    batch_size: int
    seed: int
    order: str = "shuffled"
    batch_shapes: ClassVar[int] = 1  # all batches have one shape (unlike dlcore.data.buckets)

    def __post_init__(self):
        if self.order not in ("shuffled", "streams"):
            raise ValueError(f"batch order must be 'shuffled' or 'streams'; got {self.order!r}")
        if self.batch_size > self.num_examples:
            raise ValueError(
                f"train.batch_size ({self.batch_size}) is larger than the training split "
                f"({self.num_examples} examples)"
            )

    @property
    def steps_per_epoch(self) -> int:
        return self.num_examples // self.batch_size

    def permutation(self, epoch: int) -> np.ndarray:
        """The shuffled example order of ``epoch``; depends only on (seed, epoch)."""
        return np.random.default_rng([self.seed, epoch]).permutation(self.num_examples)

    def indices(self, epoch: int) -> np.ndarray:
        """Example indices of every batch of ``epoch``, ``[steps_per_epoch, batch_size]``."""
        used = self.steps_per_epoch * self.batch_size
        if self.order == "streams":
            # Stream b is examples [b * S, (b + 1) * S); batch n takes example n of each.
            return np.arange(used).reshape(self.batch_size, self.steps_per_epoch).T.copy()
        return self.permutation(epoch)[:used].reshape(self.steps_per_epoch, self.batch_size)

    def position(self, step: int) -> Position:
        """The data position after ``step`` updates."""
        return Position(*divmod(step, self.steps_per_epoch))

    def batches(
        self, split: Split, start: Position, part: Callable[[np.ndarray], np.ndarray] = _all
    ) -> Iterator[tuple[Position, dict]]:
        """Yields (position, batch of every field) from ``start`` to the end of its epoch.

        ``part`` picks the rows of each batch this process reads (a process of a
        multi-process run reads only those its devices train on); all of them by default.
        """
        for index, rows in enumerate(self.indices(start.epoch)[start.index :], start.index):
            yield Position(start.epoch, index), split.rows(part(rows))


@dataclasses.dataclass(frozen=True)
class StackedOrder:
    """The orders of a population's members side by side: batch rows ``[M, B]``.

    Every member keeps its own (seed, epoch) permutation, so member m sees exactly the
    batches of a single run with its seed.
    """

    orders: tuple[BatchOrder, ...]
    batch_shapes: ClassVar[int] = 1

    @property
    def steps_per_epoch(self) -> int:
        return self.orders[0].steps_per_epoch

    def indices(self, epoch: int) -> np.ndarray:
        """``[steps_per_epoch, M, batch_size]``."""
        return np.stack([o.indices(epoch) for o in self.orders], axis=1)

    def position(self, step: int) -> Position:
        return self.orders[0].position(step)

    def batches(
        self, split: Split, start: Position, part: Callable[[np.ndarray], np.ndarray] = _all
    ) -> Iterator[tuple[Position, dict]]:
        for index, rows in enumerate(self.indices(start.epoch)[start.index :], start.index):
            yield Position(start.epoch, index), split.rows(part(rows))
