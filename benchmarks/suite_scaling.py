"""Training throughput against device count with dlcore's data parallelism (issue 14).

For each layout of processes x devices, one subprocess (:mod:`benchmarks.scaling_worker`)
trains every model of :data:`MODELS` in each of :data:`VARIANTS` through ``dlcore``'s own
config and loop, with ``[train] devices = N``; the figure is examples per second of the
median timed window, compile time excluded and reported apart.

On a CPU-only machine the N devices are forced host devices
(``XLA_FLAGS=--xla_force_host_platform_device_count=N``, one subprocess per N since the
count is fixed when jax starts). They share the machine's cores, so what the rows measure
is the cost of SPMD partitioning and of the collectives, not a speed-up; the table says
so. On a machine with several GPUs (or TPUs) the same command trains on N real devices,
and layouts needing more devices than there are are listed as not available.

A multi-process layout (``(2, 4)``: 2 processes of 4 devices) has its place in
:data:`LAYOUTS` and is listed as not available until dlcore can launch several
processes (``dlcore run --processes``, issue 14 item 4); :func:`launch` is where it goes.

Example:
  python -m benchmarks scaling              # about 3 minutes on a 2-core machine
  python -m benchmarks scaling --quick      # one MLP run on 2 devices: a smoke run
"""

import json
import os
import pathlib
import re
import subprocess
import sys
from statistics import median

import jax

from benchmarks.records import Settings, make_row
from benchmarks.timing import Candidate, CompileStats, Timing
from dlcore.cli.launch import child_env, free_port
from dlcore.engine.distributed import ENV_COORDINATOR, ENV_PROCESS_ID, ENV_PROCESSES

SUITE = "scaling"
ROOT = pathlib.Path(__file__).resolve().parents[1]
BATCH = 256  # global batch: each of N devices holds BATCH / N examples
# Two models of the zoo on scikit-learn's digits (1257 training examples, 4 steps per
# epoch). ``macs`` is the forward multiply-adds per example (a step is 3x forward).
MODELS = {
    "mlp": {  # 64-512-512-10: small, but each device still multiplies real matrices
        "experiment": {
            "data": {"name": "digits"},
            "model": {"name": "mlp", "widths": [512, 512]},
            "optimizer": {"name": "adam", "learning_rate": 1e-3},
        },
        "window_epochs": 4,
        "macs": 64 * 512 + 512 * 512 + 512 * 10,
    },
    "cnn": {  # LeNet-5 on 16x16 digits: conv1 16*16*150, conv2 4*4*150*16, dense
        "experiment": {
            "data": {"name": "digits", "layout": "image", "image_size": 16},
            "model": {"name": "lenet5", "image_size": 16},
            "optimizer": {"name": "adam", "learning_rate": 1e-3},
        },
        "window_epochs": 2,
        "macs": 16 * 16 * 150 + 4 * 4 * 150 * 16 + 64 * 120 + 120 * 84 + 84 * 10,
    },
}
# (mode, shard_params): per-step replicated, per-step ZeRO/FSDP-style, whole-epoch scan.
VARIANTS = (("step", False), ("step", True), ("scan", False))
# (processes, devices per process); every process sees all of its devices.
LAYOUTS = ((1, 1), (1, 2), (1, 4), (1, 8), (2, 4))
# A smoke run of seconds: one sharded run on 2 devices, one window (each run compiles
# its init, step and eval functions: about 4 s on 2 cores).
QUICK = {
    "models": ("mlp",),
    "variants": (("step", True),),
    "layouts": ((1, 2),),
    "window_epochs": 1,
}


def worker_spec(devices: int, models: tuple[str, ...], settings: Settings) -> dict:
    """What one worker trains on ``devices`` devices (see :func:`scaling_worker.measure`)."""
    runs = []
    for name in models:
        for mode, shard_params in QUICK["variants"] if settings.quick else VARIANTS:
            if devices == 1 and shard_params:
                continue  # one device holds every leaf whole: the replicated program
            window = QUICK["window_epochs"] if settings.quick else MODELS[name]["window_epochs"]
            runs.append(
                {
                    "model": name,
                    "experiment": MODELS[name]["experiment"],
                    "mode": mode,
                    "shard_params": shard_params,
                    "window_epochs": window,
                }
            )
    return {
        "devices": devices,
        "batch": BATCH,
        "warmup": settings.warmup,
        "repeats": settings.repeats,
        "runs": runs,
    }


