"""Data set registry: ``[data] name = ...`` -> (config section, builder)."""

from typing import NamedTuple

from dlcore.config.section import Section
from dlcore.data.dataset import Dataset, apply_preprocessing
from dlcore.data.dates import DatesConfig, make_dates
from dlcore.data.digits import DigitsConfig, make_digits
from dlcore.data.function1d import Function1DConfig, make_function_1d
from dlcore.data.multilabel import MultilabelDataConfig, make_multilabel
from dlcore.data.ring import RingConfig, make_ring
from dlcore.data.seq2seq_tasks import (
    AdditionConfig,
    ReversalConfig,
    SortingConfig,
    make_addition,
    make_reversal,
    make_sorting,
)
from dlcore.data.sequences import (
    AddingConfig,
    DyckDepthConfig,
    NumberWordsConfig,
    ParityConfig,
    make_adding,
    make_dyck_depth,
    make_number_words,
    make_parity,
)
from dlcore.data.shapes import ShapesConfig, make_shapes
from dlcore.data.stdlib_lines import StdlibLinesConfig, make_stdlib_lines
from dlcore.data.stdlib_text import StdlibCharsConfig, make_stdlib_chars
from dlcore.data.stdlib_words import StdlibWordsConfig, make_stdlib_words
from dlcore.data.synthetic import (
    BlobsConfig,
    LineConfig,
    RandomConfig,
    SpiralsConfig,
    XorConfig,
    make_blobs,
    make_line,
    make_random,
    make_spirals,
    make_xor,
)


class DatasetEntry(NamedTuple):
    config: type[Section]
    build: object  # (config) -> Dataset
    summary: str


DATASETS: dict[str, DatasetEntry] = {
    "xor": DatasetEntry(XorConfig, make_xor, "noisy 2-D XOR, 2 classes"),
    "spirals": DatasetEntry(SpiralsConfig, make_spirals, "K interleaved 2-D spirals"),
    "blobs": DatasetEntry(BlobsConfig, make_blobs, "2 classes, separable with a set margin"),
    "digits": DatasetEntry(DigitsConfig, make_digits, "scikit-learn 8x8 digits, 10 classes"),
    "random": DatasetEntry(RandomConfig, make_random, "random features, random labels"),
    "multilabel": DatasetEntry(
        MultilabelDataConfig, make_multilabel, "bags of words with label sets (multi-label)"
    ),
    "line": DatasetEntry(LineConfig, make_line, "regression on y = slope x + intercept"),
    "function_1d": DatasetEntry(
        Function1DConfig, make_function_1d, "y = f(x) on [-1, 1], fixed grids (approximation)"
    ),
    "parity": DatasetEntry(ParityConfig, make_parity, "bit strings -> parity (many-to-one)"),
    "dyck_depth": DatasetEntry(
        DyckDepthConfig, make_dyck_depth, "brackets -> depth per step (many-to-many)"
    ),
    "number_words": DatasetEntry(
        NumberWordsConfig, make_number_words, "a number -> its English spelling (one-to-many)"
    ),
    "adding": DatasetEntry(AddingConfig, make_adding, "the adding problem (regression)"),
    "reversal": DatasetEntry(ReversalConfig, make_reversal, "letter strings -> reversed (seq2seq)"),
    "sorting": DatasetEntry(SortingConfig, make_sorting, "letter strings -> sorted (seq2seq)"),
    "dates": DatasetEntry(
        DatesConfig, make_dates, "dates in human formats -> YYYY-MM-DD (seq2seq)"
    ),
    "addition": DatasetEntry(AdditionConfig, make_addition, "'123+4567' -> '4690' (seq2seq)"),
    "ring": DatasetEntry(RingConfig, make_ring, "K Gaussians on a 2-D ring, unlabelled (GANs)"),
    "shapes": DatasetEntry(
        ShapesConfig, make_shapes, "generated RGB shapes: classes, masks, captioned scenes"
    ),
    "stdlib_chars": DatasetEntry(
        StdlibCharsConfig, make_stdlib_chars, "characters of the Python stdlib's source"
    ),
    "stdlib_lines": DatasetEntry(
        StdlibLinesConfig, make_stdlib_lines, "stdlib source lines: code/comment/docstring/string"
    ),
    "stdlib_words": DatasetEntry(
        StdlibWordsConfig, make_stdlib_words, "words of the stdlib's docstrings and comments"
    ),
}


def load_dataset(cfg: Section) -> Dataset:
    """Builds the data set of a validated ``[data]`` section, then applies its
    ``preprocess`` (fitted on the training split only)."""
    return apply_preprocessing(DATASETS[cfg.name].build(cfg), cfg.preprocess)
