"""Compiled decoders on a toy step function: greedy, sampling, beam search and ensembles.

The toy decoder needs no Flax model: its logits depend on the previous token (a transition
table), on the source (a per-example bias) and on a small recurrent hidden vector; its carry
holds that vector and the step count, and its aux is an "attention" over the source.
"""

import functools
import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dlcore.seq2seq.beam import beam_search, length_penalty
from dlcore.seq2seq.decode import ensemble, greedy, sample, strip
from dlcore.seq2seq.protocol import BOS, EOS, PAD, StepFns

S, H, NSRC = 3, 2, 5  # source length, hidden size, source vocabulary
# most tests share these shapes, hence the compiled decoders: V tokens, B sources, max_len, K
V, B, L, K = 6, 8, 6, 2
TRACES = []  # one entry per trace of the toy's encode (decoders trace it once per compile)


def _encode(params, src_BxS):
    TRACES.append(1)
    return {"bias": params["src"][src_BxS].sum(1), "keys": src_BxS.astype(params["src"].dtype)}


def _init_carry(params, memory):
    B = memory["bias"].shape[0]
    return {"h": jnp.zeros((B, H), memory["bias"].dtype), "t": jnp.zeros((B,), jnp.int32)}


def _step(params, memory, carry, token_B):
    h_BxH = jnp.tanh(carry["h"] + params["rec"][token_B])
    logits = params["table"][token_B] + memory["bias"] + h_BxH @ params["mix"]
    attention = jax.nn.softmax(memory["keys"] * h_BxH[:, :1], axis=-1)  # [B, S]
    return {"h": h_BxH, "t": carry["t"] + 1}, logits, {"attention": attention}


TOY = StepFns(_encode, _init_carry, _step)


def _params(seed, V=V, scale=2.0, dtype=np.float32):  # noqa: N803 (V is the math name)
    # NumPy draws: eager jax.random would compile a kernel per shape, slower than the tests
    rng = np.random.default_rng(seed)
    shapes = {"table": (V, V), "src": (NSRC, V), "rec": (V, H), "mix": (H, V)}
    params = {k: scale * rng.normal(size=shape) for k, shape in shapes.items()}
    params["table"][:, EOS] += scale  # sequences of several lengths end within max_len
    return {k: jnp.asarray(v, dtype) for k, v in params.items()}


def _src(seed, B=B):  # noqa: N803
    return jnp.asarray(np.random.default_rng(seed).integers(0, NSRC, (B, S)), jnp.int32)


def _sequence_log_probs(fns, params, src, seqs):
    """Teacher-forced ``log P(y | x)`` of every sequence in ``seqs`` for every source row:
    ``[B, len(seqs)]``."""
    T, N = max(len(y) for y in seqs), len(seqs)
    y = np.full((N, T), PAD, np.int32)
    for i, seq in enumerate(seqs):
        y[i, : len(seq)] = seq
    counted = np.arange(T)[None, :] < np.array([len(y) for y in seqs])[:, None]
    return np.asarray(_teacher_forced(fns, params, src, y, counted))


@functools.partial(jax.jit, static_argnums=0)
def _teacher_forced(fns, params, src, y_NxT, counted_NxT):
    (N, T), B = y_NxT.shape, src.shape[0]
    y, counted = jnp.tile(y_NxT, (B, 1)), jnp.tile(counted_NxT, (B, 1))
    memory = fns.encode(params, jnp.repeat(src, N, axis=0))  # row b * N + i
    carry, token, total = fns.init_carry(params, memory), jnp.full((B * N,), BOS), 0.0
    for t in range(T):
        carry, logits, _ = fns.step(params, memory, carry, token)
        picked = jax.nn.log_softmax(logits)[jnp.arange(B * N), y[:, t]]
        total = total + jnp.where(counted[:, t], picked, 0.0)
        token = y[:, t]
    return total.reshape(B, N)


@functools.partial(jax.jit, static_argnums=0)
def _first_step(fns, params, src, token_B):
    memory = fns.encode(params, src)
    return fns.step(params, memory, fns.init_carry(params, memory), token_B)


