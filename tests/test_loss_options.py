"""The convention options of the losses and of LRN against their formulas, and their TOML.

Each option leaves the default unchanged and, when set, gives the formula its docstring
states (written out here in NumPy); the config fields reach the loss (or layer) and are
refused, naming the field, where the selected loss does not take them.
"""

import jax.numpy as jnp
import numpy as np
import pytest

import dlcore.losses as L
from dlcore.config.loading import ConfigError, validate
from dlcore.experiment import build
from dlcore.layers import LocalResponseNorm, local_response_norm
from dlcore.layers.norm import LRNSection

RNG = np.random.default_rng(7)
B, K, E = 4, 5, 3
LOGITS = RNG.normal(size=(B, K)) * 2
LABELS = RNG.integers(0, K, size=B).astype(np.int32)
MULTI = RNG.normal(size=(B, E)) * 2  # several outputs per example
TARGETS01 = RNG.random((B, E))
PM1 = np.sign(RNG.normal(size=(B, E)))
TARGET = RNG.normal(size=(B, E))
EMB = [RNG.normal(size=(B, E)) for _ in range(3)]


def np_log_softmax(s):
    m = s.max(-1, keepdims=True)
    return s - m - np.log(np.exp(s - m).sum(-1, keepdims=True))


def close(got, want):
    np.testing.assert_allclose(np.asarray(got), want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "loss, args",
    [
        (L.binary_cross_entropy, (MULTI, TARGETS01)),
        (L.binary_hinge, (MULTI, PM1)),
        (L.huber_loss, (MULTI, TARGET)),
        (L.smooth_l1_loss, (MULTI, TARGET)),
    ],
    ids=["bce", "binary_hinge", "huber", "smooth_l1"],
)
def test_element_reduction_sum_is_default_and_mean_divides_by_elements(loss, args):
    args = tuple(map(jnp.asarray, args))
    default, total = loss(*args), loss(*args, element_reduction="sum")
    close(default, np.asarray(total))
    close(loss(*args, element_reduction="mean"), np.asarray(total) / E)
    with pytest.raises(ValueError, match="unknown element_reduction 'avg'; valid: mean, sum"):
        loss(*args, element_reduction="avg")


def test_multiclass_hinge_class_reduction_mean_divides_by_k():
    by_hand = np.array(
        [
            sum(max(0.0, LOGITS[i, j] - LOGITS[i, LABELS[i]] + 0.5) for j in range(K) if j != y)
            for i, y in enumerate(LABELS)
        ]
    )
    args = (jnp.asarray(LOGITS), jnp.asarray(LABELS))
    close(L.multiclass_hinge(*args, margin=0.5), by_hand)
    close(L.multiclass_hinge(*args, margin=0.5, class_reduction="mean"), by_hand / K)
    with pytest.raises(ValueError, match="unknown class_reduction"):
        L.multiclass_hinge(*args, class_reduction="max")


@pytest.mark.parametrize("eps", [0.0, 0.1, 0.5])
def test_label_smoothing_mixes_targets_with_uniform(eps):
    smoothed = (1 - eps) * np.eye(K)[LABELS] + eps / K
    want = -(smoothed * np_log_softmax(LOGITS)).sum(-1)
    close(L.softmax_cross_entropy(jnp.asarray(LOGITS), jnp.asarray(LABELS), eps), want)
    one_hot = jnp.asarray(np.eye(K)[LABELS])
    close(L.softmax_cross_entropy(jnp.asarray(LOGITS), one_hot, label_smoothing=eps), want)


def test_label_smoothing_range_is_checked():
    with pytest.raises(ValueError, match=r"label_smoothing must be in \[0, 1\); got 1.0"):
        L.softmax_cross_entropy(jnp.asarray(LOGITS), jnp.asarray(LABELS), label_smoothing=1.0)


