"""English words of the Python standard library's docstrings and comments (for word2vec).

Every Python ships this prose, so the corpus needs no download. The files are fixed and
sorted: the training files (the first ``max_files`` of them) are
:mod:`dlcore.data.stdlib_text`'s training modules plus ``PACKAGE_FILES`` (the modules of
15 packages present in every Python from 3.9 to 3.13) and give the training text and the
vocabulary; its validation and test modules are held out whole.

Text: each file's docstrings (``ast.get_docstring`` of the module and of every class and
function, split into paragraphs at blank lines, doctest lines ``>>>``/``...`` skipped) and
its comment blocks (``COMMENT`` tokens from :mod:`tokenize` on consecutive rows), in source
order. A *word* is a whitespace-separated piece with its leading and trailing punctuation
stripped that is then ASCII letters only, lowercased (``"file,"`` -> ``file``; ``os.path``,
``don't`` and ``x2`` are no words). A piece that ended in ``.``, ``?`` or ``!`` ends a
sentence. Sentences are the boundaries no context window crosses.

Vocabulary: training words seen at least ``min_count`` times, the ``max_vocab`` most
frequent (ties alphabetically); id ``i`` is the ``i``-th most frequent word. Words outside
it are deleted from the text before windows are cut (as word2vec.c does), so they neither
count nor take a window slot.

Splits: one row per word of a sentence of >= 2 in-vocabulary words: ``x [2C + 1]`` holds
the ids of the word's ``C = context`` neighbours on each side with the word itself in the
middle (``x[C]``), ``PAD = -1`` beyond its sentence. ``train`` comes from the training
files (the word2vec task draws its pairs from it), ``val``/``test`` from the held-out files
(for a held-out negative-sampling loss). ``info`` holds ``vocab`` (words by id),
``counts`` (their training counts, for the noise distribution and subsampling) and sizes.
"""

import ast
import functools
import io
import pathlib
import string
import tokenize
from collections import Counter
from typing import Literal

import numpy as np
from pydantic import Field

from dlcore.config.section import Section
from dlcore.data.dataset import Dataset, Split
from dlcore.data.sequences import PAD
from dlcore.data.stdlib_text import TEST_FILES, TRAIN_FILES, VAL_FILES, stdlib_dir

SENTENCE_END = (".", "?", "!")
DOCTEST_PREFIXES = (">>>", "...")
# Package modules (no tests) found in every Python from 3.9 to 3.13, by directory.
_PACKAGES = {
    "asyncio": "__init__ __main__ base_events base_futures base_subprocess base_tasks constants "
    "coroutines events exceptions format_helpers futures locks log proactor_events protocols "
    "queues runners selector_events sslproto staggered streams subprocess tasks threads "
    "transports trsock unix_events windows_events windows_utils",
    "collections": "__init__ abc",
    "concurrent": "__init__",
    "concurrent/futures": "__init__ _base process thread",
    "email": "__init__ _encoded_words _header_value_parser _parseaddr _policybase base64mime "
    "charset contentmanager encoders errors feedparser generator header headerregistry "
    "iterators message parser policy quoprimime utils",
    "email/mime": "__init__ application audio base image message multipart nonmultipart text",
    "html": "__init__ entities parser",
    "http": "__init__ client cookiejar cookies server",
    "importlib": "__init__ _bootstrap _bootstrap_external abc machinery util",
    "json": "__init__ decoder encoder scanner tool",
    "logging": "__init__ config handlers",
    "multiprocessing": "__init__ connection context forkserver heap managers pool popen_fork "
    "popen_forkserver popen_spawn_posix popen_spawn_win32 process queues reduction "
    "resource_sharer resource_tracker shared_memory sharedctypes spawn synchronize util",
    "multiprocessing/dummy": "__init__ connection",
    "urllib": "__init__ error parse request response robotparser",
    "wsgiref": "__init__ handlers headers simple_server util validate",
    "xml": "__init__",
    "xml/dom": "NodeFilter __init__ domreg expatbuilder minicompat minidom pulldom xmlbuilder",
    "xml/etree": "ElementInclude ElementPath ElementTree __init__ cElementTree",
    "xml/parsers": "__init__ expat",
    "xml/sax": "__init__ _exceptions expatreader handler saxutils xmlreader",
    "xmlrpc": "__init__ client server",
}
PACKAGE_FILES = tuple(f"{d}/{m}.py" for d, mods in _PACKAGES.items() for m in mods.split())
WORD_TRAIN_FILES = tuple(sorted(TRAIN_FILES + PACKAGE_FILES))


def words_of(text: str) -> list[list[str]]:
    """The sentences of a piece of prose as lists of lowercased words (module docstring).

    Example:
      >>> words_of("Return the file, or None. See os.path: it's 2x faster!")
      [['return', 'the', 'file', 'or', 'none'], ['see', 'faster']]
    """
    sentences, current = [], []
    for piece in text.split():
        word = piece.strip(string.punctuation)
        if word.isascii() and word.isalpha():
            current.append(word.lower())
        if piece.endswith(SENTENCE_END) and current:
            sentences.append(current)
            current = []
    if current:
        sentences.append(current)
    return sentences


