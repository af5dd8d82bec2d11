"""Multi-label classification: the sparsemax loss against 1_Y/|Y|, its metrics, its task."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads
from sklearn.metrics import accuracy_score, f1_score, hamming_loss

from dlcore.config.loading import ConfigError, load_config, validate
from dlcore.experiment import build
from dlcore.losses import multilabel_sparsemax_loss, sparsemax_loss
from dlcore.tasks.multilabel import f1_scores, multilabel_classification
from tests.helpers import REPO

RNG = np.random.default_rng(0)
B, L = 64, 6


def _label_sets(rng, b=B, n=L):
    y = (rng.random((b, n)) < 0.35).astype(np.int32)
    y[np.arange(b), rng.integers(0, n, b)] = 1  # every set non-empty
    return y


def _sparsemax_np(z):
    """Sort-based sparsemax and its threshold, row by row, in float64."""
    p, tau = np.zeros_like(z), np.zeros(len(z))
    for i, row in enumerate(z):
        s = np.sort(row)[::-1]
        k = np.arange(1, len(row) + 1)
        support = 1 + k * s > np.cumsum(s)
        kz = k[support][-1]
        tau[i] = (np.sum(s[:kz]) - 1) / kz
        p[i] = np.maximum(row - tau[i], 0)
    return p, tau


def _loss_np(z, y):
    """Martins & Astudillo's sparsemax loss with target q = 1_Y/|Y|, written out."""
    q = y / y.sum(axis=1, keepdims=True)
    p, tau = _sparsemax_np(z)
    support = p > 0
    gap = np.where(support, z**2 - tau[:, None] ** 2, 0.0).sum(axis=1)
    return -(q * z).sum(axis=1) + 0.5 * gap + 0.5 * (q**2).sum(axis=1), p - q


