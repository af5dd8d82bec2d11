"""The seq2seq task: metrics by hand on a stand-in model, BLEU, the run and translate."""

import json
import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from dlcore.data.seq2seq_tasks import SPECIALS
from dlcore.seq2seq.protocol import EOS, PAD
from dlcore.tasks.seq2seq import Seq2seqTask, sequences_match, token_sums
from dlcore.tasks.seq2seq_report import corpus_bleu, token_strings
from tests.helpers import REPO, run_cli

V = 6  # <pad> <bos> <eos> a b c
VOCAB = (*SPECIALS, "a", "b", "c")
SHARP = 10.0  # the echo model's logit of its chosen token


class Echo(nn.Module):
    """A protocol stand-in that copies its source and then says ``<eos>``, whatever it is fed:
    step t predicts ``x[t]`` (``<eos>`` from the source's end on), with logit ``SHARP``."""

    @nn.compact
    def _weight(self):
        return self.param("unused", nn.initializers.zeros, ())

    def encode(self, src, *, train=False):
        return {"src": src}

    def init_carry(self, memory):
        return jnp.zeros(memory["src"].shape[:1], jnp.int32)

    def step(self, memory, carry, token_B):
        src = memory["src"]
        padded = jnp.pad(src, ((0, 0), (0, 64)))  # past the source: <pad>, read as the end
        picked = jnp.take_along_axis(padded, carry[:, None], axis=1)[:, 0]
        picked = jnp.where(picked == PAD, EOS, picked)
        logits = SHARP * jax.nn.one_hot(picked, V) + self._weight()
        return carry + 1, logits, {}

    def __call__(self, src, tgt_in, *, train):
        memory, carry, out = self.encode(src), None, []
        carry = self.init_carry(memory)
        for t in range(tgt_in.shape[1]):
            carry, logits, _ = self.step(memory, carry, tgt_in[:, t])
            out.append(logits)
        return jnp.stack(out, axis=1)


# sources a b c / a b a / c ; targets their reversals (the echo copies instead)
X = np.array([[3, 4, 5, 0], [3, 4, 3, 0], [5, 0, 0, 0]], np.int32)
Y = np.array([[1, 5, 4, 3, 2, 0], [1, 3, 4, 3, 2, 0], [1, 5, 2, 0, 0, 0]], np.int32)


@pytest.fixture(scope="module")
def echo_task():
    task = Seq2seqTask(Echo(), optax.sgd(0.1), VOCAB)
    state = task.init(jax.random.PRNGKey(0), {"x": X, "y": Y})
    return task, state, jax.jit(task.eval_step)


def _by_hand(rows: list[int]):
    """Loss and token accuracy of the echo model on rows of (X, Y), from the definitions."""
    ce_right = math.log(1 + (V - 1) * math.exp(-SHARP))  # -log softmax of the SHARP entry
    ce_wrong = ce_right + SHARP
    loss = correct = tokens = 0.0
    for b in rows:
        n = int((X[b] != 0).sum())
        copy = [*X[b, :n].tolist(), EOS]
        target = Y[b, 1 : n + 2].tolist()
        for p, t in zip(copy, target, strict=True):
            loss += ce_right if p == t else ce_wrong
            correct += p == t
            tokens += 1
    return loss / tokens, correct / tokens


@pytest.mark.parametrize("mask", [[1.0, 1.0, 1.0], [1.0, 1.0, 0.0], [0.0, 1.0, 1.0]])
def test_eval_metrics_equal_hand_computation(echo_task, mask):
    task, state, eval_step = echo_task
    batch = {"x": X, "y": Y, "mask": np.array(mask, np.float32)}  # masked rows: padding
    rows = [b for b in range(3) if mask[b]]
    got = task.summarize(jax.device_get(eval_step(state, batch)), training_window=False)
    loss, accuracy = _by_hand(rows)
    # only the palindrome "aba" and the single "c" come out exactly (with their <eos>)
    exact = sum(b in (1, 2) for b in rows) / len(rows)
    assert got["loss"] == pytest.approx(loss, rel=1e-5, abs=1e-6)
    assert got["token_accuracy"] == pytest.approx(accuracy)
    assert got["exact_match"] == pytest.approx(exact)


# jitted: one compile each instead of one per operation
_token_sums = jax.jit(token_sums, static_argnums=3)
_loss_grad = jax.jit(jax.grad(lambda z, t, w: token_sums(z, t, w, 0.1)[0]))


def test_padded_target_positions_do_not_count():
    logits = np.random.default_rng(1).normal(size=(2, 4, V)).astype(np.float32)
    targets = np.array([[3, 4, 2, 0], [5, 2, 0, 0]])
    w = (targets != PAD).astype(np.float32)
    mean, sums = _token_sums(logits, targets, w, 0.0)
    other = np.where(targets[..., None] == PAD, 100.0 * logits, logits)  # junk at padding
    assert _token_sums(other, targets, w, 0.0)[0] == pytest.approx(float(mean))
    assert float(sums["count"]) == 5.0
    g = _loss_grad(logits, targets, w)
    assert np.all(np.asarray(g)[targets == PAD] == 0.0)
    assert np.all(np.asarray(g)[targets != PAD] != 0.0)


def test_label_smoothing_is_cross_entropy_with_smoothed_targets():
    logits = np.random.default_rng(2).normal(size=(1, 2, V))
    targets = np.array([[3, 2]])
    eps = 0.2
    logp = logits[0] - np.log(np.exp(logits[0]).sum(axis=1, keepdims=True))
    q = np.full((2, V), eps / V) + (1 - eps) * np.eye(V)[[3, 2]]
    want = -(q * logp).sum(axis=1).mean()
    got = _token_sums(logits.astype(np.float32), targets, np.ones((1, 2), np.float32), eps)[0]
    assert float(got) == pytest.approx(want, rel=1e-5)


