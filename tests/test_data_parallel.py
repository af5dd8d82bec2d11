"""Data parallelism: 8 devices train the same run as 1, with parameters replicated or sharded,
and a population's members spread over 8 devices train as on 1.

The multi-device runs happen in one subprocess (``tests/data_parallel_worker.py``) with 8
forced host CPU devices, because XLA reads ``--xla_force_host_platform_device_count``
only when jax starts. The boundary checks run in this process.

Tolerance: the 8-device runs may differ from the 1-device run only by float32 rounding.
A sum over the batch (the loss, its gradient, batch-norm statistics, the metric sums) is
computed on 8 devices as 8 partial sums of 2 examples that an all-reduce adds, instead of
one sum of 16 in one order; each such reordering changes a float32 result by a few units
in the last place (eps = 1.2e-7), and 100 Adam steps carry those differences forward. We
allow a relative difference of 1e-5 (about 80 eps) per logged step loss and 1e-5 absolute
on the final parameters; measured on this project's CPU: 3.7e-7 and 1.5e-7. A real
mistake (batch-norm statistics of 2 examples instead of 16, a gradient not all-reduced,
dropout keys that depend on the device) changes the losses in the second digit.
"""

import json

import jax
import pytest

from dlcore.config.errors import ConfigError, FieldError
from dlcore.config.loading import validate
from dlcore.engine.loop import fit
from dlcore.engine.sharding import (
    DataParallel,
    SingleDevice,
    check_data_parallel,
    leaf_spec,
    placement,
)
from dlcore.experiment import build
from tests.helpers import REPO, computed_once, run_cli, run_main, run_on_8_devices

P = jax.sharding.PartitionSpec
RTOL_LOSS, ATOL_PARAMS = 1e-5, 1e-5
STEPS = 100


def on_8_devices(*args: str) -> dict:
    """What ``tests/data_parallel_worker.py *args`` reports, run on 8 host CPU devices."""
    report = run_on_8_devices("data_parallel_worker.py", *args)
    assert report["device_count"] == 8
    return report


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    return computed_once(tmp_path_factory, "data_parallel_runs", on_8_devices)["runs"]


@pytest.fixture(scope="module")
def populations(tmp_path_factory):
    report = computed_once(
        tmp_path_factory, "data_parallel_populations", lambda: on_8_devices("populations")
    )
    return report["populations"]


@pytest.mark.parametrize("layout", ["replicated", "sharded"])
@pytest.mark.parametrize("mode", ["step", "scan"])
def test_8_devices_follow_the_1_device_loss_trajectory(runs, mode, layout):
    one, many = runs[f"{mode}/one"], runs[f"{mode}/{layout}"]
    assert len(one["losses"]) == len(many["losses"]) == STEPS
    assert one["losses"][-1] < one["losses"][0] / 2  # it trains: the trajectory is not flat
    for step, (a, b) in enumerate(zip(one["losses"], many["losses"], strict=True), 1):
        assert b == pytest.approx(a, rel=RTOL_LOSS), f"step {step}"
    assert many["param_max_abs_diff"] <= ATOL_PARAMS
    assert many["test"] == pytest.approx(one["test"], rel=RTOL_LOSS)


@pytest.mark.parametrize("mode", ["step", "scan"])
def test_the_runs_are_where_they_were_asked_to_be(runs, mode):
    one, replicated, sharded = (runs[f"{mode}/{k}"] for k in ("one", "replicated", "sharded"))
    assert one["timing_devices"] == 1 and {p["devices"] for p in one["params"].values()} == {1}
    for run in (replicated, sharded):
        assert run["timing_devices"] == 8
        assert {p["devices"] for p in run["params"].values()} == {8}
        assert run["traces"] == one["traces"]  # each function compiled once, as on 1 device
    assert all(p["spec"] == [] for p in replicated["params"].values())
    for path, p in sharded["params"].items():  # the rule of leaf_spec, kernel and BN alike
        assert p["spec"] == [str(s) for s in leaf_spec(tuple(p["shape"]), 8)], path
    assert sharded["params"]["['Dense_1']['kernel']"]["spec"] == ["data", "None"]  # [16, 2]
    assert sharded["params"]["['Dense_1']['bias']"]["spec"] == []  # [2]: 8 does not divide


@pytest.mark.parametrize("mode", ["step", "scan"])
def test_a_population_spread_over_8_devices_trains_its_members_as_on_1(populations, mode):
    result = populations[mode]
    one, spread = result["val_loss"]
    assert len(set(one)) == 8  # 8 different members
    assert spread == pytest.approx(one, rel=RTOL_LOSS)
    assert result["param_max_abs_diff"] <= ATOL_PARAMS
    for p in result["params"]:  # [members, ...]: one member per device, each one whole
        assert p["shape"][0] == 8 and p["devices"] == 8 and p["spec"] == ["data"]
    assert result["traces"][0] == result["traces"][1]


