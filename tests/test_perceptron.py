"""The perceptron: textbook update rule, Novikoff's mistake bound, and failure on XOR."""

import jax
import numpy as np
import pytest

from dlcore.config.loading import load_config
from dlcore.data.registry import load_dataset
from dlcore.data.synthetic import BlobsConfig, SpiralsConfig
from dlcore.engine.loop import fit
from dlcore.experiment import build
from dlcore.runs.run_dir import RunDir
from dlcore.tasks.perceptron import PerceptronTask, novikoff_bound
from tests.helpers import REPO


def numpy_perceptron(x, y, epochs, orders, num_classes, multiclass):
    """Rosenblatt's algorithm written out: w0 = 0, sign(0) = +1, update on mistakes only."""
    binary = num_classes == 2 and not multiclass
    w = np.zeros((1 if binary else num_classes, x.shape[1]), np.float64)
    mistakes = []
    for epoch in range(epochs):
        k = 0
        for i in orders[epoch]:
            if binary:
                y_pm = 1 if y[i] == 1 else -1
                pred = 1 if w[0] @ x[i] >= 0 else -1
                if pred != y_pm:
                    w[0] += y_pm * x[i]
                    k += 1
            else:
                y_hat = int(np.argmax(w @ x[i]))
                if y_hat != y[i]:
                    w[y[i]] += x[i]
                    w[y_hat] -= x[i]
                    k += 1
        mistakes.append(k)
    return w, mistakes


@pytest.mark.parametrize(
    "data_cfg, multiclass",
    [
        (BlobsConfig(n_samples=200, dim=4, margin=0.1), False),
        (BlobsConfig(n_samples=200, dim=4, margin=0.1), True),
        (SpiralsConfig(classes=3, n_per_class=40), True),
    ],
)
def test_online_scan_equals_the_algorithm_written_out(data_cfg, multiclass):
    d = load_dataset(data_cfg)
    task = PerceptronTask(d.num_classes, multiclass=multiclass)
    x, y = d.train.x, d.train.y
    orders = [np.random.default_rng(e).permutation(len(x)) for e in range(4)]
    state = task.init(jax.random.PRNGKey(0), {"x": x, "y": y})
    step = jax.jit(task.train_step)
    got = []
    for order in orders:
        state, sums = step(state, {"x": x[order], "y": y[order]})
        got.append(int(sums["mistakes"]))
    w, expected = numpy_perceptron(x.astype(np.float64), y, 4, orders, d.num_classes, multiclass)
    assert got == expected
    np.testing.assert_allclose(state.params["w"], w, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("margin, dim", [(0.05, 10), (0.1, 3), (0.2, 20)])
def test_mistakes_stay_within_novikoffs_bound(margin, dim):
    d = load_dataset(BlobsConfig(n_samples=600, dim=dim, margin=margin))
    x, y = d.train.x, d.train.y
    radius = float(np.max(np.linalg.norm(x, axis=1)))
    gamma = float(np.min(np.abs(x @ np.asarray(d.info["w_star"]))))
    task = PerceptronTask(2)
    state = task.init(jax.random.PRNGKey(0), {"x": x, "y": y})
    step = jax.jit(task.train_step)
    total, last = 0, None
    for epoch in range(200):
        order = np.random.default_rng(epoch).permutation(len(x))
        state, sums = step(state, {"x": x[order], "y": y[order]})
        last = int(sums["mistakes"])
        total += last
        if last == 0:
            break
    assert last == 0, "the perceptron must converge on separable data"
    assert 0 < total <= novikoff_bound(radius, gamma)


def test_shipped_perceptron_experiments_separate_blobs_but_not_xor(tmp_path):
    mistakes, final = {}, {}
    for stem in ("perceptron_blobs", "perceptron_xor"):
        cfg = load_config(REPO / "experiments" / f"{stem}.toml")
        built = build(cfg)
        data, task = built.data, built.task
        run = RunDir.create(tmp_path / stem)
        final[stem] = fit(task, data, cfg.train, cfg.seed, run=run).final
        mistakes[stem] = [r["mistakes"] for r in run.read_metrics() if r["split"] == "train"]
        assert len(mistakes[stem]) == cfg.train.epochs  # one record per epoch
    assert mistakes["perceptron_blobs"][-1] == 0
    assert final["perceptron_blobs"]["test"]["accuracy"] >= 0.99
    assert min(mistakes["perceptron_xor"]) > 0.2 * 280  # never separates
    assert final["perceptron_xor"]["test"]["accuracy"] <= 0.8  # a line gets <= 3 quadrants


def test_perceptron_task_rejects_a_model_section(tmp_path):
    from dlcore.config.loading import ConfigError, validate

    cfg = validate(
        {"data": {"name": "xor"}, "task": {"name": "perceptron"}, "model": {"name": "mlp"}},
        "p.toml",
    )
    with pytest.raises(ConfigError, match="p.toml: model: the perceptron task has its own"):
        build(cfg, "p.toml")