def worker_env(devices: int, forced_host: bool) -> dict:
    """The subprocess's environment: this checkout first and, on CPU, N forced devices."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    if forced_host:
        flags = re.sub(r"--xla_force_host_platform_device_count=\S+", "", env.get("XLA_FLAGS", ""))
        env["XLA_FLAGS"] = f"{flags} --xla_force_host_platform_device_count={devices}".strip()
        env["JAX_PLATFORMS"] = "cpu"
    return env


def launch(processes: int, devices: int, spec: dict, forced_host: bool) -> dict:
    """Runs the worker for one layout and returns its JSON report.

    A multi-process layout starts ``processes`` workers, each with ``devices`` forced
    devices and its place in the run (``dlcore.cli.launch.child_env``: the coordinator on
    a free loopback port); they train as one run on ``processes * devices`` devices and
    process 0 reports. When one fails, the others (waiting on a collective) are killed.

    Raises:
      RuntimeError: if a worker fails (its stderr's tail is the message).
    """
    command = [sys.executable, "-m", "benchmarks.scaling_worker", json.dumps(spec)]
    if processes == 1:
        procs = [_start(command, worker_env(devices, forced_host))]
    else:
        port = free_port()
        procs = [
            _start(command, {**worker_env(devices, forced_host), **_place(i, processes, port)})
            for i in range(processes)
        ]
    try:
        out, err = procs[0].communicate(timeout=600)
        failed = procs[0].returncode != 0
        for proc in procs[1:]:
            _, other = proc.communicate(timeout=60 if failed else 600)
            if proc.returncode and not failed:
                failed, err = True, other
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
    if failed:
        raise RuntimeError(err.strip()[-500:])
    # The report is the last line: gloo (CPU collectives) prints its connections first.
    return json.loads(out.strip().splitlines()[-1])


def _start(command: list[str], env: dict) -> subprocess.Popen:
    return subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def _place(process_id: int, processes: int, port: int) -> dict:
    """The ``DLCORE_*`` variables of one worker (the device flag is worker_env's)."""
    env = child_env(process_id, processes, 1, port)
    return {k: env[k] for k in (ENV_COORDINATOR, ENV_PROCESSES, ENV_PROCESS_ID)}


def caption(report: dict, forced_host: bool) -> str:
    """How to read the rows of one layout (forced host devices are no speed-up)."""
    if forced_host:
        return (
            f"forced host CPU devices: all N share this machine's {report['cores']} cores, "
            "so the figures show the overhead of SPMD partitioning and collectives, not a "
            "speed-up (a ratio above 1 only means N devices keep these cores busier than "
            "one XLA CPU device does); on a multi-GPU machine the same command "
            "(`python -m benchmarks scaling`) measures real scaling"
        )
    return (
        f"{report['backend']} backend, {report['jax_device_count']} x "
        f"{report['device_kind']}: real devices"
    )


def _config(model: str, mode: str, shard_params: bool, processes: int, devices: int) -> dict:
    # "layout" is processes x devices per process; the numbers are in row["layout"] too.
    params = "sharded" if shard_params else "replicated"
    return {"model": model, "mode": mode, "params": params, "layout": f"{processes}x{devices}"}


def _figures(model: str) -> dict:
    gflop = 3 * 2.0 * BATCH * MODELS[model]["macs"] / 1e9  # backward = 2x forward
    return {"items_per_step": float(BATCH), "items_unit": "examples", "gflop_per_step": gflop}


def layout_rows(
    layout: tuple[int, int],
    spec: dict,
    report: dict | None,
    note: str,
    settings: Settings,
    forced_host: bool,
) -> list[dict]:
    """One row per run of ``spec`` on ``layout`` (processes, devices per process): timed
    from the worker's ``report``, or, without one, listed with ``note`` (why not)."""
    processes, devices = layout
    rows = []
    for i, run in enumerate(spec["runs"]):
        config = _config(run["model"], run["mode"], run["shard_params"], processes, devices)
        figures = _figures(run["model"])
        where = {"processes": processes, "devices_per_process": devices, "B": BATCH}
        if report is None:
            cand = Candidate("dlcore", None, note)
            row = make_row(SUITE, config, cand, None, settings=settings, **figures)
            rows.append(row | {"layout": where})
            continue
        got = report["runs"][i]
        samples = got["samples_s"]
        stats = CompileStats(got["lower_s"], got["compile_s"], None)
        cand = Candidate("dlcore", None, compile=stats)
        timing = Timing(median(samples), min(samples), samples)
        row = make_row(SUITE, config, cand, timing, settings=settings, **figures)
        row["layout"] = where
        row["caption"] = caption(report, forced_host)
        row["scaling"] = {
            k: report[k]
            for k in (
                "jax_device_count",
                "process_count",
                "backend",
                "device_kind",
                "cores",
                "load_avg_1",
            )
        }
        row["scaling"]["forced_host_devices"] = forced_host
        row["scaling"] |= {
            k: got[k] for k in ("window_steps", "fit_steps_per_s", "traces", "val_accuracy")
        }
        rows.append(row)
    return rows


def attach_relative(rows: list[dict]) -> None:
    """Sets ``scaling["vs_1_device"]``: examples/s over the same run's on one device."""
    base = {}
    for row in rows:
        c = row["config"]
        if c["layout"] == "1x1" and row["items_per_s"]:
            base[(c["model"], c["mode"])] = row["items_per_s"]
    for row in rows:
        c = row["config"]
        one = base.get((c["model"], c["mode"]))
        if row["items_per_s"] and one:
            row["scaling"]["vs_1_device"] = row["items_per_s"] / one


def run(settings: Settings) -> list[dict]:
    """Every layout of :data:`LAYOUTS` (the quick ones with ``settings.quick``), in turn."""
    models = QUICK["models"] if settings.quick else tuple(MODELS)
    layouts = QUICK["layouts"] if settings.quick else LAYOUTS
    # Real accelerators are used as they are; a CPU-only machine gets forced host devices.
    forced_host = jax.default_backend() == "cpu"
    rows = []
    for processes, devices in layouts:
        spec = worker_spec(processes * devices, models, settings)
        report, note = None, ""
        if not forced_host and processes * devices > jax.device_count():
            note = f"not available: {jax.device_count()} {jax.default_backend()} devices here"
        else:
            try:
                report = launch(processes, devices, spec, forced_host)
            except (RuntimeError, ValueError, subprocess.TimeoutExpired) as err:
                note = f"error: {type(err).__name__}: {err}"
        rows += layout_rows((processes, devices), spec, report, note, settings, forced_host)
    attach_relative(rows)
    return rows
