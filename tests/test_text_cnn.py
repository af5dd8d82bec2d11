"""The stdlib_lines data set and the text_cnn model: the labelling rule on a hand-written
source, determinism and the split by file, the 1-D convolution and the whole model against
their equations in NumPy (float64, with gradients), padding that changes nothing and gets no
gradient, and the one-line error for image data."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax.traverse_util import flatten_dict
from jax.test_util import check_grads

from dlcore.config.loading import ConfigError, validate
from dlcore.data.stdlib_lines import (
    FILES,
    LABELS,
    VOCAB,
    StdlibLinesConfig,
    file_split,
    label_lines,
    make_stdlib_lines,
)
from dlcore.experiment import build
from dlcore.layers.conv import Conv1D
from dlcore.models.text_cnn import CONV_IMPL, TextCNN, max_over_time

SOURCE = '''"""Module docstring,
over two lines."""
# a comment line
import os  # code with a comment


class A:
    """Class docstring."""  # trailing comment

    x = """not a
docstring: an assigned string
"""
    names = ("a",
             "b")


def f(y):
    \'\'\'Function
    docstring.\'\'\'
    "a second string statement is no docstring"
    z = y + \\
        1
    return f"{y}!"
'''
EXPECTED = {
    1: "docstring",
    2: "docstring",
    3: "comment",
    4: "code",
    7: "code",
    8: "docstring",
    10: "code",
    11: "string",
    12: "string",
    13: "code",
    14: "code",
    17: "code",
    18: "docstring",
    19: "docstring",
    20: "string",
    21: "code",
    22: "code",
    23: "code",
}
TINY = {"max_files": 2, "line_len": 24, "train_per_class": 30, "eval_per_class": 10}


def test_labelling_rule_on_a_hand_written_source():
    assert dict(label_lines(SOURCE)) == EXPECTED
    assert set(EXPECTED.values()) == set(LABELS)


def test_a_string_only_line_is_string_and_an_fstring_is_one_literal():
    source = 'x = (\n    "a"\n    f"{1 + 1}"  # two\n)\n'
    assert label_lines(source) == [(1, "code"), (2, "string"), (3, "string"), (4, "code")]


@pytest.fixture(scope="module")
def tiny():
    return make_stdlib_lines(StdlibLinesConfig(**TINY))


def test_building_twice_gives_the_same_arrays(tiny):
    again = make_stdlib_lines(StdlibLinesConfig(**TINY))
    assert again.fingerprint() == tiny.fingerprint()
    other = make_stdlib_lines(StdlibLinesConfig(**TINY, seed=1))
    assert other.fingerprint()["sha256"] != tiny.fingerprint()["sha256"]


def test_splits_hold_disjoint_files_and_capped_classes(tiny):
    assert list(FILES) == sorted(set(FILES))
    splits = ("train", "val", "test")
    by_split = {s: {n for i, n in enumerate(FILES) if file_split(i) == s} for s in splits}
    assert sum(len(v) for v in by_split.values()) == len(FILES)
    assert len(by_split["val"]) == len(by_split["test"]) == 17
    for a in by_split:
        for b in by_split:
            assert a == b or not by_split[a] & by_split[b]
    for split, cap in (("train", 30), ("val", 10), ("test", 10)):
        files = tiny.info[f"{split}_files"]
        assert len(files) == 2 and set(files) <= by_split[split]
        counts = np.bincount(tiny.split(split).y, minlength=4)
        assert counts.max() <= cap
        assert counts.tolist() == list(tiny.info["class_counts"][split].values())


def test_inputs_are_the_lines_characters_then_padding(tiny):
    x = tiny.train.x
    assert x.dtype == np.int32 and x.shape[1] == 24 and tiny.info["vocab_size"] == len(VOCAB)
    lengths = (x >= 0).sum(axis=1)
    assert lengths.min() >= 1
    for row, n in zip(x, lengths, strict=True):  # a prefix of real ids, then -1
        assert np.all(row[:n] >= 0) and np.all(row[n:] == -1)
    text = "".join(VOCAB[i] for i in x[0][: lengths[0]])
    assert text.strip() and "\n" not in text


# ---- the convolution and the model against NumPy ---------------------------------------


def np_conv_same(x, w, b, dilation):
    """y[b, t, f] = b_f + sum_{j, c} x_pad[b, t + d j, c] w[j, c, f], 'same' zero padding."""
    k, t = w.shape[0], x.shape[1]
    total = dilation * (k - 1)
    xp = np.pad(x, ((0, 0), (total // 2, total - total // 2), (0, 0)))
    y = np.zeros((x.shape[0], t, w.shape[2])) + b
    for j in range(k):
        y += np.einsum("btc,cf->btf", xp[:, j * dilation : j * dilation + t], w[j])
    return y


@pytest.mark.parametrize(("kernel", "dilation"), [(3, 1), (4, 1), (3, 2), (1, 1), (4, 3)])
def test_conv1d_as_the_model_uses_it_matches_its_equation(kernel, dilation):
    """'same' keeps T (the odd padding on the right); 'valid' gives T - d (K - 1)."""
    with jax.enable_x64(True):
        x = jax.random.normal(jax.random.key(0), (2, 11, 3), jnp.float64)
        layer = Conv1D(4, kernel, padding="same", dilation=dilation, impl=CONV_IMPL)
        params = layer.init(jax.random.key(1), x)["params"]
        params = jax.tree.map(lambda p: jnp.asarray(p, jnp.float64) + 0.1, params)  # bias != 0
        y = layer.apply({"params": params}, x)
        assert params["kernel"].shape == (kernel, 3, 4) and y.shape == (2, 11, 4)
        w, b = np.asarray(params["kernel"]), np.asarray(params["bias"])
        np.testing.assert_allclose(y, np_conv_same(np.asarray(x), w, b, dilation), atol=1e-12)

        def f(x, p):
            return layer.apply({"params": p}, x)

        check_grads(f, (x, params), order=1, modes=("rev",))
        valid = Conv1D(4, kernel, dilation=dilation, impl=CONV_IMPL)
        assert valid.apply({"params": params}, x).shape == (2, 11 - dilation * (kernel - 1), 4)


def test_max_over_time_routes_the_gradient_to_the_valid_arg_max_only():
    h = np.array([[[1.0, 7.0], [4.0, 2.0], [9.0, 9.0]], [[0.0, 0.0], [5.0, -1.0], [2.0, 3.0]]])
    mask = np.array([[True, True, False], [True, True, True]])
    with jax.enable_x64(True):
        pooled = max_over_time(jnp.asarray(h), jnp.asarray(mask))
        np.testing.assert_array_equal(pooled, [[4.0, 7.0], [5.0, 3.0]])
        grad = jax.grad(lambda h: jnp.sum(max_over_time(h, jnp.asarray(mask))))(jnp.asarray(h))
    expected = np.zeros_like(h)
    expected[0, 1, 0] = expected[0, 0, 1] = expected[1, 1, 0] = expected[1, 2, 1] = 1.0
    np.testing.assert_array_equal(grad, expected)
    empty = max_over_time(jnp.ones((1, 3, 2)), jnp.zeros((1, 3), bool))
    np.testing.assert_array_equal(empty, [[0.0, 0.0]])  # no valid step: 0, not -inf


MODEL = TextCNN(
    out_features=3, vocab_size=7, embed_dim=4, widths=(2, 3), features=5, layers=((3, 2, 4),)
)
X = np.array([[1, 2, 3, 4, 5, -1, -1], [6, 1, 2, -1, -1, -1, -1]], np.int32)  # no id 0


def np_text_cnn(p, x):
    """The module docstring's equations, in float64."""
    keep = (x >= 0)[:, :, None]
    h = np.asarray(p["embed"]["embedding"])[np.maximum(x, 0)] * keep
    t = p["tdnn0"]
    h = np.maximum(np_conv_same(h, np.asarray(t["kernel"]), np.asarray(t["bias"]), 2), 0) * keep
    pooled = []
    for name in ("conv0", "conv1"):
        c = p[name]
        z = np.maximum(np_conv_same(h, np.asarray(c["kernel"]), np.asarray(c["bias"]), 1), 0)
        pooled.append(np.where(keep, z, -np.inf).max(axis=1))
    r = np.concatenate(pooled, axis=-1)
    return r @ np.asarray(p["head"]["kernel"]) + np.asarray(p["head"]["bias"])


