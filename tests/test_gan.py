"""The gan task and the ring data set: the generator's gradient through D, the two-player
step written out by hand, one compile, config errors, the ring's geometry, and a SIGKILLed
GAN run (two D steps per G step, least squares, label smoothing) resumed bit-identically
with real processes. The losses: tests/test_gan_losses.py; the task's options:
tests/test_gan_options.py."""

import copy
import json
import signal

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from dlcore.config.loading import ConfigError, load_config, validate
from dlcore.data.registry import DATASETS
from dlcore.data.ring import RingConfig, make_ring
from dlcore.engine.compiled import CompiledTask
from dlcore.experiment import build, restore_run, run_experiment
from dlcore.gradcheck import gradcheck
from dlcore.quality.modes import near_modes
from dlcore.runs.run_dir import RunDir
from dlcore.tasks.gan_losses import non_saturating_generator_loss
from tests.helpers import REPO, committed_steps, run_cli, start_and_interrupt

MLP8 = {"name": "mlp", "widths": [8], "activation": "tanh"}
RAW = {
    "name": "t",
    "data": {"name": "ring", "n_samples": 200},
    "task": {"name": "gan", "latent_dim": 2},
    "models": {"generator": MLP8, "discriminator": MLP8},
    "optimizer": {"name": "adam", "learning_rate": 0.01, "b1": 0.5},
    "train": {"batch_size": 16},
}


def built(**changes):
    raw = copy.deepcopy(RAW)
    raw.update(copy.deepcopy(changes))
    return build(validate(raw, "t"), "t")


def data_and_task():
    experiment = built()
    return experiment.data, experiment.task


# ---- the generator's objective ------------------------------------------------------------


def test_generator_objective_through_the_discriminator_has_correct_gradients():
    task = built().task  # tanh models: no kinks for the finite differences to straddle
    z = np.random.default_rng(0).standard_normal((6, 2))
    state = task.init(jax.random.PRNGKey(0), {"x": np.zeros((6, 2), np.float32)})

    def objective(params, z):
        x = task.generator.apply({"params": params["generator"]}, z, train=False)
        logits = task.discriminator.apply({"params": params["discriminator"]}, x, train=False)
        return jnp.mean(non_saturating_generator_loss(logits[:, 0]))

    gradcheck(objective, state.params, z).assert_ok(1e-6)


# ---- the step ------------------------------------------------------------------------------


def test_train_step_is_a_d_update_then_a_g_update_through_the_updated_d():
    task = built().task
    x = jnp.asarray(make_ring(RingConfig(n_samples=100)).train.x[:16])
    state = task.init(jax.random.PRNGKey(1), {"x": x})
    new, sums = jax.jit(task.train_step)(state, {"x": x})

    def gen(p, z):
        return task.generator.apply({"params": p}, z, train=True)

    def disc(p, v):
        return task.discriminator.apply({"params": p}, v, train=True)[:, 0]

    def update(opt, grads, name):
        updates, opt_state = opt.update(grads, state.opt_state[name], state.params[name])
        return optax.apply_updates(state.params[name], updates), opt_state

    g0, d0 = state.params["generator"], state.params["discriminator"]
    fake = gen(g0, jax.random.normal(state.step_key("d_noise"), (16, 2)))
    d_grads = jax.grad(
        lambda p: jnp.mean(-jax.nn.log_sigmoid(disc(p, x)) - jax.nn.log_sigmoid(-disc(p, fake)))
    )(d0)
    d1, d_opt = update(task.d_optimizer, d_grads, "discriminator")
    z_g = jax.random.normal(state.step_key("g_noise"), (16, 2))

    def g_update(d_params):
        grads = jax.grad(lambda p: jnp.mean(-jax.nn.log_sigmoid(disc(d_params, gen(p, z_g)))))(g0)
        return update(task.g_optimizer, grads, "generator")

    g1, g_opt = g_update(d1)
    expected = {"generator": g1, "discriminator": d1}
    close = dict(rtol=1e-5, atol=1e-6)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, **close), new.params, expected)
    jax.tree.map(
        lambda a, b: np.testing.assert_allclose(a, b, **close),
        new.opt_state,
        {"generator": g_opt, "discriminator": d_opt},
    )
    # G went through the *updated* D: with the old one its parameters would differ
    stale, _ = g_update(d0)
    assert not np.allclose(stale["Dense_0"]["kernel"], g1["Dense_0"]["kernel"], rtol=1e-6)
    assert int(new.step) == 1 and float(sums["count"]) == 16
    assert float(sums["d_loss"]) > 0 and float(sums["g_loss"]) > 0


