"""Show, Attend and Tell (dlcore.seq2seq.captioner) and the attention pictures (dlcore.viz):
the seq2seq protocol, the attention weights, gradients, PNGs and ``dlcore viz RUN attention``."""

import dataclasses

import jax
import jax.numpy as jnp
import matplotlib.image
import numpy as np
import optax
import pytest

from dlcore.cli.main import main
from dlcore.config.loading import load_config
from dlcore.models.registry import MODELS
from dlcore.seq2seq.captioner import ShowAttendTell, coordinate_channels
from dlcore.seq2seq.protocol import step_fns
from dlcore.seq2seq.rnn_model import RNNSeq2Seq
from dlcore.viz.attention import attention_matrix_picture, caption_attention_picture, upsample
from dlcore.viz.attention_run import Seq2seqRun, feature_grid, text_pictures
from dlcore.viz.from_run import VizOptions
from dlcore.viz.images import save_png
from tests.helpers import REPO

V, B, T, SIDE = 11, 3, 5, 16
TINY = dict(channels=(4, 8), embed_dim=8, features=16, attention_features=8)


@pytest.fixture(scope="module")
def tiny():
    """A tiny captioner, its parameters, images [B, 16, 16, 3] and decoder inputs [B, T]."""
    model = ShowAttendTell(vocab_size=V, **TINY)
    src = jax.random.uniform(jax.random.PRNGKey(1), (B, SIDE, SIDE, 3))
    tgt_in = jax.random.randint(jax.random.PRNGKey(2), (B, T), 0, V)
    init = jax.jit(lambda key: model.init(key, src, tgt_in, train=False))  # faster than eager
    return model, init(jax.random.PRNGKey(0))["params"], src, tgt_in


@pytest.fixture(scope="module")
def forced(tiny):
    """Teacher-forced logits [B, T, V] and the gradient of a cross-entropy, one compile."""
    model, params, src, tgt_in = tiny
    targets = jnp.roll(tgt_in, -1, axis=1)

    def loss(p):
        logits = model.apply({"params": p}, src, tgt_in, train=False)
        ce = optax.softmax_cross_entropy_with_integer_labels(logits, targets).mean()
        return ce, logits

    (_, logits), grads = jax.jit(jax.value_and_grad(loss, has_aux=True))(params)
    return logits, grads


@pytest.fixture(scope="module")
def stepped(tiny):
    """The protocol run token by token: logits [B, T, V] and attention [B, T, L]."""
    model, params, src, tgt_in = tiny
    fns = step_fns(model)
    step = jax.jit(fns.step)
    memory = jax.jit(fns.encode)(params, src)
    carry = jax.jit(fns.init_carry)(params, memory)
    logits, attention = [], []
    for t in range(T):
        carry, logits_BxV, aux = step(params, memory, carry, tgt_in[:, t])
        logits.append(logits_BxV)
        attention.append(aux["attention"])
    return memory, jnp.stack(logits, 1), jnp.stack(attention, 1)


def test_teacher_forcing_equals_step_by_step(forced, stepped):
    logits = forced[0]
    assert logits.shape == (B, T, V)
    np.testing.assert_allclose(logits, stepped[1], atol=2e-5, rtol=1e-5)


