"""Digits MLP epoch time: a host loop of per-step calls vs one whole-epoch ``lax.scan``.

The MLP is the ``digits_mlp`` experiment's (64-256-128-10, Adam, batch 32; without dropout
here). Per-step mode calls one jitted step per batch from Python, feeding NumPy batches, and
waits only at the end of the epoch; epoch mode keeps the epoch's batches on the device and runs
one jitted ``lax.scan`` over them. The dlcore pair runs the engine's own pieces exactly as
``dlcore.engine.loop.fit`` does: ``BatchOrder`` batches gathered on the host and the engine's
compiled ``train_step`` with the state donated (``mode = "step"``), or its compiled
``train_scan`` (one chunk = the whole epoch here) gathering the shuffled batches on the
device (``mode = "scan"``).
In this suite one timed "step" is a whole epoch (``steps`` batches).
"""

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from benchmarks import jax_ref, numpy_ref
from benchmarks.jax_ref.optim import adam_init, make_train_step
from benchmarks.records import Settings, rows_for
from benchmarks.timing import Candidate, CompileStats, lower_and_compile, measure

SUITE = "digits_epoch"
FULL = {"sizes": (64, 256, 128, 10), "batch": 32, "examples": None}
QUICK = {"sizes": (64, 16, 10), "batch": 8, "examples": 64}


def digits_epoch(batch: int, examples: int | None):
    """scikit-learn's bundled 8x8 digits (no download), scaled to [0, 1], as whole batches."""
    from sklearn.datasets import load_digits  # imported here: only this suite needs it

    x, y = load_digits(return_X_y=True)
    x, y = x[:examples] / 16.0, y[:examples]
    n = (len(x) // batch) * batch
    x_NxBxD = x[:n].astype(np.float32).reshape(-1, batch, x.shape[1])
    return x_NxBxD, y[:n].astype(np.int32).reshape(-1, batch)


def _pure_jax_modes(sizes, x_NxBxD, y_NxB) -> list[Candidate]:
    params = jax.tree.map(jnp.asarray, numpy_ref.mlp.init_params(np.random.default_rng(0), sizes))
    step = make_train_step(jax_ref.mlp.loss)
    carry = (params, adam_init(params))

    compiled_step, step_stats = lower_and_compile(step, carry, x_NxBxD[0], y_NxB[0])
    box = [carry]

    def per_step_epoch():
        c = box[0]
        for xb, yb in zip(x_NxBxD, y_NxB, strict=True):
            c, _ = compiled_step(c, xb, yb)  # no wait: dispatch runs ahead of the device
        box[0] = jax.block_until_ready(c)

    def epoch_fn(c, xs, ys):
        return lax.scan(lambda c_, b: step(c_, *b), c, (xs, ys))

    xs, ys = jnp.asarray(x_NxBxD), jnp.asarray(y_NxB)  # placed on the device once
    compiled_epoch, epoch_stats = lower_and_compile(epoch_fn, carry, xs, ys)
    ebox = [carry]

    def scan_epoch():
        ebox[0], losses = compiled_epoch(ebox[0], xs, ys)
        jax.block_until_ready(losses)

    return [
        Candidate("pure JAX", per_step_epoch, compile=step_stats),
        Candidate("pure JAX", scan_epoch, compile=epoch_stats),
    ]


def _dlcore_modes(sizes, x_NxBxD, y_NxB) -> list[Candidate]:
    import optax

    import dlcore
    from dlcore.data import BatchOrder, Position, Split
    from dlcore.engine.compiled import CompiledTask

    x_ND = x_NxBxD.reshape(-1, x_NxBxD.shape[-1])
    y_N = y_NxB.reshape(-1)
    batch = y_NxB.shape[1]
    model = dlcore.MLP(widths=tuple(sizes[1:-1]), out_features=sizes[-1])
    task = dlcore.classification(model, optax.adam(1e-3))
    split, order = Split(x_ND, y_N), BatchOrder(len(x_ND), batch, seed=0)
    compiled = CompiledTask(task)
    state = task.init(jax.random.PRNGKey(0), {"x": x_ND[:batch], "y": y_N[:batch]})
    fields = jax.device_put({"x": x_ND, "y": y_N})
    rows = jnp.asarray(order.indices(0), jnp.int32)
    # First calls compile (timed by the engine's AheadOfTime wrappers).
    step_box = [
        compiled.train_step(jax.tree.map(jnp.copy, state), {"x": x_ND[:batch], "y": y_N[:batch]})[0]
    ]
    scan_box = [compiled.train_scan(state, fields, rows)[0]]

    def per_step_epoch():
        s, pending = step_box[0], []
        for _, b in order.batches(split, Position(0, 0)):
            s, metrics, _ = compiled.train_step(s, b)  # (state, metric sums, health)
            pending.append(metrics)  # as the loop does: metrics stay on the device
        step_box[0] = jax.block_until_ready(s)

    def scan_epoch():
        scan_box[0], metrics = compiled.train_scan(scan_box[0], fields, rows)
        jax.block_until_ready(metrics)

    def stats(f):
        return CompileStats(lower_s=f.lower_s, compile_s=f.compile_s, temp_bytes=None)

    return [
        Candidate("dlcore", per_step_epoch, compile=stats(compiled.train_step)),
        Candidate("dlcore", scan_epoch, compile=stats(compiled.train_scan)),
    ]


def run(settings: Settings) -> list[dict]:
    s = QUICK if settings.quick else FULL
    x_NxBxD, y_NxB = digits_epoch(s["batch"], s["examples"])
    per_step, scan = _pure_jax_modes(s["sizes"], x_NxBxD, y_NxB)
    dl_step, dl_scan = _dlcore_modes(s["sizes"], x_NxBxD, y_NxB)
    # Timed in one interleaved pass; the names differ only for the timer.
    per_step.name, scan.name = "pure JAX per-step", "pure JAX epoch-scan"
    dl_step.name, dl_scan.name = "dlcore per-step", "dlcore epoch-scan"
    timings = measure(
        [per_step, scan, dl_step, dl_scan],
        settings.warmup,
        settings.repeats,
        settle_s=settings.settle_s,
    )
    per_step.name = scan.name = "pure JAX"
    dl_step.name = dl_scan.name = "dlcore"
    steps = len(x_NxBxD)
    rows = []
    for mode, cand, key, dl_cand, dl_key in (
        ("per-step", per_step, "pure JAX per-step", dl_step, "dlcore per-step"),
        ("epoch-scan", scan, "pure JAX epoch-scan", dl_scan, "dlcore epoch-scan"),
    ):
        config = {
            "dataset": "digits",
            "mode": mode,
            "B": s["batch"],
            "steps": steps,
            "timed": "epoch",
        }
        figures = {
            "items_per_step": float(steps * s["batch"]),
            "items_unit": "examples",
            "gflop_per_step": 3 * 2.0 * steps * s["batch"] * _macs(s["sizes"]) / 1e9,
        }
        rows += rows_for(SUITE, config, [dl_cand], {"dlcore": timings[dl_key]}, settings, **figures)
        rows += rows_for(SUITE, config, [cand], {"pure JAX": timings[key]}, settings, **figures)
    return rows


def _macs(sizes) -> int:
    return sum(a * b for a, b in zip(sizes[:-1], sizes[1:], strict=True))