def prose_blocks(source: str) -> list[str]:
    """A file's docstring paragraphs and comment blocks, in source order (module docstring)."""
    found = []  # (row, order within the row, text)
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            doc = ast.get_docstring(node)
            if doc:
                row = node.body[0].lineno
                lines = [
                    ln for ln in doc.splitlines() if not ln.strip().startswith(DOCTEST_PREFIXES)
                ]
                paragraphs = "\n".join(lines).split("\n\n")
                found += [(row, i, p) for i, p in enumerate(paragraphs) if p.strip()]
    last_row, block = -2, None
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type != tokenize.COMMENT:
            continue
        row = tok.start[0]
        if block is not None and row == last_row + 1:
            block[2].append(tok.string.lstrip("#"))
        else:
            block = (row, 0, [tok.string.lstrip("#")])
            found.append(block)
        last_row = row
    found.sort(key=lambda b: (b[0], b[1]))
    return [b[2] if isinstance(b[2], str) else "\n".join(b[2]) for b in found]


@functools.cache
def file_sentences(path: str) -> tuple[tuple[str, ...], ...]:
    """All sentences of one file's prose (cached: the files never change)."""
    source = pathlib.Path(path).read_text(encoding="utf-8", errors="replace")
    return tuple(tuple(s) for block in prose_blocks(source) for s in words_of(block))


def build_vocab(sentences, min_count: int, max_vocab: int) -> tuple[list[str], list[int]]:
    """Words with count >= ``min_count``, the ``max_vocab`` most frequent (ties
    alphabetically), and their counts."""
    counts = Counter(w for s in sentences for w in s)
    ranked = sorted((w for w, n in counts.items() if n >= min_count), key=lambda w: (-counts[w], w))
    vocab = ranked[:max_vocab]
    return vocab, [counts[w] for w in vocab]


def encode_sentences(sentences, vocab: list[str]) -> list[np.ndarray]:
    """Id arrays of the sentences with out-of-vocabulary words deleted; sentences left
    with fewer than 2 words (no context) are dropped."""
    index = {w: i for i, w in enumerate(vocab)}
    encoded = ([index[w] for w in s if w in index] for s in sentences)
    return [np.array(ids, np.int32) for ids in encoded if len(ids) >= 2]


def context_rows(sentences: list[np.ndarray], context: int) -> np.ndarray:
    """``[N, 2C + 1]`` rows: each word's ``C`` neighbours per side, ``PAD`` past its sentence."""
    rows = []
    for ids in sentences:
        padded = np.concatenate(
            [np.full(context, PAD, np.int32), ids, np.full(context, PAD, np.int32)]
        )
        # [L, 2C + 1] sliding windows of the padded sentence, one centred on each word
        rows.append(np.lib.stride_tricks.sliding_window_view(padded, 2 * context + 1))
    if not rows:
        return np.zeros((0, 2 * context + 1), np.int32)
    return np.ascontiguousarray(np.concatenate(rows), dtype=np.int32)


class StdlibWordsConfig(Section):
    """Words of the standard library's docstrings and comments; see the module docstring."""

    name: Literal["stdlib_words"] = "stdlib_words"
    preprocess: Literal["none"] = Field("none", description="word ids are not rescaled")
    context: int = Field(5, ge=1, le=20, description="neighbours stored per side of each word")
    min_count: int = Field(5, ge=1, description="rarer training words are deleted")
    max_vocab: int = Field(5000, ge=2, description="keep only the most frequent words")
    max_files: int | None = Field(
        None, ge=1, description="use only the first N training files (tests, quick runs)"
    )


def make_stdlib_words(cfg: StdlibWordsConfig) -> Dataset:
    root = stdlib_dir()
    names = {"train": WORD_TRAIN_FILES[: cfg.max_files], "val": VAL_FILES, "test": TEST_FILES}
    sentences, used, missing = {}, {}, []
    for split, files in names.items():
        sentences[split], used[split] = [], []
        for name in files:
            if not (root / name).is_file():
                missing.append(name)
                continue
            used[split].append(name)
            sentences[split] += file_sentences(str(root / name))
    vocab, counts = build_vocab(sentences["train"], cfg.min_count, cfg.max_vocab)
    if len(vocab) < 2:
        raise ValueError(
            f"stdlib_words: only {len(vocab)} words occur >= min_count = {cfg.min_count} "
            "times; lower min_count or use more files"
        )
    encoded = {s: encode_sentences(v, vocab) for s, v in sentences.items()}
    splits = {s: context_rows(v, cfg.context) for s, v in encoded.items()}
    for split, x in splits.items():
        if len(x) == 0:
            raise ValueError(f"stdlib_words: no {split} sentences found under {root}")
    raw_words = {s: sum(len(t) for t in v) for s, v in sentences.items()}
    info = {
        "vocab": vocab,
        "counts": counts,
        "vocab_size": len(vocab),
        "context": cfg.context,
        "stdlib": str(root),
        **{f"{s}_files": used[s] for s in names},
        "missing_files": missing,
        "words": {s: int(len(x)) for s, x in splits.items()},
        "sentences": {s: len(v) for s, v in encoded.items()},
        "deleted_rate": {s: 1.0 - len(splits[s]) / max(raw_words[s], 1) for s in names},
    }
    return Dataset(
        "stdlib_words",
        *(Split(x=splits[s]) for s in ("train", "val", "test")),
        num_classes=None,
        info=info,
    )
