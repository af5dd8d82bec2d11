"""Length bucketing: LSTM parity training at the full padded width vs on length buckets.

The data are the ``parity`` bit strings with lengths uniform in [2, 64] (padded with -1 to
64), the model the ``parity_lstm`` experiment's (one-hot inputs, LSTM 64, last-step readout,
Adam). Both candidates run the engine's own pieces as ``dlcore.engine.loop.fit`` does in
step mode: batches gathered on the host by the order, one compiled ``train_step`` per batch
shape, the state donated. "full width" uses the task's ``BatchOrder`` (every batch ``[B, 64]``);
"bucketed" uses :func:`dlcore.data.buckets.bucket_order` with 4 quantile buckets (each batch
trimmed to its bucket's width, one compile per width). One timed "step" is the first S
batches of epoch 0 of that order, S the smaller of the two epochs' batch counts, so both
train on the same number of examples. The rows' caption gives the padding fraction of the
timed batches and the speed-up (full-width time / bucketed time).
"""

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks.records import Settings, rows_for
from benchmarks.timing import Candidate, CompileStats, measure

SUITE = "bucketing"
FULL = {"n": 4000, "min_len": 2, "max_len": 64, "features": 64, "batch": 64, "buckets": 4}
QUICK = {"n": 200, "min_len": 2, "max_len": 12, "features": 8, "batch": 16, "buckets": 2}


def _parity(s: dict):
    from dlcore.data.sequences import ParityConfig, make_parity

    return make_parity(
        ParityConfig(n_samples=s["n"], min_len=s["min_len"], max_len=s["max_len"], seed=0)
    )


def _epoch_runner(task, state, split, order, steps: int):
    """A candidate step: the first ``steps`` batches of ``order``'s epoch 0, compiled per
    batch shape by the engine; returns (step fn, compiled step, padded positions)."""
    from dlcore.data import Position
    from dlcore.engine.compiled import CompiledTask

    compiled = CompiledTask(task, train_shapes=order.batch_shapes)
    batches = [b for _, b in order.batches(split, Position(0, 0))][:steps]
    box = [jax.tree.map(jnp.copy, state)]
    for b in {b["x"].shape[1]: b for b in batches}.values():  # compile every width first
        box[0] = compiled.train_step(box[0], b)[0]

    def epoch():
        s = box[0]
        for b in batches:
            s, _, _ = compiled.train_step(s, b)  # metrics stay on the device, as in fit
        box[0] = jax.block_until_ready(s)

    positions = sum(b["x"].size for b in batches)
    return epoch, compiled.train_step, positions, batches


def run(settings: Settings) -> list[dict]:
    import optax

    import dlcore
    from dlcore.data import BatchOrder
    from dlcore.data.buckets import bucket_order, padding_fraction, sequence_lengths
    from dlcore.models.rnn import SequenceModel

    s = QUICK if settings.quick else FULL
    data = _parity(s)
    model = SequenceModel(
        out_features=2, vocab_size=2, input_mode="one_hot", features=s["features"], readout="last"
    )
    task = dlcore.classification(model, optax.adam(3e-3))
    state = task.init(jax.random.PRNGKey(0), data.train.rows(slice(0, s["batch"])))
    plain = BatchOrder(len(data.train), s["batch"], seed=0)
    bucketed = bucket_order(plain, data, "x", s["buckets"])
    steps = min(plain.steps_per_epoch, bucketed.steps_per_epoch)
    full_step, full_fn, full_pos, full_b = _epoch_runner(task, state, data.train, plain, steps)
    buck_step, buck_fn, buck_pos, buck_b = _epoch_runner(task, state, data.train, bucketed, steps)
    full = Candidate("dlcore full width", full_step, compile=_stats(full_fn))
    buck = Candidate("dlcore bucketed", buck_step, compile=_stats(buck_fn))
    timings = measure([full, buck], settings.warmup, settings.repeats, settle_s=settings.settle_s)

    def padding(batches):
        lengths = np.stack([sequence_lengths(b["x"], -1) for b in batches])
        return padding_fraction(lengths, np.array([b["x"].shape[1] for b in batches]))

    pad_full, pad_buck = padding(full_b), padding(buck_b)
    speedup = (
        timings[full.name].median_s / timings[buck.name].median_s
        if full.name in timings and buck.name in timings
        else float("nan")
    )
    caption = (
        f"{steps} batches of B={s['batch']} per timed epoch, lengths {s['min_len']}.."
        f"{s['max_len']}; padding fraction {pad_full:.3f} at full width, {pad_buck:.3f} on "
        f"buckets {list(bucketed.widths)} ({full_pos / buck_pos:.2f}x fewer positions); "
        f"speed-up {speedup:.2f}x"
    )
    gates = 4 * s["features"] * (2 + s["features"] + 1)  # MACs of one LSTM step, one example
    rows = []
    for cand, bucketing, pad, positions in (
        (full, "off", pad_full, full_pos),
        (buck, f"{len(bucketed.widths)} quantiles", pad_buck, buck_pos),
    ):
        config = {
            "dataset": "parity",
            "T": s["max_len"],
            "B": s["batch"],
            "steps": steps,
            "bucketing": bucketing,
            "padding": round(pad, 3),
        }
        figures = {
            "items_per_step": float(steps * s["batch"]),
            "items_unit": "examples",
            "gflop_per_step": 3 * 2.0 * positions * gates / 1e9,
        }
        new = rows_for(SUITE, config, [cand], timings, settings, **figures)
        for row in new:
            row.update(caption=caption, padding_fraction=pad, speedup=speedup)
        rows += new
    return rows


def _stats(fn) -> CompileStats:
    return CompileStats(lower_s=fn.lower_s, compile_s=fn.compile_s, temp_bytes=None)
