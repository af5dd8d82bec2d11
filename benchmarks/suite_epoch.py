"""Digits MLP epoch time: a host loop of per-step calls vs one whole-epoch ``lax.scan``.

The MLP is the ``digits_mlp`` experiment's (64-256-128-10, Adam, batch 32; without dropout
here). Per-step mode calls one jitted step per batch from Python, feeding NumPy batches, and
waits only at the end of the epoch; epoch mode keeps the epoch's batches on the device and runs
one jitted ``lax.scan`` over them. The pure-JAX pair is measured now; the dlcore pair needs the
training engine (``dlcore.engine``) and reports "not available" until it is merged.
In this suite one timed "step" is a whole epoch (``steps`` batches).
"""

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from benchmarks import jax_ref, numpy_ref
from benchmarks.availability import dlcore_has
from benchmarks.jax_ref.optim import adam_init, make_train_step
from benchmarks.records import Settings, rows_for
from benchmarks.timing import Candidate, lower_and_compile, measure, not_available

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


def run(settings: Settings) -> list[dict]:
    s = QUICK if settings.quick else FULL
    x_NxBxD, y_NxB = digits_epoch(s["batch"], s["examples"])
    if not dlcore_has("dlcore.engine"):
        why = "needs dlcore.engine (per-step and whole-epoch scan modes), not merged yet"
    else:
        why = "dlcore.engine exists but benchmarks.suite_epoch is not wired to it"
    per_step, scan = _pure_jax_modes(s["sizes"], x_NxBxD, y_NxB)
    # Timed in one interleaved pass; the names differ only for the timer.
    per_step.name, scan.name = "pure JAX per-step", "pure JAX epoch-scan"
    timings = measure([per_step, scan], settings.warmup, settings.repeats)
    per_step.name = scan.name = "pure JAX"
    steps = len(x_NxBxD)
    rows = []
    for mode, cand, key in (
        ("per-step", per_step, "pure JAX per-step"),
        ("epoch-scan", scan, "pure JAX epoch-scan"),
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
        rows += rows_for(SUITE, config, [not_available("dlcore", why)], {}, settings, **figures)
        rows += rows_for(SUITE, config, [cand], {"pure JAX": timings[key]}, settings, **figures)
    return rows


def _macs(sizes) -> int:
    return sum(a * b for a, b in zip(sizes[:-1], sizes[1:], strict=True))
