"""Every name a config can select builds and trains: one table over all registries.

A registry entry missing from these tables fails ``test_tables_cover_every_registry``, so a
new activation, loss, model or optimizer cannot ship without being exercised here.
"""

import jax
import numpy as np
import pytest

from dlcore.activations import ACTIVATIONS
from dlcore.config.loading import validate
from dlcore.data.registry import DATASETS
from dlcore.experiment import build
from dlcore.initializers import INITIALIZERS
from dlcore.models.mlp import BIAS_ONLY_INITIALIZERS, MODULE_ACTIVATIONS
from dlcore.models.registry import MODELS
from dlcore.optim import OPTIMIZERS
from dlcore.tasks.registry import TASKS

TINY_DATA = {
    "xor": {"name": "xor", "n_samples": 60},
    "spirals": {"name": "spirals", "classes": 3, "n_per_class": 20},
    "blobs": {"name": "blobs", "n_samples": 60},
    "digits": {"name": "digits"},
    "random": {"name": "random", "n_samples": 60, "dim": 5, "classes": 3},
    "multilabel": {"name": "multilabel", "n_samples": 60, "n_features": 5, "n_classes": 3},
    "line": {"name": "line", "n_samples": 60},
    "function_1d": {"name": "function_1d", "n_train": 40, "n_test": 16},
    "parity": {"name": "parity", "n_samples": 60, "max_len": 6},
    "dyck_depth": {"name": "dyck_depth", "n_samples": 60, "max_len": 8, "max_depth": 3},
    "number_words": {"name": "number_words"},
    "adding": {"name": "adding", "n_samples": 60, "length": 10},
    "stdlib_chars": {"name": "stdlib_chars", "seq_len": 8, "eval_len": 64, "max_train_files": 2},
    "stdlib_lines": {
        "name": "stdlib_lines",
        "max_files": 1,
        "line_len": 12,
        "train_per_class": 8,
        "eval_per_class": 4,
    },
    "ring": {"name": "ring", "n_samples": 80},
    "shapes": {"name": "shapes", "n_samples": 60, "image_size": 12, "min_size": 0.25},
    "stdlib_words": {"name": "stdlib_words", "max_files": 2, "min_count": 2, "context": 2},
    "reversal": {"name": "reversal", "n_samples": 60, "max_len": 6},
    "sorting": {"name": "sorting", "n_samples": 60, "max_len": 6},
    "dates": {"name": "dates", "n_samples": 60},
    "addition": {"name": "addition", "n_samples": 60, "max_digits": 2},
}
# Token and sequence data sets take no input preprocessing.
SEQUENCE_DATA = (
    "parity",
    "dyck_depth",
    "number_words",
    "adding",
    "stdlib_chars",
    "stdlib_lines",
    "stdlib_words",
    "reversal",
    "sorting",
    "dates",
    "addition",
)
RNN = {"name": "rnn", "features": 4, "embed_dim": 4}
MLP = {"name": "mlp", "widths": [4]}
DIGIT_IMAGES = {"name": "digits", "layout": "image"}  # 8x8x1
# (label, data, model, task) covering every model and task entry
PROGRAMS = {
    "mlp/classification": ("xor", MLP, {"name": "classification"}),
    "linear/multiclass_hinge+l2": (
        "spirals",
        {"name": "linear"},
        {
            "name": "classification",
            "loss": "multiclass_hinge",
            "penalty": "l2",
            "penalty_strength": 1e-3,
        },
    ),
    "mlp/sparsemax_loss+l1": (
        "spirals",
        MLP,
        {
            "name": "classification",
            "loss": "sparsemax_loss",
            "penalty": "l1",
            "penalty_strength": 1e-3,
        },
    ),
    "linear/binary_cross_entropy+elastic_net": (
        "blobs",
        {"name": "linear"},
        {"name": "binary_classification", "penalty": "elastic_net", "penalty_strength": 1e-3},
    ),
    "linear/binary_hinge": (
        "blobs",
        {"name": "linear"},
        {"name": "binary_classification", "loss": "binary_hinge"},
    ),
    "mlp/regression_mse": ("line", MLP, {"name": "regression", "loss": "mse"}),
    "mlp/regression_mae": ("line", MLP, {"name": "regression", "loss": "mae"}),
    "linear/regression": ("line", {"name": "linear"}, {"name": "regression"}),
    "mlp/regression_huber": (
        "line",
        MLP,
        {"name": "regression", "loss": "huber", "delta": 0.5, "element_reduction": "mean"},
    ),
    "mlp/regression_smooth_l1": ("line", MLP, {"name": "regression", "loss": "smooth_l1"}),
    "mlp/classification_label_smoothing": (
        "spirals",
        MLP,
        {"name": "classification", "label_smoothing": 0.1},
    ),
    "multihead_mlp/multitask": (
        {"name": "digits", "targets": ["digit", "parity"]},
        {"name": "multihead_mlp", "trunk_widths": [4]},
        {"name": "multitask"},
    ),
    "multitower_mlp/multitask_soft_sharing": (
        {"name": "digits", "targets": ["digit", "parity"]},
        {"name": "multitower_mlp", "tower_widths": [4]},
        {"name": "multitask", "sharing_strength": 0.1},
    ),
    "mlp/multilabel_sparsemax": ("multilabel", MLP, {"name": "multilabel"}),
    "linear/multilabel_sigmoid": (
        "multilabel",
        {"name": "linear"},
        {"name": "multilabel", "loss": "sigmoid"},
    ),
    "perceptron": ("blobs", None, {"name": "perceptron"}),
    "universal_approximation": (
        "function_1d",
        None,
        {"name": "universal_approximation", "widths": [1, 3]},
    ),
    "word2vec": (
        "stdlib_words",
        None,
        {"name": "word2vec", "dim": 4, "window": 2, "negatives": 2, "subsample": 0.0},
    ),
    "mlp/embedding_contrastive": ("spirals", MLP, {"name": "embedding", "loss": "contrastive"}),
    "mlp/embedding_triplet": ("spirals", MLP, {"name": "embedding", "loss": "triplet"}),
    "mlp/embedding_cosine": ("spirals", MLP, {"name": "embedding", "loss": "cosine_embedding"}),
    "mlp/embedding_triplet_euclidean": (
        "spirals",
        MLP,
        {"name": "embedding", "loss": "triplet", "distance": "euclidean"},
    ),
    "lenet5/classification+lrn": (
        {"name": "random", "n_samples": 40, "dim": 784, "classes": 3},
        {"name": "lenet5", "lrn": {"size": 4, "even_size": "more_before", "k": 1.0}},
        {"name": "classification"},
    ),
    "alexnet/classification": (
        {**TINY_DATA["shapes"], "image_size": 16},
        {"name": "alexnet", "widths": [2, 2, 2, 2, 2], "dense": [4]},
        {"name": "classification", "augment": {"crop_padding": 2, "hflip": True}},
    ),
    "vgg/classification+batch_norm": (
        DIGIT_IMAGES,
        {"name": "vgg", "stages": [[2], [3]], "dense": [4], "batch_norm": True},
        {"name": "classification"},
    ),
    "googlenet/classification": (
        DIGIT_IMAGES,
        {
            "name": "googlenet",
            "stages": [[[1, 1, 2, 1, 1, 1]], [[1, 1, 1, 1, 1, 1]]],
            "stem_width": 2,
        },
        {"name": "classification"},
    ),
    "resnet/classification": (
        DIGIT_IMAGES,
        {"name": "resnet", "widths": [2, 4], "blocks_per_stage": [1, 1], "stem_width": 2},
        {"name": "classification"},
    ),
    "resnet/plain_bottleneck": (
        DIGIT_IMAGES,
        {"name": "resnet", "widths": [2], "depth": 5, "block": "bottleneck", "plain": True},
        {"name": "classification"},
    ),
    "unet/segmentation": (
        {**TINY_DATA["shapes"], "image_size": 12},
        {"name": "unet", "widths": [2, 4]},
        {"name": "segmentation", "augment": {"hflip": True}},
    ),
    "rnn/classification": ("parity", {**RNN, "input": "one_hot"}, {"name": "classification"}),
    "rnn/regression": ("adding", {**RNN, "input": "real"}, {"name": "regression"}),
    "rnn/tagging": ("dyck_depth", {**RNN, "readout": "all"}, {"name": "tagging"}),
    "rnn/tagging_real": (
        "number_words",
        {**RNN, "input": "real", "readout": "all", "cell": "gru"},
        {"name": "tagging"},
    ),
    "rnn/truncated_bptt": ("stdlib_chars", {**RNN, "readout": "all"}, {"name": "truncated_bptt"}),
    "transformer_lm/tagging": (
        "stdlib_chars",
        {"name": "transformer_lm", "d_model": 4, "num_heads": 2, "d_ff": 4, "num_layers": 1},
        {"name": "tagging"},
    ),
    "rnn_seq2seq/seq2seq": (
        "addition",
        {"name": "rnn_seq2seq", "embed_dim": 4, "hidden": 4, "attention": "additive"},
        {"name": "seq2seq", "label_smoothing": 0.1},
    ),
    "transformer_seq2seq/seq2seq": (
        {"name": "reversal", "n_samples": 60, "max_len": 6},
        {
            "name": "transformer_seq2seq",
            "d_model": 4,
            "num_heads": 2,
            "d_ff": 4,
            "encoder_layers": 1,
            "decoder_layers": 1,
        },
        {"name": "seq2seq"},
    ),
    "show_attend_tell/seq2seq": (
        {
            "name": "shapes",
            "n_samples": 60,
            "image_size": 16,
            "mode": "scene",
            "min_size": 0.19,
            "max_size": 0.2,
        },
        {"name": "show_attend_tell", "channels": [2], "embed_dim": 4, "features": 4},
        {"name": "seq2seq", "target": "caption"},
    ),
    "rnn/classification_lines": ("stdlib_lines", RNN, {"name": "classification"}),
    "text_cnn/classification": (
        "stdlib_lines",
        {"name": "text_cnn", "embed_dim": 4, "widths": [2, 3], "features": 4},
        {"name": "classification"},
    ),
    "text_cnn/tdnn": (
        "stdlib_lines",
        {
            "name": "text_cnn",
            "embed_dim": 4,
            "widths": [3],
            "features": 4,
            "layers": [{"kernel": 3, "dilation": 2, "features": 4}],
        },
        {"name": "classification"},
    ),
    # tasks with several models name them: {"models": {role: section}}
    "mlp+linear/autoencoder": (
        "digits",
        {"models": {"encoder": MLP, "decoder": {"name": "linear"}}},
        {"name": "autoencoder", "bottleneck": 3},
    ),
    "mlp/gan": (
        "ring",
        {"models": {"generator": MLP, "discriminator": MLP}},
        {"name": "gan"},
    ),
    "dcgan/gan": (
        {**DIGIT_IMAGES, "preprocess": "unit"},
        {
            "models": {
                "generator": {"name": "dcgan_generator", "widths": [4, 2]},
                "discriminator": {"name": "dcgan_discriminator", "widths": [2, 4]},
            }
        },
        {"name": "gan", "latent_dim": 3},
    ),
    "mlp/vae": (
        {"name": "digits", "preprocess": "none", "binarize": True},
        {"models": {"encoder": MLP, "decoder": MLP}},
        {"name": "vae", "latent_dim": 2, "kl_warmup_steps": 5},
    ),
    "dcgan/vae_gaussian": (
        {**DIGIT_IMAGES, "preprocess": "unit"},
        {
            "models": {
                "encoder": {"name": "dcgan_discriminator", "widths": [2], "batch_norm": False},
                "decoder": {"name": "dcgan_generator", "widths": [4, 2], "output": "linear"},
            }
        },
        {"name": "vae", "latent_dim": 3, "likelihood": "gaussian"},
    ),
    "stacked_autoencoder": (
        "digits",
        None,
        {
            "name": "stacked_autoencoder",
            "widths": [4, 3],
            "steps_per_layer": 1,
            "corruption": "masking",
            "corruption_level": 0.2,
        },
    ),
    "rbm": (
        {"name": "digits", "preprocess": "none", "binarize": True},
        None,
        {"name": "rbm", "hidden": 4, "method": "pcd", "k": 2, "chains": 5},
    ),
    "dbn": (
        "digits",  # standardized: Gaussian visible units at the bottom
        None,
        {"name": "dbn", "widths": [4, 3], "steps_per_layer": 1, "visible": "gaussian"},
    ),
    "pixelcnn/pixelcnn_gated": (
        {**DIGIT_IMAGES, "preprocess": "none", "binarize": True},
        {
            "name": "pixelcnn",
            "features": 2,
            "blocks": 1,
            "first_kernel": 3,
            "head_width": 2,
            "gated": True,
        },
        {"name": "pixelcnn"},
    ),
}

