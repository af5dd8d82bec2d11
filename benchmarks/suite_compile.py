"""Compile time of the pure-JAX LSTM train step for T = 25 ... 1000, and BPTT remat memory.

Only lowering and compilation are timed, from abstract shapes (nothing runs). Because BPTT is
a ``lax.scan``, the program is the same size for every T and compile time should stay flat.
The remat part compares XLA's temporary memory with and without ``jax.checkpoint`` on the step.
"""

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks import jax_ref
from benchmarks.dlcore_models import char_lm_task
from benchmarks.jax_ref.optim import adam_init, make_train_step
from benchmarks.records import Settings, make_row
from benchmarks.suite_lstm import VOCAB
from benchmarks.timing import Candidate, failed, lower_and_compile, not_available

FULL = {"B": 32, "H": 256, "lengths": (25, 50, 100, 250, 500, 1000), "remat_T": 100}
QUICK = {"B": 2, "H": 16, "lengths": (5, 10), "remat_T": 10}


def _abstract_inputs(batch: int, steps: int, hidden: int):
    params = {
        "Wx": (VOCAB, 4 * hidden),
        "Wh": (hidden, 4 * hidden),
        "b": (4 * hidden,),
        "Wy": (hidden, VOCAB),
        "by": (VOCAB,),
    }
    params = {k: jax.ShapeDtypeStruct(v, jnp.float32) for k, v in params.items()}
    carry = (params, jax.eval_shape(adam_init, params))
    x = jax.ShapeDtypeStruct((batch, steps, VOCAB), jnp.float32)
    y = jax.ShapeDtypeStruct((batch, steps), jnp.int32)
    return carry, x, y


def compile_candidate(loss_fn, name: str, batch: int, steps: int, hidden: int) -> Candidate:
    """Lowers and compiles one train step from abstract shapes; nothing is executed."""
    carry, x, y = _abstract_inputs(batch, steps, hidden)
    _, stats = lower_and_compile(make_train_step(loss_fn), carry, x, y, donate_argnums=0)
    return Candidate(name, None, compile=stats)


def _row(suite, config, cand, settings) -> dict:
    status = "ok (compile only)" if cand.compile is not None else None
    return make_row(
        suite,
        config,
        cand,
        None,
        items_per_step=float(np.prod([config.get("B", 1), config.get("T", 1)])),
        items_unit="tokens",
        gflop_per_step=float("nan"),
        settings=settings,
        status=status,
    )


def dlcore_compile_candidate(batch: int, steps: int, hidden: int, remat: bool) -> Candidate:
    """dlcore's char-LM train step compiled from abstract shapes, or "not available"."""
    try:
        task = char_lm_task(hidden, VOCAB, remat=remat)
    except ImportError as err:
        return not_available("dlcore", str(err))
    try:
        data = {
            "x": jax.ShapeDtypeStruct((batch, steps, VOCAB), jnp.float32),
            "y": jax.ShapeDtypeStruct((batch, steps), jnp.int32),
        }
        state = jax.eval_shape(task.init, jax.random.key(0), data)
        _, stats = lower_and_compile(task.train_step, state, data, donate_argnums=0)
    except Exception as err:  # an API drift must show in the table, not abort the run
        return failed("dlcore", err)
    return Candidate("dlcore", None, compile=stats)


def run_compile(settings: Settings) -> list[dict]:
    s = QUICK if settings.quick else FULL
    rows = []
    for steps in s["lengths"]:
        config = {"B": s["B"], "H": s["H"], "T": steps}
        for cand in (
            dlcore_compile_candidate(s["B"], steps, s["H"], remat=False),
            compile_candidate(jax_ref.lstm.loss, "pure JAX", s["B"], steps, s["H"]),
        ):
            rows.append(_row("lstm_compile", config, cand, settings))
    return rows


def run_remat(settings: Settings) -> list[dict]:
    s = QUICK if settings.quick else FULL
    steps = s["remat_T"]
    rows = []
    for remat, loss_fn in ((False, jax_ref.lstm.loss), (True, jax_ref.lstm.remat_loss)):
        config = {"B": s["B"], "H": s["H"], "T": steps, "remat": remat}
        for cand in (
            dlcore_compile_candidate(s["B"], steps, s["H"], remat=remat),
            compile_candidate(loss_fn, "pure JAX", s["B"], steps, s["H"]),
        ):
            rows.append(_row("remat", config, cand, settings))
    return rows