def _all_sequences(V, max_len):
    """Every output: ``<eos>`` after non-``<eos>`` tokens, or ``max_len`` non-``<eos>`` tokens
    (the decoders mask nothing: PAD and BOS are tokens like any other for them)."""
    others = [v for v in range(V) if v != EOS]
    seqs = []
    for n in range(max_len):
        seqs += [(*p, EOS) for p in itertools.product(others, repeat=n)]
    return seqs + list(itertools.product(others, repeat=max_len))


@pytest.mark.parametrize("alpha", [0.0, 0.8])
def test_beam_search_equals_exhaustive_search(alpha):
    V, max_len, K = 4, 4, 36  # K = the most candidates before the last step: nothing pruned
    with jax.enable_x64(True):
        params = _params(1, V, scale=1.0, dtype=np.float64)
        src = _src(2, 3)
        seqs = _all_sequences(V, max_len)
        log_probs = _sequence_log_probs(TOY, params, src, seqs)
        beams = beam_search(TOY, params, src, K, max_len, alpha=alpha)
    lengths = np.array([len(y) for y in seqs])
    scores = log_probs / np.asarray(length_penalty(lengths, alpha))
    for b in range(src.shape[0]):
        order = np.argsort(-scores[b])[:K]
        np.testing.assert_allclose(beams.scores[b], scores[b, order], rtol=1e-12)
        np.testing.assert_allclose(beams.log_probs[b], log_probs[b, order], rtol=1e-12)
        got = [tuple(y) for y in strip(beams.tokens[b], beams.lengths[b])]
        want = [seqs[i][:-1] if seqs[i][-1] == EOS else seqs[i] for i in order]
        assert got == want
    np.testing.assert_array_equal(beams.lengths, lengths[np.argsort(-scores, axis=1)[:, :K]])


def test_beam_width_one_is_greedy_with_the_same_aux():
    params, src = _params(6), _src(7)
    g = greedy(TOY, params, src, L)
    b = beam_search(TOY, params, src, 1, L)
    np.testing.assert_array_equal(b.tokens[:, 0], g.tokens)
    np.testing.assert_array_equal(b.lengths[:, 0], g.lengths)
    np.testing.assert_allclose(b.log_probs[:, 0], g.log_prob, rtol=1e-5)
    np.testing.assert_allclose(b.aux["attention"][:, 0], g.aux["attention"], atol=1e-6)
    # greedy's own log-prob is the teacher-forced one, and aux is zero after the end
    seqs = [
        tuple(row[:n]) for row, n in zip(np.asarray(g.tokens), np.asarray(g.lengths), strict=True)
    ]
    tf = _sequence_log_probs(TOY, params, src, seqs)
    np.testing.assert_allclose(g.log_prob, np.diag(tf), rtol=1e-5)
    after = np.arange(L)[None, :] >= np.asarray(g.lengths)[:, None]
    assert g.aux["attention"].shape == (B, L, S)
    assert np.all(np.asarray(g.aux["attention"])[after] == 0) and after.any()
    assert np.all(np.asarray(g.tokens)[after] == PAD)


def _hand_made():
    """Logits from the previous token only: from <bos> P(<eos>) = .4, P(3) = .6; after 3
    P(<eos>) = .55, P(4) = .45; after 4, <eos> is certain. Greedy says "3 <eos>" (.33); the
    best sequence is "<eos>" (.4), found at step 0 and kept while the search goes on."""
    table = np.full((V, V), 1e-9)
    table[BOS, [EOS, 3]] = [0.4, 0.6]
    table[3, [EOS, 4]] = [0.55, 0.45]
    table[[PAD, EOS, 4, 5], EOS] = 1.0
    params = _params(0, scale=0.0)
    return {**params, "table": jnp.log(jnp.asarray(table, jnp.float32))}


