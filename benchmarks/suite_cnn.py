"""LeNet-5 on 28x28x1 at B = 128 with Adam: pure JAX vs NumPy vs torch, and a dlcore slot."""

import numpy as np

import dlcore
from benchmarks import jax_ref, numpy_ref, torch_ref
from benchmarks.candidates import numpy_candidate, pure_jax_candidate, torch_candidate
from benchmarks.records import Settings, rows_for
from benchmarks.timing import Candidate, measure, not_available

SUITE = "cnn"
FULL = {"batches": (128,)}
QUICK = {"batches": (4,)}


def step_gflop(batch: int) -> float:
    """Conv and dense multiply-adds of LeNet-5 forward, times 3 for the training step."""
    conv1 = 28 * 28 * 6 * (5 * 5 * 1)
    conv2 = 10 * 10 * 16 * (5 * 5 * 6)
    dense = 400 * 120 + 120 * 84 + 84 * 10
    return 3 * 2.0 * batch * (conv1 + conv2 + dense) / 1e9


def dlcore_lenet5(x, y) -> Candidate:
    """The hook where dlcore's CNN plugs in once ``dlcore.MODELS`` has a ``"lenet5"`` entry.

    Until then the table says "not available"; it never substitutes another implementation.
    """
    if "lenet5" not in dlcore.MODELS:
        return not_available("dlcore", "dlcore has no CNN yet (no 'lenet5' in dlcore.MODELS)")
    return not_available(
        "dlcore", "dlcore.MODELS has 'lenet5' but benchmarks.suite_cnn.dlcore_lenet5 is not wired"
    )


def run(settings: Settings) -> list[dict]:
    shapes = QUICK if settings.quick else FULL
    rows = []
    for batch in shapes["batches"]:
        rng = np.random.default_rng(0)
        x = rng.standard_normal((batch, 28, 28, 1), dtype=np.float32)
        y = rng.integers(0, 10, batch).astype(np.int32)
        params = numpy_ref.conv.lenet5_init(rng, np.float32)
        cands = [
            dlcore_lenet5(x, y),
            pure_jax_candidate(jax_ref.conv.lenet5_loss, params, x, y),
            numpy_candidate(numpy_ref.conv.lenet5_loss_and_grads, params, x, y),
            torch_candidate(torch_ref.lenet5_step, x, y),
        ]
        timings = measure(cands, settings.warmup, settings.repeats, settings.min_sample_s)
        rows += rows_for(
            SUITE,
            {"model": "lenet5", "B": batch},
            cands,
            timings,
            settings,
            items_per_step=batch,
            items_unit="examples",
            gflop_per_step=step_gflop(batch),
        )
    return rows
