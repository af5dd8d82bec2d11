"""Transfer learning: ``[init]`` loads another run's parameters, ``train_only`` freezes the
rest, and a transfer run resumes from its own checkpoints.

One source run serves every test: an MLP with batch norm on
digits, trained with a rate large enough that its ``best`` and ``latest`` checkpoints differ.
"""

import shutil
import signal

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dlcore.config.errors import ConfigError, FieldError
from dlcore.config.init_from import InitConfig
from dlcore.config.loading import validate
from dlcore.engine.loop import fit
from dlcore.experiment import build, restore_run, run_experiment
from dlcore.experiment.transfer import map_path, plan_transfer
from dlcore.optim.freezing import param_paths
from tests.helpers import committed_steps, run_cli, start_and_interrupt, write_toml

SOURCE = {
    "name": "source",
    "data": {"name": "digits"},
    "model": {"name": "mlp", "widths": [16], "norm": "batch"},
    "optimizer": {"name": "sgd", "learning_rate": 2.0},
    "train": {"epochs": 4, "batch_size": 64},
}
# Params: Dense_0/kernel [64, 16], BatchNorm_0/{scale,bias} [16], Dense_1/{kernel [16, 10],
# bias [10]}; model_state: batch_stats/BatchNorm_0/{mean,var} [16].


def target(source_dir, **init) -> dict:
    """A target experiment on the same data, initialised from ``source_dir``."""
    return {
        "name": "target",
        "seed": 7,
        "data": {"name": "digits"},
        "model": {"name": "mlp", "widths": [16], "norm": "batch"},
        "optimizer": {"name": "adam", "learning_rate": 0.01},
        "train": {"epochs": 1, "batch_size": 64},
        "init": {"run": str(source_dir), **init},
    }


def bits(x) -> np.ndarray:
    """The raw bytes of an array, so equality is bitwise (NaN-proof, -0.0 != 0.0)."""
    return np.ascontiguousarray(np.asarray(x)).view(np.uint8)


def leaves(tree) -> dict[str, np.ndarray]:
    return dict(zip(param_paths(tree), map(np.asarray, jax.tree.leaves(tree)), strict=True))


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = tmp_path_factory.mktemp("transfer")
    run_experiment(validate(SOURCE, "source.toml"), root / "source")
    return root


@pytest.fixture(scope="module")
def source(root):
    """The source run's params and model state at ``best`` and ``latest``."""
    opened = {c: restore_run(root / "source", c) for c in ("best", "latest")}
    steps = {c: int(r.state.step) for c, r in opened.items()}
    assert steps["best"] != steps["latest"], steps  # else best vs latest proves nothing
    return {c: (leaves(r.state.params), leaves(r.state.model_state)) for c, r in opened.items()}


def initial_state(cfg: dict):
    built = build(validate(cfg, "target.toml"), "target.toml")
    example = built.data.train.rows(slice(0, built.cfg.train.batch_size))
    return built, built.task.init(jax.random.PRNGKey(built.cfg.seed), example)


@pytest.mark.parametrize("checkpoint", ["best", "latest"])
def test_loading_copies_the_checkpoint_bitwise_and_leaves_the_head_fresh(root, source, checkpoint):
    cfg = target(root / "source", checkpoint=checkpoint, exclude=["Dense_1"])
    _, state = initial_state(cfg)
    fresh_cfg = {k: v for k, v in cfg.items() if k != "init"}
    _, fresh = initial_state(fresh_cfg)
    params, model_state = leaves(state.params), leaves(state.model_state)
    src_params, src_state = source[checkpoint]
    other_params, _ = source["latest" if checkpoint == "best" else "best"]
    for path in ("Dense_0/kernel", "BatchNorm_0/scale", "BatchNorm_0/bias"):
        assert np.array_equal(bits(params[path]), bits(src_params[path])), path
        assert not np.array_equal(params[path], other_params[path]), path
    for path in ("batch_stats/BatchNorm_0/mean", "batch_stats/BatchNorm_0/var"):
        assert np.array_equal(bits(model_state[path]), bits(src_state[path])), path
    for path in ("Dense_1/kernel", "Dense_1/bias"):  # the replaced head: the fresh draw
        assert np.array_equal(bits(params[path]), bits(leaves(fresh.params)[path])), path


