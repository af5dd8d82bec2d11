"""Built-in data sets and the (seed, epoch)-determined batch order."""

import numpy as np
import pytest

from dlcore.data import BatchOrder, Position
from dlcore.data.digits import DigitsConfig
from dlcore.data.registry import load_dataset
from dlcore.data.synthetic import BlobsConfig, SpiralsConfig, XorConfig


@pytest.fixture(scope="module")
def digits():
    return load_dataset(DigitsConfig())


def test_digits_fixed_split_standardized_with_train_statistics(digits):
    assert (len(digits.train), len(digits.val), len(digits.test)) == (1257, 270, 270)
    assert digits.train.x.dtype == np.float32 and digits.input_shape == (64,)
    varying = digits.train.x.std(axis=0) > 0
    np.testing.assert_allclose(digits.train.x.mean(axis=0), 0.0, atol=1e-5)
    np.testing.assert_allclose(digits.train.x.std(axis=0)[varying], 1.0, rtol=1e-4)
    # val/test use the train statistics, so they are close to, but not exactly, standardized
    assert abs(digits.val.x.mean()) > 1e-4
    again = load_dataset(DigitsConfig())
    np.testing.assert_array_equal(again.test.x, digits.test.x)
    assert set(np.unique(digits.train.y)) == set(range(10))


def test_splits_are_disjoint():
    d = load_dataset(XorConfig(n_samples=200))
    rows = [tuple(r) for s in (d.train, d.val, d.test) for r in s.x]
    assert len(rows) == len(set(rows)) == 200


def test_xor_labels_follow_the_quadrant():
    d = load_dataset(XorConfig(noise=0.1))
    x, y = d.train.x, d.train.y
    np.testing.assert_array_equal(y, (np.sign(x[:, 0]) != np.sign(x[:, 1])).astype(np.int32))


def test_spirals_has_k_balanced_classes():
    d = load_dataset(SpiralsConfig(classes=5, n_per_class=40))
    labels = np.concatenate([d.train.y, d.val.y, d.test.y])
    np.testing.assert_array_equal(np.bincount(labels), [40] * 5)


def test_blobs_are_separable_with_the_set_margin():
    d = load_dataset(BlobsConfig(margin=0.2, dim=3, n_samples=300))
    w = np.asarray(d.info["w_star"])
    for split in (d.train, d.val, d.test):
        score = split.x @ w
        assert np.all(np.abs(score) >= 0.2 - 1e-6)
        np.testing.assert_array_equal(split.y, (score > 0).astype(np.int32))
    assert d.info["margin"] >= 0.2 and d.info["radius"] <= 1.0


def test_batch_order_is_a_function_of_seed_and_epoch_only():
    a, b = BatchOrder(103, 10, seed=7), BatchOrder(103, 10, seed=7)
    b.indices(0), b.indices(5)  # consuming other epochs first changes nothing
    np.testing.assert_array_equal(a.indices(3), b.indices(3))
    assert not np.array_equal(a.indices(3), a.indices(4))
    assert not np.array_equal(a.indices(3), BatchOrder(103, 10, seed=8).indices(3))
    rows = a.indices(2)
    assert rows.shape == (10, 10) and len(np.unique(rows)) == 100  # 3 dropped, none repeated


def test_batches_resume_mid_epoch_at_the_same_rows():
    d = load_dataset(XorConfig(n_samples=100))
    order = BatchOrder(len(d.train), 8, seed=1)
    full = list(order.batches(d.train, Position(4, 0)))
    tail = list(order.batches(d.train, Position(4, 3)))
    assert [p for p, _ in tail] == [p for p, _ in full[3:]]
    for (_, x), (_, y) in zip(full[3:], tail, strict=True):
        np.testing.assert_array_equal(x["x"], y["x"])
    assert order.position(order.steps_per_epoch * 4 + 3) == Position(4, 3)


def test_batch_size_larger_than_split_is_rejected():
    with pytest.raises(ValueError, match=r"train.batch_size \(50\) is larger than the training"):
        BatchOrder(40, 50, seed=0)


def test_fingerprint_is_stable_and_sees_any_changed_value(digits):
    import dataclasses

    fp = digits.fingerprint()
    assert fp == load_dataset(DigitsConfig()).fingerprint()
    assert fp["sizes"] == {"train": 1257, "val": 270, "test": 270}
    y = digits.test.y.copy()
    y[-1] = (y[-1] + 1) % 10
    changed = dataclasses.replace(digits, test=digits.test.map("y", lambda _: y))
    assert changed.fingerprint()["sha256"] != fp["sha256"]
    other_seed = load_dataset(XorConfig(seed=1)).fingerprint()
    assert other_seed["sha256"] != load_dataset(XorConfig()).fingerprint()["sha256"]


def test_digits_binarize_thresholds_raw_pixels_at_half_ink():
    raw = load_dataset(DigitsConfig(preprocess="none"))
    binary = load_dataset(DigitsConfig(preprocess="none", binarize=True))
    pairs = zip(
        (raw.train, raw.val, raw.test), (binary.train, binary.val, binary.test), strict=True
    )
    for r, b in pairs:
        np.testing.assert_array_equal(b.x, (r.x >= 8).astype(np.float32))
        np.testing.assert_array_equal(b.y, r.y)
    assert 0.2 < binary.train.x.mean() < 0.5  # both values occur, in digit-like amounts


def test_digits_holdout_classes_leave_training_and_validation_only(digits):
    held = load_dataset(DigitsConfig(holdout_classes=[3, 7]))
    for split in (held.train, held.val):
        assert not np.isin(split.y, [3, 7]).any()
    kept = ~np.isin(digits.train.y, [3, 7])
    assert len(held.train) == int(kept.sum())
    np.testing.assert_array_equal(held.test.y, digits.test.y)  # every digit, labels unchanged
    assert held.info["holdout_classes"] == [3, 7] and held.num_classes == 10


@pytest.mark.parametrize(
    "fields, words",
    [
        ({"binarize": True}, "binarize = true needs preprocess = 'none'"),
        ({"holdout_classes": [3, 3]}, "distinct digits"),
        ({"holdout_classes": [1], "classes": [1, 2]}, "needs classes unset"),
    ],
)
def test_digits_option_conflicts_are_refused(fields, words):
    with pytest.raises(ValueError, match=words):
        DigitsConfig(**fields)