def test_triplet_euclidean_adds_eps_and_takes_roots():
    a, p, n = EMB
    d = lambda x, y: np.sqrt(((x - y + 1e-3) ** 2).sum(-1))  # noqa: E731
    want = np.maximum(0, d(a, p) - d(a, n) + 0.7)
    got = L.triplet_loss(*map(jnp.asarray, EMB), 0.7, distance="euclidean", eps=1e-3)
    close(got, want)
    squared = np.maximum(0, ((a - p) ** 2).sum(-1) - ((a - n) ** 2).sum(-1) + 0.7)
    close(L.triplet_loss(*map(jnp.asarray, EMB), 0.7), squared)  # default: squared, no eps
    with pytest.raises(ValueError, match="unknown triplet distance 'l1'"):
        L.triplet_loss(*map(jnp.asarray, EMB), distance="l1")


def test_huber_both_branches_and_smooth_l1_is_huber_over_beta():
    r = np.array([[-2.0, -0.5, 0.0, 0.25, 0.5, 3.0]])
    delta = 0.5
    want = np.where(np.abs(r) <= delta, 0.5 * r**2, delta * (np.abs(r) - delta / 2)).sum(-1)
    zeros = jnp.zeros_like(jnp.asarray(r))
    close(L.huber_loss(jnp.asarray(r), zeros, delta=delta), want)
    close(L.smooth_l1_loss(jnp.asarray(r), zeros, beta=delta), want / delta)
    with pytest.raises(ValueError, match="huber delta must be > 0"):
        L.huber_loss(zeros, zeros, delta=0.0)


def test_cosine_embedding_takes_zero_or_minus_one_for_dissimilar():
    a, b = jnp.asarray(EMB[0]), jnp.asarray(EMB[1])
    cos = (EMB[0] * EMB[1]).sum(-1) / np.linalg.norm(EMB[0], axis=-1)
    cos = cos / np.linalg.norm(EMB[1], axis=-1)
    same = np.array([1.0, 0.0, 1.0, 0.0])
    want = np.where(same == 1, 1 - cos, np.maximum(0, cos - 0.1))
    close(L.cosine_embedding_loss(a, b, jnp.asarray(same), margin=0.1), want)
    close(L.cosine_embedding_loss(a, b, jnp.asarray(2 * same - 1), margin=0.1), want)


