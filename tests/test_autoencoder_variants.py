"""The autoencoder's options: a linear autoencoder finds PCA's subspace; the KL-sparsity
penalty is its formula and its gradient is right; tied weights store no decoder kernels and
decode with W^T; corruption has the asked-for statistics, trains against the clean input
and never touches evaluation; mismatched options are one-line config errors; each shipped
variant trains (and the anomaly one reports a ROC AUC)."""

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import scipy.linalg
from jax.test_util import check_grads
from sklearn.decomposition import PCA

from dlcore.cli.main import main as cli_main
from dlcore.config.loading import ConfigError, load_config, save_config, validate
from dlcore.engine.loop import fit
from dlcore.experiment import build, run_experiment
from dlcore.gradcheck import gradcheck
from dlcore.losses import mean_squared_error
from dlcore.models.mlp import MLP
from dlcore.runs.run_dir import RunDir
from dlcore.tasks.autoencoder import AutoencoderTask
from dlcore.tasks.autoencoder_penalties import Sparsity, kl_sparsity, mean_activation
from dlcore.tasks.corruption import add_gaussian_noise, make_corruption, mask_features
from dlcore.tasks.tied_weights import drop_kernels
from tests.helpers import REPO, StopAfter, write_toml

B, D, H, K = 6, 5, 4, 3  # batch, input features, hidden width, code width
MASK_B = np.array([1, 1, 1, 1, 1, 0], np.float32)  # the last row is padding


def make_task(**options) -> AutoencoderTask:
    """A tiny smooth (tanh) autoencoder, D -> H -> K -> H -> D."""
    return AutoencoderTask(
        encoder=MLP(widths=(H,), out_features=K, activation="tanh"),
        decoder=MLP(widths=(H,), out_features=D, activation="tanh"),
        optimizer=optax.adam(1e-2),
        bottleneck=K,
        **options,
    )


def inputs(n: int = B, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, D)).astype(np.float32)


def numpy_kl(z_BxK: np.ndarray, mask_B: np.ndarray, rho: float) -> float:
    """sum_j KL(Bernoulli(rho) || Bernoulli(rho_hat_j)), rho_hat the masked batch mean."""
    rho_hat = (z_BxK * mask_B[:, None]).sum(0) / mask_B.sum()
    kl = rho * np.log(rho / rho_hat) + (1 - rho) * np.log((1 - rho) / (1 - rho_hat))
    return float(kl.sum())


# --- the linear autoencoder and PCA -------------------------------------------------------


@pytest.fixture(scope="module")
def linear_autoencoder():
    """A linear encoder and decoder (no hidden layer), MSE, K = 4, trained full-batch on the
    standardized digits' training split for 1000 Adam steps in one compiled scan."""
    cfg = validate(
        {
            "data": {"name": "digits"},
            "task": {"name": "autoencoder", "bottleneck": 4},
            "models": {"encoder": {"name": "linear"}, "decoder": {"name": "linear"}},
            "optimizer": {"name": "adam", "learning_rate": 1e-2},
        },
        "t.toml",
    )
    experiment = build(cfg, "t.toml")
    x = np.asarray(experiment.data.train.x)
    task = experiment.task

    def step(state, _):
        return task.train_step(state, {"x": x})[0], None

    state = task.init(jax.random.PRNGKey(0), {"x": x})
    state, _ = jax.jit(lambda s: jax.lax.scan(step, s, None, length=1000))(state)
    return x, state


