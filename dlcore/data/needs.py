"""What a task or model needs from the data, checked against a :class:`DataSpec` before any
run directory exists (so ``lenet5`` on ``xor`` is a one-line config error, not a traceback).
"""

import dataclasses
from collections.abc import Callable, Iterable, Mapping, Sequence

from dlcore.data.dataset import DataSpec


@dataclasses.dataclass(frozen=True)
class Need:
    """One field a task or model reads.

    Attributes:
      field: the batch field, e.g. ``"x"``.
      roles: roles it may have (``dlcore.data.ROLES``).
      what: how to say it in an error, e.g. ``"integer class labels, one per example"``.
      ranks: per-example ranks accepted (``()`` = a scalar per example); None: any.

    Example:
      >>> Need("y", ("labels",), "class labels, one per example", ranks=(0,))
    """

    field: str
    roles: tuple[str, ...]
    what: str
    ranks: tuple[int, ...] | None = None

    def unmet(self, spec: DataSpec) -> str | None:
        """None if ``spec`` provides this field, else what is wrong."""
        got = spec.fields.get(self.field)
        if got is None:
            return f"needs a field {self.field!r} ({self.what}); {spec.name} has none"
        if got.role not in self.roles or (
            self.ranks is not None and len(got.shape) not in self.ranks
        ):
            return (
                f"needs {self.field} as {self.what}; {spec.name} has {self.field} {got.describe()}"
            )
        return None


def first_unmet(needs: Iterable[Need], spec: DataSpec) -> str | None:
    """The first need ``spec`` does not meet, or None."""
    for need in needs:
        problem = need.unmet(spec)
        if problem is not None:
            return problem
    return None


def fitting(candidates: Mapping[str, Callable[[], Sequence[Need]]], spec: DataSpec) -> list[str]:
    """The names among ``candidates`` (name -> its needs) whose needs ``spec`` meets."""
    return [name for name, needs in candidates.items() if first_unmet(needs(), spec) is None]
