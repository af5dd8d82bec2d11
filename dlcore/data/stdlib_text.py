"""Character-level text from the Python standard library's own source files.

Every Python installation ships its standard library as source, so this corpus needs no
download. The file list is fixed in this module (sorted; whole files are held out for
validation and test), so the splits do not depend on what else is installed. Characters
seen fewer than ``min_count`` times in the training files map to an unknown symbol (id 0).

Layout: the training text is cut into consecutive windows ``x[i] = text[i k : (i + 1) k]``
with targets ``y[i]`` = the next character of each position. Shuffled, the windows train a
language model from a zero state; read as B parallel streams (the ``truncated_bptt`` task),
they are consecutive chunks of B long streams. Held-out files are cut into windows of
``eval_len`` characters, the last one padded with ``PAD = -1`` (never counted).
"""

import math
import pathlib
import sysconfig
from collections import Counter
from typing import Literal

import numpy as np
from pydantic import Field

from dlcore.config.section import Section
from dlcore.data.dataset import Dataset, Split
from dlcore.data.sequences import PAD

UNK = "\ufffd"  # shown for characters outside the vocabulary

# Fixed, sorted file lists (top-level modules present from Python 3.9 to 3.13).
VAL_FILES = ("configparser.py", "difflib.py", "shutil.py", "tokenize.py")
TEST_FILES = ("calendar.py", "pickle.py", "subprocess.py", "textwrap.py")
TRAIN_FILES = tuple(
    sorted(
        """
_collections_abc.py _compat_pickle.py _compression.py _markupbase.py _py_abc.py
_pydecimal.py _pyio.py _sitebuiltins.py _strptime.py _threading_local.py _weakrefset.py
abc.py argparse.py ast.py base64.py bdb.py bisect.py bz2.py cProfile.py cmd.py code.py
codecs.py codeop.py colorsys.py compileall.py contextlib.py contextvars.py copy.py
copyreg.py csv.py dataclasses.py datetime.py decimal.py dis.py doctest.py enum.py
filecmp.py fileinput.py fnmatch.py fractions.py ftplib.py functools.py genericpath.py
getopt.py getpass.py gettext.py glob.py graphlib.py gzip.py hashlib.py heapq.py hmac.py
imaplib.py inspect.py io.py ipaddress.py keyword.py linecache.py locale.py lzma.py
mailbox.py mimetypes.py modulefinder.py netrc.py ntpath.py nturl2path.py numbers.py
opcode.py operator.py optparse.py os.py pdb.py pickletools.py pkgutil.py platform.py
plistlib.py poplib.py posixpath.py pprint.py profile.py pstats.py pty.py py_compile.py
pyclbr.py pydoc.py queue.py quopri.py random.py reprlib.py rlcompleter.py runpy.py
sched.py secrets.py selectors.py shelve.py shlex.py signal.py site.py smtplib.py
socket.py socketserver.py ssl.py stat.py statistics.py string.py stringprep.py struct.py
symtable.py tabnanny.py tarfile.py tempfile.py threading.py timeit.py token.py trace.py
traceback.py tracemalloc.py tty.py types.py typing.py uuid.py warnings.py wave.py
weakref.py webbrowser.py zipapp.py zipimport.py
""".split()
    )
)


class StdlibCharsConfig(Section):
    """Character-level text of the standard library's source; see the module docstring."""

    name: Literal["stdlib_chars"] = "stdlib_chars"
    preprocess: Literal["none"] = Field("none", description="character ids are not rescaled")
    seq_len: int = Field(100, ge=2, description="characters per training window (k)")
    eval_len: int = Field(2000, ge=2, description="characters per held-out window")
    min_count: int = Field(20, ge=1, description="rarer training characters become unknown")
    max_train_files: int | None = Field(
        None, ge=1, description="use only the first N training files (tests, quick runs)"
    )


def stdlib_dir() -> pathlib.Path:
    return pathlib.Path(sysconfig.get_paths()["stdlib"])


