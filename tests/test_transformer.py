"""Transformer blocks, the encoder–decoder and the language model: equations in NumPy (float64),
causality, masks, teacher forcing = incremental decoding, gradients, one-line errors."""

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dlcore.seq2seq.protocol import step_fns
from dlcore.seq2seq.transformer_blocks import DecoderBlock, EncoderBlock, sinusoidal_positions
from dlcore.seq2seq.transformer_lm import TransformerLM
from dlcore.seq2seq.transformer_model import TransformerSeq2Seq

V, SRC_V, D, H = 9, 11, 8, 2
SRC = jnp.array([[3, 4, 5, 6, 0], [7, 8, 0, 0, 0]])  # 0 = <pad>
TGT_IN = jnp.array([[1, 3, 4, 5, 2, 0], [1, 6, 2, 0, 0, 0]])  # <bos> w... <eos> <pad>
LM_X = jnp.array([[1, 2, 3, 4, 5, 6, 7, 8, 1, 2, 3, -1], [8, 7, 6, 5, 4, 3, 2, 1, 1, 1, -1, -1]])


# Tiny programs: XLA's CPU optimisation passes cost more than they save here.
FAST_COMPILE = {"xla_backend_optimization_level": 0, "xla_llvm_disable_expensive_passes": True}
jit = functools.partial(jax.jit, compiler_options=FAST_COMPILE)


def random_variables(model, *args, dtype=np.float32, seed=0):
    """Variables of ``model`` drawn from N(0, 0.5²) in NumPy (LayerNorm scales and biases
    too, so nothing hides behind an initial 1 or 0), shaped by tracing ``init`` only."""
    init = functools.partial(model.init, train=False)
    shapes = jax.eval_shape(init, jax.random.key(0), *args)
    rng = np.random.default_rng(seed)
    return jax.tree.map(lambda s: (0.5 * rng.normal(size=s.shape)).astype(dtype), shapes)


def seq2seq(norm="pre", positions="sinusoidal", **kw):
    kw = {"d_model": D, "num_heads": H, "d_ff": 16, "max_len": 7, "encoder_layers": 1, **kw}
    return TransformerSeq2Seq(V, SRC_V, dropout=0.1, norm=norm, positions=positions, **kw)


def incremental(model, params, src_BxS, tgt_in_BxT, use_cache=True):
    """Logits and cross-attention from encode + init_carry + step, one token at a time
    (``use_cache=False``: every step starts from an empty cache at the right position)."""
    fns = step_fns(model)
    memory = fns.encode(params, src_BxS)
    empty = fns.init_carry(params, memory)

    def body(carry, t_and_token_B):
        t, token_B = t_and_token_B
        if not use_cache:
            carry = {**empty, "t": jnp.full_like(empty["t"], t)}
        carry, logits_BxV, aux = fns.step(params, memory, carry, token_B)
        return carry, (logits_BxV, aux["attention"])

    steps = (jnp.arange(tgt_in_BxT.shape[1]), tgt_in_BxT.T)
    _, (logits_TxBxV, attention_TxBxS) = jax.lax.scan(body, empty, steps)
    return logits_TxBxV.swapaxes(0, 1), attention_TxBxS.swapaxes(0, 1)


@functools.partial(jit, static_argnames=("model", "check_cache"))
def seq2seq_results(model, variables, check_cache=False):
    """Everything the seq2seq tests look at, in one compiled program per model."""
    later = TGT_IN.at[:, 3:].set(7)
    both = model.apply(
        variables, jnp.tile(SRC, (2, 1)), jnp.concatenate([TGT_IN, later]), train=False
    )
    wider = jnp.concatenate([SRC, jnp.zeros((2, 2), SRC.dtype)], axis=1)
    wider = jnp.concatenate([wider, wider[1:].at[:, 5].set(4)])  # + a real token in row 1
    wide = model.apply(variables, wider, jnp.concatenate([TGT_IN, TGT_IN[1:]]), train=False)
    steps, attention = incremental(model, variables["params"], SRC, TGT_IN)
    out = {
        "full": both[:2],
        "later_changed": both[2:],
        "steps": steps,
        "attention": attention,
        "wider_source": wide[:2],
        "wider_real": wide[2:],
    }
    if check_cache:
        out["forgetful"] = incremental(model, variables["params"], SRC, TGT_IN, use_cache=False)[0]
    return out