def test_a_linear_autoencoder_spans_the_principal_subspace(linear_autoencoder):
    """Baldi & Hornik (1989): the global minima of a linear autoencoder's squared error have
    decoder W [K, D] with row space = the top-K principal subspace (every other critical
    point is a saddle). The principal angles between W's rows and scikit-learn's top-K
    components are therefore 0 at the optimum; float32 Adam gets them to about 0.001
    degrees here, and the bound of 1 degree leaves room for platform noise while a wrong subspace
    is tens of degrees off (the control below swaps one component: 90 degrees). The
    encoder's row space is not compared: pixels that are constant in the training split
    standardize to 0, and in those directions the encoder's weights get no gradient."""
    x, state = linear_autoencoder
    w_DxK = np.asarray(state.params["decoder"]["Dense_0"]["kernel"], np.float64).T
    components_KxD = PCA(n_components=5).fit(x.astype(np.float64)).components_
    angles = scipy.linalg.subspace_angles(w_DxK, components_KxD[:4].T)
    assert np.degrees(angles.max()) < 1.0, np.degrees(angles)
    wrong = scipy.linalg.subspace_angles(w_DxK, components_KxD[[0, 1, 2, 4]].T)
    assert np.degrees(wrong.max()) > 80.0  # the check can fail: one swapped component


# --- sparsity -----------------------------------------------------------------------------


def test_kl_sparsity_is_the_bernoulli_kl_of_the_masked_mean_rate():
    z_BxK = np.random.default_rng(1).uniform(0.02, 0.98, size=(B, K)).astype(np.float32)
    for rho in (0.05, 0.3):
        np.testing.assert_allclose(
            kl_sparsity(z_BxK, MASK_B, rho), numpy_kl(z_BxK, MASK_B, rho), rtol=1e-5
        )
    # The padding row is not an example: changing it changes nothing.
    moved = z_BxK.copy()
    moved[-1] = 0.9
    assert float(kl_sparsity(moved, MASK_B, 0.1)) == float(kl_sparsity(z_BxK, MASK_B, 0.1))
    # Zero exactly at the target rate, positive elsewhere.
    at_target = np.full((B, K), 0.2, np.float32)
    np.testing.assert_allclose(kl_sparsity(at_target, MASK_B, 0.2), 0.0, atol=1e-6)
    assert float(kl_sparsity(at_target, MASK_B, 0.05)) > 0.1
    # The combined penalty: lambda * mean_i sum_j |z_ij| + beta * sum_j KL.
    l1 = (np.abs(z_BxK).sum(1) * MASK_B).sum() / MASK_B.sum()
    expected = 0.1 * l1 + 2.0 * numpy_kl(z_BxK, MASK_B, 0.1)
    got = Sparsity(l1=0.1, kl=2.0, target=0.1)(jnp.asarray(z_BxK), jnp.asarray(MASK_B))
    np.testing.assert_allclose(got, expected, rtol=1e-5)
    np.testing.assert_allclose(mean_activation(z_BxK, MASK_B), z_BxK[:-1].mean(0), rtol=1e-6)


def test_kl_sparsity_gradient_matches_finite_differences():
    with jax.enable_x64(True):
        z_BxK = np.random.default_rng(2).uniform(0.05, 0.95, size=(B, K))
        mask_B = MASK_B.astype(np.float64)
        check_grads(lambda z: kl_sparsity(z, mask_B, 0.1), (z_BxK,), order=1, modes=["rev"])


def test_sparse_objective_gradient_matches_finite_differences_through_both_models():
    task = make_task(code_activation="sigmoid", sparsity=Sparsity(l1=0.05, kl=0.5, target=0.1))
    state = task.init(jax.random.PRNGKey(3), {"x": inputs()})

    def objective(params, x, mask):
        return task.objective(params, state, {"x": x, "mask": mask}, train=False)[0]

    result = gradcheck(objective, state.params, inputs(seed=4), MASK_B)
    result.assert_ok(1e-6)
    # The penalty really is part of the objective, and its metrics are logged.
    loss, out = task.objective(state.params, state, {"x": inputs(), "mask": MASK_B}, False)
    np.testing.assert_allclose(loss, np.sum(out.per_example * MASK_B) / 5 + out.penalty, 1e-6)
    sums = task.eval_step(state, {"x": inputs(), "mask": MASK_B})
    assert {"sparsity", "code_mean"} <= set(sums) <= set(task.metric_modes) | {"count"}
    code = np.asarray(out.code)
    np.testing.assert_allclose(sums["code_mean"], code[:-1].mean(1).sum(), rtol=1e-5)


