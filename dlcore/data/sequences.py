"""Generated sequence data for the three task shapes and the adding problem. Nothing is downloaded.

Token sequences are int32 ``[N, T]`` with ``PAD = -1`` after each sequence's end (the sequence
model reads its lengths from ``x >= 0``); per-step targets are int32 ``[N, T]`` with ``PAD``
wherever a step must not count (the tagging task weighs steps by ``y >= 0``).

* ``parity``        many-to-one: a bit string of random length -> its parity (2 classes).
* ``dyck_depth``    many-to-many: balanced brackets -> the nesting depth after every bracket.
* ``number_words``  one-to-many: a number in [0, 1000), shown once at t = 0 -> its English
  spelling, one character per step, ending with ".".
* ``adding``        Hochreiter & Schmidhuber's adding problem: T pairs (value, marker) -> the
  sum of the two marked values (regression).
"""

from typing import Literal

import numpy as np
from pydantic import Field, PositiveInt, model_validator

from dlcore.data.dataset import Dataset, split_fractions
from dlcore.data.synthetic import _Generated

PAD = -1
_ROW_OVERHEAD = 200  # host bytes of one small NumPy array besides its data


class ParityConfig(_Generated):
    """Bit strings with lengths uniform in [min_len, max_len]; label = number of ones mod 2."""

    name: Literal["parity"] = "parity"
    preprocess: Literal["none"] = Field("none", description="token ids are not rescaled")
    n_samples: PositiveInt = 4000
    min_len: PositiveInt = 2
    max_len: PositiveInt = 16

    @model_validator(mode="after")
    def _lengths_ordered(self):
        if self.min_len > self.max_len:
            raise ValueError(f"min_len ({self.min_len}) must be <= max_len ({self.max_len})")
        return self

    def host_bytes(self) -> int:
        # one small NumPy array per string, then the padded int32 rows and their split
        return self.n_samples * (_ROW_OVERHEAD + 16 * self.max_len)


class DyckDepthConfig(_Generated):
    """Balanced bracket strings ('(' = 0, ')' = 1); tag = nesting depth after each bracket."""

    name: Literal["dyck_depth"] = "dyck_depth"
    preprocess: Literal["none"] = Field("none", description="token ids are not rescaled")
    n_samples: PositiveInt = 4000
    max_len: int = Field(24, ge=2, description="longest string (even lengths 2..max_len)")
    max_depth: PositiveInt = Field(6, description="strings deeper than this are redrawn")

    def host_bytes(self) -> int:
        # strings and depths as small NumPy arrays, then padded int32 rows and their split
        return self.n_samples * (2 * _ROW_OVERHEAD + 40 * self.max_len)


class NumberWordsConfig(_Generated):
    """Numbers 0..999 (three one-hot digits at t = 0, zeros after) -> their English words."""

    name: Literal["number_words"] = "number_words"
    preprocess: Literal["none"] = Field("none", description="one-hot inputs are not rescaled")

    def host_bytes(self) -> int:
        return 1000 * 40 * 31 * 4 * 2  # 1000 numbers, <= 40 steps, 30 inputs + 1 target


class AddingConfig(_Generated):
    """The adding problem: inputs (u_t, m_t), u_t ~ U[0, 1), two markers m_t = 1; y = sum u_t m_t.

    One marker is uniform in the first half of the sequence, the other in the second half.
    Always predicting 1.0 scores MSE 1/6 ~= 0.167 (the variance of a sum of two uniforms).
    """

    name: Literal["adding"] = "adding"
    preprocess: Literal["none"] = Field("none", description="the markers must stay 0/1")
    n_samples: PositiveInt = 20000
    length: int = Field(100, ge=2, description="sequence length T")

    def host_bytes(self) -> int:
        return self.n_samples * self.length * 32  # values, markers, stacked x, split


def _pad_rows(rows: list[np.ndarray], width: int) -> np.ndarray:
    out = np.full((len(rows), width), PAD, np.int32)
    for i, row in enumerate(rows):
        out[i, : len(row)] = row
    return out


def make_parity(cfg: ParityConfig) -> Dataset:
    rng = np.random.default_rng(cfg.seed)
    lengths = rng.integers(cfg.min_len, cfg.max_len + 1, cfg.n_samples)
    bits = [rng.integers(0, 2, n) for n in lengths]
    x = _pad_rows(bits, cfg.max_len)
    y = np.array([b.sum() % 2 for b in bits], np.int32)
    train, val, test = split_fractions(x, y, cfg.val_fraction, cfg.test_fraction, rng)
    return Dataset("parity", train, val, test, num_classes=2, info={"vocab_size": 2})


