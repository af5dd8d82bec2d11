"""One additive (Bahdanau) attention layer, forward + backward + Adam, squared-error loss."""

import jax
import numpy as np

from benchmarks import jax_ref, numpy_ref, torch_ref
from benchmarks.candidates import (
    dlcore_task_candidate,
    numpy_candidate,
    pure_jax_candidate,
    torch_candidate,
)
from benchmarks.dlcore_models import attention_task
from benchmarks.records import Settings, rows_for
from benchmarks.timing import Candidate, failed, measure, not_available

SUITE = "attention"
FULL = {"B": 32, "Tq": 32, "Tk": 32, "D": 128, "A": 128}
QUICK = {"B": 2, "Tq": 4, "Tk": 5, "D": 8, "A": 8}


def step_gflop(b: int, tq: int, tk: int, d: int, a: int) -> float:
    """Projections 2 B (Tq + Tk) D A, scores 2 B Tq Tk A, contexts 2 B Tq Tk D; x3."""
    forward = 2.0 * b * (tq + tk) * d * a + 2.0 * b * tq * tk * a + 2.0 * b * tq * tk * d
    return 3 * forward / 1e9


def dlcore_attention(q, k, v, target, features: int) -> Candidate:
    """``dlcore.regression`` over ``dlcore.layers.AdditiveAttention``: its jitted train step."""
    try:
        task = attention_task(features)
    except ImportError as err:
        return not_available("dlcore", str(err))
    try:
        batch = {"x": {"q": q, "k": k, "v": v}, "y": target}
        return dlcore_task_candidate(task, jax.random.key(0), batch)
    except Exception as err:  # a broken candidate is reported as an error row, not a crash
        return failed("dlcore", err)


def run(settings: Settings) -> list[dict]:
    s = QUICK if settings.quick else FULL
    rng = np.random.default_rng(0)
    q = rng.standard_normal((s["B"], s["Tq"], s["D"]), dtype=np.float32)
    k = rng.standard_normal((s["B"], s["Tk"], s["D"]), dtype=np.float32)
    v = rng.standard_normal((s["B"], s["Tk"], s["D"]), dtype=np.float32)
    target = rng.standard_normal((s["B"], s["Tq"], s["D"]), dtype=np.float32)
    params = numpy_ref.attention.init_params(rng, s["D"], s["D"], s["A"], np.float32)
    batch = (q, k, v, target)
    cands = [
        dlcore_attention(*batch, s["A"]),
        pure_jax_candidate(jax_ref.attention.loss, params, *batch),
        numpy_candidate(numpy_ref.attention.loss_and_grads, params, *batch),
        torch_candidate(torch_ref.attention_step, *batch, s["A"]),
    ]
    timings = measure(
        cands, settings.warmup, settings.repeats, settings.min_sample_s, settings.settle_s
    )
    return rows_for(
        SUITE,
        dict(s),
        cands,
        timings,
        settings,
        items_per_step=s["B"] * s["Tq"],
        items_unit="queries",
        gflop_per_step=step_gflop(s["B"], s["Tq"], s["Tk"], s["D"], s["A"]),
    )