# --- tied weights -------------------------------------------------------------------------


def test_tied_decoder_stores_only_biases_and_decodes_with_the_transposed_kernels():
    task = make_task(tied=True)
    x_BxD = inputs()
    state = task.init(jax.random.PRNGKey(0), {"x": x_BxD})
    enc, dec = state.params["encoder"], state.params["decoder"]
    shapes = jax.tree.map(np.shape, dec)
    assert shapes == {"Dense_0": {"bias": (H,)}, "Dense_1": {"bias": (D,)}}
    count = sum(a.size for a in jax.tree.leaves(state.params))
    assert count == (D * H + H + H * K + K) + (H + D)  # encoder + the decoder's biases
    w0, b0 = np.asarray(enc["Dense_0"]["kernel"]), np.asarray(enc["Dense_0"]["bias"])
    w1, b1 = np.asarray(enc["Dense_1"]["kernel"]), np.asarray(enc["Dense_1"]["bias"])
    c0, c1 = np.asarray(dec["Dense_0"]["bias"]), np.asarray(dec["Dense_1"]["bias"])
    z = np.tanh(x_BxD @ w0 + b0) @ w1 + b1
    expected = np.tanh(z @ w1.T + c0) @ w0.T + c1  # decoder = encoder's kernels, transposed
    x_hat, _, _ = task.reconstruct(state, state.params, x_BxD)
    np.testing.assert_allclose(x_hat, expected, rtol=1e-5, atol=1e-6)
    # Gradients reach the shared kernels through both of their uses.
    result = gradcheck(
        lambda p, x: task.objective(p, state, {"x": x}, train=False)[0], state.params, x_BxD
    )
    result.assert_ok(1e-6)
    new_state, _ = jax.jit(task.train_step)(state, {"x": x_BxD})
    assert jax.tree.map(np.shape, new_state.params) == jax.tree.map(np.shape, state.params)


def test_drop_kernels_removes_a_layer_that_had_only_a_kernel():
    params = {"Dense_0": {"kernel": 1}, "BatchNorm_0": {"scale": 2}, "Dense_1": {"kernel": 3}}
    params["Dense_1"]["bias"] = 4
    assert drop_kernels(params) == {"BatchNorm_0": {"scale": 2}, "Dense_1": {"bias": 4}}


# --- corruption ---------------------------------------------------------------------------


@pytest.mark.parametrize("p", [0.1, 0.5])
def test_masking_zeroes_a_fraction_p_and_keeps_the_rest(p):
    x = jnp.full((1000, 1000), 3.0)
    x_tilde = np.asarray(mask_features(jax.random.PRNGKey(0), x, p))
    # 1e6 Bernoulli(p) draws: standard error <= 5e-4, the bound is > 5 standard errors.
    assert abs(np.mean(x_tilde == 0) - p) < 3e-3
    assert set(np.unique(x_tilde)) == {0.0, 3.0}  # kept entries are not rescaled


def test_gaussian_corruption_adds_zero_mean_noise_of_std_sigma():
    x = jnp.linspace(-1, 1, 1_000_000).reshape(1000, 1000)
    noise = np.asarray(add_gaussian_noise(jax.random.PRNGKey(1), x, 0.3) - x)
    assert abs(noise.mean()) < 3e-3 and abs(noise.std() - 0.3) < 3e-3