def np_lrn(a, n, k, alpha, beta):
    """The window c - floor(n/2) .. c + floor((n-1)/2), clipped to the channels."""
    out = np.empty_like(a)
    c_max = a.shape[-1] - 1
    for c in range(a.shape[-1]):
        lo, hi = max(0, c - n // 2), min(c_max, c + (n - 1) // 2)
        out[..., c] = a[..., c] / (k + alpha * np.sum(a[..., lo : hi + 1] ** 2, axis=-1)) ** beta
    return out


@pytest.mark.parametrize("size", [2, 3, 4])
@pytest.mark.parametrize("convention", ["absolute", "divided_by_size"])
def test_lrn_conventions_and_even_windows(size, convention):
    x = RNG.normal(size=(2, 3, 6)) * 3
    layer = LocalResponseNorm(size, 1.5, 0.1, 0.75, convention, "more_before")
    alpha = 0.1 / size if convention == "divided_by_size" else 0.1
    close(layer.apply({}, jnp.asarray(x)), np_lrn(x, size, 1.5, alpha, 0.75))


def test_lrn_even_sizes_are_refused_by_default_with_the_fix():
    with pytest.raises(ValueError, match="even_size='more_before' accepts it"):
        local_response_norm(jnp.ones((1, 4)), size=4)
    with pytest.raises(ValueError, match="unknown LRN alpha_convention"):
        local_response_norm(jnp.ones((1, 4)), alpha_convention="per_size")
    with pytest.raises(ValueError, match="size must be odd"):
        LRNSection(size=4)


# ---- TOML -------------------------------------------------------------------------------

DATA = {"name": "spirals", "classes": 3, "n_per_class": 10}
LINE = {"name": "line", "n_samples": 30}
MLP = {"name": "mlp", "widths": [4]}


def built_task(data, task, model=MLP):
    raw = {"data": data, "model": model, "task": task, "train": {"batch_size": 4}}
    return build(validate(raw, "t"), "t").task


@pytest.mark.parametrize(
    "data, task, keywords",
    [
        (DATA, {"name": "classification", "label_smoothing": 0.1}, {"label_smoothing": 0.1}),
        (
            DATA,
            {"name": "classification", "loss": "multiclass_hinge", "class_reduction": "mean"},
            {"class_reduction": "mean"},
        ),
        (
            LINE,
            {"name": "regression", "loss": "huber", "delta": 0.5, "element_reduction": "mean"},
            {"delta": 0.5, "element_reduction": "mean"},
        ),
        (LINE, {"name": "regression", "loss": "smooth_l1", "beta": 2.0}, {"beta": 2.0}),
        (LINE, {"name": "regression"}, {}),
    ],
    ids=["label_smoothing", "class_reduction", "huber", "smooth_l1", "default"],
)
def test_toml_options_reach_the_loss(data, task, keywords):
    assert built_task(data, task).loss.keywords == keywords


def test_toml_embedding_options_reach_the_triplet_loss():
    task = {"name": "embedding", "distance": "euclidean", "eps": 1e-3, "margin": 0.5}
    assert built_task(DATA, task).loss == (
        "triplet",
        0.5,
        (("distance", "euclidean"), ("eps", 1e-3)),
    )


def test_a_cosine_embedding_loss_takes_pytorchs_default_margin_of_zero():
    task = {"name": "embedding", "loss": "cosine_embedding", "margin": 0.0}
    assert built_task(DATA, task).loss == ("cosine_embedding", 0.0, ())
    with pytest.raises(ConfigError, match="task.margin"):
        built_task(DATA, {**task, "margin": -0.1})


@pytest.mark.parametrize(
    "data, task, message",
    [
        (
            DATA,
            {"name": "classification", "loss": "multiclass_hinge", "label_smoothing": 0.1},
            "t: task.label_smoothing: the multiclass_hinge loss takes no label_smoothing; "
            "it applies to softmax_cross_entropy",
        ),
        (
            LINE,
            {"name": "regression", "loss": "mse", "delta": 1.0},
            "t: task.delta: the mse loss takes no delta; it applies to huber",
        ),
        (
            DATA,
            {"name": "embedding", "loss": "contrastive", "distance": "euclidean"},
            "t: task.distance: the contrastive loss takes no distance; it applies to triplet",
        ),
        (
            LINE,
            {"name": "regression", "element_reduction": "avg"},
            "t: task.element_reduction: unknown element_reduction 'avg'; valid: mean, sum",
        ),
    ],
    ids=["smoothing_with_hinge", "delta_with_mse", "distance_with_contrastive", "bad_name"],
)
def test_toml_option_errors_name_the_field(data, task, message):
    with pytest.raises(ConfigError) as err:
        built_task(data, task)
    assert str(err.value) == message


def test_toml_lrn_table_configures_the_layer():
    lenet = {"name": "lenet5", "image_size": 12, "lrn": {"size": 4, "even_size": "more_before"}}
    data = {"name": "random", "n_samples": 20, "dim": 144, "classes": 3}
    raw = {"data": data, "model": lenet, "train": {"batch_size": 4}}
    model = build(validate(raw, "t"), "t").task.model
    assert model.lrn == LocalResponseNorm(size=4, even_size="more_before")
    with pytest.raises(ConfigError) as err:
        validate({**raw, "model": {**lenet, "lrn": {"size": 4}}}, "t")
    assert str(err.value).startswith("t: model.lrn: size must be odd") and "\n" not in str(
        err.value
    )
    for flag, layer in ((True, LocalResponseNorm()), (False, False)):
        built = build(validate({**raw, "model": {**lenet, "lrn": flag}}, "t"), "t")
        assert built.task.model.lrn == layer