def test_one_compiled_step_moves_both_players_and_is_traced_once():
    data, task = data_and_task()
    compiled = CompiledTask(task)
    batches = [{"x": data.train.x[i : i + 16]} for i in (0, 16, 32)]
    state = task.init(jax.random.PRNGKey(0), batches[0])
    before = jax.device_get(state)  # the compiled step donates its input
    for batch in batches:
        state, sums, _ = compiled.train_step(state, batch)
    assert compiled.traces["train_step"] == 1
    assert int(state.step) == 3
    np.testing.assert_array_equal(state.rng, before.rng)
    for part in ("params", "opt_state"):
        for role in ("generator", "discriminator"):
            old = jax.tree.leaves(getattr(before, part)[role])
            new = jax.tree.leaves(getattr(state, part)[role])
            assert old and len(old) == len(new)
            # (the chains' health flag, a bool, stays True while training is finite)
            pairs = [(a, b) for a, b in zip(old, new, strict=True) if np.asarray(a).dtype != bool]
            moved = [not np.array_equal(a, b) for a, b in pairs]
            assert all(moved), f"{part}[{role}] has leaves that did not change"


@pytest.mark.parametrize("variant", [{"norm": "batch"}, {"dropout": 0.3}], ids=str)
def test_models_with_batch_statistics_or_dropout_train(variant):
    model = {**MLP8, **variant}
    experiment = built(models={"generator": model, "discriminator": model})
    data, task = experiment.data, experiment.task
    batch = {"x": data.train.x[:16]}
    state = task.init(jax.random.PRNGKey(0), batch)
    assert set(state.model_state) == (
        {"generator", "discriminator"} if "norm" in variant else set()
    )
    new, sums = jax.jit(task.train_step)(state, batch)
    metrics = jax.jit(task.eval_step)(new, {**batch, "mask": np.ones(16, np.float32)})
    for leaf in jax.tree.leaves((new, sums, metrics)):
        assert np.all(np.isfinite(np.asarray(leaf, np.float64)))
    for old, moved in zip(
        jax.tree.leaves(state.model_state), jax.tree.leaves(new.model_state), strict=True
    ):
        assert not np.array_equal(old, moved)  # running statistics were updated


def test_eval_ignores_padding_and_scores_samples_against_the_modes():
    data, task = data_and_task()
    state = task.init(jax.random.PRNGKey(0), {"x": data.val.x[:8]})
    x = data.val.x[:12]
    mask = np.r_[np.ones(9), np.zeros(3)].astype(np.float32)
    garbage = x.copy()
    garbage[9:] = 1e6
    eval_step = jax.jit(task.eval_step)
    a, b = (
        {k: float(v) for k, v in eval_step(state, {"x": inputs, "mask": mask}).items()}
        for inputs in (x, garbage)
    )
    assert a == pytest.approx(b) and float(a["count"]) == 9
    assert set(a) == {"d_loss", "g_loss", "high_quality", "count"}
    assert task.default_metric == "high_quality" and task.metric_modes["high_quality"] == "max"


def test_real_ring_samples_are_high_quality_at_the_rayleigh_rate():
    data = make_ring(RingConfig(n_samples=20_000))
    modes = np.asarray(data.info["modes"])
    near = np.asarray(near_modes(data.train.x, modes, data.info["mode_std"]))
    # ||x - mu|| of a 2-D isotropic Gaussian is Rayleigh: P(<= 3 std) = 1 - exp(-9/2)
    assert near.any(axis=1).mean() == pytest.approx(1 - np.exp(-4.5), abs=0.005)
    assert near.sum(axis=1).max() == 1  # the modes are far apart: never two at once


