"""Universal approximation demo: the error falls with the width, the widths do not interact,
and a run writes its figures and per-width errors."""

import json

import jax
import numpy as np
import pytest

from dlcore.cli.main import main
from dlcore.config.loading import ConfigError, load_config
from dlcore.data.function1d import Function1DConfig, make_function_1d
from dlcore.experiment import build
from tests.helpers import REPO

SHIPPED = REPO / "experiments" / "universal_approximation.toml"
# The shipped experiment shrunk: three widths far apart, a quarter of the updates, each on
# the whole training grid; trained by a plain loop over the task's own compiled step.
SMALL = ["task.widths=[1, 8, 64]", "optimizer.schedule.decay_steps=400"]


def trained(overrides: list[str], steps: int):
    """The task of the shipped config with ``overrides``, its initial parameters and its
    state after ``steps`` full-batch updates (one compiled loop)."""
    built = build(load_config(SHIPPED, overrides))
    batch = built.data.train.rows(slice(None))
    start = jax.jit(built.task.init)(jax.random.PRNGKey(0), batch)

    @jax.jit
    def train(state):
        return jax.lax.fori_loop(0, steps, lambda _, s: built.task.train_step(s, batch)[0], state)

    return built, jax.device_get(start.params), train(start)


def test_error_decreases_with_width():
    built, _, state = trained(SMALL, 400)
    x, y = built.data.test.x, built.data.test.y
    mse = np.mean((built.task.predict(state, x) - y) ** 2, axis=0)
    assert np.all(mse[1:] < 0.9 * mse[:-1]) and mse[-1] < 0.1 * mse[0], mse
    sums = jax.jit(built.task.eval_step)(state, built.data.test.rows(slice(None)))
    got = [float(sums[f"mse_width_{w}"] / sums["count"]) for w in (1, 8, 64)]
    np.testing.assert_allclose(got, mse, rtol=1e-4)


def test_a_width_trained_alone_gets_the_same_parameters():
    # plain SGD: a bank that scaled or mixed the widths' gradients would move width_4 apart
    sgd = ["optimizer.name='sgd'", "optimizer.learning_rate=0.05", "optimizer.schedule='constant'"]
    _, start, together = trained(["task.widths=[1, 4, 16]", *sgd], 5)
    _, _, alone = trained(["task.widths=[4]", *sgd], 5)
    together, single = (jax.device_get(s.params["width_4"]) for s in (together, alone))
    jax.tree.map(
        lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7), together, single
    )
    moved = jax.tree.map(lambda a, b: np.abs(a - b).max(), together, start["width_4"])
    assert max(jax.tree.leaves(moved)) > 1e-3  # it did train


def test_the_grids_are_fixed_and_interleaved():
    data = make_function_1d(Function1DConfig(n_train=9, n_test=17))
    grid = np.linspace(-1, 1, 9)
    np.testing.assert_array_equal(data.train.x[:, 0], grid.astype(np.float32))
    np.testing.assert_allclose(data.val.x[:, 0], (grid[:-1] + grid[1:]) / 2)
    assert (
        data.fingerprint() == make_function_1d(Function1DConfig(n_train=9, n_test=17)).fingerprint()
    )


@pytest.mark.parametrize(
    "override, message",
    [
        ("task.widths=[4, 4]", "task.widths: must be strictly increasing"),
        ("optimizer.clip_norm=1.0", "optimizer.clip_norm: one global norm over every width"),
        ("task.activation='relu'", "task.activation: Input should be 'tanh' or 'sigmoid'"),
    ],
)
def test_bad_settings_are_one_line(override, message):
    with pytest.raises(ConfigError) as err:
        build(load_config(SHIPPED, [override]), "u.toml")
    assert len(err.value.lines()) == 1 and message in err.value.lines()[0]


def test_a_run_writes_the_figures_and_the_per_width_errors(tmp_path):
    run_dir = tmp_path / "run"
    args = ["run", str(SHIPPED), "--run-dir", str(run_dir), "--quiet"]
    tiny = ["task.widths=[2, 8]", "train.epochs=2", "train.eval_every=1"]
    assert main([*args, *(f"--set={s}" for s in tiny)]) == 0
    assert (run_dir / "fits.png").stat().st_size > 0
    assert (run_dir / "error_vs_width.png").stat().st_size > 0
    report = json.loads((run_dir / "summary.json").read_text())["report"]
    assert sorted(report) == ["test_mse_width_2", "test_mse_width_8"]
    assert all(np.isfinite(v) and v > 0 for v in report.values())
