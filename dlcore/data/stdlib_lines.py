"""Lines of the Python standard library's source, labelled code / comment / docstring / string.

A real text-classification task that needs no download: the files are the fixed, sorted
list of :mod:`dlcore.data.stdlib_text` (top-level modules present from Python 3.9 to 3.13),
and each non-blank physical line gets its label from the ``tokenize`` module:

1. Every non-whitespace character of the line is classed by the token that covers it: a
   *docstring* (a string token inside the first statement of a module, class or def body
   when that statement is a string constant, as :func:`ast.get_docstring` defines it), a
   *string* (any other string literal; on Python >= 3.12 a whole f-string, from
   ``FSTRING_START`` to its ``FSTRING_END``, as older versions tokenize it), a *comment*
   (a ``COMMENT`` token) or *code* (every other token, and line-continuation backslashes).
2. The line is ``comment`` when all its characters are comment; ``docstring`` when some are
   docstring and the rest comment; ``string`` likewise for string; otherwise ``code``. So
   ``x = '''`` (the first line of a multi-line string) is code, its inner lines are string,
   and ``'a',`` inside a list is code (the comma).

Files are split, not lines: file ``i`` of the sorted list goes to validation when
``i % 8 == 0``, to test when ``i % 8 == 5``, to training otherwise, so a test line's file
was never seen. Each class keeps at most ``train_per_class`` / ``eval_per_class`` lines per
split (drawn with ``seed``, kept in file order); ``string`` is the rare class (1.6% of the
95 k lines), so the caps make accuracy mean something (chance is the largest class's share;
with the defaults val and test hold 200 lines of each class, training 2000 or all).

Inputs: each line (and, with ``context = c``, the ``c`` physical lines before it, blank ones
included, joined by ``"\\n"``) truncated to ``line_len`` characters with its indentation
kept, as int32 ids ``[T]``, ``T = (c + 1)(line_len + 1) - 1``: 0 is the unknown symbol,
then ``"\\n"`` and printable ASCII; ``PAD = -1`` after the text (lengths are ``x >= 0``, as
for every token data set, so the ``rnn`` model and the ``classification`` task read it
unchanged). One line alone is ambiguous (a prose line inside a docstring and inside another
triple-quoted string look alike; so do ``\"\"\"`` lines): ``info["duplicate_ceiling"]`` is the
best accuracy any classifier can reach on each split, the share of lines whose exact input
carries its split's most frequent label for that input. It counts exact duplicates only
(test: 0.999 alone, 1.0 with one line of context), so it is a loose bound: what limits the
models is prose that could sit in either kind of triple-quoted string.
"""

import ast
import bisect
import functools
import io
import pathlib
import string
import tokenize
from collections import Counter, defaultdict
from typing import Literal

import numpy as np
from pydantic import Field, PositiveInt

from dlcore.config.section import Section
from dlcore.data.dataset import SPLITS, Dataset, Split
from dlcore.data.sequences import PAD
from dlcore.data.stdlib_text import TEST_FILES, TRAIN_FILES, UNK, VAL_FILES, encode, stdlib_dir

LABELS = ("code", "comment", "docstring", "string")
VOCAB = UNK + "\n" + "".join(c for c in string.printable if " " <= c <= "~")
FILES = tuple(sorted(TRAIN_FILES + VAL_FILES + TEST_FILES))
SPLIT_EVERY, VAL_SLOT, TEST_SLOT = 8, 0, 5


def file_split(index: int) -> str:
    """The split of file ``FILES[index]``: every 8th file (from the 1st) validates, every 8th
    (from the 6th) tests."""
    slot = index % SPLIT_EVERY
    return "val" if slot == VAL_SLOT else "test" if slot == TEST_SLOT else "train"


def docstring_spans(tree: ast.Module) -> list[tuple[tuple[int, int], tuple[int, int]]]:
    """Sorted ``((row, col), (end_row, end_col))`` of every docstring statement."""
    spans = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            first = node.body[0] if node.body else None
            if (
                isinstance(first, ast.Expr)
                and isinstance(first.value, ast.Constant)
                and isinstance(first.value.value, str)
            ):
                spans.append(
                    ((first.lineno, first.col_offset), (first.end_lineno, first.end_col_offset))
                )
    return sorted(spans)


def literal_spans(source: str):
    """``(kind, start, end)`` of every string literal and comment token, in source order.

    f-strings on Python >= 3.12 arrive as FSTRING_START ... FSTRING_END with tokens for the
    replacement fields in between; they are folded into one ``string`` span.
    """
    fstart = getattr(tokenize, "FSTRING_START", None)
    fend = getattr(tokenize, "FSTRING_END", None)
    depth, opened = 0, None
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if fstart is not None and tok.type == fstart:
            depth, opened = depth + 1, opened if depth else tok.start
        elif fend is not None and tok.type == fend:
            depth -= 1
            if depth == 0:
                yield "string", opened, tok.end
        elif depth == 0 and tok.type in (tokenize.STRING, tokenize.COMMENT):
            yield ("string" if tok.type == tokenize.STRING else "comment"), tok.start, tok.end


