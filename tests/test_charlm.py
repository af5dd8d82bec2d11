"""Character-level LM: the stdlib data pipeline, bits/char, sampling, and `dlcore sample`."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from dlcore import cli
from dlcore.config.loading import load_config
from dlcore.data.stdlib_text import (
    TEST_FILES,
    TRAIN_FILES,
    UNK,
    VAL_FILES,
    StdlibCharsConfig,
    build_vocab,
    decode,
    encode,
    make_stdlib_chars,
    stdlib_dir,
)
from dlcore.experiment import run_experiment
from dlcore.experiment.sampling import check_sampling_args, generate
from dlcore.models.rnn import SequenceModel
from dlcore.tasks.tbptt import TruncatedBPTTTask
from tests.helpers import REPO, run_cli


@pytest.fixture(scope="module")
def data():
    return make_stdlib_chars(StdlibCharsConfig(max_train_files=2, seq_len=50, eval_len=4000))


def test_file_lists_are_fixed_sorted_and_disjoint():
    for names in (TRAIN_FILES, VAL_FILES, TEST_FILES):
        assert list(names) == sorted(names) and len(set(names)) == len(names)
    assert not set(TRAIN_FILES) & set(VAL_FILES)
    assert not set(TRAIN_FILES) & set(TEST_FILES)
    assert not set(VAL_FILES) & set(TEST_FILES)


def test_splits_come_from_their_own_files(data):
    info = data.info
    assert info["train_files"] == list(TRAIN_FILES[:2])
    assert info["val_files"] == list(VAL_FILES) and info["test_files"] == list(TEST_FILES)
    first = (stdlib_dir() / TRAIN_FILES[0]).read_text(encoding="utf-8")
    vocab = info["vocab"]
    expected = "".join(c if c in vocab else UNK for c in first[:50])
    assert decode(data.train.x[0], vocab) == expected
    # Targets are the next characters, also across window boundaries.
    np.testing.assert_array_equal(data.train.y[:, :-1], data.train.x[:, 1:])
    np.testing.assert_array_equal(data.train.y[:-1, -1], data.train.x[1:, 0])
    val_text = "".join((stdlib_dir() / n).read_text(encoding="utf-8") for n in VAL_FILES)
    assert int(np.sum(data.val.y >= 0)) == len(val_text) - 1  # every held-out char but one
    pad_rows = np.nonzero(np.any(data.val.y < 0, axis=1))[0]
    assert list(pad_rows) == [len(data.val) - 1]  # only the last window is padded


def test_rare_characters_map_to_the_unknown_symbol():
    vocab = build_vocab("aaab\tb" + "c", min_count=2)
    assert vocab == UNK + "ab"
    np.testing.assert_array_equal(encode("abcé", vocab), [1, 2, 0, 0])
    assert decode([1, 0, 2], vocab) == "a" + UNK + "b"


def test_bits_per_char_is_cross_entropy_over_ln2(data):
    model = SequenceModel(data.num_classes, vocab_size=data.num_classes, features=8)
    task = TruncatedBPTTTask(model, optax.adam(1e-3), len(data.train), "bits_per_char")
    state = task.init(jax.random.PRNGKey(0), {"x": data.train.x[:4], "y": data.train.y[:4]})
    batch = {"x": data.val.x[-3:], "y": data.val.y[-3:]}
    sums = jax.jit(task.eval_step)(state, batch)
    logits = model.apply({"params": state.params}, batch["x"], train=False)
    log_p = np.asarray(jax.nn.log_softmax(logits))
    y = np.asarray(batch["y"])
    b, t = np.nonzero(y >= 0)
    ce = -log_p[b, t, y[b, t]]
    assert float(sums["count"]) == len(ce)
    np.testing.assert_allclose(float(sums["bits_per_char"]), ce.sum() / math.log(2), rtol=1e-4)
    np.testing.assert_allclose(float(sums["bits_per_char"]), float(sums["loss"]) / math.log(2))


@pytest.fixture(scope="module")
def tiny_lm():
    model = SequenceModel(20, vocab_size=20, cell="gru", features=16, embed_dim=8)
    params = model.init(jax.random.PRNGKey(0), jnp.zeros((1, 3), jnp.int32), train=False)
    return model, params["params"]


def sample(tiny_lm, seed, **kw):
    model, params = tiny_lm
    prompt = jnp.array([3, 1, 4], jnp.int32)
    settings = {"temperature": 1.0, "top_k": None, **kw}
    return np.asarray(
        generate(model, params, prompt, jax.random.PRNGKey(seed), length=40, **settings)
    )


def test_sampling_is_a_function_of_the_seed(tiny_lm):
    a, b, c = sample(tiny_lm, 0), sample(tiny_lm, 0), sample(tiny_lm, 1)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    np.testing.assert_array_equal(sample(tiny_lm, 0, top_k=1), sample(tiny_lm, 5, temperature=0.0))


def test_samples_stay_within_the_top_k(tiny_lm):
    model, params = tiny_lm
    ids = sample(tiny_lm, 2, top_k=3, temperature=2.0)
    seq = jnp.asarray(np.concatenate([[3, 1, 4], ids]))[None]
    logits = np.asarray(model.apply({"params": params}, seq, train=False))[0]
    # The token at position 3 + t was drawn from the logits at position 2 + t.
    top3 = np.argsort(logits, axis=-1)[:, -3:]
    assert all(ids[t] in top3[2 + t] for t in range(len(ids)))
    assert len(set(ids)) > 1  # really sampled, not greedy


@pytest.mark.parametrize(
    "kw, message",
    [
        ({"length": 0}, "length must be a positive"),
        ({"temperature": -1.0}, "temperature must be >= 0"),
        ({"top_k": 0}, r"top_k must be in \[1, 20\]"),
    ],
)
def test_bad_sampling_settings_are_one_line_errors(kw, message):
    args = {"length": 10, "temperature": 1.0, "top_k": None, "vocab": 20, **kw}
    with pytest.raises(ValueError, match=message):
        check_sampling_args(**args)


def test_dlcore_sample_prints_text_after_the_prompt(tmp_path, capsys):
    overrides = [
        "data.max_train_files=1",
        "data.seq_len=50",
        "data.eval_len=20000",
        "model.features=16",
        "model.embed_dim=8",
        "train.batch_size=16",
    ]
    cfg = load_config(REPO / "experiments" / "charlm_lstm.toml", overrides)
    run_dir = tmp_path / "lm"
    assert run_experiment(cfg, run_dir)["status"] == "completed"
    args = ("sample", str(run_dir), "--prompt", "def ", "--length", "60", "--top-k", "5")
    printed = run_cli(*args, "--seed", "3", cache_dir=tmp_path / "cache")  # a real process
    assert printed.returncode == 0, printed.stderr
    assert printed.stdout.startswith("def ") and len(printed.stdout) == len("def ") + 60 + 1
    assert cli.main(["sample", str(run_dir), "--temperature", "-1"]) == 2
    expected = "error: temperature must be >= 0 and finite (0 = greedy); got -1.0\n"
    assert capsys.readouterr().err == expected
