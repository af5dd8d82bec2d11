"""A small CIFAR-style ResNet (``numpy_ref.resnet``) on 32x32x3 with Adam: dlcore, pure JAX,
NumPy and torch, one training step each (training-mode batch norm everywhere)."""

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
from benchmarks.timing import Candidate, failed, measure, not_available

SUITE = "resnet"
FULL = {"batches": (64,), "size": 32}
QUICK = {"batches": (2,), "size": 8}
STAGES = numpy_ref.resnet.STAGES


def step_gflop(batch: int, size: int) -> float:
    """Convolution and dense multiply-adds of the forward pass, times 3 for the step."""
    macs, side, width = size * size * numpy_ref.resnet.STEM * 9 * 3, size, numpy_ref.resnet.STEM
    for c_out, stride in STAGES:
        side //= stride
        macs += side * side * c_out * 9 * (width + c_out)  # the block's two 3x3 convs
        if stride != 1 or c_out != width:
            macs += side * side * c_out * width  # the 1x1 projection
        width = c_out
    macs += width * 10
    return 3 * 2.0 * batch * macs / 1e9


def dlcore_resnet(x, y) -> Candidate:
    """``dlcore.classification(ResNet(...), optax.adam(1e-3))`` with the same layers."""
    if "resnet" not in dlcore.MODELS:
        return not_available("dlcore", "dlcore has no 'resnet' model")
    try:
        model = dlcore.MODELS["resnet"].config(**BENCH_RESNET).make(10)
        task = dlcore.classification(model, optax.adam(1e-3))
        return dlcore_task_candidate(task, jax.random.key(0), {"x": x, "y": y})
    except Exception as err:  # a broken candidate is reported as an error row, not a crash
        return failed("dlcore", err)


# dlcore's resnet section for the network of numpy_ref.resnet.
BENCH_RESNET = {
    "name": "resnet",
    "stem_width": numpy_ref.resnet.STEM,
    "widths": [w for w, _ in STAGES],
    "blocks_per_stage": [1] * len(STAGES),
    "block": "basic",
}


def run(settings: Settings) -> list[dict]:
    shapes = QUICK if settings.quick else FULL
    rows = []
    for batch in shapes["batches"]:
        rng = np.random.default_rng(0)
        size = shapes["size"]
        x = rng.standard_normal((batch, size, size, 3), dtype=np.float32)
        y = rng.integers(0, 10, batch).astype(np.int32)
        params = numpy_ref.resnet.resnet_init(rng, 3, 10, np.float32)
        cands = [
            dlcore_resnet(x, y),
            pure_jax_candidate(jax_ref.resnet.resnet_loss, params, x, y),
            numpy_candidate(numpy_ref.resnet.resnet_loss_and_grads, params, x, y),
            torch_candidate(torch_ref.resnet_step, x, y, STAGES, numpy_ref.resnet.STEM),
        ]
        timings = measure(
            cands, settings.warmup, settings.repeats, settings.min_sample_s, settings.settle_s
        )
        rows += rows_for(
            SUITE,
            {"model": "resnet8", "B": batch, "image": size},
            cands,
            timings,
            settings,
            items_per_step=batch,
            items_unit="examples",
            gflop_per_step=step_gflop(batch, size),
        )
    return rows
