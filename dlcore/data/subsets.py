"""Class subsets of labelled splits: the few-examples and disjoint-classes regimes that
transfer-learning experiments need (e.g. digits 0-4 as a source, 5-9 as a target)."""

from collections.abc import Sequence

import numpy as np

from dlcore.data.dataset import Split


def select_classes(split: Split, classes: Sequence[int]) -> Split:
    """The examples whose label ``y`` is in ``classes``, relabelled by their position there.

    Example:
      >>> s = select_classes(Split(np.arange(4.0), np.array([5, 0, 7, 5])), [7, 5])
      >>> s.x.tolist(), s.y.tolist()
      ([0.0, 2.0, 3.0], [1, 0, 1])
    """
    lookup = np.full(int(max(split.y.max(), max(classes))) + 1, -1, np.int32)
    lookup[np.asarray(classes)] = np.arange(len(classes), dtype=np.int32)
    keep = np.flatnonzero(lookup[split.y] >= 0)
    rows = split.rows(keep)
    rows["y"] = lookup[rows["y"]]
    return Split(**rows)


def cap_per_class(split: Split, per_class: int) -> Split:
    """The first ``per_class`` examples of each label, in their original order.

    Example:
      >>> cap_per_class(Split(np.arange(5.0), np.array([0, 1, 0, 0, 1])), 2).x.tolist()
      [0.0, 1.0, 2.0, 4.0]
    """
    seen: dict[int, int] = {}
    keep = []
    for i, label in enumerate(split.y.tolist()):
        if seen.get(label, 0) < per_class:
            seen[label] = seen.get(label, 0) + 1
            keep.append(i)
    return Split(**split.rows(np.asarray(keep, np.int64)))