@pytest.fixture(scope="module")
def params64():
    with jax.enable_x64(True):
        params = MODEL.init(jax.random.key(0), jnp.asarray(X), train=False)["params"]
        return jax.tree.map(lambda p: np.asarray(p, np.float64) + 0.05, params)


def test_parameter_names_are_stable(params64):
    shapes = {"/".join(k): v.shape for k, v in flatten_dict(params64).items()}
    assert shapes == {
        "embed/embedding": (7, 4),
        "tdnn0/kernel": (3, 4, 4),
        "tdnn0/bias": (4,),
        "conv0/kernel": (2, 4, 5),
        "conv0/bias": (5,),
        "conv1/kernel": (3, 4, 5),
        "conv1/bias": (5,),
        "head/kernel": (10, 3),
        "head/bias": (3,),
    }


def test_text_cnn_matches_its_equations_and_ignores_padding(params64):
    with jax.enable_x64(True):
        variables = {"params": jax.tree.map(jnp.asarray, params64)}

        def run(x):
            return MODEL.apply(variables, jnp.asarray(x), train=False)

        out = run(X)
        np.testing.assert_allclose(out, np_text_cnn(params64, X), atol=1e-12)
        np.testing.assert_array_equal(run(np.where(X < 0, -7, X)), out)  # other padding ids
        np.testing.assert_array_equal(run(X[:, :5]), out)  # shorter padding
        np.testing.assert_array_equal(run(np.pad(X, ((0, 0), (0, 4)), constant_values=-1)), out)

        def loss(params):
            logits = MODEL.apply({"params": params}, jnp.asarray(X), train=False)
            return jnp.sum(logits * jnp.arange(3.0)[None, :])

        grads = jax.grad(loss)(variables["params"])
        table = np.asarray(grads["embed"]["embedding"])
        assert np.all(table[0] == 0.0)  # padding reads row 0; the real tokens never do
        assert np.all(np.abs(table[1:]).sum(axis=1) > 0)
        check_grads(loss, (variables["params"],), order=1, modes=("rev",))


def test_text_cnn_on_images_is_a_one_line_config_error():
    raw = {
        "data": {"name": "digits", "layout": "image"},
        "model": {"name": "text_cnn"},
        "train": {"batch_size": 8},
    }
    with pytest.raises(ConfigError) as info:
        build(validate(raw, "t.toml"), "t.toml")
    lines = info.value.lines()
    assert len(lines) == 1, lines
    assert "model.name: text_cnn needs x as token ids [T]" in lines[0]
    assert "digits has x features" in lines[0]


def test_text_cnn_on_real_valued_input_names_the_problem():
    model = TextCNN(out_features=2, vocab_size=5)
    with pytest.raises(ValueError, match="text_cnn reads integer token ids"):
        model.init(jax.random.key(0), jnp.ones((2, 7)), train=False)
    with pytest.raises(ValueError, match=r"text_cnn input must be \[batch, time\]"):
        model.init(jax.random.key(0), jnp.ones((2, 8, 8, 1), jnp.int32), train=False)