def test_denoising_trains_on_corrupted_inputs_against_clean_targets_and_evaluates_clean():
    corrupt = make_corruption("masking", 0.5)
    task = make_task(corruption=corrupt)
    plain = dataclasses.replace(task, corruption=None)
    x_BxD = inputs(n=32)
    state = task.init(jax.random.PRNGKey(0), {"x": x_BxD})
    # Training: the reconstruction of x_tilde (key from the step) compared with the clean x.
    _, out = task.objective(state.params, state, {"x": x_BxD}, train=True)
    x_tilde = corrupt(state.step_key("corruption"), x_BxD)
    assert 0.3 < float(jnp.mean(x_tilde == 0)) < 0.7
    x_hat, _, _ = task.reconstruct(state, state.params, x_tilde, train=True)
    np.testing.assert_allclose(out.per_example, mean_squared_error(x_hat, x_BxD), rtol=1e-6)
    clean_loss = plain.objective(state.params, state, {"x": x_BxD}, train=True)[1].per_example
    assert not np.allclose(out.per_example, clean_loss)
    # Evaluation reads clean inputs: the same metrics as without corruption.
    for name, value in task.eval_step(state, {"x": x_BxD}).items():
        np.testing.assert_array_equal(value, plain.eval_step(state, {"x": x_BxD})[name])
    # Same state, same noise (reproducible, resumable); the next step draws new noise.
    step = jax.jit(task.train_step)
    a, b = step(state, {"x": x_BxD}), step(state, {"x": x_BxD})
    np.testing.assert_array_equal(a[1]["loss"], b[1]["loss"])
    later = state.replace(step=state.step + 1)
    assert not np.array_equal(corrupt(later.step_key("corruption"), x_BxD), x_tilde)


# --- config errors and the shipped variants -----------------------------------------------


def digits_config(task=None, encoder=None, decoder=None) -> dict:
    return {
        "name": "t",
        "data": {"name": "digits"},
        "task": {"name": "autoencoder", **(task or {})},
        "models": {
            "encoder": {"name": "mlp", "widths": [16, 8], **(encoder or {})},
            "decoder": {"name": "mlp", "widths": [8, 16], **(decoder or {})},
        },
        "train": {"epochs": 1},
    }


ERRORS = {
    "tied, not mirrored": (
        digits_config({"tied": True}, decoder={"widths": [16, 8]}),
        "t.toml: models.decoder.widths: tied = true needs the encoder's widths reversed, "
        "[8, 16], so that every decoder kernel is an encoder kernel transposed; got [16, 8]",
    ),
    "tied, maxout": (
        digits_config({"tied": True}, encoder={"activation": "maxout"}),
        "t.toml: models.encoder: tied = true cannot tie activation = 'maxout'",
    ),
    "kl without sigmoid": (
        digits_config({"sparsity_kl": 1.0}),
        "t.toml: task: sparsity_kl needs code_activation = 'sigmoid'",
    ),
    "target without kl": (
        digits_config({"sparsity_target": 0.1, "sparsity_l1": 1.0}),
        "t.toml: task: sparsity_target is the KL term's rate: set sparsity_kl > 0 too",
    ),
    "corruption without level": (
        digits_config({"corruption": "gaussian"}),
        "t.toml: task: corruption = 'gaussian' needs corruption_level (sigma)",
    ),
    "masking everything": (
        digits_config({"corruption": "masking", "corruption_level": 1.0}),
        "t.toml: task: masking needs corruption_level < 1; got 1.0",
    ),
    "level without corruption": (
        digits_config({"corruption_level": 0.3}),
        "t.toml: task: corruption_level needs corruption = 'masking' or 'gaussian'",
    ),
    "unknown corruption": (
        digits_config({"corruption": "salt", "corruption_level": 0.3}),
        "t.toml: task.corruption: unknown corruption 'salt'",
    ),
}


@pytest.mark.parametrize("case", list(ERRORS))
def test_an_option_that_does_not_fit_is_one_line(case):
    raw, start = ERRORS[case]
    with pytest.raises(ConfigError) as info:
        build(validate(raw, "t.toml"), "t.toml")
    (line,) = info.value.lines()
    assert line.startswith(start), line