def read_files(names: tuple[str, ...], root: pathlib.Path) -> tuple[str, list[str]]:
    """The files' texts concatenated in order, and the names that this Python lacks."""
    texts, missing = [], []
    for name in names:
        path = root / name
        if not path.is_file():
            missing.append(name)
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        texts.append(text if text.endswith("\n") else text + "\n")
    return "".join(texts), missing


def build_vocab(text: str, min_count: int) -> str:
    """The vocabulary as a string: id 0 is the unknown symbol, then frequent chars sorted."""
    counts = Counter(text)
    return UNK + "".join(sorted(c for c, n in counts.items() if n >= min_count and c != UNK))


def encode(text: str, vocab: str) -> np.ndarray:
    """Character ids ``[len(text)]`` (int32); characters outside ``vocab`` become 0 (unknown)."""
    table = {c: i for i, c in enumerate(vocab)}
    return np.array([table.get(c, 0) for c in text], np.int32)


def decode(ids, vocab: str) -> str:
    return "".join(vocab[int(i)] for i in ids)


def windows(ids: np.ndarray, width: int, pad_last: bool) -> Split:
    """Inputs ``ids[t]`` and next-character targets ``ids[t + 1]`` cut into ``[N, width]`` rows.

    With ``pad_last`` the final partial window is kept and padded with ``PAD``; otherwise
    it is dropped.
    """
    x, y = ids[:-1], ids[1:]
    rows = -(-len(x) // width) if pad_last else len(x) // width
    xp = np.full(rows * width, PAD, np.int32)
    yp = np.full(rows * width, PAD, np.int32)
    used = min(len(x), rows * width)
    xp[:used], yp[:used] = x[:used], y[:used]
    return Split(xp.reshape(rows, width), yp.reshape(rows, width))


def unigram_bits(train_ids: np.ndarray, heldout_ids: np.ndarray, vocab_size: int) -> float:
    """Bits/char of a unigram (add-one smoothed) model of the training text on held-out text."""
    counts = np.bincount(train_ids, minlength=vocab_size) + 1.0
    log2p = np.log2(counts / counts.sum())
    return float(-np.mean(log2p[heldout_ids]))


def make_stdlib_chars(cfg: StdlibCharsConfig) -> Dataset:
    root = stdlib_dir()
    train_names = TRAIN_FILES[: cfg.max_train_files]
    train_text, miss_train = read_files(train_names, root)
    val_text, miss_val = read_files(VAL_FILES, root)
    test_text, miss_test = read_files(TEST_FILES, root)
    for split, text in (("train", train_text), ("val", val_text), ("test", test_text)):
        if len(text) < 2:
            raise ValueError(f"stdlib_chars: no {split} files found under {root}")
    vocab = build_vocab(train_text, cfg.min_count)
    ids = {
        s: encode(t, vocab)
        for s, t in zip(("train", "val", "test"), (train_text, val_text, test_text), strict=True)
    }
    train = windows(ids["train"], cfg.seq_len, pad_last=False)
    if len(train) < 1:
        raise ValueError(f"stdlib_chars: training text shorter than seq_len = {cfg.seq_len}")
    info = {
        "vocab": vocab,
        "vocab_size": len(vocab),
        "stdlib": str(root),
        "train_files": [n for n in train_names if n not in miss_train],
        "val_files": [n for n in VAL_FILES if n not in miss_val],
        "test_files": [n for n in TEST_FILES if n not in miss_test],
        "missing_files": miss_train + miss_val + miss_test,
        "chars": {s: int(len(v)) for s, v in ids.items()},
        "unk_rate_val": float(np.mean(ids["val"] == 0)),
        "unigram_bits_per_char_val": unigram_bits(ids["train"], ids["val"], len(vocab)),
        "uniform_bits_per_char": math.log2(len(vocab)),
    }
    return Dataset(
        "stdlib_chars",
        train,
        windows(ids["val"], cfg.eval_len, pad_last=True),
        windows(ids["test"], cfg.eval_len, pad_last=True),
        num_classes=len(vocab),
        info=info,
    )
