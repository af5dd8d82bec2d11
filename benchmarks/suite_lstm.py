"""Char-LM LSTM (vocab 65, T = 100, B = 32, H = 256 and 512), full BPTT with Adam.

Candidates: dlcore (``RNN(LSTMCell)`` + dense read-out, see ``benchmarks.dlcore_models``; "not
available" until ``dlcore.recurrent`` exists), pure JAX (``lax.scan``), NumPy (the lecture step,
hand BPTT) and ``torch.nn.LSTM``. dlcore runs with ``impl="auto"`` (``"dlcore"``: what a user
gets, oneDNN's fused LSTM on CPU when the native kernels are available) and as
``"dlcore rnn=<impl>"`` with each other implementation forced (``native``: oneDNN behind
XLA's FFI; ``custom_vjp``: the XLA scan with the hand-written backward).
"""

import jax
import numpy as np

from benchmarks import jax_ref, numpy_ref, torch_ref
from benchmarks.availability import dlcore_has
from benchmarks.candidates import (
    dlcore_task_candidate,
    numpy_candidate,
    one_hot,
    pure_jax_candidate,
    torch_candidate,
)
from benchmarks.dlcore_models import char_lm_task
from benchmarks.records import Settings, rows_for
from benchmarks.timing import Candidate, failed, measure, not_available

SUITE = "lstm"
VOCAB = 65
FULL = {"T": 100, "B": 32, "hidden": (256, 512)}
QUICK = {"T": 8, "B": 4, "hidden": (16, 32)}


def step_gflop(batch: int, steps: int, hidden: int, vocab: int = VOCAB) -> float:
    """Per token: the four gates 2 (V + H) 4H and the read-out 2 H V; x3 for the train step."""
    per_token = 2.0 * (vocab + hidden) * 4 * hidden + 2.0 * hidden * vocab
    return 3 * per_token * batch * steps / 1e9


def has_dlcore_recurrent() -> bool:
    """True once the dlcore LSTM layer (``dlcore.recurrent``) is importable."""
    return dlcore_has("dlcore.recurrent")


def dlcore_lstm(x, targets, hidden: int, impl: str = "auto", name: str = "dlcore") -> Candidate:
    """dlcore's char-LM (``benchmarks.dlcore_models``); "not available" until it exists."""
    try:
        task = char_lm_task(hidden, VOCAB, impl=impl)
    except ImportError as err:
        return not_available(name, str(err))
    if impl == "native":
        from dlcore import native

        if not native.available():
            return not_available(name, f"no native kernels ({native.status()['reason']})")
    try:
        return dlcore_task_candidate(task, jax.random.key(0), {"x": x, "y": targets}, name=name)
    except Exception as err:  # an API drift must show in the table, not abort the run
        return failed(name, err)


def forced_impls() -> tuple[str, ...]:
    """The RNN implementations measured besides ``impl="auto"``: the one auto does not pick."""
    from dlcore import native

    return ("custom_vjp",) if native.auto_native(jax.numpy.zeros((), "float32")) else ("native",)


def charlm_data(batch: int, steps: int, rng: np.random.Generator):
    """Random token ids as one-hot inputs ``[B, T, V]`` and next-token targets ``[B, T]``."""
    tokens = rng.integers(0, VOCAB, (batch, steps + 1))
    return one_hot(tokens[:, :-1], VOCAB), tokens[:, 1:].astype(np.int32)


def run(settings: Settings) -> list[dict]:
    shapes = QUICK if settings.quick else FULL
    rows = []
    for hidden in shapes["hidden"]:
        rng = np.random.default_rng(0)
        x, targets = charlm_data(shapes["B"], shapes["T"], rng)
        params = numpy_ref.lstm.init_params(rng, VOCAB, hidden, VOCAB, np.float32)
        cands = [
            dlcore_lstm(x, targets, hidden),
            *(dlcore_lstm(x, targets, hidden, i, f"dlcore rnn={i}") for i in forced_impls()),
            pure_jax_candidate(jax_ref.lstm.loss, params, x, targets),
            numpy_candidate(numpy_ref.lstm.loss_and_grads, params, x, targets),
            torch_candidate(torch_ref.charlm_lstm_step, x, targets, hidden),
        ]
        timings = measure(
            cands, settings.warmup, settings.repeats, settings.min_sample_s, settings.settle_s
        )
        rows += rows_for(
            SUITE,
            {"V": VOCAB, "T": shapes["T"], "B": shapes["B"], "H": hidden},
            cands,
            timings,
            settings,
            items_per_step=shapes["B"] * shapes["T"],
            items_unit="tokens",
            gflop_per_step=step_gflop(shapes["B"], shapes["T"], hidden),
        )
    return rows