def test_exact_match_needs_the_eos_and_ignores_what_follows_it():
    targets = np.array([[3, 4, 2, 0, 0]] * 5)
    decoded = np.array(
        [
            [3, 4, 2, 0, 0],  # exact
            [3, 4, 2, 5, 5],  # exact: after <eos> nothing counts
            [3, 4, 0, 0, 0],  # no <eos>
            [3, 4, 4, 2, 0],  # one token too many
            [3, 2, 0, 0, 0],  # stops early
        ]
    )
    match = jax.jit(sequences_match)
    assert np.asarray(match(decoded, targets)).tolist() == [1, 1, 0, 0, 0]
    # decoded rows may be shorter (or longer) than the targets
    assert np.asarray(match(decoded[:2, :3], targets[:2])).tolist() == [1, 1]
    assert np.asarray(match(decoded[:2], targets[:2, :3])).tolist() == [1, 1]


def test_bleu_treats_every_vocabulary_entry_as_one_token():
    vocab = (*SPECIALS, "a", " ", "b")
    refs = token_strings(np.array([[3, 4, 5, 2, 0], [5, 5, 3, 3, 2]]), vocab)
    assert refs == ["a \u2581 b", "b b a a"]
    assert corpus_bleu(refs, refs) == pytest.approx(100.0)
    assert corpus_bleu(["b b b b", "a a a a"], refs) < 30.0


# experiments/reversal_attention.toml shrunk to a few steps
SHIPPED = REPO / "experiments" / "reversal_attention.toml"
TINY = [
    "data.n_samples=48",
    "data.symbols=4",
    "data.min_len=2",
    "data.max_len=5",
    "model.embed_dim=4",
    "model.hidden=8",
    "model.dropout=0.1",
    "model.bidirectional=false",
    "task.beam=2",
    "optimizer.schedule.decay_steps=6",
    "train.epochs=3",
    "train.batch_size=16",
    "train.mode=step",
    "train.eval_every=1",
    "train.checkpoint_every=2",
]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("seq2seq")
    sets = [a for o in TINY for a in ("--set", o)]
    done = run_cli("run", str(SHIPPED), *sets, "--run-dir", str(root / "run"), "--quiet", cwd=root)
    assert done.returncode == 0, done.stderr[-3000:]
    return root / "run"


def test_a_run_reports_exact_match_bleu_and_the_length_plot(tiny_run):
    summary = json.loads((tiny_run / "summary.json").read_text())
    assert set(summary["final"]["test"]) == {"loss", "token_accuracy", "exact_match"}
    report = summary["report"]
    assert set(report) == {"exact_match_greedy", "exact_match_beam", "bleu_greedy", "bleu_beam"}
    assert all(0 <= report[k] <= 1 for k in ("exact_match_greedy", "exact_match_beam"))
    # the eval pass and the report decode greedily the same way
    assert report["exact_match_greedy"] == pytest.approx(summary["final"]["test"]["exact_match"])
    by_length = json.loads((tiny_run / "exact_match_by_length.json").read_text())
    assert set(by_length) <= {"2", "3", "4", "5"}
    assert sum(v["examples"] for v in by_length.values()) == 7  # 0.15 of 48, rounded
    assert (tiny_run / "exact_match_by_length.png").stat().st_size > 1000


def _translate(capsys, *args: str) -> tuple[int, str, str]:
    """``dlcore translate *args`` in this process (the run itself went through a subprocess)."""
    from dlcore.cli.main import main

    code = main(["--no-compile-cache", "translate", *args])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_translate_prints_the_beams_and_the_greedy_output(tiny_run, capsys):
    code, out, err = _translate(capsys, str(tiny_run), "abca", "--beam", "2")
    assert code == 0, err
    lines = out.strip().splitlines()
    assert len(lines) == 2
    scores = [float(line.split("\t")[0]) for line in lines]
    assert scores[0] >= scores[1] and all(set(line.split("\t")[1]) <= set("abcd") for line in lines)
    code, out, err = _translate(capsys, str(tiny_run), "abca", "--ensemble", str(tiny_run))
    assert code == 0 and out.count("\n") == 1 and set(out.strip()) <= set("abcd")  # may be ""


@pytest.mark.parametrize(
    "text, message",
    [("abxz", "outside the vocabulary: 'xz'"), ("abcdabcd", "8 characters; at most 5 fit")],
)
def test_translate_refuses_bad_input_in_one_line(tiny_run, capsys, text, message):
    code, _, err = _translate(capsys, str(tiny_run), text)
    assert code == 2
    assert err.strip().count("\n") == 0 and message in err


# Resume of a seq2seq run (stopped mid-run, resumed bit-identical) is checked on length
# buckets in tests/test_bucketing.py, which runs this task.


def test_compare_lengths_overlays_runs_and_names_a_missing_report(tiny_run, tmp_path, capsys):
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "compare_lengths", REPO / "examples" / "compare_lengths.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = tmp_path / "lengths.png"
    assert module.main([str(tiny_run), str(tiny_run), "--out", str(out)]) == 0
    assert out.stat().st_size > 1000 and f"wrote {out}" in capsys.readouterr().out
    assert module.main([str(tmp_path), "--out", str(out)]) == 2
    assert "no exact_match_by_length.json" in capsys.readouterr().err
