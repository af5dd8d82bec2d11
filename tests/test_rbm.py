"""RBMs: the CD-1 / PCD-1 update written out in NumPy (and scikit-learn's own PCD step) equals
dlcore's; free energy and the exact pseudo-log-likelihood against brute-force sums; the CD
gradient against autodiff of the free-energy difference; exact resume with persistent
chains; bad configs are one-line errors."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from dlcore.cli.main import main as cli_main
from dlcore.config.loading import load_config
from dlcore.energy import rbm
from dlcore.engine.loop import fit
from dlcore.experiment import build
from dlcore.runs.run_dir import RunDir
from dlcore.tasks.rbm import RBMTask
from tests.helpers import REPO, StopAfter

V, H, B = 6, 4, 5
LR = 0.3


def _sigmoid(a):
    return 1.0 / (1.0 + np.exp(-a))


def _f64(tree):
    return jax.tree.map(lambda a: a.astype(jnp.float64) if a.dtype == jnp.float32 else a, tree)


def _state_and_batch(method: str, k: int):
    """A float64 state with nonzero weights and biases, PCD chains mid-run, and 0/1 data."""
    task = RBMTask((H,), optax.sgd(LR), method=method, k=k, chains=B, init_scale=0.5)
    rng = np.random.default_rng(0)
    x = (rng.uniform(size=(B, V)) < 0.5).astype(np.float64)
    state = _f64(task.init(jax.random.PRNGKey(3), {"x": jnp.asarray(x, jnp.float32)}))
    params = {
        "encoder": {
            "Dense_0": {
                "kernel": jnp.asarray(rng.normal(size=(V, H))),
                "bias": jnp.asarray(rng.normal(size=H)),
            }
        },
        "visible_bias": {"Dense_0": jnp.asarray(rng.normal(size=V))},
    }
    model_state = state.model_state
    if method == "pcd":
        model_state = {"chains": {"Dense_0": jnp.asarray((rng.uniform(size=(B, H)) < 0.5) * 1.0)}}
    return task, state.replace(params=params, model_state=model_state), x


def _numpy_update(w, b, c, x, noise, chains=None):
    """CD-k (``chains`` None) or PCD-k with plain SGD, written out in float64 NumPy."""
    q_pos = _sigmoid(x @ w + c)
    h = (noise.h0 < q_pos) * 1.0 if chains is None else chains
    for t in range(len(noise.v)):
        v = (noise.v[t] < _sigmoid(h @ w.T + b)) * 1.0
        q = _sigmoid(v @ w + c)
        h = (noise.h[t] < q) * 1.0
    w_new = w + LR * (x.T @ q_pos / len(x) - v.T @ q / len(v))
    b_new = b + LR * (x.mean(0) - v.mean(0))
    c_new = c + LR * (q_pos.mean(0) - q.mean(0))
    return w_new, b_new, c_new, h


@pytest.fixture(scope="module")
def updates():
    """(method, k) -> one float64 update: the task, the state before, the data, the state
    after and its metric sums (compiled once per case, shared with scikit-learn's test)."""
    cache = {}

    def get(method: str, k: int):
        if (method, k) not in cache:
            with jax.enable_x64(True):
                task, state, x = _state_and_batch(method, k)
                new, sums = jax.jit(task.train_step)(state, {"x": jnp.asarray(x)})
                p = task.rbm(state.params, 0)
                noise = rbm.draw_noise(state.step_key("gibbs"), k, B, p)
                cache[method, k] = (task, state, x, new, sums, jax.tree.map(np.asarray, noise))
        return cache[method, k]

    return get


@pytest.mark.parametrize("method, k", [("cd", 1), ("pcd", 1), ("cd", 3)])
def test_the_cd_update_equals_numpy_written_out_in_float64(updates, method, k):
    task, state, x, new, sums, noise = updates(method, k)
    chains = np.asarray(state.model_state["chains"]["Dense_0"]) if method == "pcd" else None
    w, b, c = (np.asarray(a) for a in task.rbm(state.params, 0))
    w_new, b_new, c_new, h = _numpy_update(w, b, c, x, noise, chains)
    got = task.rbm(new.params, 0)
    assert got.w.dtype == np.float64
    np.testing.assert_allclose(got.w, w_new, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(got.b, b_new, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(got.c, c_new, rtol=1e-12, atol=1e-12)
    assert np.abs(w_new - w).max() > 1e-3  # the update did something
    if method == "pcd":
        np.testing.assert_array_equal(new.model_state["chains"]["Dense_0"], h)
    recon = ((_sigmoid(_sigmoid(x @ w + c) @ w.T + b) - x) ** 2).mean(1).sum()
    np.testing.assert_allclose(sums["recon_mse"], recon, rtol=1e-12)


class _ReplayRng:
    """Stands in for scikit-learn's RandomState, handing out given uniforms in order."""

    def __init__(self, *arrays):
        self.arrays = list(arrays)

    def uniform(self, size):
        out = self.arrays.pop(0)
        assert out.shape == tuple(size)
        return out.copy()


def test_pcd1_with_sgd_equals_scikit_learns_bernoulli_rbm_step(updates):
    from sklearn.neural_network import BernoulliRBM

    task, state, x, new, _, noise = updates("pcd", 1)
    p = task.rbm(state.params, 0)
    sk = BernoulliRBM(n_components=H, learning_rate=LR, batch_size=B)
    sk.components_ = np.asarray(p.w).T.copy()
    sk.intercept_visible_, sk.intercept_hidden_ = np.asarray(p.b).copy(), np.asarray(p.c).copy()
    sk.h_samples_ = np.asarray(state.model_state["chains"]["Dense_0"]).copy()
    sk._fit(x, _ReplayRng(noise.v[0], noise.h[0]))
    got = task.rbm(new.params, 0)
    np.testing.assert_allclose(got.w, sk.components_.T, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(got.b, sk.intercept_visible_, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(got.c, sk.intercept_hidden_, rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(new.model_state["chains"]["Dense_0"], sk.h_samples_)


def _tiny(seed: int, v_dim: int = 3, h_dim: int = 4) -> rbm.RBMParams:
    rng = np.random.default_rng(seed)
    return rbm.RBMParams(
        jnp.asarray(rng.normal(size=(v_dim, h_dim))),
        jnp.asarray(rng.normal(size=v_dim)),
        jnp.asarray(rng.normal(size=h_dim)),
    )


def _all_states(n: int) -> np.ndarray:
    return np.array(list(itertools.product([0.0, 1.0], repeat=n)))


@pytest.mark.parametrize("visible", rbm.VISIBLE_UNITS)
def test_free_energy_is_minus_log_sum_over_hidden_states_and_its_formula(visible):
    with jax.enable_x64(True):
        p = _tiny(1)
        v = (
            _all_states(3)
            if visible == "bernoulli"
            else np.random.default_rng(2).normal(size=(5, 3))
        )
        hs = _all_states(4)
        e_VxH = np.stack([rbm.energy(p, np.repeat(vi[None], len(hs), 0), hs, visible) for vi in v])
        brute = -np.log(np.exp(-e_VxH).sum(axis=1))
        w, b, c = (np.asarray(a) for a in p)
        visible_term = -(v @ b) if visible == "bernoulli" else 0.5 * ((v - b) ** 2).sum(1)
        formula = visible_term - np.log1p(np.exp(v @ w + c)).sum(1)
        got = rbm.free_energy(p, jnp.asarray(v), visible)
        np.testing.assert_allclose(got, brute, rtol=1e-12)
        np.testing.assert_allclose(got, formula, rtol=1e-12)


def test_exact_pll_equals_conditionals_of_the_brute_force_joint():
    with jax.enable_x64(True):
        p = _tiny(4, v_dim=4, h_dim=3)
        vs, hs = _all_states(4), _all_states(3)
        joint = np.array(
            [[np.exp(-float(rbm.energy(p, v[None], h[None])[0])) for h in hs] for v in vs]
        )
        marginal = dict(zip(map(tuple, vs), joint.sum(1), strict=True))  # unnormalized p(v)
        want = []
        for v in vs:
            terms = []
            for i in range(4):
                flipped = v.copy()
                flipped[i] = 1 - v[i]
                terms.append(
                    np.log(marginal[tuple(v)] / (marginal[tuple(v)] + marginal[tuple(flipped)]))
                )
            want.append(sum(terms))
        got = rbm.pseudo_log_likelihood(p, jnp.asarray(vs))
        np.testing.assert_allclose(got, want, rtol=1e-10)
        # scikit-learn's estimator: V times the term of one random bit per example
        key = jax.random.PRNGKey(7)
        bits = np.asarray(jax.random.randint(key, (16,), 0, 4))
        terms = np.asarray(jax.nn.log_sigmoid(rbm.flip_gaps(p, jnp.asarray(vs))))
        np.testing.assert_allclose(
            rbm.one_bit_pll(p, jnp.asarray(vs), key), 4 * terms[np.arange(16), bits], rtol=1e-12
        )


@pytest.mark.parametrize("visible", rbm.VISIBLE_UNITS)
def test_cd_gradient_is_the_gradient_of_the_free_energy_difference(visible):
    with jax.enable_x64(True):
        p = _tiny(5)
        rng = np.random.default_rng(6)
        v_pos, v_neg = jnp.asarray(rng.uniform(size=(7, 3))), jnp.asarray(rng.uniform(size=(4, 3)))
        w_pos, w_neg = jnp.asarray(rng.uniform(size=7)), jnp.asarray(rng.uniform(size=4))

        def gap(p):
            f_pos = rbm.free_energy(p, v_pos, visible) @ w_pos / w_pos.sum()
            return f_pos - rbm.free_energy(p, v_neg, visible) @ w_neg / w_neg.sum()

        want = jax.grad(gap)(p)
        got = rbm.cd_gradient(
            v_pos, rbm.hidden_probs(p, v_pos), v_neg, rbm.hidden_probs(p, v_neg), w_pos, w_neg
        )
        for a, b in zip(got, want, strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)


def test_a_pcd_run_stopped_and_resumed_equals_an_uninterrupted_one_bit_for_bit(tmp_path):
    path = REPO / "experiments" / "digits_rbm_pcd.toml"
    overrides = ["data.train_per_class=8", "train.batch_size=16", "train.epochs=3", "task.hidden=8"]
    overrides += [
        "train.mode=step",
        "train.log_every=5",
        "train.checkpoint_every=5",
        "task.chains=6",
    ]
    cfg = load_config(path, overrides)
    experiment = build(cfg, str(path))
    task, data = experiment.task, experiment.data
    whole = fit(task, data, cfg.train, cfg.seed, run=RunDir.create(tmp_path / "whole"))
    run = RunDir.create(tmp_path / "split")
    first = fit(task, data, cfg.train, cfg.seed, run=run, stop=StopAfter(7))
    assert first.status == "interrupted" and 0 < int(first.state.step) < int(whole.state.step)
    chains = first.state.model_state["chains"]["Dense_0"]
    assert chains.shape == (6, 8) and np.any(chains != whole.state.model_state["chains"]["Dense_0"])
    resumed = fit(task, data, cfg.train, cfg.seed, run=run, resume=True)
    for a, b in zip(jax.tree.leaves(resumed.state), jax.tree.leaves(whole.state), strict=True):
        np.testing.assert_array_equal(a, b)
    assert resumed.final == whole.final


BASE = {
    "name": "bad",
    "data": {"name": "digits", "preprocess": "none", "binarize": True},
    "train": {"epochs": 2, "batch_size": 256},
}


@pytest.mark.parametrize(
    "task, field",
    [
        ({"name": "rbm", "chains": 4}, "task"),  # chains without pcd
        ({"name": "rbm", "method": "cd3"}, "task.method"),
        ({"name": "rbm", "visible": "poisson"}, "task.visible"),
        ({"name": "rbm", "k": 0}, "task.k"),
        ({"name": "dbn", "widths": [4, 3], "steps_per_layer": 5}, "task.steps_per_layer"),
    ],
)
def test_a_bad_rbm_config_is_one_line_naming_the_field_exit_2_no_run_dir(
    tmp_path, capsys, task, field
):
    import tomli_w

    config = tmp_path / "bad.toml"
    config.write_text(tomli_w.dumps({**BASE, "task": task}))
    status = cli_main(["run", str(config), "--run-dir", str(tmp_path / "run")])
    lines = capsys.readouterr().err.strip().splitlines()
    assert status == 2
    assert len(lines) == 1 and lines[0].startswith(f"error: {config}: {field}"), lines
    assert not (tmp_path / "run").exists()