def test_memory_is_the_flattened_feature_map_and_attention_sums_to_one(stepped):
    memory, _, attention_BxTxL = stepped
    locations = (SIDE // 4) ** 2  # two 2x2 max-pools
    assert memory["annotations"].shape == (B, locations, TINY["channels"][-1])
    assert memory["mask"].shape == (B, locations) and bool(memory["mask"].all())
    assert attention_BxTxL.shape == (B, T, locations)
    assert float(attention_BxTxL.min()) >= 0.0
    np.testing.assert_allclose(attention_BxTxL.sum(-1), 1.0, atol=1e-5)
    # Attention depends on the decoder state: not the same map at every step.
    assert float(jnp.abs(attention_BxTxL[:, 1:] - attention_BxTxL[:, :1]).max()) > 1e-6


def test_gradient_reaches_every_parameter(forced):
    grads = forced[1]
    assert len(jax.tree.leaves(grads)) == 22  # 2 convs, attention, LSTM, embedding, 6 denses
    dead = [
        jax.tree_util.keystr(path)
        for path, g in jax.tree_util.tree_leaves_with_path(grads)
        if not float(jnp.abs(g).max()) > 0.0
    ]
    assert not dead, f"no gradient reaches {dead}"


def test_coordinate_channels_and_a_too_small_image():
    x = coordinate_channels(jnp.zeros((1, 3, 4, 1)))
    assert x.shape == (1, 3, 4, 3)
    np.testing.assert_allclose(x[0, :, 0, 1], [-1.0, 0.0, 1.0])  # rows
    np.testing.assert_allclose(x[0, 0, :, 2], [-1.0, -1 / 3, 1 / 3, 1.0], rtol=1e-6)  # columns
    model = ShowAttendTell(vocab_size=V, channels=(4, 4, 4))
    with pytest.raises(ValueError, match=r"show_attend_tell: stage2/pool .* 4x4 -> 2x2 -> 1x1"):
        model.init(
            jax.random.PRNGKey(0), jnp.zeros((1, 4, 4, 3)), jnp.ones((1, 2), int), train=False
        )


def test_config_builds_the_registered_model_and_rejects_bad_fields():
    cfg = MODELS["show_attend_tell"].config(channels=[8], normaliser="sparsemax", gate=False)
    model = cfg.make(V)
    assert (model.vocab_size, model.channels, model.normaliser, model.gate) == (
        V,
        (8,),
        "sparsemax",
        False,
    )
    with pytest.raises(ValueError, match="unknown attention normaliser 'max'"):
        MODELS["show_attend_tell"].config(normaliser="max")


def test_upsample_and_feature_grid():
    np.testing.assert_allclose(upsample(np.full((2, 3), 0.25), 8, 12), 0.25)
    big = upsample(np.array([[0.0, 1.0], [2.0, 3.0]]), 4, 4)
    np.testing.assert_allclose(big[[0, 0, 3, 3], [0, 3, 0, 3]], [0.0, 1.0, 2.0, 3.0])
    assert feature_grid(16, 16, 16) == (4, 4) and feature_grid(8, 16, 32) == (2, 4)
    with pytest.raises(ValueError, match="cannot lay 7 attention locations"):
        feature_grid(7, 16, 16)


def _read_back(tmp_path, name, picture):
    path = save_png(tmp_path / f"{name}.png", picture)
    return matplotlib.image.imread(path)[..., :3]


def test_pictures_are_valid_pngs_that_are_not_blank(tmp_path):
    rng = np.random.default_rng(0)
    maps = rng.random((2, 3, 4, 4))
    caption = caption_attention_picture(
        rng.random((2, SIDE, SIDE, 3)), [["a", "red", "<eos>"]] * 2, list(maps), ["x", "y"]
    )
    read = _read_back(tmp_path, "caption", caption)
    assert read.shape == caption.shape and read.shape[1] > read.shape[0] > 100
    weights = [rng.dirichlet(np.ones(4), 3), rng.dirichlet(np.ones(2), 5)]
    matrix = attention_matrix_picture(
        weights, [list("ab c"), list("xy")], [list("abc"), list("vwxyz")]
    )
    read_matrix = _read_back(tmp_path, "matrix", matrix)
    assert read_matrix.shape == matrix.shape
    for image in (read, read_matrix):
        assert image.std() > 0.05 and len(np.unique(image.reshape(-1, 3), axis=0)) > 50
    with pytest.raises(ValueError, match=r"attention must be \[T, h, w\] with T = 2 words"):
        caption_attention_picture(rng.random((1, 8, 8, 3)), [["a", "b"]], [maps[0]])
    with pytest.raises(ValueError, match=r"must be \[targets, sources\] = \[3, 2\]"):
        attention_matrix_picture(weights[:1], [list("xy")], [list("abc")])


@pytest.fixture(scope="module")
def caption_run(tmp_path_factory):
    """experiments/shapes_captioning.toml shrunk to a few steps on 16x16 scenes."""
    from dlcore.experiment import run_experiment

    overrides = [
        "data.n_samples=48",
        "data.image_size=16",
        "data.min_size=0.19",
        "train.epochs=1",
        "train.batch_size=16",
        "model.channels=[4, 8]",
        "model.embed_dim=8",
        "model.features=16",
        "model.attention_features=8",
        "task.beam=2",
    ]
    cfg = load_config(REPO / "experiments" / "shapes_captioning.toml", overrides)
    path = tmp_path_factory.mktemp("caption") / "run"
    run_experiment(cfg, path)
    return path


def _viz(run_dir, *args: str) -> int:
    return main(["--no-compile-cache", "viz", str(run_dir), "attention", *args])


def test_viz_attention_of_a_captioning_run(caption_run, tmp_path, capsys):
    assert _viz(caption_run, "--out", str(tmp_path), "--index", "1") == 0
    out = capsys.readouterr().out
    png = tmp_path / "attention_captions_test1.png"
    assert f"wrote {png}" in out and "test1: " in out and "(reference 'a " in out
    image = matplotlib.image.imread(png)
    assert image.shape[0] > 100 and image[..., :3].std() > 0.05


def test_viz_attention_input_on_images_is_one_line_exit_2(caption_run, tmp_path, capsys):
    assert _viz(caption_run, "--input", "a red", "--out", str(tmp_path)) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "this run's sources are images" in err
    assert not list(tmp_path.iterdir())


@pytest.fixture(scope="module")
def dates_model(tmp_path_factory):
    """experiments/dates_attention.toml (a GRU encoder-decoder with attention), shrunk and
    freshly initialised (no training: the pictures only need some attention weights)."""
    from dlcore.experiment.build import build
    from dlcore.experiment.restore import template_state

    overrides = ["data.n_samples=64", "train.batch_size=8", "model.hidden=8", "model.embed_dim=8"]
    experiment = build(load_config(REPO / "experiments" / "dates_attention.toml", overrides))
    state = template_state(experiment)
    return Seq2seqRun(
        tmp_path_factory.mktemp("dates"),
        experiment.task,
        state.params,
        state.model_state,
        experiment.data,
    )


def test_attention_matrices_of_an_input_and_of_examples(dates_model, tmp_path):
    pictures, lines = text_pictures(dates_model, VizOptions(input="12 March 2019"))
    assert list(pictures) == ["attention_input"] and lines[0].startswith("input: '12 March 2019'")
    pictures |= text_pictures(dates_model, VizOptions(split="val", index=2))[0]
    assert list(pictures) == ["attention_input", "attention_val2"]
    for name, picture in pictures.items():
        image = _read_back(tmp_path, name, picture)
        assert image.shape[0] > 100 and image.std() > 0.05


def test_unknown_input_characters_and_no_attention_are_one_line(dates_model):
    with pytest.raises(ValueError) as err:
        text_pictures(dates_model, VizOptions(input="12 Mär 2019"))
    assert str(err.value) == "'12 Mär 2019' has characters outside the vocabulary: 'ä'"
    plain = RNNSeq2Seq(vocab_size=len(dates_model.task.vocab), embed_dim=4, hidden=4)
    src = dates_model.data.test["x"][:2]
    y_in = dates_model.data.test["y"][:2, :-1]
    params = plain.init(jax.random.PRNGKey(0), src, y_in, train=False)["params"]
    run = dataclasses.replace(
        dates_model, task=dataclasses.replace(dates_model.task, model=plain), params=params
    )
    with pytest.raises(ValueError, match=r"^the model has no attention to draw \("):
        text_pictures(run, VizOptions())
