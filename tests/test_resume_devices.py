"""Checkpoints move between device counts: a run stopped on 8 devices (parameters sharded
8 ways) resumes on 1 or on 4, one stopped on 1 or on 4 (replicated) resumes on 4 or on 8
(sharded), and an epoch-scan run stopped mid-epoch on 8 devices resumes on 2, each with
the results of the uninterrupted 1-device run of its mode. The checkpoints are stored as
the devices that wrote them held the parameters: split 8 ways on 8 devices with
``shard_params``, as orbax's own metadata records.

The runs happen in one subprocess (``tests/resume_devices_worker.py``) with 8 forced host
CPU devices. Resuming on the same device count is bit-identical (``tests/test_resume.py``).
"""

import pytest

from dlcore.config.loading import load_config
from dlcore.engine.sharding import leaf_spec
from dlcore.experiment import run_experiment
from tests.helpers import REPO, computed_once, run_cli, run_on_8_devices

# The tolerance of tests/test_data_parallel.py, for the same reason: on another device
# count a batch's sums are added in another order, so the runs agree to float32 rounding
# (measured: at most 6.1e-7 relative on the losses, 2.4e-7 on the parameters), not bit for
# bit. 1e-5 leaves room for that rounding to grow over 100 steps and no more.
RTOL_LOSS, ATOL_PARAMS = 1e-5, 1e-5
# MODE:START:END; "s": shard_params on that side (see the worker).
CASES = ("step:8s:1", "step:8s:4", "step:1:4s", "step:4:8s", "scan:8s:2s")
# Every checkpoint written on several devices: (case, "stopped" or "final", devices).
SIDES = [
    (case, which, count)
    for case in CASES
    for which, count in zip(("stopped", "final"), case.split(":")[1:], strict=True)
    if count.rstrip("s") != "1"
]


@pytest.fixture(scope="module")
def resumed(tmp_path_factory):
    root = tmp_path_factory.mktemp("resume_devices")

    def resume_all() -> dict:
        return run_on_8_devices("resume_devices_worker.py", str(root), *CASES)

    return computed_once(tmp_path_factory, "resume_devices", resume_all)


@pytest.mark.parametrize("case", CASES)
def test_a_run_resumed_on_another_device_count_equals_the_uninterrupted_run(resumed, case):
    mode, start, end = case.split(":")
    result = resumed[case]
    assert len(result["losses"]) == len(result["base_losses"]) == 100
    for step, (a, b) in enumerate(zip(result["base_losses"], result["losses"], strict=True), 1):
        when = "before" if step <= result["stopped_at"] else "after"
        where = f"{mode} mode, step {step} ({when} the move {start} -> {end})"
        assert b == pytest.approx(a, rel=RTOL_LOSS), where
    assert result["param_max_abs_diff"] <= ATOL_PARAMS


def test_a_checkpoint_written_on_8_devices_with_shard_params_is_split_8_ways(resumed):
    leaves = resumed["step:8s:1"]["disk"]["stopped"]  # the one the resume on 1 device read
    kernel, bias = leaves["Dense_0/kernel"], leaves["Dense_1/bias"]
    # [2, 16]: split along its 16 columns, 2 to a device, each device's piece written.
    assert kernel["shape"] == [2, 16] and kernel["mesh"] == [8]
    assert kernel["spec"] == [None, "data"] and kernel["write_shape"] == [2, 2]
    # [2]: 8 divides no dimension, so it is whole on every device.
    assert bias["shape"] == [2] and bias["mesh"] == [8] and bias["spec"] == []


@pytest.mark.parametrize(("case", "which", "count"), SIDES)
def test_each_checkpoint_is_stored_as_the_devices_that_wrote_it_held_it(
    resumed, case, which, count
):
    devices, shard = int(count.rstrip("s")), count.endswith("s")
    leaves = resumed[case]["disk"][which]
    split = []
    for name, leaf in leaves.items():
        spec = tuple(leaf_spec(tuple(leaf["shape"]), devices)) if shard else ()
        assert (leaf["mesh"], tuple(leaf["spec"])) == ([devices], spec), name
        for size, piece, axis in zip(leaf["shape"], leaf["write_shape"], spec, strict=False):
            if axis is not None:  # no piece on disk spans two devices' shards
                assert size % piece == 0 and piece <= size // devices, name
        split += [name] if spec else []
    # Orbax also writes a replicated array in pieces (each device a part), so only the
    # recorded partition spec tells a split leaf from a replicated one.
    assert bool(split) == shard, f"{case} {which}: split leaves {split}"


def test_resume_on_more_devices_than_there_are_is_one_line(tmp_path):
    run = tmp_path / "run"
    # The run is made in this process; the resume that refuses is a real process with 1 device.
    run_experiment(load_config(REPO / "experiments" / "xor_mlp.toml", ["train.epochs=1"]), run)
    (run / "summary.json").unlink()  # as if it had stopped: resume then rebuilds it
    done = run_cli("resume", str(run), "--devices", "64", "--quiet", env={"XLA_FLAGS": ""})
    assert done.returncode == 2
    (line,) = done.stderr.strip().splitlines()
    assert "train.devices: 64 devices asked for but 1 available" in line
