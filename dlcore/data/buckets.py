"""Length bucketing: batches of sequences of similar length, trimmed to their bucket's width.

A variable-length token field ``[N, T]`` is padded to the longest sequence ``T``; a batch of
short sequences then spends most of its steps on padding. :class:`BucketedOrder` sorts the
training examples into buckets by their length in one field and trims every batch to its
bucket's width, so a batch of length-5 strings runs 5 recurrent steps, not 64.

Lengths. The pad value of a field (:func:`pad_value`) is ``info["pad"]`` when the data set
declares it (an int, or ``{field: int}``), else 0 for a vocabulary that starts with
``<pad>`` (the seq2seq token convention, :mod:`dlcore.seq2seq.protocol`), else -1 (the
sequence data sets: ids are >= 0 and ``-1`` follows each sequence's end). The length of an
example is the position of its last non-pad entry + 1 (a step of a ``[T, D]`` field is real
when any of its D entries is), so a pad value inside a sequence never shortens it.

Buckets. Widths are given, or chosen as the ``k`` quantiles of the training lengths
(``np.quantile(..., method="inverted_cdf")`` at ``1/k, 2/k, ..., 1``: real lengths, the
last the longest, deterministic). An example goes to the narrowest width >= its length.
Buckets are then merged upward until each holds at least one batch (a bucket with fewer
examples than ``batch_size`` joins the next wider one; a short widest bucket joins the one
below it, which takes its width), so every example can be trained on.

Order. Each epoch, with one generator seeded by ``(seed, epoch)``: a permutation within
each bucket, cut into full batches (the ``n_b mod B`` left over are dropped, a different
few every epoch: at most one incomplete batch per bucket), then the batches of all buckets
shuffled together. The order is a pure function of (seed, epoch), so a resumed run sees
exactly the batches of an uninterrupted one.

Trimming. The bucketed field is cut to ``[B, w]``; so is every other field with the same
length axis (``shape[1] == T``) whose entries past each example's bucket width are all its
own pad value on the whole training split (per-step targets ``y`` of a tagging task). A
field that would lose a real entry (a seq2seq target as long as its source by chance) keeps
its full width. Evaluation batches are not bucketed.
"""

import dataclasses
from collections.abc import Callable, Iterator, Sequence

import numpy as np

from dlcore.config.errors import FieldError
from dlcore.data.dataset import Dataset, Split
from dlcore.data.iterator import BatchOrder, Position, StackedOrder

FIELD, WIDTHS = "train.bucket_by", "train.bucket_widths"


def _all(rows: np.ndarray) -> np.ndarray:
    return rows


def pad_value(data: Dataset, field: str) -> int | float:
    """The value that pads ``field`` after each sequence's end (see the module docstring);
    0.0 for a real-valued field no data set declares."""
    declared = data.info.get("pad")
    if isinstance(declared, dict) and field in declared:
        return declared[field]
    if isinstance(declared, int | float) and not isinstance(declared, bool):
        return declared
    if not np.issubdtype(data.train[field].dtype, np.integer):
        return 0.0
    vocab = data.info.get("vocab")
    return 0 if vocab is not None and len(vocab) and vocab[0] == "<pad>" else -1


def sequence_lengths(values: np.ndarray, pad: int | float) -> np.ndarray:
    """Last non-pad position + 1 of every row of ``values`` ``[N, T, ...]``; ``[N]`` int.

    Example:
      >>> sequence_lengths(np.array([[3, 0, 4, 0], [0, 0, 0, 0]]), pad=0)
      array([3, 0])
    """
    real_NxT = (values != pad).reshape(len(values), values.shape[1], -1).any(axis=-1)
    from_end = np.argmax(real_NxT[:, ::-1], axis=1)
    return np.where(real_NxT.any(axis=1), values.shape[1] - from_end, 0).astype(np.int64)