def _random_dyck(rng: np.random.Generator, length: int, max_depth: int) -> np.ndarray:
    """A random balanced string of ``length`` brackets, redrawn until no deeper than allowed."""
    while True:
        brackets = rng.permutation(np.repeat([0, 1], length // 2))
        depth = np.cumsum(np.where(brackets == 0, 1, -1))
        if depth.min() < 0:
            # Cyclic-shift trick: a +-1 walk with sum 0, started right after its lowest
            # point, never goes below zero, i.e. it is balanced.
            start = int(np.argmin(depth)) + 1
            brackets = np.roll(brackets, -start)
            depth = np.cumsum(np.where(brackets == 0, 1, -1))
        if depth.max() <= max_depth:
            return brackets


def make_dyck_depth(cfg: DyckDepthConfig) -> Dataset:
    rng = np.random.default_rng(cfg.seed)
    lengths = 2 * rng.integers(1, cfg.max_len // 2 + 1, cfg.n_samples)
    strings = [_random_dyck(rng, n, cfg.max_depth) for n in lengths]
    depths = [np.cumsum(np.where(s == 0, 1, -1)) for s in strings]
    x, y = _pad_rows(strings, cfg.max_len), _pad_rows(depths, cfg.max_len)
    train, val, test = split_fractions(x, y, cfg.val_fraction, cfg.test_fraction, rng)
    info = {"vocab_size": 2}
    return Dataset("dyck_depth", train, val, test, num_classes=cfg.max_depth + 1, info=info)


_ONES = "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen \
fifteen sixteen seventeen eighteen nineteen".split()
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()
WORD_ALPHABET = " -.abcdefghijklmnopqrstuvwxyz"  # "." ends every spelling


def number_to_words(n: int) -> str:
    """English spelling of 0 <= n < 1000, e.g. 342 -> "three hundred forty-two"."""
    if not 0 <= n < 1000:
        raise ValueError(f"number_to_words needs 0 <= n < 1000; got {n}")
    hundreds, rest = divmod(n, 100)
    parts = [f"{_ONES[hundreds]} hundred"] if hundreds else []
    if rest or not hundreds:
        tens, ones = divmod(rest, 10)
        if rest < 20:
            parts.append(_ONES[rest])
        else:
            parts.append(_TENS[tens] + (f"-{_ONES[ones]}" if ones else ""))
    return " ".join(parts)


def make_number_words(cfg: NumberWordsConfig) -> Dataset:
    rng = np.random.default_rng(cfg.seed)
    numbers = np.arange(1000)
    words = [number_to_words(int(n)) + "." for n in numbers]
    steps = max(len(w) for w in words)
    # One-to-many: the number appears once, at t = 0, as three one-hot digits.
    x = np.zeros((len(numbers), steps, 30), np.float32)
    for i, n in enumerate(numbers):
        for place, digit in enumerate((n // 100, n // 10 % 10, n % 10)):
            x[i, 0, 10 * place + digit] = 1.0
    y = _pad_rows([np.array([WORD_ALPHABET.index(c) for c in w]) for w in words], steps)
    train, val, test = split_fractions(x, y, cfg.val_fraction, cfg.test_fraction, rng)
    info = {"alphabet": WORD_ALPHABET}
    return Dataset("number_words", train, val, test, len(WORD_ALPHABET), info=info)


def make_adding(cfg: AddingConfig) -> Dataset:
    rng = np.random.default_rng(cfg.seed)
    n, steps = cfg.n_samples, cfg.length
    values = rng.uniform(size=(n, steps)).astype(np.float32)
    markers = np.zeros((n, steps), np.float32)
    half = steps // 2
    rows = np.arange(n)
    markers[rows, rng.integers(0, half, n)] = 1.0
    markers[rows, rng.integers(half, steps, n)] = 1.0
    x = np.stack([values, markers], axis=-1)  # [N, T, 2]
    y = np.sum(values * markers, axis=1, keepdims=True)  # [N, 1]
    train, val, test = split_fractions(x, y, cfg.val_fraction, cfg.test_fraction, rng)
    info = {"constant_1_mse": float(np.mean((test.y - 1.0) ** 2))}
    return Dataset("adding", train, val, test, num_classes=None, info=info)