def test_a_mismatched_tied_decoder_exits_2_with_one_line_and_no_run(tmp_path, capsys):
    config = write_toml(tmp_path / "t.toml", ERRORS["tied, not mirrored"][0])
    run_dir = tmp_path / "run"
    code = cli_main(["--no-compile-cache", "run", str(config), "--run-dir", str(run_dir)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and not run_dir.exists()
    assert len(err) == 1 and "models.decoder.widths: tied = true needs" in err[0], err


VARIANTS = {  # shipped experiment -> metrics its training step must log
    "digits_tied_autoencoder": {"loss", "mse"},
    "digits_sparse_autoencoder": {"loss", "mse", "sparsity", "code_mean"},
}  # the linear_autoencoder fixture and the resume test train the linear and denoising ones


@pytest.mark.parametrize("name", list(VARIANTS))
def test_shipped_variant_takes_a_finite_training_step(name):
    path = REPO / "experiments" / f"{name}.toml"
    experiment = build(load_config(path), str(path))
    batch = {"x": np.asarray(experiment.data.train.x[:16])}
    state = experiment.task.init(jax.random.PRNGKey(0), batch)
    state, sums = jax.jit(experiment.task.train_step)(state, batch)
    assert set(sums) == VARIANTS[name] | {"count"}
    assert all(math.isfinite(float(v)) for v in sums.values())


def test_shrunk_anomaly_experiment_reports_a_roc_auc_and_draws_the_scores(tmp_path):
    path = REPO / "experiments" / "digits_anomaly.toml"
    cfg = load_config(path, ["train.epochs=3", "train.log_every=1000"])
    experiment = build(cfg, str(path))
    assert 0 not in set(experiment.data.train.y) and 0 in set(experiment.data.test.y)
    summary = run_experiment(experiment, tmp_path / "run")
    report = summary["report"]
    assert all(math.isfinite(v) for v in report.values())
    # Three epochs already separate the unseen zeros from the digits it was trained on
    # (0.86 here; 60 epochs give 0.97, chance is 0.5).
    assert report["anomaly_auc"] > 0.75
    assert report["anomaly_score_holdout"] > report["anomaly_score_normal"]
    png = tmp_path / "run" / "anomaly_scores.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


SHIPPED = [*VARIANTS, "digits_denoising_autoencoder", "digits_linear_autoencoder"]


@pytest.mark.parametrize("name", ["digits_autoencoder", *SHIPPED, "digits_anomaly"])
def test_a_saved_config_loads_again(name, tmp_path):
    """A run's config.toml spells every default out; resume and eval must accept it."""
    cfg = load_config(REPO / "experiments" / f"{name}.toml")
    save_config(cfg, tmp_path / "config.toml")
    assert load_config(tmp_path / "config.toml") == cfg


def test_denoising_run_resumes_bit_identically(tmp_path):
    """The corruption's keys come from (seed, step): a stopped run redraws the same noise."""
    path = REPO / "experiments" / "digits_denoising_autoencoder.toml"
    overrides = ["data.train_per_class=8", "train.batch_size=16", "train.epochs=3"]
    overrides += ["train.mode=step", "train.log_every=5", "train.checkpoint_every=5"]
    cfg = load_config(path, overrides)
    experiment = build(cfg, str(path))
    task, data = experiment.task, experiment.data
    whole = fit(task, data, cfg.train, cfg.seed, run=RunDir.create(tmp_path / "whole"))
    run = RunDir.create(tmp_path / "split")
    first = fit(task, data, cfg.train, cfg.seed, run=run, stop=StopAfter(7))
    assert first.status == "interrupted" and 0 < int(first.state.step) < int(whole.state.step)
    resumed = fit(task, data, cfg.train, cfg.seed, run=run, resume=True)
    for a, b in zip(jax.tree.leaves(resumed.state), jax.tree.leaves(whole.state), strict=True):
        np.testing.assert_array_equal(a, b)
    assert resumed.final == whole.final
