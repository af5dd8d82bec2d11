"""Soft parameter sharing: per-task towers and the distance penalty between them."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.test_util import check_grads

from dlcore.config.loading import ConfigError, validate
from dlcore.engine.state import TrainState
from dlcore.experiment import build
from dlcore.models import MLP, MultiTowerMLP
from dlcore.models.multitower import tower_distance
from dlcore.tasks import classification
from dlcore.tasks.multitask import multitask_classification

TASKS = ["digit", "parity"]
RNG = np.random.default_rng(0)
X = jnp.asarray(RNG.normal(size=(3, 8, 6)), jnp.float32)  # three batches [B=8, D=6]
Y = jnp.asarray(RNG.integers(0, 3, (3, 8, 2)))  # both targets: 3 classes


def _towers(tasks, seed=0):
    rng = np.random.default_rng(seed)

    def tower():
        shapes = {"Dense_0": (2, 3), "Dense_1": (3, 4), "Dense_2": (4, 2)}
        return {
            name: {"kernel": rng.normal(size=s), "bias": rng.normal(size=s[1])}
            for name, s in shapes.items()
        }

    return {f"tower_{t}": tower() for t in tasks}


def test_distance_is_the_hand_computed_sum_and_its_gradient_is_right():
    tasks = ["a", "b", "c"]
    params = _towers(tasks)
    expected = 0.0
    for i, a in enumerate(tasks):
        for b in tasks[i + 1 :]:
            for layer in ("Dense_0", "Dense_1"):
                for leaf in ("kernel", "bias"):
                    diff = params[f"tower_{a}"][layer][leaf] - params[f"tower_{b}"][layer][leaf]
                    expected += float(np.sum(diff**2))
    with jax.enable_x64(True):
        p64 = jax.tree.map(jnp.asarray, params)
        shared = jax.jit(lambda p: tower_distance(p, tasks, [0, 1]))
        np.testing.assert_allclose(shared(p64), expected, rtol=1e-12)
        check_grads(shared, (p64,), order=1, modes=["rev"])
        grads = jax.jit(jax.grad(lambda p: tower_distance(p, tasks, [1])))(p64)
    # dR/dtheta_l^a = 2 sum_{b != a} (theta_l^a - theta_l^b) on shared layers, 0 elsewhere
    k = {t: params[f"tower_{t}"]["Dense_1"]["kernel"] for t in tasks}
    np.testing.assert_allclose(
        grads["tower_a"]["Dense_1"]["kernel"], 2 * (2 * k["a"] - k["b"] - k["c"])
    )
    assert not np.any(grads["tower_b"]["Dense_0"]["kernel"])
    assert not np.any(grads["tower_c"]["Dense_2"]["bias"])


HEADS = {"digit": 3, "parity": 3}  # one head size: one compiled single-task step for both
SGD = optax.sgd(0.1)
STRENGTHS = (0.0, 2.0)


def _run(task, params, y_column=None, steps=3):
    """``steps`` SGD steps from ``params`` on the fixed batches; the last step's metrics."""
    state = TrainState(
        step=jnp.zeros((), jnp.int32),
        params=params,
        model_state={},
        opt_state=task.optimizer.init(params),
        rng=jax.random.PRNGKey(1),
    )
    step = jax.jit(task.train_step)
    for i in range(steps):
        y = Y[i] if y_column is None else Y[i, :, y_column]
        state, sums = step(state, {"x": X[i], "y": y})
    return state.params, sums


@pytest.fixture(scope="module")
def trained():
    """The towers' initial parameters and, per strength, the trained ones and the metrics."""
    model = MultiTowerMLP(tower_widths=(4,), head_features=HEADS, activation="tanh")
    params = jax.jit(model.init, static_argnames="train")(jax.random.PRNGKey(0), X[0], train=False)[
        "params"
    ]
    runs = {}
    for strength in STRENGTHS:
        task = multitask_classification(
            model, SGD, TASKS, {"digit": 1.0, "parity": 1.0}, sharing_strength=strength
        )
        runs[strength] = _run(task, params)
    return params, runs


def test_strength_zero_trains_each_tower_as_an_independent_single_task_model(trained):
    params, runs = trained
    single = classification(MLP(widths=(4,), out_features=3, activation="tanh"), SGD)
    for column, task in enumerate(TASKS):
        tower = params[f"tower_{task}"]
        alone, _ = _run(single, tower, y_column=column)
        moved = jax.tree.map(lambda a, b: float(jnp.max(jnp.abs(a - b))), alone, tower)
        assert min(jax.tree.leaves(moved)) > 1e-3  # the comparison is not of untrained towers
        jax.tree.map(
            lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6),
            runs[0.0][0][f"tower_{task}"],
            alone,
        )


def test_a_large_strength_pulls_the_towers_together_and_is_logged(trained):
    _, runs = trained
    # The last step's metrics are of the parameters it started from (after two steps).
    distance = {s: float(sums["tower_distance"] / sums["count"]) for s, (_, sums) in runs.items()}
    for strength, (_, sums) in runs.items():
        np.testing.assert_allclose(
            sums["sharing_penalty"], strength * sums["tower_distance"], rtol=1e-6
        )
    # SGD shrinks theta^a - theta^b by 1 - 4 lr lambda = 0.2 per step, up to the data's pull
    assert distance[2.0] < 0.05 * distance[0.0]
    final = {s: float(tower_distance(p, TASKS, [0])) for s, (p, _) in runs.items()}
    assert final[2.0] < 0.01 * final[0.0]


TINY = {
    "data": {"name": "digits", "targets": ["digit", "parity"]},
    "model": {"name": "multitower_mlp", "tower_widths": [4, 4]},
    "task": {"name": "multitask", "sharing_strength": 0.1, "shared_layers": [1]},
}


@pytest.mark.parametrize(
    "model, task, message",
    [
        (
            {"name": "multihead_mlp", "trunk_widths": [4]},
            {"name": "multitask", "sharing_strength": 0.1},
            r"t: task.sharing_strength: sharing_strength needs per-task towers "
            r"\(\[model\] name = 'multitower_mlp'\); MultiHeadMLP has none to share softly",
        ),
        (
            TINY["model"],
            {**TINY["task"], "shared_layers": [0, 2]},
            r"t: task.shared_layers: shared_layers must be distinct hidden-layer indices in "
            r"\[0, 2\) of the towers \(2 hidden layers\); got \[0, 2\]",
        ),
    ],
)
def test_bad_soft_sharing_options_name_the_field(model, task, message):
    raw = {**TINY, "model": model, "task": task}
    with pytest.raises(ConfigError, match=message):
        build(validate(raw, "t"), "t")