def test_a_map_loads_a_source_layer_into_another_target_layer(root, source):
    # Target [16, 16]: its new middle layer starts fresh, its head is the source's head.
    cfg = target(root / "source", map={"Dense_2": "Dense_1"}, exclude=["Dense_1", "BatchNorm_1"])
    cfg["model"]["widths"] = [16, 16]
    _, state = initial_state(cfg)
    params, model_state = leaves(state.params), leaves(state.model_state)
    src_params, src_state = source["best"]
    assert np.array_equal(bits(params["Dense_2/kernel"]), bits(src_params["Dense_1/kernel"]))
    assert params["Dense_1/kernel"].shape == (16, 16)
    mean = "batch_stats/BatchNorm_0/mean"
    assert np.array_equal(bits(model_state[mean]), bits(src_state[mean]))
    assert np.array_equal(model_state["batch_stats/BatchNorm_1/mean"], np.zeros(16))


def test_shape_mismatch_is_one_line_and_writes_nothing(root):
    cfg = target(root / "source")
    cfg["model"]["widths"] = [8]
    config = write_toml(root / "narrow.toml", cfg)
    run_dir = root / "never"
    proc = run_cli("run", str(config), "--run-dir", str(run_dir), cache_dir=root / "xla-cache")
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith(f"error: {config}: init: parameter shapes differ from ")
    for shown in (
        "Dense_0/kernel [64, 8] vs source [64, 16]",
        "BatchNorm_0/scale [8] vs source [16]",
    ):
        assert shown in lines[0]
    assert "(best checkpoint, step " in lines[0]
    assert not run_dir.exists()


@pytest.mark.parametrize(
    "init, field, expected",
    [
        ({"exclude": ["dense_1"]}, "init.exclude", "pattern 'dense_1' matches no target"),
        ({"checkpoint": "best", "run": "missing"}, "init.run", "missing"),
        ({"map": {"Dense_0": "Dense_7"}}, "init", "Dense_0/kernel <- Dense_7/kernel"),
        ({"model_state": "source", "exclude": []}, None, None),
    ],
)
def test_config_errors_name_the_field(root, init, field, expected):
    cfg = target(root / "source", **init)
    if "run" in init:
        cfg["init"]["run"] = str(root / init["run"])
    if field is None:  # the plain case builds
        build(validate(cfg, "t.toml"), "t.toml")
        return
    with pytest.raises(ConfigError) as info:
        build(validate(cfg, "t.toml"), "t.toml")
    ((got_field, message),) = info.value.problems
    assert got_field == field and expected in message and "\n" not in message


def test_plan_reports_missing_differing_and_unused_paths():
    init = InitConfig(run="src")
    tgt = {"a/w": (2, 3), "b/w": (4,)}
    with pytest.raises(FieldError, match=r"a/w \[2, 3\] vs source \[3, 2\]"):
        plan_transfer(tgt, {"a/w": (3, 2), "b/w": (4,)}, init, "src")
    with pytest.raises(FieldError, match="no source parameter in src: b/w; exclude"):
        plan_transfer(tgt, {"a/w": (2, 3)}, init, "src")
    with pytest.raises(FieldError, match="no target parameter loads in src: c/w; map"):
        plan_transfer(tgt, {"a/w": (2, 3), "b/w": (4,), "c/w": (1,)}, init, "src")
    loose = InitConfig(run="src", allow_unused=True)
    plan = plan_transfer(tgt, {"a/w": (2, 3), "b/w": (4,), "c/w": (1,)}, loose, "src")
    assert plan == {"a/w": "a/w", "b/w": "b/w"}
    assert map_path("x/y/z", {"x": "p", "x/y": "q/r"}) == "q/r/z"  # the longest prefix wins
    with pytest.raises(ValueError, match="without empty parts"):
        InitConfig(run="src", map={"a/": "b"})