def quantile_widths(lengths: np.ndarray, buckets: int) -> tuple[int, ...]:
    """``buckets`` widths at the length quantiles 1/k, ..., 1 (duplicates merged, >= 1).

    Example:
      >>> quantile_widths(np.array([2, 3, 4, 5, 6, 7, 8, 9]), 4)
      (3, 5, 7, 9)
    """
    q = np.quantile(lengths, np.arange(1, buckets + 1) / buckets, method="inverted_cdf")
    return tuple(sorted({max(int(v), 1) for v in q}))


def padding_fraction(lengths_SxB: np.ndarray, widths_S: np.ndarray) -> float:
    """Padded positions over all positions of S batches of B rows, row s padded to width
    ``widths_S[s]``:  1 - sum_{s,b} L_sb / (B sum_s w_s).

    Example:
      >>> padding_fraction(np.array([[1, 2], [3, 4]]), np.array([2, 4]))  # 2 of 12
      0.16666666666666666
    """
    total = lengths_SxB.shape[1] * int(np.sum(widths_S))
    return float((total - int(np.sum(lengths_SxB))) / total) if total else 0.0


def _buckets(lengths: np.ndarray, widths: Sequence[int], batch_size: int):
    """(widths, example indices per bucket) after merging buckets smaller than a batch."""
    slot = np.searchsorted(np.asarray(widths), lengths, side="left")
    out_widths: list[int] = []
    out_members: list[np.ndarray] = []
    carry = np.zeros(0, np.int64)
    for b, width in enumerate(widths):
        carry = np.concatenate([carry, np.flatnonzero(slot == b)])
        if len(carry) >= batch_size:
            out_widths.append(int(width))
            out_members.append(np.sort(carry))
            carry = np.zeros(0, np.int64)
    if len(carry):  # too few of the longest: they join the bucket below, at their width
        out_widths[-1] = int(widths[-1])
        out_members[-1] = np.sort(np.concatenate([out_members[-1], carry]))
    return tuple(out_widths), tuple(out_members)


