"""The race's data, written with NumPy and scikit-learn only, as a PyTorch or Keras user would.

The scripts beside this file must train on exactly what ``dlcore run`` trains on, yet import
neither dlcore nor JAX (that would bill dlcore's imports to the other frameworks). So this
module re-implements the three data sets of the shipped experiments, and
``tests/test_race.py`` checks it against dlcore's own loaders:

- ``digits_flat``: scikit-learn's 8x8 digits, the stratified 70/15/15 split of
  ``dlcore.data.digits`` (``random_state = 0``), standardized per feature with training
  statistics, ``x' = (x - mu) / sigma`` (``sigma = 1`` where a pixel is constant);
- ``digits_images``: the same split as ``[N, 32, 32, 1]`` images resized bilinearly,
  ``x' = A x A^T``, minus the training split's channel mean;
- ``stdlib_chars``: the standard library's source as characters (fixed file lists, rare
  characters unknown), training windows of ``k`` characters, held-out windows padded with -1.

Batches follow dlcore's order too: a fresh permutation ``default_rng([seed, epoch])`` per
epoch, the incomplete last batch dropped (``epoch_batches``), or ``B`` parallel streams for
truncated BPTT (``stream_batches``).
"""

import json
import math
import sys
import sysconfig
import time
from collections import Counter
from pathlib import Path

import numpy as np

SPLIT_SEED, TEST_FRACTION, VAL_FRACTION = 0, 0.15, 0.15
PAD = -1
UNK = "\ufffd"
VAL_FILES = ("configparser.py", "difflib.py", "shutil.py", "tokenize.py")
TEST_FILES = ("calendar.py", "pickle.py", "subprocess.py", "textwrap.py")
# The training files of dlcore.data.stdlib_text (tests/test_race.py keeps the two equal).
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
RESULT_PREFIX = "RACE_RESULT "
# The script clock starts when this module loads: scripts import it before their framework.
STARTED = time.perf_counter()


def _digits_split(x: np.ndarray, y: np.ndarray) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    from sklearn.model_selection import train_test_split

    x_rest, x_test, y_rest, y_test = train_test_split(
        x, y, test_size=TEST_FRACTION, stratify=y, random_state=SPLIT_SEED
    )
    x_train, x_val, y_train, y_val = train_test_split(
        x_rest,
        y_rest,
        test_size=VAL_FRACTION / (1.0 - TEST_FRACTION),
        stratify=y_rest,
        random_state=SPLIT_SEED,
    )
    return {"train": (x_train, y_train), "val": (x_val, y_val), "test": (x_test, y_test)}


def _load_digits() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    return x.astype(np.float32), y.astype(np.int64)


def digits_flat() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``{"train"|"val"|"test": (x [N, 64] float32, labels [N] int64)}``, standardized."""
    splits = _digits_split(*_load_digits())
    x_train = splits["train"][0]
    mean, std = x_train.mean(axis=0), x_train.std(axis=0)
    std = np.where(std > 1e-8, std, 1.0)
    return {k: (((x - mean) / std).astype(np.float32), y) for k, (x, y) in splits.items()}


def resize_matrix(n_in: int, n_out: int) -> np.ndarray:
    """``[n_out, n_in]`` bilinear interpolation between pixel centres, edges clamped."""
    pos = np.clip((np.arange(n_out) + 0.5) * n_in / n_out - 0.5, 0, n_in - 1)
    lo = np.floor(pos).astype(int)
    hi = np.minimum(lo + 1, n_in - 1)
    a = np.zeros((n_out, n_in))
    a[np.arange(n_out), lo] += 1 - (pos - lo)
    a[np.arange(n_out), hi] += pos - lo
    return a


def digits_images(size: int = 32) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``{split: (x [N, size, size, 1] float32, labels [N] int64)}``, channel mean removed."""
    x, y = _load_digits()
    a = resize_matrix(8, size)
    x = np.einsum("ih,nhwc,jw->nijc", a, x.reshape(-1, 8, 8, 1), a).astype(np.float32)
    splits = _digits_split(x, y)
    mean = splits["train"][0].mean(axis=(0, 1, 2))
    return {k: ((x - mean).astype(np.float32), y) for k, (x, y) in splits.items()}


def _read(names: tuple[str, ...]) -> str:
    root = Path(sysconfig.get_paths()["stdlib"])
    texts = []
    for name in names:
        path = root / name
        if path.is_file():
            text = path.read_text(encoding="utf-8", errors="replace")
            texts.append(text if text.endswith("\n") else text + "\n")
    return "".join(texts)