MLP_VARIANTS = {
    **{f"activation={a}": {"activation": a} for a in (*ACTIVATIONS, *MODULE_ACTIVATIONS)},
    **{
        f"kernel_init={i}": {"kernel_init": i}
        for i in INITIALIZERS
        if i not in BIAS_ONLY_INITIALIZERS
    },
    **{f"bias_init={i}": {"bias_init": i} for i in BIAS_ONLY_INITIALIZERS},
    "norm=batch": {"norm": "batch"},
    "norm=layer": {"norm": "layer"},
    "dropout=inverted": {"dropout": 0.3},
    "dropout=classic": {"dropout": 0.3, "dropout_mode": "classic"},
    "dropconnect": {"dropconnect": 0.3},
    "weight_noise": {"weight_noise": 0.05},
    "bias_init=ones": {"bias_init": "ones"},
}


def one_step(raw):
    cfg = validate(raw, "t")
    built = build(cfg, "t")
    data, task = built.data, built.task
    batch = data.train.rows(slice(0, 8))
    state = task.init(jax.random.PRNGKey(0), batch)
    state, sums = jax.jit(task.train_step)(state, batch)
    metrics = jax.jit(task.eval_step)(state, {**batch, "mask": np.ones(8, np.float32)})
    return state, sums, metrics