def label_lines(source: str) -> list[tuple[int, str]]:
    """``(row, label)`` of every non-blank physical line (rows from 1); see the module docstring.

    Example:
      >>> label_lines("'''Doc.'''\\n# note\\nx = 1\\ny = '''\\ntext\\n'''\\n")
      [(1, 'docstring'), (2, 'comment'), (3, 'code'), (4, 'code'), (5, 'string'), (6, 'string')]
    """
    lines = source.splitlines()
    docs = docstring_spans(ast.parse(source))
    starts = [s for s, _ in docs]
    covered = defaultdict(list)  # row -> [(col_from, col_to, kind)]
    for kind, (r0, c0), (r1, c1) in literal_spans(source):
        if kind == "string":
            i = bisect.bisect_right(starts, (r0, c0)) - 1
            if i >= 0 and (r1, c1) <= docs[i][1]:
                kind = "docstring"
        for row in range(r0, r1 + 1):
            covered[row].append((c0 if row == r0 else 0, c1 if row == r1 else None, kind))
    labelled = []
    for row, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        rest, kinds = list(line), set()
        for a, b, kind in covered.get(row, ()):
            if line[a:b].strip():
                kinds.add(kind)
            rest[a:b] = " " * len(line[a:b])
        if "".join(rest).strip() or not kinds:
            labelled.append((row, "code"))
        elif kinds == {"comment"}:
            labelled.append((row, "comment"))
        else:
            literal = kinds - {"comment"}
            labelled.append((row, "code" if len(literal) > 1 else literal.pop()))
    return labelled


@functools.cache
def labelled_file(path: str) -> tuple[tuple[str, ...], tuple[tuple[int, str], ...]]:
    """A file's physical lines and its ``label_lines`` (cached: the files never change)."""
    source = pathlib.Path(path).read_text(encoding="utf-8", errors="replace")
    return tuple(source.splitlines()), tuple(label_lines(source))


def line_text(lines: tuple[str, ...], row: int, context: int, line_len: int) -> str:
    """Line ``row`` (from 1) after its ``context`` predecessors, each cut to ``line_len``."""
    first = max(row - 1 - context, 0)
    return "\n".join(line[:line_len] for line in lines[first:row])


class StdlibLinesConfig(Section):
    """Standard-library source lines labelled code/comment/docstring/string (module docstring)."""

    name: Literal["stdlib_lines"] = "stdlib_lines"
    preprocess: Literal["none"] = Field("none", description="character ids are not rescaled")
    line_len: PositiveInt = Field(80, description="characters kept of each line")
    context: int = Field(0, ge=0, le=8, description="previous physical lines shown too")
    train_per_class: PositiveInt = Field(2000, description="at most this many lines per class")
    eval_per_class: PositiveInt = Field(200, description="the same for val and test")
    seed: int = Field(0, ge=0, lt=2**32, description="which lines the caps keep")
    max_files: int | None = Field(
        None, ge=1, description="use only the first N files of each split (tests, quick runs)"
    )


def duplicate_ceiling(texts: list[str], labels: np.ndarray) -> float:
    """Best accuracy of any function of the input: each distinct text's top label share."""
    counts = defaultdict(Counter)
    for text, label in zip(texts, labels, strict=True):
        counts[text][int(label)] += 1
    return sum(max(c.values()) for c in counts.values()) / max(len(texts), 1)


def make_stdlib_lines(cfg: StdlibLinesConfig) -> Dataset:
    root = stdlib_dir()
    names = {s: [n for i, n in enumerate(FILES) if file_split(i) == s] for s in SPLITS}
    width = (cfg.context + 1) * (cfg.line_len + 1) - 1
    rng = np.random.default_rng(cfg.seed)
    splits, info = {}, {"stdlib": str(root), "labels": list(LABELS), "missing_files": []}
    info.update(vocab=VOCAB, vocab_size=len(VOCAB), class_counts={}, all_lines={})
    info["duplicate_ceiling"] = {}
    for split in SPLITS:
        texts, labels, used = [], [], []
        for name in names[split][: cfg.max_files]:
            path = root / name
            if not path.is_file():
                info["missing_files"].append(name)
                continue
            used.append(name)
            lines, labelled = labelled_file(str(path))
            for row, label in labelled:
                texts.append(line_text(lines, row, cfg.context, cfg.line_len))
                labels.append(LABELS.index(label))
        labels = np.array(labels, np.int32)
        cap = cfg.train_per_class if split == "train" else cfg.eval_per_class
        keep = []
        for k in range(len(LABELS)):
            members = np.flatnonzero(labels == k)
            keep.append(rng.choice(members, min(cap, len(members)), replace=False))
        keep = np.sort(np.concatenate(keep))
        if len(keep) == 0:
            raise ValueError(f"stdlib_lines: no {split} files found under {root}")
        x = np.full((len(keep), width), PAD, np.int32)
        for row, i in enumerate(keep):
            ids = encode(texts[i], VOCAB)
            x[row, : len(ids)] = ids
        splits[split] = Split(x, labels[keep])
        kept = [texts[i] for i in keep]
        info[f"{split}_files"] = used
        info["all_lines"][split] = dict(
            zip(LABELS, np.bincount(labels, minlength=4).tolist(), strict=True)
        )
        info["class_counts"][split] = dict(
            zip(LABELS, np.bincount(labels[keep], minlength=4).tolist(), strict=True)
        )
        info["duplicate_ceiling"][split] = duplicate_ceiling(kept, labels[keep])
    return Dataset("stdlib_lines", *(splits[s] for s in SPLITS), len(LABELS), info=info)
