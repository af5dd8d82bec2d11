"""LeNet-5 on 28x28x1 at B = 128 with Adam: dlcore (every conv lowering), pure JAX, NumPy, torch.

dlcore is measured in the same interleaved pass with ``conv_impl="auto"`` (``"dlcore"``, the
lowering a user gets by default on this backend) and as ``"dlcore conv=<other>"`` with each
other lowering forced (``native``: oneDNN behind XLA's FFI, when the library is available),
so the table shows which one wins here. Every row's config carries a
``conv`` entry naming how its convolutions run.
"""

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

SUITE = "cnn"
FULL = {"batches": (128,)}
QUICK = {"batches": (4,)}


def step_gflop(batch: int) -> float:
    """Conv and dense multiply-adds of LeNet-5 forward, times 3 for the training step."""
    conv1 = 28 * 28 * 6 * (5 * 5 * 1)
    conv2 = 10 * 10 * 16 * (5 * 5 * 6)
    dense = 400 * 120 + 120 * 84 + 84 * 10
    return 3 * 2.0 * batch * (conv1 + conv2 + dense) / 1e9


def dlcore_lenet5(x, y, conv_impl: str = "auto", name: str = "dlcore") -> Candidate:
    """``dlcore.classification(LeNet5(conv_impl=...), optax.adam(1e-3))``'s jitted train step."""
    if "lenet5" not in dlcore.MODELS:
        return not_available(name, "dlcore has no CNN yet (no 'lenet5' in dlcore.MODELS)")
    from dlcore import native
    from dlcore.models.lenet import LeNet5

    if conv_impl == "native" and not native.available():
        return not_available(name, f"no native kernels ({native.status()['reason']})")

    try:
        task = dlcore.classification(LeNet5(out_features=10, conv_impl=conv_impl), optax.adam(1e-3))
        return dlcore_task_candidate(task, jax.random.key(0), {"x": x, "y": y}, name=name)
    except Exception as err:  # a broken candidate is reported as an error row, not a crash
        return failed(name, err)


def conv_lowerings() -> tuple[str, ...]:
    """(the lowering ``conv_impl="auto"`` picks for float32 on this backend, the others)."""
    import jax.numpy as jnp

    from dlcore.layers.conv import CONV_IMPLS, resolve_impl

    auto = resolve_impl("auto", jnp.zeros((), jnp.float32))
    return auto, *(impl for impl in CONV_IMPLS if impl not in ("auto", auto))


def run(settings: Settings) -> list[dict]:
    shapes = QUICK if settings.quick else FULL
    rows = []
    for batch in shapes["batches"]:
        rng = np.random.default_rng(0)
        x = rng.standard_normal((batch, 28, 28, 1), dtype=np.float32)
        y = rng.integers(0, 10, batch).astype(np.int32)
        params = numpy_ref.conv.lenet5_init(rng, np.float32)
        auto, *others = conv_lowerings()
        cands = [
            dlcore_lenet5(x, y),
            *(dlcore_lenet5(x, y, other, name=f"dlcore conv={other}") for other in others),
            pure_jax_candidate(jax_ref.conv.lenet5_loss, params, x, y),
            numpy_candidate(numpy_ref.conv.lenet5_loss_and_grads, params, x, y),
            torch_candidate(torch_ref.lenet5_step, x, y),
        ]
        timings = measure(
            cands, settings.warmup, settings.repeats, settings.min_sample_s, settings.settle_s
        )
        conv = {"dlcore": auto, "pure JAX": "xla"}
        conv |= {f"dlcore conv={other}": other for other in others}
        conv |= {"NumPy": "im2col", "torch": "torch"}
        for row in rows_for(
            SUITE,
            {"model": "lenet5", "B": batch},
            cands,
            timings,
            settings,
            items_per_step=batch,
            items_unit="examples",
            gflop_per_step=step_gflop(batch),
        ):
            rows.append({**row, "config": {**row["config"], "conv": conv[row["candidate"]]}})
    return rows