@functools.partial(jit, static_argnames="model")
def lm_results(model, variables):
    """The same for the language model: full passes, cache continuation, long inputs."""
    x = LM_X[:, :6]

    def full(x):
        return model.apply(variables, x, train=False)

    x_and_later = full(jnp.concatenate([x, x.at[:, 4:].set(3)]))
    carry, prompt = model.apply(variables, x[:, :2], train=False, return_carry=True)
    rest = LM_X[:, 2:9]  # past max_len: the cache is rebuilt from its last 3 tokens
    carry, rest = model.apply(variables, rest, train=False, carry=carry, return_carry=True)
    return {
        "full": x_and_later[:2],
        "later_changed": x_and_later[2:],
        "cached": jnp.concatenate([prompt, rest], axis=1),
        "carry": carry,
        "long": full(LM_X),
        "windows": full(jnp.concatenate([LM_X[:, 3:9], LM_X[:, 6:12]])).reshape(2, 2, 6, V),
    }


SEQ2SEQ_CONFIGS = [("pre", "sinusoidal"), ("post", "learned")]


@pytest.fixture(scope="module")
def results():
    out = {}
    for config in SEQ2SEQ_CONFIGS:
        model = seq2seq(*config)
        variables = random_variables(model, SRC, TGT_IN)
        out[config] = seq2seq_results(model, variables, check_cache=config == SEQ2SEQ_CONFIGS[0])
    return out


@pytest.fixture(scope="module")
def lm_out():
    lm = TransformerLM(V, V, d_model=D, num_heads=H, d_ff=16, num_layers=2, max_len=6)
    return lm_results(lm, random_variables(lm, LM_X[:, :6]))


def test_sinusoidal_positions_follow_the_formula():
    T, Dm = 7, 6
    want = np.zeros((T, Dm))
    for t in range(T):
        for i in range(Dm // 2):
            want[t, 2 * i] = math.sin(t / 10000 ** (2 * i / Dm))
            want[t, 2 * i + 1] = math.cos(t / 10000 ** (2 * i / Dm))
    np.testing.assert_allclose(sinusoidal_positions(T, Dm), want, atol=1e-6)


@pytest.mark.parametrize("config", SEQ2SEQ_CONFIGS)
def test_teacher_forcing_equals_incremental_decoding(results, config):
    r = results[config]
    assert r["full"].shape == r["steps"].shape == (2, 6, V)
    np.testing.assert_allclose(r["steps"], r["full"], atol=1e-5)
    assert r["attention"].shape == (2, 6, SRC.shape[1])
    np.testing.assert_allclose(r["attention"].sum(-1), 1.0, atol=1e-5)
    if "forgetful" in r:  # the cache matters: steps from an empty cache at t differ
        assert not np.allclose(r["forgetful"][:, 1:], r["full"][:, 1:], atol=1e-3)


@pytest.mark.parametrize("config", SEQ2SEQ_CONFIGS)
def test_decoder_and_lm_are_causal(results, lm_out, config):
    for r, t in ((results[config], 3), (lm_out, 4)):  # inputs from t on were changed
        np.testing.assert_array_equal(r["later_changed"][:, :t], r["full"][:, :t])
        assert not np.allclose(r["later_changed"][:, t:], r["full"][:, t:])


@pytest.mark.parametrize("config", SEQ2SEQ_CONFIGS)
def test_padded_source_keys_get_zero_cross_attention(results, config):
    r = results[config]
    attention = np.asarray(r["attention"])  # [B, T, S]
    pad = np.broadcast_to(np.asarray(SRC == 0)[:, None, :], attention.shape)
    assert np.all(attention[pad] == 0) and np.all(attention[~pad] > 0)
    # more padding changes nothing: padded keys are invisible to both attentions
    np.testing.assert_allclose(r["wider_source"], r["full"], atol=1e-6)
    assert not np.allclose(r["wider_real"], r["full"])


def test_lm_prompt_cache_and_long_inputs(lm_out):
    r = lm_out
    # longer than max_len = 6: windows of 6 with stride 3, each later one adds its 2nd half
    assert r["long"].shape == (2, 12, V)
    np.testing.assert_allclose(r["long"][:, :6], r["full"], atol=1e-6)
    for start, window in zip((3, 6), r["windows"], strict=True):
        np.testing.assert_allclose(r["long"][:, start + 3 : start + 6], window[:, 3:], atol=1e-6)
    # a prompt, then one token at a time (as dlcore sample does) gives the same logits
    np.testing.assert_allclose(r["cached"], r["long"][:, :9], atol=1e-5)
    assert r["carry"]["t"].tolist() == [6, 6] and r["carry"]["layers"][0]["k"].shape == (2, 6, D)
    np.testing.assert_array_equal(r["carry"]["tokens"], LM_X[:, 3:9])


@functools.partial(jit, static_argnames="block")
def block_apply(block, variables, *args):
    return block.apply(variables, *args, train=False)


def _ln(x, p):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + 1e-5) * p["scale"] + p["bias"]


