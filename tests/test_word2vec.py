"""word2vec: noise table, subsampling, dynamic windows, SGNS/CBOW against NumPy, PPMI,
the morphology analogy generator, the stdlib_words data set and one tiny run."""

import json
import random

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dlcore.config.loading import ConfigError, validate
from dlcore.data.stdlib_words import context_rows, encode_sentences, words_of
from dlcore.experiment import build, run_experiment
from dlcore.text.analogies import (
    RELATIONS,
    analogy_accuracy,
    make_analogies,
    morphology_pairs,
    three_cos_add,
)
from dlcore.text.ppmi import cooccurrence, ppmi
from dlcore.text.word2vec import (
    cbow_loss,
    keep_probability,
    noise_distribution,
    noise_table,
    sample_contexts,
    skipgram_loss,
)

TINY = {
    "data": {"name": "stdlib_words", "max_files": 3, "min_count": 2, "context": 3},
    "task": {
        "name": "word2vec",
        "dim": 8,
        "window": 3,
        "negatives": 3,
        "table_size": 5000,
        "analogies_per_relation": 20,
        "plot_words": 20,
    },
    "optimizer": {"name": "adam", "learning_rate": 0.01},
    "train": {"batch_size": 64, "epochs": 1, "log_every": 10},
}


def test_noise_table_is_unigram_to_the_three_quarters_up_to_rounding():
    counts_V = np.random.default_rng(0).integers(1, 5000, 300)
    size = 100_003
    table = noise_table(counts_V, size)
    slots_V = np.bincount(table, minlength=len(counts_V))
    p_V = counts_V**0.75 / np.sum(counts_V**0.75)
    assert len(table) == size and np.all(np.diff(table) >= 0)
    assert np.max(np.abs(slots_V - size * p_V)) < 1.0  # each word within one slot
    np.testing.assert_allclose(noise_distribution(counts_V), p_V, rtol=1e-12)
    # and not the plain unigram distribution
    assert np.max(np.abs(slots_V - size * counts_V / counts_V.sum())) > 10


def test_keep_probability_is_word2vec_c_formula():
    counts_V = np.array([1000, 100, 10, 1])
    f_V = counts_V / counts_V.sum()
    t = 1e-2
    expected = np.minimum(1.0, (np.sqrt(f_V / t) + 1) * t / f_V)  # word2vec.c's form
    np.testing.assert_allclose(keep_probability(counts_V, t), expected, rtol=1e-12)
    assert expected[0] < 0.2 and expected[-1] == 1.0
    np.testing.assert_array_equal(keep_probability(counts_V, 0.0), 1.0)


def test_dynamic_window_uses_distance_d_with_probability_w_minus_d_plus_1_over_w():
    c, window, rows = 4, 3, 20_000
    x_BxW = jnp.asarray(np.random.default_rng(1).integers(0, 50, (rows, 2 * c + 1)), jnp.int32)
    centre_B, ctx_BxS, use_BxS = sample_contexts(jax.random.PRNGKey(0), x_BxW, jnp.ones(50), window)
    assert np.array_equal(centre_B, x_BxW[:, c])
    rate_S = np.asarray(use_BxS).mean(axis=0)  # [left 1..C, right 1..C]
    expected_C = np.array([(window - d + 1) / window if d <= window else 0.0 for d in (1, 2, 3, 4)])
    np.testing.assert_allclose(rate_S, np.concatenate([expected_C, expected_C]), atol=0.015)
    # the two sides share one b per centre: the left and right reach agree
    used = np.asarray(use_BxS)
    np.testing.assert_array_equal(used[:, :c].sum(1), used[:, c:].sum(1))


def test_subsampled_words_are_never_used_and_distance_counts_kept_words():
    # word 9 is always dropped: it is never a centre, never a context, takes no slot
    x_BxW = jnp.array([[1, 2, 9, 4, 3]] * 400, jnp.int32)  # C = 2, centre 9 dropped
    keep_V = jnp.ones(10).at[9].set(0.0)
    _, _, use = sample_contexts(jax.random.PRNGKey(0), x_BxW, keep_V, 2)
    assert not np.any(np.asarray(use))
    x_BxW = jnp.array([[1, 9, 4, 9, 3]] * 4000, jnp.int32)
    _, ctx, use = sample_contexts(jax.random.PRNGKey(1), x_BxW, keep_V, 2)
    rate_S = np.asarray(use).mean(axis=0)  # contexts (9, 1, 9, 3)
    # 1 and 3 are the first kept word on their side: used whenever b >= 1
    np.testing.assert_allclose(rate_S, [0.0, 1.0, 0.0, 1.0])


