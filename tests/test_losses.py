"""Losses against their textbook formulas in NumPy, stability at 1e4, gradient checks."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import dlcore.losses as L
from dlcore.gradcheck import gradcheck
from dlcore.models import MultiHeadMLP
from dlcore.sparsemax import sparsemax

B, K, D = 6, 5, 3
RNG = np.random.default_rng(0)
LOGITS = RNG.normal(size=(B, K)).astype(np.float32) * 2
LABELS = RNG.integers(0, K, size=B).astype(np.int32)
PRED = RNG.normal(size=(B, D)).astype(np.float32)
TARGET = RNG.normal(size=(B, D)).astype(np.float32)
BIN_LOGITS = RNG.normal(size=(B,)).astype(np.float32) * 2
BIN01 = RNG.integers(0, 2, size=B).astype(np.float32)
PM1 = 2 * BIN01 - 1
EMB = [RNG.normal(size=(B, D)).astype(np.float32) for _ in range(3)]
SAME = np.array([1, 0, 1, 0, 0, 1], np.float32)


def np_log_softmax(s):
    m = s.max(-1, keepdims=True)
    return s - m - np.log(np.exp(s - m).sum(-1, keepdims=True))


def np_sparsemax_tau(z):
    zs = np.sort(z)[::-1]
    k = np.arange(1, len(z) + 1)
    support = 1 + k * zs > np.cumsum(zs)
    kz = k[support].max()
    return (zs[:kz].sum() - 1) / kz


def np_sparsemax_loss(z, y):
    tau = np_sparsemax_tau(z)
    s = z > tau
    return -z[y] + 0.5 * np.sum(z[s] ** 2 - tau**2) + 0.5


def np_contrastive(a, b, same, m=1.0):
    d = np.linalg.norm(a - b, axis=-1)
    return 0.5 * same * d**2 + 0.5 * (1 - same) * np.maximum(0, m - d) ** 2


def np_triplet(a, p, n, m=0.2):
    return np.maximum(0, ((a - p) ** 2).sum(-1) - ((a - n) ** 2).sum(-1) + m)


def np_huber(r, delta=1.0):
    r = np.abs(r)
    return np.where(r <= delta, 0.5 * r**2, delta * (r - 0.5 * delta)).sum(-1)


def np_cosine_embedding(a, b, same, m=0.0):
    cos = (a * b).sum(-1) / np.linalg.norm(a, axis=-1) / np.linalg.norm(b, axis=-1)
    return np.where(same == 1, 1 - cos, np.maximum(0, cos - m))


# name -> (args, NumPy reference per example)
CASES = {
    "softmax_cross_entropy": (
        (LOGITS, LABELS),
        -np_log_softmax(LOGITS.astype(np.float64))[np.arange(B), LABELS],
    ),
    "binary_cross_entropy": (
        (BIN_LOGITS, BIN01),
        -(
            BIN01 * np.log(1 / (1 + np.exp(-BIN_LOGITS.astype(np.float64))))
            + (1 - BIN01) * np.log(1 - 1 / (1 + np.exp(-BIN_LOGITS.astype(np.float64))))
        ),
    ),
    "multiclass_hinge": (
        (LOGITS, LABELS),
        np.array(
            [
                sum(
                    max(0.0, LOGITS[i, j] - LOGITS[i, LABELS[i]] + 1)
                    for j in range(K)
                    if j != LABELS[i]
                )
                for i in range(B)
            ]
        ),
    ),
    "binary_hinge": ((BIN_LOGITS, PM1), np.maximum(0, 1 - PM1 * BIN_LOGITS)),
    "squared_error": ((PRED, TARGET), 0.5 * ((PRED - TARGET) ** 2).sum(-1)),
    "mse": ((PRED, TARGET), ((TARGET - PRED) ** 2).mean(-1)),
    "mae": ((PRED, TARGET), np.abs(TARGET - PRED).mean(-1)),
    "mean_bias_error": ((PRED, TARGET), (TARGET - PRED).mean(-1)),
    "sparsemax_loss": (
        (LOGITS, LABELS),
        np.array([np_sparsemax_loss(LOGITS[i].astype(np.float64), LABELS[i]) for i in range(B)]),
    ),
    "contrastive": ((EMB[0], EMB[1], SAME), np_contrastive(EMB[0], EMB[1], SAME)),
    "triplet": ((EMB[0], EMB[1], EMB[2]), np_triplet(EMB[0], EMB[1], EMB[2])),
    "huber": ((2 * PRED, TARGET), np_huber(2 * PRED - TARGET)),
    "smooth_l1": ((2 * PRED, TARGET), np_huber(2 * PRED - TARGET)),  # beta = 1: the same
    "cosine_embedding": ((EMB[0], EMB[1], SAME), np_cosine_embedding(EMB[0], EMB[1], SAME)),
}


def test_every_registered_loss_has_a_case():
    assert set(CASES) == set(L.LOSSES)


def test_unknown_loss_lists_valid_names():
    with pytest.raises(ValueError, match=r"unknown loss 'hinge'; valid: .*multiclass_hinge"):
        L.get_loss("hinge")


@pytest.mark.parametrize("name", sorted(CASES))
def test_matches_textbook_formula(name):
    args, expected = CASES[name]
    got = jax.jit(L.LOSSES[name])(*map(jnp.asarray, args))
    assert got.shape == (B,)
    np.testing.assert_allclose(got, expected, rtol=2e-5, atol=1e-6)


# how many leading arguments of each loss are differentiated (the rest are labels)
N_DIFFERENTIABLE = {"contrastive": 2, "cosine_embedding": 2, "triplet": 3} | {
    name: 2 for name in ("squared_error", "mse", "mae", "mean_bias_error", "huber", "smooth_l1")
}


def _differentiable_args(name):
    args, _ = CASES[name]
    n = N_DIFFERENTIABLE.get(name, 1)
    return args[:n], args[n:]


def _weighted_total(diff_by_name, cotangent):
    """sum over losses of <cotangent, per-example loss>: one scalar for one check of all."""
    total = 0.0
    for name, diff in diff_by_name.items():
        fixed = [jnp.asarray(a) for a in _differentiable_args(name)[1]]
        total = total + jnp.sum(cotangent * L.LOSSES[name](*diff, *fixed))
    return total


def test_gradcheck_every_loss():
    # one leaf per loss and argument ("['mae'][0]"): a failure names the loss. The random
    # cotangent checks the whole Jacobian, not only the gradient of the batch sum.
    diff_by_name = {name: tuple(_differentiable_args(name)[0]) for name in CASES}
    result = gradcheck(_weighted_total, diff_by_name, jnp.asarray(RNG.normal(size=B)))
    assert {path.split("]")[0] + "]" for path in result.rel_err} == {f"['{n}']" for n in CASES}
    result.assert_ok(1e-6)


def test_finite_at_magnitude_1e4():
    big = {
        name: tuple(a / np.abs(a).max() * 1e4 for a in _differentiable_args(name)[0])
        for name in CASES
    }
    for name, diff in big.items():
        fixed = [jnp.asarray(a) for a in _differentiable_args(name)[1]]
        assert np.all(np.isfinite(jax.jit(L.LOSSES[name])(*diff, *fixed))), name
    grads = jax.jit(jax.grad(_weighted_total))(big, jnp.ones(B))
    for name, g in grads.items():
        assert all(np.all(np.isfinite(gi)) for gi in g), name


def test_cross_entropy_exact_at_1e4():
    logits = jnp.array([[1e4, -1e4, 0.0], [1e4, 1e4, -1e4]])
    np.testing.assert_allclose(
        jax.jit(L.softmax_cross_entropy)(logits, jnp.array([1, 0])), [2e4, np.log(2)], rtol=1e-6
    )
    np.testing.assert_allclose(
        jax.jit(L.binary_cross_entropy)(jnp.array([1e4, -1e4, 1e4]), jnp.array([0.0, 0.0, 1.0])),
        [1e4, 0.0, 0.0],
    )


def test_cross_entropy_integer_and_one_hot_labels_agree():
    one_hot = np.eye(K, dtype=np.float32)[LABELS]
    for loss in (jax.jit(L.softmax_cross_entropy), jax.jit(L.sparsemax_loss)):
        np.testing.assert_allclose(loss(LOGITS, one_hot), loss(LOGITS, LABELS), rtol=1e-6)


def test_cross_entropy_rejects_float_class_ids():
    with pytest.raises(ValueError, match=r"labels must be integer class ids of shape \(6,\)"):
        L.softmax_cross_entropy(jnp.asarray(LOGITS), jnp.zeros(B))


def test_regression_losses_reject_broadcasting_shapes():
    with pytest.raises(ValueError, match=r"predictions and targets must have the same shape"):
        L.squared_error(jnp.ones((B, 1)), jnp.ones((B,)))


def test_sparsemax_loss_properties():
    z = jnp.asarray(LOGITS)
    loss, grad = jax.jit(
        jax.vmap(jax.value_and_grad(lambda z, y: L.sparsemax_loss(z[None], y[None])[0]))
    )(z, LABELS)
    assert np.all(loss >= 0)
    np.testing.assert_allclose(grad, sparsemax(z) - np.eye(K)[LABELS], atol=1e-6)
    # zero exactly when sparsemax(z) is the one-hot target (a gap of >= 1 to the rest)
    confident = jnp.array([[2.0, 0.5, -1.0], [2.0, 1.5, -1.0]])
    np.testing.assert_array_equal(
        jax.jit(L.sparsemax_loss)(confident, jnp.array([0, 0])) > 0, [False, True]
    )


def test_zero_one_loss():
    expected = (LOGITS.argmax(-1) != LABELS).astype(np.float32)
    np.testing.assert_array_equal(jax.jit(L.zero_one_loss)(LOGITS, LABELS), expected)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_reduce_loss_with_weights_and_mask(reduction):
    per_example = jnp.array([1.0, 2.0, 3.0, 100.0])
    weights = jnp.array([1.0, 0.5, 2.0, 0.0])  # the last example is padding
    expected = {
        "mean": (1 + 1 + 6) / 3.5,
        "sum": 8.0,
        "none": np.array([1.0, 1.0, 6.0, 0.0]),
    }[reduction]
    reduce = jax.jit(L.reduce_loss, static_argnames="reduction")
    np.testing.assert_allclose(reduce(per_example, weights, reduction), expected)


def test_reduce_loss_errors():
    with pytest.raises(ValueError, match=r"weights must have shape \(3,\)"):
        L.reduce_loss(jnp.ones(3), jnp.ones(4))
    with pytest.raises(ValueError, match="reduction must be 'mean', 'sum' or 'none'; got 'avg'"):
        L.reduce_loss(jnp.ones(3), reduction="avg")


def test_contrastive_gradient_finite_for_identical_pair():
    a = jnp.ones((2, D))
    grads = jax.jit(
        jax.grad(lambda a, b: jnp.sum(L.contrastive_loss(a, b, jnp.array([0.0, 1.0]))))
    )(a, a)
    assert np.all(np.isfinite(grads))


@pytest.fixture(scope="module")
def multihead():
    model = MultiHeadMLP(trunk_widths=(8,), head_features={"cls": K, "reg": D}, activation="tanh")
    x = jnp.asarray(RNG.normal(size=(B, 4)), jnp.float32)
    params = jax.jit(model.init, static_argnames="train")(jax.random.PRNGKey(0), x, train=False)[
        "params"
    ]
    loss = L.MultiTaskLoss(
        losses={"cls": L.softmax_cross_entropy, "reg": L.squared_error},
        weights={"cls": 1.0, "reg": 0.3},
    )
    return model, params, x, loss


def test_multitask_loss_is_weighted_sum(multihead):
    model, params, x, loss = multihead
    targets = {"cls": LABELS, "reg": TARGET}
    preds = jax.jit(model.apply, static_argnames="train")({"params": params}, x, train=False)
    expected = L.softmax_cross_entropy(preds["cls"], LABELS) + 0.3 * L.squared_error(
        preds["reg"], TARGET
    )
    np.testing.assert_allclose(loss(preds, targets), expected, rtol=1e-6)


def test_multihead_shares_trunk_and_gradchecks(multihead):
    model, params, x, loss = multihead
    targets = {"cls": LABELS, "reg": jnp.asarray(TARGET)}

    def objective(params, x, weights):
        preds = model.apply({"params": params}, x, train=False)
        return L.reduce_loss(loss(preds, targets), weights)

    weights = jnp.asarray([1.0, 1.0, 0.0, 1.0, 0.5, 1.0])
    gradcheck(objective, params, x, weights).assert_ok(1e-6)
    # the regression loss alone moves the trunk but not the classification head
    reg_only = L.MultiTaskLoss(losses={"reg": L.squared_error}, weights={"reg": 1.0})
    grads = jax.jit(
        jax.grad(lambda p: jnp.mean(reg_only(model.apply({"params": p}, x, train=False), targets)))
    )(params)
    assert np.abs(grads["trunk_0"]["kernel"]).sum() > 0
    assert np.abs(grads["head_cls"]["kernel"]).sum() == 0


def test_multitask_loss_errors():
    with pytest.raises(ValueError, match=r"must name the same non-empty set of tasks"):
        L.MultiTaskLoss(losses={"a": L.mean_squared_error}, weights={"b": 1.0})
    loss = L.MultiTaskLoss(losses={"a": L.mean_squared_error}, weights={"a": 1.0})
    with pytest.raises(ValueError, match=r"multi-task targets lack tasks \['a'\]"):
        loss({"a": jnp.ones((2, 1))}, {"b": jnp.ones((2, 1))})