@pytest.mark.parametrize(
    "shape, spec",
    [
        ((784, 100), P("data", None)),
        ((3, 3, 16, 32), P(None, None, None, "data")),
        ((64, 64), P("data", None)),  # ties: the first
        ((10,), P()),
        ((), P()),
        ((8,), P("data")),
    ],
)
def test_shard_params_splits_the_largest_dimension_the_devices_divide(shape, spec):
    assert leaf_spec(shape, 8) == spec


@pytest.mark.parametrize(
    "devices, batch, members, shard, field, words",
    [
        (9, 16, 1, False, "train.devices", "9 devices asked for but 8 available"),
        (8, 20, 1, False, "train.batch_size", "20 examples do not split over 8 devices"),
        (4, 16, 6, False, "train.devices", "4 devices do not divide them (use a divisor of 6)"),
        (4, 16, 8, True, "train.shard_params", "keeps each member whole on one device"),
    ],
)
def test_device_settings_that_cannot_run_are_one_line_errors(
    devices, batch, members, shard, field, words
):
    with pytest.raises(FieldError) as err:
        check_data_parallel(devices, 8, batch, members, shard)
    assert err.value.field == field and words in err.value.message
    assert "\n" not in str(err.value)


def test_a_population_spreads_members_so_its_batch_need_not_split():
    check_data_parallel(8, 8, 12, members=8)  # 12 examples per member, 1 member per device
    with pytest.raises(FieldError, match="12 examples do not split over 8 devices"):
        check_data_parallel(8, 8, 12)


@pytest.mark.parametrize(
    "devices, members, words",
    [
        (4, 1, "a run of 2 processes trains on all 8 of their devices; set it to 8 or 'all'"),
        (8, 8, "population training runs in a single process"),
    ],
)
def test_a_multi_process_run_uses_every_device_and_no_population(devices, members, words):
    with pytest.raises(FieldError) as err:
        check_data_parallel(devices, 8, 16, members, processes=2)
    assert err.value.field == "train.devices" and words in err.value.message


def test_one_device_is_the_single_device_program():
    assert isinstance(placement(1, shard_params=True), SingleDevice)
    assert SingleDevice.step_shardings is None  # jax.jit gets exactly what it always got
    if jax.device_count() > 1:
        assert isinstance(placement(2), DataParallel)


def test_more_devices_than_there_are_is_a_config_error_before_anything_runs():
    too_many = jax.device_count() + 1
    cfg = validate(
        {
            "data": {"name": "xor", "n_samples": 64},
            "model": {"name": "mlp", "widths": [4]},
            "train": {"devices": too_many, "batch_size": 8 * too_many},
        },
        "tiny.toml",
    )
    with pytest.raises(ConfigError) as err:
        build(cfg, "tiny.toml")
    (line,) = err.value.lines()
    assert line.startswith(f"tiny.toml: train.devices: {too_many} devices asked for but ")
    assert "xla_force_host_platform_device_count" in line
    with pytest.raises(ValueError, match="devices asked for"):  # the library says it too
        built = build(validate({**cfg.model_dump(), "train": {"batch_size": 8}}, "t"))
        fit(built.task, built.data, cfg.train, 0)


@pytest.mark.parametrize("value", ["many", 0, -2, 2.0, True])
def test_devices_takes_a_positive_integer_or_all(value):
    with pytest.raises(ConfigError, match="train.devices: "):
        validate({"data": {"name": "xor"}, "train": {"devices": value}}, "t")
    assert validate({"data": {"name": "xor"}, "train": {"devices": "all"}}, "t").train.devices


def test_the_devices_flag_reaches_the_run(tmp_path):
    cfg, run = str(REPO / "experiments" / "xor_mlp.toml"), tmp_path / "run"
    forced = {"XLA_FLAGS": "--xla_force_host_platform_device_count=8"}
    done = run_cli("run", cfg, "--devices", "9", "--run-dir", str(run), env=forced)
    assert done.returncode == 2 and not run.exists()
    bad = run_main("run", cfg, "--devices", "x", "--run-dir", str(run))
    assert bad.returncode == 2 and not run.exists()
    assert bad.stderr.strip() == "error: --devices: 'x': expected a positive number or 'all'"
    assert done.stderr.strip().endswith(
        "train.devices: 9 devices asked for but 8 available (cpu); set it to at most 8 or "
        "'all' (on CPU, XLA_FLAGS=--xla_force_host_platform_device_count=N makes N devices)"
    )
    args = ("--set", "train.epochs=1", "--run-dir", str(run), "--quiet")
    done = run_cli("run", cfg, "--devices", "all", *args, env=forced)
    assert done.returncode == 0, done.stderr
    summary = json.loads((run / "summary.json").read_text())
    assert summary["timing"]["devices"] == 8 and summary["traces"]["train_scan"] == 1
