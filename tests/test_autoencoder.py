"""The autoencoder task: its loss is the MSE formula, its gradient is right, one step trains
both models without retracing, padding changes nothing, labels are never read, configs that
do not fit are one-line errors, and the shipped experiment reconstructs digits."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from dlcore.config.loading import ConfigError, load_config, validate
from dlcore.data.dataset import Dataset, Split
from dlcore.engine.compiled import eval_chunks, sum_metrics
from dlcore.engine.loop import fit
from dlcore.engine.train_config import TrainConfig
from dlcore.experiment import build, run_experiment
from dlcore.gradcheck import gradcheck
from dlcore.models.mlp import MLP
from dlcore.tasks.autoencoder import AutoencoderTask
from tests.helpers import REPO

B, D, K = 6, 5, 3  # batch, input features, bottleneck
EXPERIMENT = REPO / "experiments" / "digits_autoencoder.toml"


def make_task(**mlp) -> AutoencoderTask:
    """A tiny smooth (tanh) autoencoder, D -> 4 -> K -> 4 -> D."""
    layers = {"activation": "tanh", **mlp}
    return AutoencoderTask(
        encoder=MLP(widths=(4,), out_features=K, **layers),
        decoder=MLP(widths=(4,), out_features=D, **layers),
        optimizer=optax.adam(1e-2),
        bottleneck=K,
    )


def inputs(n: int = B, seed: int = 0, dtype=np.float32) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, D)).astype(dtype)


def test_loss_and_mse_are_the_mean_squared_reconstruction_error():
    with jax.enable_x64(True):
        task = make_task()
        x_BxD = inputs(dtype=np.float64)
        state = task.init(jax.random.PRNGKey(0), {"x": x_BxD})
        params = jax.tree.map(lambda p: p.astype(jnp.float64), state.params)
        state = state.replace(params=params)
        # The composition written out, independently of the task's own forward pass.
        z_BxK = task.encoder.apply({"params": params["encoder"]}, x_BxD, train=False)
        x_hat = np.asarray(task.decoder.apply({"params": params["decoder"]}, z_BxK, train=False))
        expected = np.mean((x_hat - x_BxD) ** 2)  # (1/B) sum_i (1/D) sum_d (x_hat - x)^2

        loss, out = task.objective(params, state, {"x": x_BxD}, train=False)
        per_example_B = out.per_example
        sums = task.eval_step(state, {"x": x_BxD})
        assert loss.dtype == jnp.float64
        np.testing.assert_allclose(loss, expected, rtol=1e-12)
        np.testing.assert_allclose(per_example_B, np.mean((x_hat - x_BxD) ** 2, axis=1), rtol=1e-12)
        assert float(sums["count"]) == B
        for name in ("loss", "mse"):
            np.testing.assert_allclose(sums[name] / sums["count"], expected, rtol=1e-12)


def test_objective_gradient_matches_finite_differences():
    task = make_task()
    x_BxD = inputs()
    state = task.init(jax.random.PRNGKey(1), {"x": x_BxD})

    def objective(params, x):
        return task.objective(params, state, {"x": x}, train=False)[0]

    result = gradcheck(objective, state.params, x_BxD)
    assert set(result.rel_err) and all("encoder" in p or "decoder" in p for p in result.rel_err)
    result.assert_ok(1e-6)


@pytest.mark.parametrize(
    "mlp",
    [{}, {"dropout": 0.5}, {"norm": "batch"}],
    ids=["plain", "dropout", "batch_norm"],
)
def test_train_step_updates_encoder_and_decoder_and_traces_once(mlp):
    task = make_task(**mlp)
    state = task.init(jax.random.PRNGKey(0), {"x": inputs()})

    traces = []

    @jax.jit
    def step(state, batch):
        traces.append(1)  # runs only while tracing
        return task.train_step(state, batch)

    first = state
    for seed in range(3):  # new values, same shapes: no retrace
        state, sums = step(state, {"x": inputs(seed=seed)})
    assert len(traces) == 1
    assert int(state.step) == 3 and float(sums["count"]) == B
    for role in ("encoder", "decoder"):
        moved = jax.tree.map(
            lambda a, b: bool(jnp.any(a != b)), first.params[role], state.params[role]
        )
        assert all(jax.tree.leaves(moved)), f"{role} parameters did not all change"
    if mlp.get("norm") == "batch":  # running statistics of both models are carried
        assert set(state.model_state) == {"encoder", "decoder"}
        old, new = first.model_state["encoder"], state.model_state["encoder"]
        assert not np.allclose(jax.tree.leaves(old)[0], jax.tree.leaves(new)[0])


def test_padded_eval_batches_give_the_metrics_of_the_unpadded_split():
    task = make_task(dropout=0.5)  # eval must switch dropout off, or the two would differ
    x_NxD = inputs(n=7, seed=3)
    state = task.init(jax.random.PRNGKey(0), {"x": x_NxD})
    # No "y" field at all: the task reads only x.
    whole = jax.device_get(task.eval_step(state, {"x": x_NxD}))
    chunks = eval_chunks({"x": x_NxD}, chunk=4)  # 4 + (3 real, 1 padding row of zeros)
    assert float(chunks[-1]["mask"].sum()) == 3
    padded = sum_metrics([task.eval_step(state, c) for c in chunks])
    assert set(padded) == {"loss", "mse", "count"} and float(padded["count"]) == 7
    for name in ("loss", "mse"):
        np.testing.assert_allclose(padded[name], whole[name], rtol=1e-5)


def digits_config(task=None, **sections) -> dict:
    raw = {
        "data": {"name": "digits"},
        "task": {"name": "autoencoder", **(task or {})},
        "models": {"encoder": {"name": "mlp", "widths": [8]}, "decoder": {"name": "mlp"}},
        "train": {"epochs": 1},
    }
    return {**raw, **sections}


@pytest.mark.parametrize("bottleneck", [2, 7])
def test_bottleneck_from_config_is_the_encoders_output_width(bottleneck):
    built = build(validate(digits_config({"bottleneck": bottleneck}), "t.toml"), "t.toml")
    x = built.data.train.x[:4]
    state = built.task.init(jax.random.PRNGKey(0), {"x": x})
    assert state.params["encoder"]["Dense_1"]["kernel"].shape == (8, bottleneck)
    x_hat, z, _ = built.task.reconstruct(state, state.params, x)
    assert z.shape == (4, bottleneck) and x_hat.shape == x.shape == (4, 64)


def test_an_unlabelled_data_set_trains_through_the_loop():
    rng = np.random.default_rng(0)
    data = Dataset(
        "unlabelled",
        *(Split(x=rng.normal(size=(n, D)).astype(np.float32)) for n in (24, 7, 7)),
        num_classes=None,
    )
    result = fit(make_task(), data, TrainConfig(epochs=2, batch_size=8, mode="step"), seed=0)
    assert set(result.final) == {"train", "val", "test"}
    assert all(math.isfinite(result.final[s]["mse"]) for s in result.final)


ERRORS = {
    "token data": (
        lambda: {**digits_config(), "data": {"name": "parity"}},
        "t.toml: task.name: autoencoder needs x as real-valued inputs to reconstruct; "
        "parity has x tokens [",
    ),
    "no decoder": (
        lambda: {**digits_config(), "models": {"encoder": {"name": "mlp"}}},
        "t.toml: models.decoder: missing; the autoencoder task needs [models.encoder], "
        "[models.decoder] (e.g. name = 'mlp')",
    ),
    "[model] instead": (
        lambda: {**digits_config(), "models": {}, "model": {"name": "mlp"}},
        "t.toml: model: the autoencoder task uses [models.encoder], [models.decoder], not",
    ),
    "a second chain": (
        lambda: {**digits_config(), "optimizers": {"encoder": {"name": "sgd"}}},
        "t.toml: optimizers.encoder: the autoencoder task has no chain 'encoder'; it has one "
        "chain: use [optimizer]",
    ),
    "a sequence decoder": (
        lambda: {
            **digits_config(),
            "models": {"encoder": {"name": "mlp"}, "decoder": {"name": "rnn", "input": "real"}},
        },
        "t.toml: models.decoder.name: rnn needs x as real-valued sequences [T, D]; the code has "
        "x features [16] (the encoder's output)",
    ),
    "a classification loss": (
        lambda: digits_config({"loss": "softmax_cross_entropy"}),
        "t.toml: task.loss: unknown reconstruction loss 'softmax_cross_entropy'",
    ),
    "no bottleneck": (lambda: digits_config({"bottleneck": 0}), "t.toml: task.bottleneck: "),
}


@pytest.mark.parametrize("case", list(ERRORS))
def test_a_config_that_does_not_fit_is_one_line(case):
    raw, start = ERRORS[case]
    with pytest.raises(ConfigError) as info:
        build(validate(raw(), "t.toml"), "t.toml")
    (line,) = info.value.lines()
    assert line.startswith(start), line


def test_shrunk_digits_experiment_reconstructs_better_than_zeros_and_draws_them(tmp_path):
    cfg = load_config(EXPERIMENT, ["train.epochs=4", "train.log_every=100"])
    built = build(cfg, str(EXPERIMENT))
    summary = run_experiment(built, tmp_path / "run")
    assert summary["status"] == "completed"
    for split in ("val", "test"):
        x = built.data.split(split).x
        mse = summary["final"][split]["mse"]
        assert math.isfinite(mse) and mse < 0.7 * float(np.mean(x.astype(np.float64) ** 2))
    report = summary["report"]
    assert all(math.isfinite(v) for v in report.values())
    np.testing.assert_allclose(report["test_mse"], summary["final"]["test"]["mse"], rtol=1e-4)
    png = tmp_path / "run" / "reconstructions.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