def assert_finite(tree):
    for leaf in jax.tree.leaves(tree):
        assert np.all(np.isfinite(np.asarray(leaf)))


@pytest.mark.parametrize("label", sorted(PROGRAMS))
def test_every_model_and_task_trains_one_step(label):
    data, model, task = PROGRAMS[label]
    raw = {
        "data": TINY_DATA[data] if isinstance(data, str) else data,
        "task": task,
        "train": {"batch_size": 8},
    }
    if model is not None:
        raw.update(model if "models" in model else {"model": model})
    state, sums, metrics = one_step(raw)
    # per-example tasks count the 8 examples; per-step tasks count their valid tokens
    assert int(state.step) == 1 and float(sums["count"]) >= 8

    assert_finite((state.params, sums, metrics))


@pytest.mark.parametrize("label", sorted(MLP_VARIANTS))
def test_every_mlp_option_trains_one_step(label):
    state, sums, _ = one_step(
        {
            "data": TINY_DATA["xor"],
            "model": {**MLP, **MLP_VARIANTS[label]},
            "train": {"batch_size": 8},
        }
    )
    assert_finite((state.params, sums))


@pytest.mark.parametrize("optimizer", sorted(OPTIMIZERS))
def test_every_optimizer_trains_one_step(optimizer):
    state, sums, _ = one_step(
        {
            "data": TINY_DATA["xor"],
            "model": MLP,
            "optimizer": {"name": optimizer},
            "train": {"batch_size": 8},
        }
    )
    assert_finite((state.params, sums))