def numpy_sgns(u, v, pairs, negatives):
    """Loss sum and gradients of skip-gram negative sampling, one pair at a time."""
    sig = lambda z: 1.0 / (1.0 + np.exp(-z))  # noqa: E731
    loss, gu, gv = 0.0, np.zeros_like(u), np.zeros_like(v)
    for (c, o), negs in zip(pairs, negatives, strict=True):
        s = u[c] @ v[o]
        loss -= np.log(sig(s))
        gu[c] -= (1 - sig(s)) * v[o]
        gv[o] -= (1 - sig(s)) * u[c]
        for n in negs:
            if n == o:  # word2vec.c skips a noise word equal to the target
                continue
            s = u[c] @ v[n]
            loss -= np.log(sig(-s))
            gu[c] += sig(s) * v[n]
            gv[n] += sig(s) * u[c]
    return loss, gu, gv


def test_sgns_loss_and_gradient_match_numpy_float64():
    rng = np.random.default_rng(0)
    v_size, dim, k = 7, 4, 3
    u, v = rng.normal(size=(v_size, dim)), rng.normal(size=(v_size, dim))
    centre_B = np.array([0, 3, 5])
    ctx_BxS = np.array([[1, 2, -1, 4], [2, 2, 6, -1], [0, 1, 3, 4]])
    use_BxS = np.array([[1, 1, 0, 0], [1, 0, 1, 0], [1, 1, 1, 1]], bool)
    neg_BxSxK = rng.integers(0, v_size, (3, 4, k))
    neg_BxSxK[0, 0, 1] = 1  # equals its pair's context: ignored
    pairs, negs = [], []
    for b, s in zip(*np.nonzero(use_BxS), strict=True):
        pairs.append((centre_B[b], ctx_BxS[b, s]))
        negs.append(neg_BxSxK[b, s])
    want_loss, want_gu, want_gv = numpy_sgns(u, v, pairs, negs)
    with jax.enable_x64(True):

        def total(params):
            return skipgram_loss(params, centre_B, ctx_BxS, use_BxS, neg_BxSxK)

        params = {"input": jnp.asarray(u), "output": jnp.asarray(v)}
        loss, count = total(params)
        grads = jax.grad(lambda p: total(p)[0])(params)
        assert loss.dtype == jnp.float64
    assert int(count) == len(pairs)
    np.testing.assert_allclose(float(loss), want_loss, rtol=1e-12)
    np.testing.assert_allclose(grads["input"], want_gu, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(grads["output"], want_gv, rtol=1e-10, atol=1e-12)


def test_cbow_loss_matches_numpy_float64():
    rng = np.random.default_rng(1)
    u, v = rng.normal(size=(6, 3)), rng.normal(size=(6, 3))
    centre_B, ctx_BxS = np.array([0, 2, 4]), np.array([[1, 2], [3, 5], [0, 1]])
    use_BxS = np.array([[1, 1], [0, 1], [0, 0]], bool)  # the third centre has no context
    neg_BxK = np.array([[3, 0], [1, 4], [5, 5]])  # 0 = its own centre: ignored
    sig = lambda z: 1.0 / (1.0 + np.exp(-z))  # noqa: E731
    want = 0.0
    for b in range(2):
        h = u[ctx_BxS[b][use_BxS[b]]].mean(axis=0)
        want -= np.log(sig(h @ v[centre_B[b]]))
        want -= sum(np.log(sig(-h @ v[n])) for n in neg_BxK[b] if n != centre_B[b])
    with jax.enable_x64(True):
        loss, count = cbow_loss(
            {"input": jnp.asarray(u), "output": jnp.asarray(v)}, centre_B, ctx_BxS, use_BxS, neg_BxK
        )
    assert int(count) == 2
    np.testing.assert_allclose(float(loss), want, rtol=1e-12)


def test_ppmi_and_cooccurrence_match_their_formulas():
    counts = np.array([[0, 3, 1], [3, 2, 0], [1, 0, 5]], float)
    n, alpha = counts.sum(), 0.75
    ctx_alpha = counts.sum(0) ** alpha
    want = np.zeros((3, 3))
    for w in range(3):
        for c in range(3):
            if counts[w, c] > 0:
                p_wc = counts[w, c] / n
                p_w = counts[w].sum() / n
                p_c = ctx_alpha[c] / ctx_alpha.sum()
                want[w, c] = max(np.log(p_wc / (p_w * p_c)), 0.0)
    np.testing.assert_allclose(ppmi(counts, alpha), want, rtol=1e-12)
    # counts: weight (W - d + 1) / W per neighbour at distance d <= W, padding ignored
    rows = np.array([[-1, 0, 1, 2, 1], [2, 1, 0, -1, -1]])  # C = 2
    got = cooccurrence(rows, window=2, vocab_size=3)
    want_counts = np.zeros((3, 3))
    want_counts[1, 0] += 1.0
    want_counts[1, 2] += 1.0
    want_counts[1, 1] += 0.5
    want_counts[0, 1] += 1.0
    want_counts[0, 2] += 0.5
    np.testing.assert_allclose(got, want_counts)


VOCAB = (
    "file files use used using uses class classes entry entries return returns returned "
    "returning exact exactly call calls called calling name names named us is this".split()
)


def test_analogy_generator_is_deterministic_and_follows_a_rule():
    pairs = morphology_pairs(VOCAB)
    assert ("entry", "entries") in pairs["s"] and ("use", "using") in pairs["ing"]
    assert all(len(base) >= 3 for rel in pairs.values() for base, _ in rel)
    first = make_analogies(pairs, 5, seed=3)
    assert first == make_analogies(pairs, 5, seed=3)
    assert first != make_analogies(pairs, 5, seed=4)
    # documented: the vocabulary's order does not matter, only its set of words
    shuffled = list(VOCAB)
    random.Random(0).shuffle(shuffled)
    assert make_analogies(morphology_pairs(shuffled), 5, seed=3) == first
    for name, questions in first.items():
        assert len(questions) == min(5, len(pairs[name]) * (len(pairs[name]) - 1))
        for a, a2, b, b2 in questions:
            assert (a, a2) != (b, b2)
            for base, derived in ((a, a2), (b, b2)):
                assert any(
                    base.endswith(s) and derived == base[: len(base) - len(s)] + add
                    for s, add in RELATIONS[name]
                )


def test_three_cos_add_finds_an_exact_offset_and_excludes_question_words():
    vocab = ["file", "files", "name", "names", "other"]
    emb = np.array([[1, 0, 0], [1, 1, 0], [0, 0, 1], [0, 1, 1], [0.1, 0, 1]], float)
    questions = {"s": [("file", "files", "name", "names")]}
    assert analogy_accuracy(emb, questions, vocab) == {"s": 1.0, "overall": 1.0}
    # b itself would win without the exclusion (a' - a ~ 0 here)
    emb[1] = emb[0] + 1e-6
    assert three_cos_add(emb, np.array([[0, 1, 2, 3]]))[0] == 4


def test_words_and_rows_of_prose():
    assert words_of("Return it. See os.path, e.g. x2!") == [["return", "it"], ["see"]]
    sentences = encode_sentences([["a", "b", "zz"], ["b"], ["b", "a", "b"]], ["b", "a"])
    rows = context_rows(sentences, 1)  # "zz" deleted; the one-word sentence dropped
    np.testing.assert_array_equal(rows, [[-1, 1, 0], [1, 0, -1], [-1, 0, 1], [0, 1, 0], [1, 0, -1]])


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    directory = tmp_path_factory.mktemp("w2v") / "run"
    summary = run_experiment(build(validate({"name": "w2v_tiny", **TINY}, "t"), "t"), directory)
    return directory, summary


def test_tiny_end_to_end_run_writes_its_report(tiny_run):
    directory, summary = tiny_run
    report = summary["report"]
    assert all(np.isfinite(v) for v in report.values())
    assert 0.0 <= report["analogy_overall"] <= 1.0 and "svd_analogy_overall" in report
    listing = json.loads((directory / "neighbours.json").read_text())
    assert set(listing) >= {"skipgram", "ppmi_svd", "analogy_examples"}
    assert (directory / "embedding_pca.png").is_file() and (directory / "svd_pca.png").is_file()


def test_a_window_wider_than_the_data_rows_is_a_config_error():
    raw = {**TINY, "task": {**TINY["task"], "window": 4}}
    with pytest.raises(ConfigError, match="task.window: 4 is wider than the data's 3"):
        build(validate(raw, "t"), "t")


def test_steps_are_reproducible_and_the_loss_falls():
    built = build(validate({**TINY, "task": {**TINY["task"], "method": "cbow"}}, "t"), "t")
    task, x = built.task, built.data.train.x
    batch = {"x": jnp.asarray(x[:256])}
    step = jax.jit(task.train_step)
    state = task.init(jax.random.PRNGKey(0), batch)
    first, sums = step(state, batch)
    again, sums2 = step(state, batch)
    np.testing.assert_array_equal(first.params["input"], again.params["input"])
    assert float(sums["loss"]) == float(sums2["loss"])
    losses = []
    for _ in range(30):
        state, sums = step(state, batch)
        losses.append(float(sums["loss"] / sums["count"]))
    assert losses[-1] < losses[0] - 0.1
