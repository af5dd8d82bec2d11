"""Metric learning: in-batch mining picks valid pairs/triplets; padding never takes part."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dlcore.losses import contrastive_loss
from dlcore.tasks.embedding import _random_pick, mine_and_score, nearest_neighbour_hits

Y = jnp.array([0, 1, 0, 2, 1, 0, 2, 3])


def test_random_pick_only_returns_allowed_columns():
    allowed = jax.random.bernoulli(jax.random.PRNGKey(1), 0.4, (8, 8))
    picks, ok = _random_pick(jax.random.PRNGKey(2), allowed)
    for row in range(8):
        assert bool(ok[row]) == bool(allowed[row].any())
        if ok[row]:
            assert bool(allowed[row, picks[row]])


def test_triplets_use_same_class_positives_and_other_class_negatives():
    e = jax.random.normal(jax.random.PRNGKey(0), (8, 3))
    valid = jnp.ones(8, bool)
    per_example, weight = mine_and_score(jax.random.PRNGKey(3), e, Y, valid, "triplet", 0.2)
    # class 3 has one member: no positive, so that anchor is masked out
    np.testing.assert_array_equal(np.asarray(weight), [1, 1, 1, 1, 1, 1, 1, 0])
    # recompute each defined anchor's loss for the positives/negatives it could have had
    d = np.asarray(jnp.sum((e[:, None] - e[None]) ** 2, -1))
    y = np.asarray(Y)
    for i in range(7):
        same = [j for j in range(8) if y[j] == y[i] and j != i]
        other = [j for j in range(8) if y[j] != y[i]]
        options = {max(0.0, d[i, p] - d[i, n] + 0.2) for p in same for n in other}
        assert min(abs(float(per_example[i]) - o) for o in options) < 1e-5


def test_padded_examples_take_no_part():
    e = jax.random.normal(jax.random.PRNGKey(0), (8, 3))
    valid = jnp.array([1, 1, 1, 1, 1, 1, 0, 0], bool)
    for loss in ("contrastive", "triplet"):
        per_example, weight = mine_and_score(jax.random.PRNGKey(4), e, Y, valid, loss, 1.0)
        assert float(weight[6]) == 0 and float(weight[7]) == 0
    # moving a padded embedding changes no valid example's loss
    moved = e.at[6].set(100.0)
    a, _ = mine_and_score(jax.random.PRNGKey(4), e, Y, valid, "triplet", 1.0)
    b, _ = mine_and_score(jax.random.PRNGKey(4), moved, Y, valid, "triplet", 1.0)
    np.testing.assert_allclose(np.asarray(a)[:6], np.asarray(b)[:6])


def test_contrastive_pairs_match_the_loss_formula():
    e = jax.random.normal(jax.random.PRNGKey(5), (8, 2))
    per_example, weight = mine_and_score(
        jax.random.PRNGKey(6), e, Y, jnp.ones(8, bool), "contrastive", 1.0
    )
    assert float(jnp.min(weight)) == 1.0
    y = np.asarray(Y)
    for i in range(8):
        options = [
            float(
                contrastive_loss(e[i : i + 1], e[j : j + 1], jnp.array([float(y[i] == y[j])]), 1.0)[
                    0
                ]
            )
            for j in range(8)
            if j != i
        ]
        assert min(abs(float(per_example[i]) - o) for o in options) < 1e-5


def test_nearest_neighbour_hits_ignore_self_and_padding():
    e = jnp.array([[0.0], [0.1], [5.0], [5.1], [0.05]])
    y = jnp.array([0, 0, 1, 1, 1])
    hits = nearest_neighbour_hits(e, y, jnp.array([1, 1, 1, 1, 0], bool))
    np.testing.assert_array_equal(np.asarray(hits)[:4], [1, 1, 1, 1])
    hits = nearest_neighbour_hits(e, y, jnp.ones(5, bool))
    assert float(hits[0]) == 0.0  # its nearest other point (0.05) is labelled 1


@pytest.mark.parametrize("loss", ["contrastive", "triplet"])
def test_training_improves_nearest_neighbour_accuracy(loss):
    from dlcore.config.loading import validate
    from dlcore.engine.loop import fit
    from dlcore.experiment import build

    raw = {
        "data": {"name": "spirals", "classes": 3, "n_per_class": 60},
        "model": {"name": "mlp", "widths": [32]},
        "task": {"name": "embedding", "loss": loss, "margin": 1.0, "embedding_dim": 4},
        "optimizer": {"name": "adam", "learning_rate": 0.01},
        "train": {"epochs": 15, "batch_size": 32},
    }
    cfg = validate(raw, "t")
    built = build(cfg)
    data, task = built.data, built.task
    before = task.eval_step(
        task.init(jax.random.PRNGKey(0), {"x": data.val.x[:4], "y": data.val.y[:4]}),
        {"x": data.val.x, "y": data.val.y},
    )
    result = fit(task, data, cfg.train, cfg.seed)
    assert result.final["val"]["accuracy"] > float(before["accuracy"] / before["count"]) + 0.1