def test_the_loss_and_its_gradient_match_the_formula_in_float64():
    z = RNG.normal(scale=2.0, size=(B, L))
    y = _label_sets(RNG)
    expected, grad = _loss_np(z, y)
    with jax.enable_x64(True):
        z64, y64 = jnp.asarray(z), jnp.asarray(y)

        @jax.jit
        def loss_and_grad(z, y):
            return multilabel_sparsemax_loss(z, y), jax.grad(
                lambda z: jnp.sum(multilabel_sparsemax_loss(z, y))
            )(z)

        loss, g = loss_and_grad(z64, y64)
        np.testing.assert_allclose(loss, expected, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(g, grad, atol=1e-12)  # sparsemax(z) - q
        few, y_few = z64[:4], y64[:4]
        check_grads(jax.jit(lambda z: multilabel_sparsemax_loss(z, y_few)), (few,), order=1)


def test_the_loss_is_zero_exactly_when_sparsemax_equals_q():
    y = _label_sets(RNG)
    with jax.enable_x64(True):
        loss = jax.jit(multilabel_sparsemax_loss)
        # scores 3 on Y and 0 elsewhere: sparsemax puts 1/|Y| on Y and nothing elsewhere
        exact = loss(jnp.asarray(3.0 * y), jnp.asarray(y))
        np.testing.assert_allclose(exact, 0.0, atol=1e-12)
        # too small a gap leaks probability off Y; unequal scores on Y skew it: both > 0
        leaky = np.asarray(loss(jnp.asarray(0.1 * y), jnp.asarray(y)))
        skewed = np.asarray(loss(jnp.asarray(3.0 * y * (1 + 0.2 * np.arange(L))), jnp.asarray(y)))
    partial = y.sum(axis=1) < L  # for Y = every label, q is uniform and so is sparsemax(z)
    assert np.all(leaky[partial] > 1e-4) and np.allclose(leaky[~partial], 0.0)
    several = y.sum(axis=1) > 1  # a single label's q is one-hot: any big enough gap fits
    assert np.all(skewed[several] > 1e-4) and np.allclose(skewed[~several], 0.0)


def test_singleton_sets_give_the_single_label_sparsemax_loss():
    z = jnp.asarray(RNG.normal(size=(8, L)), jnp.float32)
    labels = jnp.asarray(RNG.integers(0, L, 8))
    both = jax.jit(
        lambda z, labels: (
            multilabel_sparsemax_loss(z, jax.nn.one_hot(labels, L, dtype=jnp.int32)),
            sparsemax_loss(z, labels),
        )
    )
    np.testing.assert_allclose(*both(z, labels), rtol=1e-6)


@pytest.mark.parametrize(
    "loss, threshold, default",
    [("sparsemax", None, 0.0), ("sigmoid", None, 0.5), ("sparsemax", 0.1, 0), ("sigmoid", 0.3, 0)],
)
def test_the_rules_and_metrics_equal_numpy_and_scikit_learn(loss, threshold, default):
    y = _label_sets(RNG)
    y[:, -1] = 0  # a label nobody has...
    logits = RNG.normal(scale=1.5, size=(B, L)).astype(np.float32)
    logits[:, -1] = -50.0  # ...and nobody predicts: macro F1 counts it as 0 (zero_division=0)
    mask = (RNG.random(B) < 0.8).astype(np.float32)
    task = multilabel_classification(None, None, loss, threshold=threshold)
    batch = {"x": None, "y": jnp.asarray(y), "mask": jnp.asarray(mask)}
    sums = jax.jit(task._metric_sums)(jnp.asarray(logits), batch, jnp.zeros(B))
    got = task.summarize(jax.tree.map(np.asarray, sums), training_window=False)
    z = logits.astype(np.float64)
    probs = _sparsemax_np(z)[0] if loss == "sparsemax" else 1 / (1 + np.exp(-z))
    cut = default if threshold is None else threshold
    np.testing.assert_array_equal(task.predict(jnp.asarray(logits)), probs > cut)
    pred, true = (probs > cut)[mask > 0].astype(np.int32), y[mask > 0]
    assert 1 < pred.sum(axis=1).mean() < L - 1  # neither rule is trivial on these scores
    for average in ("micro", "macro"):
        expected = f1_score(true, pred, average=average, zero_division=0)
        np.testing.assert_allclose(got[f"{average}_f1"], expected, rtol=1e-6)
    np.testing.assert_allclose(got["hamming_loss"], hamming_loss(true, pred), rtol=1e-6)
    np.testing.assert_allclose(got["exact_match"], accuracy_score(true, pred), rtol=1e-6)
    np.testing.assert_allclose(got["set_size"], pred.sum(axis=1).mean(), rtol=1e-6)


def test_f1_of_no_labels_at_all_is_zero():
    assert f1_scores(np.zeros(3), np.zeros(3), np.zeros(3)) == {"micro_f1": 0.0, "macro_f1": 0.0}


def test_the_shipped_experiment_trains_above_predicting_every_label():
    cfg = load_config(
        REPO / "experiments" / "multilabel_sparsemax.toml",
        ["data.n_samples=600", "model.widths=[16]", "optimizer.learning_rate=1e-2"],
    )
    built = build(cfg)
    task, data = built.task, built.data
    test = {"x": jnp.asarray(data.test.x), "y": jnp.asarray(data.test.y)}
    evaluate, step = jax.jit(task.eval_step), jax.jit(task.train_step)
    state = jax.jit(task.init)(jax.random.PRNGKey(0), test)
    before = task.summarize(evaluate(state, test), training_window=False)
    x, y = (
        jnp.asarray(a).reshape(-1, 30, *a.shape[1:])
        for a in (data.train.x[:420], data.train.y[:420])
    )
    for _ in range(10):  # epochs of 14 batches of 30
        for i in range(len(x)):
            state, _ = step(state, {"x": x[i], "y": y[i]})
    after = task.summarize(evaluate(state, test), training_window=False)
    assert after["loss"] < 0.6 * before["loss"]
    # predicting every label: precision = label density, recall 1
    density = data.test.y.mean()
    assert after["micro_f1"] > 2 * density / (1 + density) + 0.05
    assert after["set_size"] < L


def test_single_label_data_is_refused_naming_the_task():
    raw = {"data": {"name": "digits"}, "model": {"name": "mlp"}, "task": {"name": "multilabel"}}
    with pytest.raises(
        ConfigError,
        match=r"t: task.name: multilabel needs y as 0/1 indicators, one per label \[L\]; "
        r"digits has y labels \[\]",
    ):
        build(validate(raw, "t"), "t")