def test_finished_hypotheses_are_kept_and_the_search_stops_early():
    params, src = _hand_made(), _src(5)
    g = greedy(TOY, params, src, L)
    assert strip(g.tokens, g.lengths) == [[3]] * B
    assert int(g.steps) == 2  # every sequence ended: no more steps
    b = beam_search(TOY, params, src, K, L)
    assert strip(b.tokens, b.lengths) == [[[], [3]]] * B
    np.testing.assert_allclose(b.log_probs, np.log([[0.4, 0.33]] * B), rtol=1e-5)
    # after step 2 the live "3 4" (.27) cannot beat the worst finished (.33): stop
    assert int(b.steps) == 2 < L
    # with a large α length wins: "3 4 <eos>" (.27, 3 tokens) beats "<eos>" (.4, 1 token);
    # the bound log P / lp(max_len) lets the search go on to find it, then stops it
    b = beam_search(TOY, params, src, K, L, alpha=3.0)
    assert strip(b.tokens, b.lengths) == [[[3, 4], [3]]] * B
    np.testing.assert_allclose(b.scores[:, 0], np.log(0.27) / ((5 + 3) / 6) ** 3, rtol=1e-5)
    assert int(b.steps) == 3


def test_steps_count_the_longest_sequence():
    for seed, steps in [(6, L), (25, 1)]:  # seed 25: every sequence is "<eos>"
        g = greedy(TOY, _params(seed), _src(seed + 1), L)
        assert int(g.steps) == int(jnp.max(g.lengths)) == steps


def test_sampling_at_zero_temperature_or_top_1_is_greedy():
    params, src = _params(8), _src(9)
    g = greedy(TOY, params, src, L)
    key = jax.random.PRNGKey(10)
    for out in (
        sample(TOY, params, src, key, L, temperature=0.0),
        sample(TOY, params, src, key, L, temperature=1e-6),
        sample(TOY, params, src, key, L, top_k=1),
    ):
        np.testing.assert_array_equal(out.tokens, g.tokens)
        np.testing.assert_allclose(out.log_prob, g.log_prob, rtol=1e-5)
    assert not np.array_equal(sample(TOY, params, src, key, L).tokens, g.tokens)


def test_sampling_frequencies_follow_the_tempered_top_k_softmax():
    N, tau, top_k = 4000, 0.7, 3
    params = _params(11, scale=0.7)
    src = jnp.zeros((N, S), jnp.int32)  # one source: N draws of the first token
    out = sample(TOY, params, src, jax.random.PRNGKey(12), 1, temperature=tau, top_k=top_k)
    _, logits, _ = _first_step(TOY, params, src[:1], jnp.array([BOS]))
    freq = np.bincount(np.asarray(out.tokens[:, 0]), minlength=V) / N

    def within_5_sigma(z):
        p = np.exp(z - z.max()) / np.exp(z - z.max()).sum()
        return np.all(np.abs(freq - p) <= 5 * np.sqrt(p * (1 - p) / N))

    z = np.asarray(logits[0], np.float64) / tau
    assert not within_5_sigma(z)  # the tolerance tells the cut from the full softmax apart
    assert not within_5_sigma(z * tau)  # and the temperature from none
    z[np.argsort(-z)[top_k:]] = -np.inf
    assert within_5_sigma(z)


def _other_fns():
    """A second architecture on the same vocabulary: no recurrence, a bias, no attention."""

    def step(params, memory, carry, token_B):
        logits = params["table"][token_B] + params["bias"][None, :]
        return carry, logits, {"gate": memory[:, :1]}

    return StepFns(
        lambda params, src: jnp.ones((src.shape[0], 2)),
        lambda params, memory: jnp.zeros((memory.shape[0],)),
        step,
    )


def test_ensemble_of_two_identical_members_is_the_member():
    params, src = _params(13), _src(14)
    pair = ensemble([TOY, TOY])
    assert pair == ensemble([TOY, TOY])  # rebuilt ensembles hit the compile cache
    both = (params, params)
    for one, two in [
        (greedy(TOY, params, src, L), greedy(pair, both, src, L)),
        (beam_search(TOY, params, src, K, L, 0.5), beam_search(pair, both, src, K, L, 0.5)),
    ]:
        np.testing.assert_array_equal(one.tokens, two.tokens)
        np.testing.assert_array_equal(one.lengths, two.lengths)
        jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, atol=1e-5), one.aux, two.aux)