def test_report_writes_the_samples_png_and_counts_modes(tmp_path):
    data, task = data_and_task()
    state = task.init(jax.random.PRNGKey(0), {"x": data.train.x[:16]})
    report = task.report(state, data, tmp_path)
    assert set(report) == {"modes_covered", "high_quality"}
    assert report["modes_covered"] in range(9) and 0.0 <= report["high_quality"] <= 1.0
    assert (tmp_path / "samples.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert task.report(state, data, tmp_path) == report  # a pure function of the state


# ---- config errors -------------------------------------------------------------------------

BAD = [
    (
        {"data": {"name": "parity", "n_samples": 40, "max_len": 6}},
        "t: task.name: gan needs x as real-valued samples to imitate; parity has x tokens",
    ),
    (
        {"models": {"discriminator": MLP8}},
        "t: models.generator: missing; the gan task needs [models.generator], "
        "[models.discriminator] (e.g. name = 'mlp')",
    ),
    (
        {"model": MLP8},
        "t: model: the gan task uses [models.generator], [models.discriminator], not "
        "[model]; move it",
    ),
    (
        {"optimizers": {"critic": {"name": "sgd"}}},
        "t: optimizers.critic: the gan task has no chain 'critic'; its chains: generator, "
        "discriminator",
    ),
    ({"data": {"name": "ring", "preprocess": "standardize"}}, "t: data.preprocess: "),
]


@pytest.mark.parametrize("changes, start", BAD, ids=lambda v: str(v)[:30])
def test_a_bad_gan_config_is_a_one_line_error(changes, start):
    with pytest.raises(ConfigError) as info:
        built(**changes)
    (line,) = info.value.lines()
    assert line.startswith(start), line


# ---- the ring data set ---------------------------------------------------------------------


def test_ring_is_deterministic_unlabelled_and_registered():
    cfg = RingConfig(n_samples=500, seed=3)
    a, b, other = make_ring(cfg), make_ring(cfg), make_ring(RingConfig(n_samples=500, seed=4))
    assert a.fingerprint() == b.fingerprint() != other.fingerprint()
    assert {len(a.train), len(a.val), len(a.test)} == {400, 50}
    for split in (a.train, a.val, a.test):
        assert list(split.fields) == ["x"] and split.x.dtype == np.float32
    assert a.spec().describe() == "ring: x features [2]"
    assert DATASETS["ring"].config is RingConfig
    json.dumps(a.info)  # stored with the run


@pytest.mark.parametrize("modes, radius", [(8, 2.0), (5, 1.0)])
def test_ring_modes_lie_evenly_on_the_circle(modes, radius):
    cfg = RingConfig(n_samples=4000, modes=modes, radius=radius, std=0.05)
    data = make_ring(cfg)
    mu = np.asarray(data.info["modes"])
    assert mu.shape == (modes, 2) and data.info["mode_std"] == 0.05
    np.testing.assert_allclose(np.linalg.norm(mu, axis=1), radius)
    chord = np.linalg.norm(mu - np.roll(mu, 1, axis=0), axis=1)
    np.testing.assert_allclose(chord, 2 * radius * np.sin(np.pi / modes))
    x = data.train.x
    nearest = np.argmin(np.linalg.norm(x[:, None, :] - mu[None], axis=-1), axis=1)
    offsets = x - mu[nearest]
    np.testing.assert_allclose(offsets.std(axis=0), 0.05, rtol=0.1)  # per coordinate
    counts = np.bincount(nearest, minlength=modes)
    assert counts.min() > 0.7 * len(x) / modes  # equal weights


# ---- SIGKILL and resume with real processes ------------------------------------------------

# The shipped experiment, shrunk: 1000 single steps, a checkpoint every 50; with the
# options that add state to a step (two D updates in it) and a non-default loss.
SHRINK = [
    "task.loss=least_squares",
    "task.label_smoothing=0.1",
    "task.d_steps=2",
    "data.n_samples=1000",
    "models.generator.widths=[16]",
    "models.discriminator.widths=[16]",
    "optimizer.schedule.decay_steps=500",
    "train.mode=step",
    "train.batch_size=32",
    "train.epochs=20",
    "train.eval_every=5",
    "train.log_every=25",
    "train.checkpoint_every=50",
]


def _sets():
    return [arg for kv in SHRINK for arg in ("--set", kv)]


def test_sigkilled_gan_run_resumes_bit_identically(tmp_path):
    toml, cache = str(REPO / "experiments" / "ring_gan.toml"), tmp_path / "xla-cache"
    ref_dir, killed = tmp_path / "ref", tmp_path / "killed"
    run_experiment(load_config(toml, SHRINK), ref_dir)  # uninterrupted: in this process

    code, printed = start_and_interrupt(
        toml,
        killed,
        cache,
        signal.SIGKILL,
        ready=lambda d: any(s >= 100 for s in committed_steps(d)),
        extra_args=_sets(),
    )
    assert code == -signal.SIGKILL, printed
    assert not (killed / "summary.json").exists()
    resumed = run_cli("resume", str(killed), "--quiet", cache_dir=cache)
    assert resumed.returncode == 0, resumed.stderr

    a, b = restore_run(killed, "latest").state, restore_run(ref_dir, "latest").state
    assert int(a.step) == int(b.step) == 500
    parts = {"params": (a.params, b.params), "opt_state": (a.opt_state, b.opt_state)}
    for part, (mine, theirs) in parts.items():
        for role in ("generator", "discriminator"):
            leaves = jax.tree.leaves_with_path(mine[role])
            assert leaves
            for (path, x), y in zip(leaves, jax.tree.leaves(theirs[role]), strict=True):
                np.testing.assert_array_equal(x, y, err_msg=f"{part}[{role}]{path}")
    np.testing.assert_array_equal(a.rng, b.rng)
    assert RunDir(killed).read_metrics() == RunDir(ref_dir).read_metrics()
    summary, reference = (json.loads((d / "summary.json").read_text()) for d in (killed, ref_dir))
    assert summary["final"] == reference["final"] and summary["report"] == reference["report"]
    assert (killed / "samples.png").exists()
