"""Generated sequence-to-sequence data at the character level. Nothing is downloaded.

Every data set here maps a source string to a target string, one character per token:

* ``reversal``  random strings over the first ``symbols`` lowercase letters -> reversed.
* ``sorting``   the same strings -> their characters in sorted order.
* ``addition``  ``"123+4567"`` -> ``"4690"`` (operands of ``min_digits``..``max_digits`` digits).
* ``dates``     a date in one of several human formats -> ISO ``"2019-03-12"``
  (:mod:`dlcore.data.dates`).

Fields (the token convention of :mod:`dlcore.seq2seq.protocol`): ``x`` int32 ``[S]`` source
ids padded with 0 (``<pad>``), no ``<bos>``/``<eos>``, so a source's length is
``sum(x != 0)``; ``y`` int32 ``[T]`` = ``<bos> c_1 ... c_n <eos>`` then 0s. ``info["vocab"]``
lists the tokens, specials first (``<pad>`` = 0, ``<bos>`` = 1, ``<eos>`` = 2), and
``info["vocab_size"]`` is its length; both fields have the role ``tokens``.

``test_max_len`` (reversal, sorting) draws the test split afresh with lengths up to it, so a
model can be tested on longer inputs than it was trained on; ``x`` is then that wide in every
split.
"""

from typing import Literal

import numpy as np
from pydantic import Field, PositiveInt, model_validator

from dlcore.data.dataset import Dataset, Split, split_fractions, split_sizes
from dlcore.data.synthetic import _Generated

SPECIALS = ("<pad>", "<bos>", "<eos>")  # ids 0, 1, 2 (dlcore.seq2seq.protocol)
PAD, BOS, EOS = 0, 1, 2
LETTERS = "abcdefghijklmnopqrstuvwxyz"
_ROW_OVERHEAD = 400  # host bytes of a short Python string and its list of ids


class Seq2seqData(_Generated):
    """What every generated sequence-to-sequence data set takes."""

    preprocess: Literal["none"] = Field("none", description="token ids are not rescaled")
    n_samples: PositiveInt = 10000


class _StringsConfig(Seq2seqData):
    """Random strings of lengths uniform in [min_len, max_len] over ``symbols`` letters."""

    symbols: int = Field(10, ge=2, le=len(LETTERS), description="alphabet: the first letters")
    min_len: PositiveInt = 4
    max_len: PositiveInt = 16
    test_max_len: PositiveInt | None = Field(
        None, description="draw the test split with lengths up to this (None: max_len)"
    )

    @model_validator(mode="after")
    def _lengths_ordered(self):
        if self.min_len > self.max_len:
            raise ValueError(f"min_len ({self.min_len}) must be <= max_len ({self.max_len})")
        if self.test_max_len is not None and self.test_max_len < self.max_len:
            raise ValueError(
                f"test_max_len ({self.test_max_len}) must be >= max_len ({self.max_len}); "
                "leave it out to test on the training lengths"
            )
        return self

    @property
    def width(self) -> int:
        return max(self.max_len, self.test_max_len or 0)

    def host_bytes(self) -> int:
        # strings, their id lists, then the padded int32 rows of x and y and the split copies
        return 2 * self.n_samples * (_ROW_OVERHEAD + 32 * (2 * self.width + 2))


class ReversalConfig(_StringsConfig):
    """Random letter strings; the target is the string reversed."""

    name: Literal["reversal"] = "reversal"


class SortingConfig(_StringsConfig):
    """Random letter strings; the target is the string's characters in sorted order."""

    name: Literal["sorting"] = "sorting"


class AdditionConfig(Seq2seqData):
    """``a+b`` with a, b of min_digits..max_digits digits (count uniform, no leading zeros)
    -> the decimal digits of a + b."""

    name: Literal["addition"] = "addition"
    min_digits: PositiveInt = 1
    max_digits: int = Field(4, ge=1, le=18, description="digits of the longest operand")

    @model_validator(mode="after")
    def _digits_ordered(self):
        if self.min_digits > self.max_digits:
            raise ValueError(
                f"min_digits ({self.min_digits}) must be <= max_digits ({self.max_digits})"
            )
        return self

    def host_bytes(self) -> int:
        return self.n_samples * (_ROW_OVERHEAD + 32 * (3 * self.max_digits + 4))


def char_vocab(chars: str) -> tuple[str, ...]:
    """The vocabulary of a character-level data set: the specials, then ``chars``.

    Example:
      >>> char_vocab("ab")
      ('<pad>', '<bos>', '<eos>', 'a', 'b')
    """
    if len(set(chars)) != len(chars):
        raise ValueError(f"characters of a vocabulary must be distinct; got {chars!r}")
    return (*SPECIALS, *chars)


def encode_sources(texts: list[str], vocab: tuple[str, ...], width: int) -> np.ndarray:
    """Character ids ``[N, width]`` of ``texts``, padded with ``<pad>`` = 0.

    Raises:
      ValueError: naming the characters not in ``vocab``, or a text longer than ``width``.
    """
    index = {c: i for i, c in enumerate(vocab) if i >= len(SPECIALS)}
    out = np.zeros((len(texts), width), np.int32)
    for row, text in enumerate(texts):
        unknown = sorted({c for c in text if c not in index})
        if unknown:
            raise ValueError(
                f"{text!r} has characters outside the vocabulary: {''.join(unknown)!r}"
            )
        if len(text) > width:
            raise ValueError(f"{text!r} has {len(text)} characters; at most {width} fit")
        out[row, : len(text)] = [index[c] for c in text]
    return out


