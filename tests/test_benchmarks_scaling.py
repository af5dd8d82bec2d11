"""The scaling suite: ``python -m benchmarks scaling --quick`` end to end, and its pieces.

The quick run starts one worker subprocess on 2 forced host devices (the suite's own
subprocess, computed once per session) that trains one sharded run; the other tests need
no subprocess.
"""

import contextlib
import io
import json
import os

import pytest
from rich.console import Console

from benchmarks import report, runner, suite_scaling
from benchmarks.records import Settings
from tests.helpers import computed_once


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    def compute():
        out = tmp_path_factory.mktemp("bench_scaling")
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):
            _, path = runner.run(["scaling"], quick=True, out_dir=out)
        return {"results": json.loads(path.read_text()), "stdout": printed.getvalue()}

    return computed_once(tmp_path_factory, "bench_scaling_quick", compute)


def test_quick_run_times_a_sharded_run_on_two_forced_devices(quick):
    rows = quick["results"]["rows"]
    timed = [r for r in rows if r["config"]["layout"] == "1x2"]
    assert [(r["config"]["mode"], r["config"]["params"]) for r in timed] == [("step", "sharded")]
    for row in timed:
        assert row["suite"] == "scaling" and row["status"] == "ok", row["note"]
        assert 0 < row["min_s"] <= row["median_s"] and row["items_unit"] == "examples"
        assert row["items_per_s"] == pytest.approx(suite_scaling.BATCH / row["median_s"])
        assert row["lower_s"] > 0 and row["compile_s"] > 0  # reported apart from the step
        seen = row["scaling"]
        # The worker saw the 2 devices the suite forced, on the CPU backend, and compiled
        # its training function once.
        assert seen["jax_device_count"] == 2 and seen["process_count"] == 1
        assert seen["backend"] == "cpu" and seen["forced_host_devices"] is True
        assert seen["cores"] == os.cpu_count() and seen["load_avg_1"] >= 0
        assert [n for name, n in seen["traces"].items() if name.startswith("train")] == [1]
        assert "not a speed-up" in row["caption"]


def test_the_full_suite_has_a_two_process_layout_and_places_each_worker():
    assert (2, 4) in suite_scaling.LAYOUTS  # 2 processes x 4 devices (the quick run skips it)
    places = [suite_scaling._place(i, 2, 4321) for i in range(2)]
    assert [p["DLCORE_PROCESS_ID"] for p in places] == ["0", "1"]
    assert {p["DLCORE_COORDINATOR_ADDRESS"] for p in places} == {"127.0.0.1:4321"}
    assert {p["DLCORE_NUM_PROCESSES"] for p in places} == {"2"}
    assert all("XLA_FLAGS" not in p for p in places)  # the device count is worker_env's


def test_printed_tables_carry_the_forced_devices_caption(quick):
    stdout = " ".join(quick["stdout"].split())  # rich wraps long lines
    assert "forced host CPU devices" in stdout and "not a speed-up" in stdout
    assert "examples/s (ratio to 1 device) per processes x devices" in stdout
    assert "machine load (1-min average)" in stdout  # layouts ran one after another


def test_scaling_is_a_registered_suite():
    assert runner.resolve(["scaling"]) == ["scaling"]
    assert "scaling" in runner.resolve(["all"])


def test_worker_env_forces_the_device_count_and_keeps_other_flags(monkeypatch):
    flag = "--xla_force_host_platform_device_count"
    monkeypatch.setenv("XLA_FLAGS", f"--xla_cpu_foo=1 {flag}=3")
    env = suite_scaling.worker_env(8, forced_host=True)
    assert env["XLA_FLAGS"].split() == ["--xla_cpu_foo=1", f"{flag}=8"]
    assert env["JAX_PLATFORMS"] == "cpu"
    assert env["PYTHONPATH"].split(os.pathsep)[0] == str(suite_scaling.ROOT)
    # Real accelerators are left as they are.
    assert flag + "=3" in suite_scaling.worker_env(8, forced_host=False)["XLA_FLAGS"]


def test_worker_spec_has_no_sharded_run_on_one_device():
    full = Settings()
    one = suite_scaling.worker_spec(1, ("mlp", "cnn"), full)["runs"]
    eight = suite_scaling.worker_spec(8, ("mlp", "cnn"), full)["runs"]
    assert len(one) == 4 and not any(r["shard_params"] for r in one)
    assert len(eight) == 6 and sum(r["shard_params"] for r in eight) == 2


def _row(layout: str, params: str, items_per_s: float | None) -> dict:
    processes, devices = map(int, layout.split("x"))
    return {
        "suite": "scaling",
        "config": {"model": "mlp", "mode": "step", "params": params, "layout": layout},
        "layout": {"processes": processes, "devices_per_process": devices, "B": 256},
        "items_per_s": items_per_s,
        "scaling": {} if items_per_s else None,
    }


def test_ratios_are_to_the_same_mode_on_one_device_and_tabled_in_run_order():
    rows = [
        _row("1x1", "replicated", 1000.0),
        _row("1x8", "replicated", 500.0),
        _row("1x8", "sharded", 250.0),
        _row("2x4", "replicated", None),
        _row("2x4", "sharded", None),
    ]
    suite_scaling.attach_relative(rows)
    assert rows[1]["scaling"]["vs_1_device"] == pytest.approx(0.5)
    assert rows[2]["scaling"]["vs_1_device"] == pytest.approx(0.25)
    console = Console(width=200, record=True)
    console.print(report.device_table({"rows": rows}, "scaling"))
    lines = [line for line in console.export_text().splitlines() if "mlp step" in line]
    assert ["replicated" in lines[0], "sharded" in lines[1]] == [True, True]
    cells = [[cell.strip() for cell in line.split("│")[2:5]] for line in lines]
    assert cells == [["1,000 (1.00x)", "500 (0.50x)", "n/a"], ["-", "250 (0.25x)", "n/a"]]
