"""Sequence task shapes: each learns, padding never counts, truncated BPTT carries and resumes."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from dlcore import native
from dlcore.config.loading import ConfigError, load_config
from dlcore.data import BatchOrder
from dlcore.engine.loop import fit
from dlcore.experiment import build
from dlcore.models.rnn import SequenceModel
from dlcore.runs.run_dir import RunDir
from dlcore.tasks.sequence import TaggingTask, per_step_sums, step_weights
from dlcore.tasks.tbptt import TruncatedBPTTTask
from tests.helpers import REPO, StopAfter

SMALL = ["model.features=16", "optimizer.learning_rate=0.03"]
SHAPES = {  # shipped experiment, shrunk: many-to-one, many-to-many, one-to-many, regression
    "parity_lstm": ["data.n_samples=100", *SMALL],
    "dyck_depth_lstm": ["data.n_samples=100", *SMALL],
    "number_words_gru": SMALL,
    "adding_lstm": ["data.n_samples=100", "data.length=20", *SMALL],
    "charlm_lstm": ["data.max_train_files=1", "data.seq_len=20", "train.batch_size=8", *SMALL],
}


@pytest.mark.parametrize("stem", SHAPES)
def test_each_task_shape_fits_a_batch(stem):
    cfg = load_config(REPO / "experiments" / f"{stem}.toml", SHAPES[stem])
    built = build(cfg)
    data, task = built.data, built.task
    batch = {"x": data.train.x[:8], "y": data.train.y[:8]}
    state = task.init(jax.random.PRNGKey(0), batch)
    step = jax.jit(task.train_step)
    losses = []
    for _ in range(25):
        state, sums = step(state, batch)
        losses.append(float(sums["loss"] / sums["count"]))
    assert np.all(np.isfinite(losses))
    assert losses[-1] < 0.8 * losses[0], losses


@pytest.mark.parametrize(
    "readout, bidirectional, cell",
    [
        ("last", False, "lstm"),
        ("mean", False, "gru"),
        ("all", False, "lstm"),
        ("last", True, "gru"),
    ],
)
def test_padding_changes_nothing_at_real_steps(readout, bidirectional, cell):
    model = SequenceModel(
        out_features=3,
        vocab_size=4,
        cell=cell,
        features=8,
        readout=readout,
        bidirectional=bidirectional,
    )
    real = jnp.array([[1, 3, 0, 2, 2]])
    padded = jnp.array([[1, 3, 0, 2, 2, -1, -1, -1]])
    variables = model.init(jax.random.PRNGKey(0), padded, train=False)
    out_real = model.apply(variables, real, train=False)
    out_padded = model.apply(variables, padded, train=False)
    if readout == "all":
        out_padded = out_padded[:, :5]
    np.testing.assert_allclose(out_padded, out_real, rtol=1e-5, atol=1e-6)


def test_per_step_sums_ignore_padded_steps_and_examples():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(3, 4, 5)).astype(np.float32)
    y = np.array([[1, 2, -1, -1], [0, 4, 3, 1], [2, 2, 2, 2]], np.int32)
    mask = np.array([1.0, 1.0, 0.0], np.float32)  # the third example is eval padding
    _, sums = per_step_sums(jnp.asarray(logits), jnp.asarray(y), step_weights(y, mask), "bits")
    log_p = logits - np.log(np.sum(np.exp(logits), axis=-1, keepdims=True))
    counted = [(b, t) for b in range(2) for t in range(4) if y[b, t] >= 0]
    ce = [-log_p[b, t, y[b, t]] for b, t in counted]
    assert float(sums["count"]) == len(counted) == 6
    np.testing.assert_allclose(float(sums["loss"]), np.sum(ce), rtol=1e-5)
    np.testing.assert_allclose(float(sums["bits"]), np.sum(ce) / math.log(2), rtol=1e-5)
    hits = sum(int(np.argmax(logits[b, t]) == y[b, t]) for b, t in counted)
    assert float(sums["accuracy"]) == hits
    # Whatever the padded logits are, nothing changes.
    logits[0, 2:] = 1e3
    logits[2] = -1e3
    _, again = per_step_sums(jnp.asarray(logits), jnp.asarray(y), step_weights(y, mask), "bits")
    for k in sums:
        np.testing.assert_allclose(float(again[k]), float(sums[k]), rtol=1e-6)


def test_streams_order_reads_contiguous_streams_every_epoch():
    order = BatchOrder(num_examples=11, batch_size=2, seed=0, order="streams")
    expected = np.array([[0, 5], [1, 6], [2, 7], [3, 8], [4, 9]])
    np.testing.assert_array_equal(order.indices(0), expected)
    np.testing.assert_array_equal(order.indices(7), expected)
    with pytest.raises(ValueError, match="batch order must be 'shuffled' or 'streams'"):
        BatchOrder(11, 2, 0, order="sorted")


VOCAB = 5


def lm_model(cell="lstm"):
    return SequenceModel(VOCAB, vocab_size=VOCAB, cell=cell, features=8, embed_dim=4)


def token_batch(batch, steps, seed=0):
    ids = np.random.default_rng(seed).integers(0, VOCAB, (batch, steps + 1)).astype(np.int32)
    return {"x": jnp.asarray(ids[:, :-1]), "y": jnp.asarray(ids[:, 1:])}


@pytest.mark.parametrize("cell", ["gru"])
def test_truncated_bptt_with_k_equal_T_is_full_bptt(cell):
    batch = token_batch(4, 12)
    opt = optax.sgd(0.5)
    full = TaggingTask(lm_model(cell), opt, bits_metric="bits")
    trunc = TruncatedBPTTTask(lm_model(cell), opt, num_examples=4, bits_metric="bits")
    s_full = full.init(jax.random.PRNGKey(1), batch)
    s_trunc = trunc.init(jax.random.PRNGKey(1), batch)
    for _ in range(2):  # the second step starts a new epoch: the carry is reset to zeros
        s_full, m_full = jax.jit(full.train_step)(s_full, batch)
        s_trunc, m_trunc = jax.jit(trunc.train_step)(s_trunc, batch)
        for k in m_full:
            np.testing.assert_allclose(m_trunc[k], m_full[k], rtol=1e-5)
    jax.tree.map(
        lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6),
        s_trunc.params,
        s_full.params,
    )


def test_truncated_bptt_carries_the_state_into_the_next_chunk():
    windows = token_batch(8, 6, seed=2)  # 8 windows = 4 streams of 2 chunks each
    order = BatchOrder(8, 4, seed=0, order="streams")
    chunks = [{k: v[rows] for k, v in windows.items()} for rows in order.indices(0)]
    model = lm_model()
    task = TruncatedBPTTTask(model, optax.sgd(0.5), num_examples=8)
    state0 = task.init(jax.random.PRNGKey(0), chunks[0])
    step = jax.jit(task.train_step)
    state1, _ = step(state0, chunks[0])
    state2, sums2 = step(state1, chunks[1])

    def run(params, chunk, carry=None):
        return model.apply(
            {"params": params}, chunk["x"], train=False, carry=carry, return_carry=True
        )

    carry0, _ = run(state0.params, chunks[0])
    jax.tree.map(np.testing.assert_allclose, state1.extra["carry"], carry0)
    _, logits = run(state1.params, chunks[1], carry0)
    loss = optax.softmax_cross_entropy_with_integer_labels(logits, chunks[1]["y"]).sum()
    np.testing.assert_allclose(sums2["loss"], loss, rtol=1e-5)
    # Chunk 2 continues chunk 1: together they are one forward pass over the whole stream.
    whole = {k: jnp.concatenate([chunks[0][k], chunks[1][k]], axis=1) for k in windows}
    _, logits_whole = run(state0.params, whole)
    _, logits_next = run(state0.params, chunks[1], carry0)
    np.testing.assert_allclose(logits_whole[:, 6:], logits_next, rtol=1e-5, atol=1e-6)
    # A new epoch restarts the streams from a zero state.
    _, sums3 = step(state2, chunks[0])
    _, logits_fresh = run(state2.params, chunks[0])
    fresh = optax.softmax_cross_entropy_with_integer_labels(logits_fresh, chunks[0]["y"]).sum()
    np.testing.assert_allclose(sums3["loss"], fresh, rtol=1e-5)


def test_truncated_bptt_resume_is_exact(tmp_path):
    overrides = [
        "data.max_train_files=1",
        "data.seq_len=16",
        "data.eval_len=8000",
        "model.features=8",
        "model.embed_dim=4",
        "train.batch_size=32",
        "train.epochs=2",
        "train.mode=step",
        "train.log_every=10",
        "train.checkpoint_every=20",
    ]
    cfg = load_config(REPO / "experiments" / "charlm_lstm.toml", overrides)
    built = build(cfg)
    data, task = built.data, built.task
    whole = fit(task, data, cfg.train, cfg.seed, run=RunDir.create(tmp_path / "whole"))
    run = RunDir.create(tmp_path / "split")
    first = fit(task, data, cfg.train, cfg.seed, run=run, stop=StopAfter(90))  # in epoch 2 of 2
    assert first.status == "interrupted" and 0 < int(first.state.step) < int(whole.state.step)
    resumed = fit(task, data, cfg.train, cfg.seed, run=run, resume=True)
    assert resumed.status == "completed"
    for a, b in zip(jax.tree.leaves(resumed.state), jax.tree.leaves(whole.state), strict=True):
        np.testing.assert_array_equal(a, b)
    assert resumed.final == whole.final
    # Where the native kernels exist, this LSTM ran on oneDNN: its resume is exact too.
    assert not native.available() or "lstm" in native.used()


@pytest.mark.parametrize(
    "stem, override, message",
    [
        ("parity_lstm", "model.cell=lstmm", "unknown cell 'lstmm'; valid: coupled_lstm, gru"),
        ("adding_lstm", "model.input=embedding", "rnn needs x as token ids [T]"),
        ("number_words_gru", "model.forget_bias=2.0", "cell 'gru' has no forget gate"),
        ("number_words_gru", "model.impl='custom_vjp'", "cell 'gru' needs impl = 'auto'"),
        ("parity_lstm", "model.reset_after=true", "reset_after applies to the 'gru' cell"),
        ("parity_lstm", "model.unroll=0", "model.unroll"),
        ("adding_rnn", "model.impl='native'", "impl = 'native' runs 'lstm' and 'gru'; got"),
    ],
)
def test_bad_sequence_configs_are_one_line_errors(stem, override, message):
    with pytest.raises(ConfigError) as err:
        cfg = load_config(REPO / "experiments" / f"{stem}.toml", [override])
        build(cfg)
    assert any(message in line for line in err.value.lines()), err.value.lines()


def test_recurrent_options_from_toml_reach_the_layers():
    """forget_bias sets the initial b_f; impl, unroll and remat change speed, not results."""
    base = ["data.n_samples=40", "model.features=8", "train.batch_size=4"]
    batch = None
    results = {}
    for label, extra in {
        "default": [],
        "options": ["model.impl='scan'", "model.unroll=2", "model.remat=true"],
        "forget": ["model.forget_bias=2.5"],
    }.items():
        cfg = load_config(REPO / "experiments" / "parity_lstm.toml", base + extra)
        built = build(cfg)
        data, task = built.data, built.task
        batch = batch or {"x": data.train.x[:4], "y": data.train.y[:4]}
        state = task.init(jax.random.PRNGKey(0), batch)
        new_state, sums = jax.jit(task.train_step)(state, batch)
        results[label] = (state.params, new_state.params, float(sums["loss"]))
    (bias_path, bias), *_ = [
        (path, leaf)
        for path, leaf in jax.tree_util.tree_leaves_with_path(results["forget"][0])
        if "input" in jax.tree_util.keystr(path) and "bias" in jax.tree_util.keystr(path)
    ]
    np.testing.assert_array_equal(bias[8:16], 2.5)  # gates packed [i, f, g, o], H = 8
    np.testing.assert_array_equal(bias[:8], 0.0)
    default_bias = [
        leaf
        for path, leaf in jax.tree_util.tree_leaves_with_path(results["default"][0])
        if jax.tree_util.keystr(path) == jax.tree_util.keystr(bias_path)
    ][0]
    np.testing.assert_array_equal(default_bias[8:16], 1.0)
    assert results["options"][2] == pytest.approx(results["default"][2], rel=1e-6)
    for a, b in zip(
        jax.tree.leaves(results["options"][1]), jax.tree.leaves(results["default"][1]), strict=True
    ):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