def encode_targets(texts: list[str], vocab: tuple[str, ...], width: int) -> np.ndarray:
    """``<bos> c_1 ... c_n <eos>`` ids ``[N, width]`` of ``texts``, then 0s."""
    body = encode_sources(texts, vocab, width - 2)
    out = np.zeros((len(texts), width), np.int32)
    out[:, 0] = BOS
    out[:, 1:-1] = body
    lengths = (body != PAD).sum(axis=1)
    out[np.arange(len(texts)), lengths + 1] = EOS
    return out


def decode_tokens(ids, vocab: tuple[str, ...], separator: str = "") -> str:
    """The text of token ids: stops at the first ``<eos>``, drops ``<pad>`` and ``<bos>``."""
    out = []
    for i in np.asarray(ids).tolist():
        if i == EOS:
            break
        if i >= len(SPECIALS):
            out.append(vocab[i])
    return separator.join(out)


def seq2seq_dataset(
    name: str,
    sources: list[str],
    targets: list[str],
    vocab: tuple[str, ...],
    cfg: Seq2seqData,
    rng: np.random.Generator,
    widths: tuple[int, int] | None = None,
    test_pairs: tuple[list[str], list[str]] | None = None,
    info: dict | None = None,
) -> Dataset:
    """The Dataset of (source, target) string pairs, split by ``cfg``'s fractions.

    Args:
      widths: ``(S, T)`` of ``x`` and ``y`` (``T`` counts ``<bos>`` and ``<eos>``); None: the
        longest pair's.
      test_pairs: replaces the test split (of the same size) when test inputs are drawn apart.
    """
    if widths is None:
        every_t = targets + (test_pairs[1] if test_pairs else [])
        every_s = sources + (test_pairs[0] if test_pairs else [])
        widths = (max(map(len, every_s)), max(map(len, every_t)) + 2)
    width_s, width_t = widths
    x = encode_sources(sources, vocab, width_s)
    y = encode_targets(targets, vocab, width_t)
    train, val, test = split_fractions(x, y, cfg.val_fraction, cfg.test_fraction, rng)
    if test_pairs is not None:
        n = len(test)
        test = Split(
            encode_sources(test_pairs[0][:n], vocab, width_s),
            encode_targets(test_pairs[1][:n], vocab, width_t),
        )
    facts = {"vocab": list(vocab), "vocab_size": len(vocab), "level": "char"}
    facts |= {"source_len": width_s, "target_len": width_t, **(info or {})}
    roles = {"x": "tokens", "y": "tokens"}
    return Dataset(name, train, val, test, num_classes=None, info=facts, roles=roles)


def _random_strings(rng: np.random.Generator, cfg: _StringsConfig, n: int, longest: int):
    alphabet = np.array(list(LETTERS[: cfg.symbols]))
    lengths = rng.integers(cfg.min_len, longest + 1, n)
    return ["".join(alphabet[rng.integers(0, cfg.symbols, k)]) for k in lengths]


def _make_strings(cfg: _StringsConfig, transform, name: str) -> Dataset:
    rng = np.random.default_rng(cfg.seed)
    sources = _random_strings(rng, cfg, cfg.n_samples, cfg.max_len)
    test_pairs = None
    if cfg.test_max_len is not None:
        n_test = split_sizes(cfg.n_samples, cfg.val_fraction, cfg.test_fraction)[2]
        test_sources = _random_strings(rng, cfg, n_test, cfg.test_max_len)
        test_pairs = (test_sources, [transform(s) for s in test_sources])
    vocab = char_vocab(LETTERS[: cfg.symbols])
    targets = [transform(s) for s in sources]
    widths = (cfg.width, cfg.width + 2)
    info = {"train_max_len": cfg.max_len}
    return seq2seq_dataset(name, sources, targets, vocab, cfg, rng, widths, test_pairs, info)


def make_reversal(cfg: ReversalConfig) -> Dataset:
    return _make_strings(cfg, lambda s: s[::-1], "reversal")


def make_sorting(cfg: SortingConfig) -> Dataset:
    return _make_strings(cfg, lambda s: "".join(sorted(s)), "sorting")


def _random_numbers(rng: np.random.Generator, cfg: AdditionConfig, n: int) -> list[int]:
    digits = rng.integers(cfg.min_digits, cfg.max_digits + 1, n)
    low = np.where(digits == 1, 0, 10 ** (digits - 1))
    # int64 holds 18 digits; draws are uniform within each digit count
    return [int(v) for v in rng.integers(low, 10**digits)]


def make_addition(cfg: AdditionConfig) -> Dataset:
    rng = np.random.default_rng(cfg.seed)
    a = _random_numbers(rng, cfg, cfg.n_samples)
    b = _random_numbers(rng, cfg, cfg.n_samples)
    sources = [f"{p}+{q}" for p, q in zip(a, b, strict=True)]
    targets = [str(p + q) for p, q in zip(a, b, strict=True)]
    widths = (2 * cfg.max_digits + 1, cfg.max_digits + 3)  # a carry adds a digit
    vocab = char_vocab("0123456789+")
    return seq2seq_dataset("addition", sources, targets, vocab, cfg, rng, widths)