def _windows(ids: np.ndarray, width: int, pad_last: bool) -> tuple[np.ndarray, np.ndarray]:
    x, y = ids[:-1], ids[1:]
    rows = -(-len(x) // width) if pad_last else len(x) // width
    xp = np.full(rows * width, PAD, np.int64)
    yp = np.full(rows * width, PAD, np.int64)
    used = min(len(x), rows * width)
    xp[:used], yp[:used] = x[:used], y[:used]
    return xp.reshape(rows, width), yp.reshape(rows, width)


def stdlib_chars(
    seq_len: int = 100, eval_len: int = 2000, min_count: int = 20, max_train_files=None
) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], int]:
    """``({split: (x ids [N, T], next-char targets [N, T])}, vocabulary size)``; ids are
    int64, held-out windows end with -1 (never counted)."""
    texts = {
        "train": _read(TRAIN_FILES[:max_train_files]),
        "val": _read(VAL_FILES),
        "test": _read(TEST_FILES),
    }
    counts = Counter(texts["train"])
    vocab = UNK + "".join(sorted(c for c, n in counts.items() if n >= min_count and c != UNK))
    table = {c: i for i, c in enumerate(vocab)}
    ids = {k: np.array([table.get(c, 0) for c in t], np.int64) for k, t in texts.items()}
    splits = {"train": _windows(ids["train"], seq_len, pad_last=False)}
    for split in ("val", "test"):
        splits[split] = _windows(ids[split], eval_len, pad_last=True)
    return splits, len(vocab)


def epoch_batches(num_examples: int, batch_size: int, seed: int, epoch: int) -> np.ndarray:
    """Example indices ``[steps, batch_size]`` of one epoch (dlcore's ``BatchOrder``)."""
    steps = num_examples // batch_size
    perm = np.random.default_rng([seed, epoch]).permutation(num_examples)
    return perm[: steps * batch_size].reshape(steps, batch_size)


def stream_batches(num_examples: int, batch_size: int) -> np.ndarray:
    """``[steps, batch_size]``: batch n holds window n of each of ``batch_size`` streams."""
    steps = num_examples // batch_size
    return np.arange(steps * batch_size).reshape(batch_size, steps).T.copy()


class EpochLog:
    """Per-epoch timings and metrics of a race script, and its one-line JSON result.

    Each epoch prints ``epoch E | <metric> V`` to stderr as soon as it is evaluated (the
    race timestamps these lines), and :meth:`result` prints ``RACE_RESULT {json}`` on
    stdout: training seconds per epoch (evaluation excluded), the metric per epoch, the
    first epoch that reached ``target`` and the training and script seconds up to it.
    """

    def __init__(self, framework: str, metric: str, target: float, higher_is_better: bool):
        self.framework, self.metric, self.target = framework, metric, target
        self.higher = higher_is_better
        self.t0 = STARTED
        self.train_s: list[float] = []
        self.values: list[float] = []
        self.at_s: list[float] = []  # script seconds at the end of each evaluation

    def reached(self, value: float) -> bool:
        return value >= self.target if self.higher else value <= self.target

    def epoch(self, train_s: float, value: float) -> None:
        self.train_s.append(train_s)
        self.values.append(value)
        self.at_s.append(time.perf_counter() - self.t0)
        print(f"epoch {len(self.values)} | {self.metric} {value:.4f}", file=sys.stderr, flush=True)

    def result(self, final: dict[str, float], **extra) -> dict:
        hit = next((i for i, v in enumerate(self.values) if self.reached(v)), None)
        out = {
            "framework": self.framework,
            "metric": self.metric,
            "target": self.target,
            "epochs": len(self.values),
            "epoch_train_s": self.train_s,
            "values": self.values,
            "train_s": sum(self.train_s),
            "target_epoch": None if hit is None else hit + 1,
            "train_to_target_s": None if hit is None else sum(self.train_s[: hit + 1]),
            "script_to_target_s": None if hit is None else self.at_s[hit],
            "script_s": time.perf_counter() - self.t0,
            "final": final,
            **extra,
        }
        print(RESULT_PREFIX + json.dumps(out), flush=True)
        return out


def bits_per_char(nll_nats_sum: float, count: float) -> float:
    """Mean negative log-likelihood in bits: ``sum(-ln p) / (count ln 2)``."""
    return nll_nats_sum / max(count, 1.0) / math.log(2.0)
