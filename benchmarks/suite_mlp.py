"""MLP 784-512-512-10 with Adam at B = 128 and 512: dlcore vs pure JAX vs NumPy vs torch."""

import jax
import numpy as np
import optax

import dlcore
from benchmarks import jax_ref, numpy_ref, torch_ref
from benchmarks.candidates import (
    dlcore_task_candidate,
    numpy_candidate,
    pure_jax_candidate,
    torch_candidate,
)
from benchmarks.records import Settings, rows_for
from benchmarks.timing import measure

SUITE = "mlp"
FULL = {"sizes": (784, 512, 512, 10), "batches": (128, 512)}
QUICK = {"sizes": (784, 32, 32, 10), "batches": (8, 16)}


def step_gflop(sizes, batch: int) -> float:
    """Forward 2 B sum(in*out) FLOPs; backward twice that (input and weight gradients)."""
    return 3 * 2.0 * batch * sum(a * b for a, b in zip(sizes[:-1], sizes[1:], strict=True)) / 1e9


def candidates(sizes, batch: int) -> list:
    """dlcore, pure JAX, NumPy and torch training steps on the same random batch."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch, sizes[0]), dtype=np.float32)
    y = rng.integers(0, sizes[-1], batch).astype(np.int32)
    params = numpy_ref.mlp.init_params(rng, sizes, np.float32)
    task = dlcore.classification(
        dlcore.MLP(widths=tuple(sizes[1:-1]), out_features=sizes[-1]), optax.adam(1e-3)
    )
    return [
        dlcore_task_candidate(task, jax.random.key(0), {"x": x, "y": y}),
        pure_jax_candidate(jax_ref.mlp.loss, params, x, y),
        numpy_candidate(numpy_ref.mlp.loss_and_grads, params, x, y),
        torch_candidate(torch_ref.mlp_step, sizes, x, y),
    ]


def run(settings: Settings) -> list[dict]:
    shapes = QUICK if settings.quick else FULL
    rows = []
    for batch in shapes["batches"]:
        cands = candidates(shapes["sizes"], batch)
        timings = measure(
            cands, settings.warmup, settings.repeats, settings.min_sample_s, settings.settle_s
        )
        config = {"model": "-".join(map(str, shapes["sizes"])), "B": batch}
        rows += rows_for(
            SUITE,
            config,
            cands,
            timings,
            settings,
            items_per_step=batch,
            items_unit="examples",
            gflop_per_step=step_gflop(shapes["sizes"], batch),
        )
    return rows
