"""The RNN encoder–decoder: the seq2seq protocol (teacher forcing = step-by-step decoding),
padding and source reversal, gradients, option errors."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax.core import FrozenDict
from pydantic import ValidationError
from recurrent_reference import random_params

from dlcore.recurrent import reverse_within_lengths
from dlcore.seq2seq.rnn_model import RNNSeq2Seq, RNNSeq2SeqConfig

B, S, T, V = 3, 5, 4, 9
# Sources padded with 0 (lengths 5, 2, 1); targets <bos>=1 ... <eos>=2 then 0.
SRC = jnp.array([[3, 4, 5, 6, 7], [5, 6, 0, 0, 0], [8, 0, 0, 0, 0]])
TGT_IN = jnp.array([[1, 3, 4, 5], [1, 6, 5, 2], [1, 2, 0, 0]])
LENGTHS = jnp.array([5, 2, 1])

VARIANTS = {
    "no_attention": dict(),
    "additive": dict(attention="additive"),
    "general_input_feeding": dict(
        attention="general",
        input_feeding=True,
        decoder_layers=2,
        normaliser="sparsemax",
        dropout=0.5,  # train=False: no dropout anywhere, or __call__ and step would differ
    ),
    "bidirectional_reversed": dict(
        bidirectional=True, reverse_source=True, attention="concat", encoder_layers=2, dropout=0.5
    ),
    "gru": dict(
        cell="gru", cell_kwargs=FrozenDict(reset_after=True), attention="dot", bridge="copy"
    ),
}


def model(name, **extra):
    return RNNSeq2Seq(vocab_size=V, hidden=6, embed_dim=5, **{**VARIANTS[name], **extra})


def decode_both(m, variables, src, tgt_in):
    """Teacher-forced logits and the same positions decoded one token at a time (the
    protocol's encode, init_carry and step; the steps in a scan, so one compile)."""
    full = m.apply(variables, src, tgt_in, train=False)
    memory = m.apply(variables, src, method=m.encode)
    carry = m.apply(variables, memory, method=m.init_carry)

    def step(carry, token_B):
        carry, logits_BxV, aux = m.apply(variables, memory, carry, token_B, method=m.step)
        return carry, (logits_BxV, aux["attention"])

    carry, (logits_TxBxV, attention_TxBxS) = jax.lax.scan(step, carry, tgt_in.T)
    return full, logits_TxBxV.swapaxes(0, 1), attention_TxBxS.swapaxes(0, 1), memory, carry


@pytest.fixture(scope="module")
def run():
    """``run(name)``: random parameters of a variant and its ``decode_both``, computed once
    per module (one compile per variant, shared by the tests)."""

    @functools.cache
    def variant(name):
        m = model(name)
        variables = {"params": random_params(m, SRC, TGT_IN, train=False)}
        return variables, jax.jit(functools.partial(decode_both, m))(variables, SRC, TGT_IN)

    yield variant
    variant.cache_clear()


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_teacher_forcing_equals_step_by_step_decoding(run, name):
    _, (full, stepped, attention, memory, carry) = run(name)
    assert full.shape == (B, T, V)
    np.testing.assert_allclose(full, stepped, rtol=1e-5, atol=1e-6)
    for leaf in jax.tree.leaves((memory, carry)):  # beam search tiles and gathers rows
        assert leaf.shape[0] == B
    assert attention.shape == (B, T, S)
    if VARIANTS[name].get("attention", "none") == "none":
        np.testing.assert_array_equal(attention, 0.0)
        assert "keys" not in memory  # the bottleneck: only the final state crosses over
    else:
        np.testing.assert_allclose(attention.sum(-1), 1.0, rtol=1e-5)
        padded = np.arange(S)[None, None, :] >= np.asarray(LENGTHS)[:, None, None]
        np.testing.assert_array_equal(np.where(padded, attention, 0.0), 0.0)


def test_padding_is_invisible(run):
    """More padding columns and another <pad> embedding change no logit and no weight on a
    real token (bidirectional, reversed source, attention: every length-dependent part)."""
    name = "bidirectional_reversed"
    m = model(name)
    variables, (full, *_) = run(name)
    params = variables["params"]
    noisy = {**params, "src_embed": {"embedding": params["src_embed"]["embedding"].at[0].set(3.0)}}
    wide = jnp.pad(SRC, ((0, 0), (0, 2)))
    apply = jax.jit(functools.partial(m.apply, train=False))
    np.testing.assert_allclose(apply({"params": noisy}, wide, TGT_IN), full, rtol=1e-5, atol=1e-6)
    # the attention of padded positions: zero in test_teacher_forcing_equals_step_by_step_decoding


def test_reverse_source_reads_the_source_backwards_within_its_length(run):
    """reverse_source on x reversed within each length equals the plain model on x; the
    attention maps stay in source order (the plain model's, reversed within lengths)."""
    flipped = reverse_within_lengths(SRC, LENGTHS)
    np.testing.assert_array_equal(flipped[1], [6, 5, 0, 0, 0])
    variables, (full, _, attention, _, _) = run("additive")
    rev = model("additive", reverse_source=True)
    full_r, _, attention_r, _, _ = jax.jit(functools.partial(decode_both, rev))(
        variables, flipped, TGT_IN
    )
    np.testing.assert_allclose(full_r, full, rtol=1e-5, atol=1e-6)
    flip_S = functools.partial(reverse_within_lengths, lengths_B=LENGTHS)
    np.testing.assert_allclose(
        attention_r, flip_S(attention.swapaxes(1, 2)).swapaxes(1, 2), atol=1e-6
    )


def test_gradient_reaches_every_parameter():
    """A model with every kind of parameter: bidirectional encoder, dense bridge, Bahdanau
    attention, input feeding (the nn.scan path of teacher forcing)."""
    m = model("bidirectional_reversed", encoder_layers=1, attention="additive", input_feeding=True)
    variables = {"params": random_params(m, SRC, TGT_IN, train=False, seed=2)}
    w = np.random.default_rng(3).normal(size=(B, T, V)).astype(np.float32)

    def loss(params):
        return jnp.sum(w * m.apply({"params": params}, SRC, TGT_IN, train=False))

    grads = jax.jit(jax.grad(loss))(variables["params"])
    for path, g in jax.tree_util.tree_leaves_with_path(grads):
        assert np.all(np.isfinite(g)), jax.tree_util.keystr(path)
        assert np.any(g != 0), jax.tree_util.keystr(path)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (dict(attention="bahdanau"), "unknown attention 'bahdanau'; valid: additive, concat"),
        (dict(normaliser="max"), "unknown normaliser 'max'"),
        (dict(input_feeding=True), "input_feeding feeds the attentional vector back: it needs"),
        (dict(bridge="copy", bidirectional=True), "bridge 'copy' needs a unidirectional encoder"),
        (dict(attention="dot", bidirectional=True), "attention 'dot' needs queries as wide as"),
        (dict(cell="lstn"), "unknown cell 'lstn'"),
    ],
)
def test_bad_options_are_one_line_errors(options, message):
    with pytest.raises(ValueError, match=message) as err:
        RNNSeq2Seq(vocab_size=V, **options).init(jax.random.key(0), SRC, TGT_IN, train=False)
    assert "\n" not in str(err.value)
    with pytest.raises(ValidationError, match=message):
        RNNSeq2SeqConfig(**options)


def test_config_builds_the_module():
    with pytest.raises(ValidationError, match="reset_after applies to the 'gru' cell"):
        RNNSeq2SeqConfig(reset_after=True)
    cfg = RNNSeq2SeqConfig(cell="gru", reset_after=True, attention="general", hidden=6)

    class Data:
        info = {"vocab_size": 11}

    built = cfg.make(V, Data())
    assert (built.vocab_size, built.src_vocab_size, built.hidden) == (V, 11, 6)
    assert dict(built.cell_kwargs) == {"reset_after": True}
    with pytest.raises(ValueError, match="share_embeddings needs one vocabulary"):
        RNNSeq2SeqConfig(share_embeddings=True).make(V, Data())