def _mha(p, q, kv, keep_BxTqxTk):
    def proj(x, n):
        return x @ p["W" + n] + p["b" + n]

    b, tq, _ = q.shape
    Q, K, Vv = (
        proj(x, n).reshape(b, x.shape[1], H, -1) for x, n in ((q, "q"), (kv, "k"), (kv, "v"))
    )
    s = np.einsum("bqhd,bkhd->bhqk", Q, K) / math.sqrt(Q.shape[-1])
    s = np.where(keep_BxTqxTk[:, None], s, -np.inf)
    a = np.exp(s - s.max(-1, keepdims=True))
    a = a / a.sum(-1, keepdims=True)
    o = np.einsum("bhqk,bkhd->bqhd", a, Vv).reshape(b, tq, -1)
    return o @ p["Wo"] + p["bo"], a.mean(1)


def _ff(p, x, activation):
    h = x @ p["W1"]["kernel"] + p["W1"]["bias"]
    if activation == "relu":
        h = np.maximum(h, 0)
    else:
        h = 0.5 * h * (1 + np.vectorize(math.erf)(h / math.sqrt(2)))
    return h @ p["W2"]["kernel"] + p["W2"]["bias"]


def _sub(norm, x, f, ln):
    return x + f(_ln(x, ln)) if norm == "pre" else _ln(x + f(x), ln)