def test_summed_input_channels_equal_feeding_the_grey_image_as_rgb():
    # conv(g replicated to C channels, W) = conv(g, sum_c W[..., c, :]), in float64.
    with jax.enable_x64(True):
        rng = np.random.default_rng(0)
        grey = rng.normal(size=(1, 6, 6, 1))
        kernel = rng.normal(size=(3, 3, 3, 4))
        plan = plan_transfer(
            {"conv/kernel": (3, 3, 1, 4)},
            {"conv/kernel": (3, 3, 3, 4)},
            InitConfig(run="src", sum_in_channels=["conv"]),
            "src",
        )
        assert plan == {"conv/kernel": "conv/kernel"}
        summed = kernel.sum(axis=2, keepdims=True)

        def conv(x, w):
            dims = ("NHWC", "HWIO", "NHWC")
            return jax.lax.conv_general_dilated(x, w, (1, 1), "VALID", dimension_numbers=dims)

        rgb = np.repeat(grey, 3, axis=-1)
        np.testing.assert_allclose(conv(grey, summed), conv(rgb, kernel), rtol=1e-12)
    with pytest.raises(FieldError, match="shapes differ"):  # only when asked for
        plan_transfer(
            {"conv/kernel": (3, 3, 1, 4)}, {"conv/kernel": (3, 3, 3, 4)}, InitConfig(run="s"), "s"
        )


def test_linear_probe_leaves_every_other_parameter_bitwise_unchanged(root):
    cfg = target(root / "source", exclude=["Dense_1"])
    cfg["optimizer"]["train_only"] = ["Dense_1"]
    built, state = initial_state(cfg)
    result = fit(built.task, built.data, built.cfg.train, built.cfg.seed)
    before, after = leaves(state.params), leaves(result.state.params)
    for path in before:
        same = np.array_equal(bits(before[path]), bits(after[path]))
        assert same == (not path.startswith("Dense_1")), path
    assert result.final["test"]["accuracy"] > 0.5  # the probe learned on frozen features


def test_train_only_pattern_that_matches_nothing_names_the_field(root):
    cfg = target(root / "source")
    cfg["optimizer"]["train_only"] = ["head"]
    with pytest.raises(ConfigError) as info:
        build(validate(cfg, "t.toml"), "t.toml")
    ((field, message),) = info.value.problems
    assert field == "optimizer.train_only"
    assert message.startswith("train-only pattern 'head' matches no parameter")


def test_resume_restores_its_own_checkpoint_not_the_source(root):
    cache = root / "xla-cache"
    source_copy = root / "source-copy"
    shutil.copytree(root / "source", source_copy)
    cfg = target(source_copy, exclude=["Dense_1"])
    # 2 epochs: the SIGTERM goes out at epoch 1's line (--quiet prints one per epoch),
    # once a checkpoint is committed; the resume trains epoch 2.
    cfg["train"] = {
        "epochs": 2,
        "batch_size": 8,
        "mode": "step",
        "log_every": 10,
        "checkpoint_every": 100,
    }
    config = write_toml(root / "resumed.toml", cfg)
    run_experiment(validate(cfg, str(config)), root / "ref")
    code, printed = start_and_interrupt(
        config, root / "stopped", cache, signal.SIGTERM, lambda d: bool(committed_steps(d))
    )
    assert code == 143, printed
    shutil.rmtree(source_copy)  # resume must not need the source run any more
    resumed = run_cli("resume", str(root / "stopped"), "--quiet", cache_dir=cache)
    assert resumed.returncode == 0, resumed.stderr
    a = restore_run(root / "stopped", "latest").state
    b = restore_run(root / "ref", "latest").state
    assert int(a.step) == int(b.step) > 20
    for (path, x), y in zip(leaves(a).items(), leaves(b).values(), strict=True):
        assert np.array_equal(bits(x), bits(y)), path
    with pytest.raises(ConfigError, match="init.run: .*source-copy"):  # a new run needs it
        build(validate(cfg, str(config)), str(config))


def test_overlay_keeps_the_target_dtype():
    from dlcore.engine.warm_start import overlay

    tree = {"w": jnp.zeros(2, jnp.bfloat16)}
    out = overlay(tree, {"w": np.array([1.5, -2.0], np.float32)})
    assert out["w"].dtype == jnp.bfloat16 and out["w"].tolist() == [1.5, -2.0]
    with pytest.raises(
        ValueError, match=r"w: the value's shape differs: \[3\] vs the leaf's \[2\]"
    ):
        overlay(tree, {"w": np.zeros(3, np.float32)})