# The task each data set is built with, where it is not classification.
DATA_TASKS = {"line": "regression", "multilabel": "multilabel", "function_1d": "regression"}


@pytest.mark.parametrize("name", sorted(set(DATASETS) - set(SEQUENCE_DATA) - {"ring"}))
def test_every_data_set_builds_with_its_preprocessing(name):
    task = {"name": DATA_TASKS.get(name, "classification")}
    for preprocess in ("none", "standardize"):
        raw = {"data": {**TINY_DATA[name], "preprocess": preprocess}, "model": MLP, "task": task}
        data = build(validate(raw, "t"), "t").data
        if preprocess == "standardize":
            varying = data.train.x.std(axis=0) > 0
            np.testing.assert_allclose(data.train.x.mean(axis=0), 0.0, atol=1e-4)
            np.testing.assert_allclose(data.train.x.std(axis=0)[varying], 1.0, rtol=1e-3)


def test_tables_cover_every_registry():
    programs = set()
    for _, model, task in PROGRAMS.values():
        programs.add(task["name"])
        for section in (model or {}).get("models", {"model": model}).values():
            programs.add(section["name"] if section else "perceptron")
    assert set(TASKS) <= programs and set(MODELS) <= programs
    covered = {v.get("activation") for v in MLP_VARIANTS.values()}
    assert set(ACTIVATIONS) | set(MODULE_ACTIVATIONS) <= covered
    inits = {v.get("kernel_init") for v in MLP_VARIANTS.values()}
    inits |= {v.get("bias_init") for v in MLP_VARIANTS.values()}
    assert set(INITIALIZERS) <= inits
    assert set(DATASETS) == set(TINY_DATA)


def test_a_bias_initializer_as_kernel_init_is_a_config_error():
    from dlcore.config.loading import ConfigError

    with pytest.raises(
        ConfigError,
        match="t: model.kernel_init: forget_gate_bias initializes "
        "bias vectors; use it as bias_init",
    ):
        validate(
            {"data": TINY_DATA["xor"], "model": {**MLP, "kernel_init": "forget_gate_bias"}}, "t"
        )