def test_ensemble_averages_the_members_log_probabilities():
    params_a = _params(15)
    params_b = {"table": _params(16)["table"], "bias": jnp.arange(V) / 3.0}
    fns, params = ensemble([TOY, _other_fns()]), (params_a, params_b)
    src = _src(17, 2)
    carry, z, aux = _first_step(fns, params, src, jnp.array([BOS, 3]))
    assert aux == {}  # no aux entry is shared by both members

    def log_softmax(x):
        x = np.asarray(x, np.float64)
        return x - np.log(np.exp(x).sum(-1, keepdims=True))

    bias = np.asarray(params_a["src"])[np.asarray(src)].sum(1)
    h = np.tanh(np.asarray(params_a["rec"])[[BOS, 3]])
    za = np.asarray(params_a["table"])[[BOS, 3]] + bias + h @ np.asarray(params_a["mix"])
    zb = np.asarray(params_b["table"])[[BOS, 3]] + np.arange(V) / 3.0
    np.testing.assert_allclose(z, (log_softmax(za) + log_softmax(zb)) / 2, rtol=1e-5)
    out = greedy(fns, params, src, L)  # decoders run unchanged on mixed members
    assert out.tokens.shape == (2, L)


def test_each_decoder_traces_once_per_shape():
    decoders = {
        "greedy": lambda p, s, i: greedy(TOY, p, s, L),
        "sample": lambda p, s, i: sample(TOY, p, s, jax.random.PRNGKey(i), L, 0.5 + i),
        "beam": lambda p, s, i: beam_search(TOY, p, s, K, L, alpha=0.3 * i),
    }
    for name, decode in decoders.items():
        counts = []
        for i in (0, 1):
            decode(_params(20 + i), _src(20 + i), i)
            counts.append(len(TRACES))
        assert counts[1] == counts[0], f"{name} traced again for new values of the same shape"
    traces = len(TRACES)
    greedy(TOY, _params(0), _src(0, 5), L)
    assert len(TRACES) == traces + 1  # a new shape does trace: the counter counts


def test_beam_search_works_under_vmap_and_jit():
    stacked = [_params(18 + i) for i in range(3)]
    params = jax.tree.map(lambda *x: jnp.stack(x), *stacked)
    src = _src(19, 3 * B).reshape(3, B, S)
    run = jax.jit(jax.vmap(lambda p, s: beam_search(TOY, p, s, K, L, 0.6)))
    batched = run(params, src)
    for i in range(3):
        one = beam_search(TOY, stacked[i], src[i], K, L, 0.6)
        np.testing.assert_array_equal(batched.tokens[i], one.tokens)
        np.testing.assert_allclose(batched.scores[i], one.scores, rtol=1e-5)


def test_strip_and_clear_errors():
    tokens = np.array([[[5, 2, 0], [4, 4, 4]]])
    assert strip(tokens, np.array([[2, 3]])) == [[[5], [4, 4, 4]]]
    assert strip(tokens[0], np.array([0, 1])) == [[], [4]]
    params, src = _params(0), _src(0, 1)
    with pytest.raises(ValueError, match="max_len must be a positive int; got 0"):
        greedy(TOY, params, src, 0)
    with pytest.raises(ValueError, match="beam must be a positive int; got 0"):
        beam_search(TOY, params, src, 0, 3)
    with pytest.raises(ValueError, match="alpha .* must be >= 0; got -1"):
        beam_search(TOY, params, src, 2, 3, alpha=-1.0)
    with pytest.raises(ValueError, match="temperature must be >= 0"):
        sample(TOY, params, src, jax.random.PRNGKey(0), 3, temperature=-0.5)
    assert math.isclose(float(length_penalty(7, 0.5)), 2**0.5)