@dataclasses.dataclass(frozen=True, eq=False)
class BucketedOrder:
    """Mini-batches of one length bucket each, trimmed to its width (module docstring).

    Build it with :func:`bucket_order`. Attributes:
      base: the task's unbucketed order (its seed and batch size; the padding baseline).
      field: the bucketed field.
      widths: padded width of every bucket, increasing.
      members: training-example indices of every bucket.
      lengths: length of every training example in ``field``.
      trimmed: the fields cut to the bucket width.
      full_width: the field's padded width ``T``.
    """

    base: BatchOrder
    field: str
    widths: tuple[int, ...]
    members: tuple[np.ndarray, ...]
    lengths: np.ndarray
    trimmed: tuple[str, ...]
    full_width: int

    @property
    def batch_shapes(self) -> int:
        """Distinct batch shapes (the compiled step's bound): one per width."""
        return len(self.widths)

    @property
    def steps_per_epoch(self) -> int:
        return sum(len(m) // self.base.batch_size for m in self.members)

    def schedule(self, epoch: int) -> tuple[np.ndarray, np.ndarray]:
        """Rows ``[steps, B]`` and width ``[steps]`` of every batch of ``epoch``; depends only
        on (seed, epoch)."""
        rng = np.random.default_rng([self.base.seed, epoch])
        size = self.base.batch_size
        rows, widths = [], []
        for width, members in zip(self.widths, self.members, strict=True):
            used = len(members) // size * size
            rows.append(rng.permutation(members)[:used].reshape(-1, size))
            widths.append(np.full(used // size, width, np.int64))
        shuffle = rng.permutation(self.steps_per_epoch)
        return np.concatenate(rows)[shuffle], np.concatenate(widths)[shuffle]

    def indices(self, epoch: int) -> np.ndarray:
        """Example indices of every batch of ``epoch``, ``[steps_per_epoch, batch_size]``."""
        return self.schedule(epoch)[0]

    def position(self, step: int) -> Position:
        return Position(*divmod(step, self.steps_per_epoch))

    def batches(
        self, split: Split, start: Position, part: Callable[[np.ndarray], np.ndarray] = _all
    ) -> Iterator[tuple[Position, dict]]:
        """Yields (position, trimmed batch) from ``start`` to the end of its epoch."""
        rows, widths = self.schedule(start.epoch)
        for index in range(start.index, len(rows)):
            r, w = part(rows[index]), int(widths[index])
            batch = {k: v[r, :w] if k in self.trimmed else v[r] for k, v in split.fields.items()}
            yield Position(start.epoch, index), batch

    def report(self) -> dict:
        """What bucketing did, for the run's summary: widths, bucket sizes, examples dropped
        per epoch, and the padding fraction of the first epoch's batches of ``field`` with
        bucketing and without it (the same batch size at the full width)."""
        rows, widths = self.schedule(0)
        plain = self.base.indices(0)
        size = self.base.batch_size
        return {
            "field": self.field,
            "widths": list(self.widths),
            "examples": [len(m) for m in self.members],
            "trimmed": list(self.trimmed),
            "steps_per_epoch": self.steps_per_epoch,
            "dropped_per_epoch": sum(len(m) % size for m in self.members),
            "padding_fraction": padding_fraction(self.lengths[rows], widths),
            "padding_fraction_unbucketed": padding_fraction(
                self.lengths[plain], np.full(len(plain), self.full_width)
            ),
        }


def bucket_order(
    order: BatchOrder | StackedOrder,
    data: Dataset,
    field: str | None,
    widths: int | Sequence[int] = 4,
) -> BatchOrder | StackedOrder | BucketedOrder:
    """``order`` bucketed by the length of ``field`` (unchanged when ``field`` is None).

    Args:
      order: the task's training order.
      data: the data set (its training split is bucketed).
      field: ``train.bucket_by``.
      widths: ``train.bucket_widths``: increasing widths (a last one at the longest
        training length is added when they do not reach it), or a number of buckets.

    Raises:
      FieldError: naming ``train.bucket_by`` or ``train.bucket_widths`` when the order,
        the field or the widths cannot be bucketed.
    """
    if field is None:
        return order
    if isinstance(order, StackedOrder):
        raise FieldError(FIELD, "a population stacks its members' batches into one shape; unset it")
    if order.order != "shuffled":
        raise FieldError(
            FIELD,
            f"this task reads its batches as {order.order!r} (state carried from batch to "
            "batch), which bucketing would reorder; unset it",
        )
    if field not in data.train:
        raise FieldError(
            FIELD, f"{data.name} has no field {field!r}; it has {', '.join(data.train.fields)}"
        )
    values = data.train[field]
    if values.ndim < 2 or not np.issubdtype(values.dtype, np.integer):
        raise FieldError(
            FIELD,
            f"{data.name}'s {field!r} is {values.dtype.name} {list(values.shape[1:])}; bucketing "
            "needs an integer sequence field [N, T] padded after each end",
        )
    full = values.shape[1]
    lengths = sequence_lengths(values, pad_value(data, field))
    if isinstance(widths, int):
        chosen = quantile_widths(lengths, widths)
    else:
        chosen = tuple(int(w) for w in widths)
        if not chosen or chosen[0] < 1 or np.any(np.diff(chosen) <= 0):
            raise FieldError(WIDTHS, f"must be increasing positive widths; got {list(chosen)}")
        if chosen[-1] > full:
            raise FieldError(WIDTHS, f"{list(chosen)} must be <= {full}, the width of {field!r}")
        longest = max(int(lengths.max()), 1)
        chosen += (longest,) if chosen[-1] < longest else ()
    bucket_widths, members = _buckets(lengths, chosen, order.batch_size)
    width_of = np.empty(len(lengths), np.int64)
    for w, m in zip(bucket_widths, members, strict=True):
        width_of[m] = w
    trimmed = tuple(
        k
        for k, v in data.train.fields.items()
        if k == field
        or (
            v.ndim >= 2
            and v.shape[1] == full
            and np.all(sequence_lengths(v, pad_value(data, k)) <= width_of)
        )
    )
    return BucketedOrder(order, field, bucket_widths, members, lengths, trimmed, full)