@pytest.mark.parametrize(("norm", "activation"), [("pre", "relu"), ("post", "gelu")])
def test_blocks_match_their_equations_in_float64(norm, activation):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 4, D))
    m = rng.normal(size=(2, 3, D))
    mask = np.array([[True, True, True], [True, False, False]])
    causal = np.broadcast_to(np.tril(np.ones((4, 4), bool)), (2, 4, 4))
    kw = dict(num_heads=H, d_ff=5, norm=norm, activation=activation)
    with jax.enable_x64(True):
        dec, enc = DecoderBlock(**kw), EncoderBlock(**kw)
        dv = random_variables(dec, x, m, mask, dtype=np.float64)
        ev = random_variables(enc, m, mask, dtype=np.float64, seed=1)
        y, a, _ = block_apply(dec, dv, x, m, mask)
        z = block_apply(enc, ev, m, mask)
        assert y.dtype == z.dtype == jnp.float64
    p = dv["params"]
    h = _sub(norm, x, lambda u: _mha(p["self_attn"], u, u, causal)[0], p["ln_self"])
    weights = []

    def cross(u):
        out, w = _mha(p["cross_attn"], u, m, np.broadcast_to(mask[:, None], (2, 4, 3)))
        weights.append(w)
        return out

    h = _sub(norm, h, cross, p["ln_cross"])
    want = _sub(norm, h, lambda u: _ff(p["ff"], u, activation), p["ln_ff"])
    np.testing.assert_allclose(y, want, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(a, weights[0], rtol=1e-10, atol=1e-12)
    q = ev["params"]
    keep = np.broadcast_to(mask[:, None], (2, 3, 3))
    g = _sub(norm, m, lambda u: _mha(q["attn"], u, u, keep)[0], q["ln_attn"])
    want = _sub(norm, g, lambda u: _ff(q["ff"], u, activation), q["ln_ff"])
    np.testing.assert_allclose(z, want, rtol=1e-10, atol=1e-12)


GRAD_MODEL = seq2seq("post", "learned", tie_embeddings=True, decoder_layers=1)
GRAD_LM = TransformerLM(V, V, d_model=D, num_heads=H, d_ff=16, num_layers=1, max_len=6)


@jit
def all_gradients(params, lm_params):
    rngs = {"dropout": jax.random.key(3)}
    model, lm = GRAD_MODEL, GRAD_LM

    def loss(params):
        logits = model.apply({"params": params}, SRC, TGT_IN, train=True, rngs=rngs)
        return jnp.mean(jax.nn.log_softmax(logits)[..., 2])

    def lm_loss(params):
        logits = lm.apply({"params": params}, LM_X[:, :6], train=True, rngs=rngs)
        return jnp.mean(jax.nn.log_softmax(logits)[..., 2])

    return jax.grad(loss)(params), jax.grad(lm_loss)(lm_params)


def test_gradients_are_finite_and_reach_every_parameter():
    params = random_variables(GRAD_MODEL, SRC, TGT_IN)["params"]
    grads, lm_grads = all_gradients(params, random_variables(GRAD_LM, LM_X[:, :6])["params"])
    assert "head" not in grads and "table" in grads["tgt_pos"]  # tied, learned
    for path, g in jax.tree_util.tree_flatten_with_path((grads, lm_grads))[0]:
        assert np.all(np.isfinite(g)), path
        assert np.any(g != 0), f"no gradient reaches {jax.tree_util.keystr(path)}"


def shapes(model, tgt_in):
    return jax.eval_shape(
        functools.partial(model.init, train=False), jax.random.key(0), SRC, tgt_in
    )


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (
            lambda: shapes(seq2seq(num_heads=3), TGT_IN),
            r"transformer d_model \(8\) must be divisible by num_heads \(3\)",
        ),
        (
            lambda: shapes(seq2seq(), jnp.ones((2, 8), int)),
            "target length 8 exceeds model.max_len = 7",
        ),
        (
            lambda: shapes(seq2seq(norm="mid"), TGT_IN),
            "unknown transformer norm 'mid'; valid: post, pre",
        ),
    ],
)
def test_bad_options_give_one_line_errors(make, message):
    with pytest.raises(ValueError, match=message) as info:
        make()
    assert "\n" not in str(info.value)


def test_bad_config_names_the_field():
    from dlcore.config.loading import ConfigError, validate

    raw = {
        "data": {"name": "stdlib_chars", "seq_len": 8, "max_train_files": 1},
        "model": {"name": "transformer_lm", "d_model": 6, "num_heads": 4},
        "task": {"name": "tagging"},
    }
    with pytest.raises(ConfigError, match=r"model.*d_model \(6\) must be divisible") as info:
        validate(raw, "t")
    assert "\n" not in str(info.value)
