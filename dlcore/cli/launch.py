"""``dlcore run|resume ... --processes N``: one command, N local processes of one run.

The launcher starts N copies of the same ``dlcore`` command, each told its place through
``DLCORE_COORDINATOR_ADDRESS`` (a free port on the loopback address), ``DLCORE_NUM_PROCESSES``
and ``DLCORE_PROCESS_ID``, and each given ``devices / N`` forced host CPU devices. Together
they are one run on ``devices`` devices (:mod:`dlcore.engine.distributed`); its results
equal one process with ``devices`` devices.

The launcher owns the terminal: process 0 prints the run's lines, the others print only
what goes wrong. A SIGINT or SIGTERM it receives is passed on to every process (they stop
at the same step and commit one checkpoint); when one process fails, the others, which
would wait for it forever, are stopped after a grace period. Its exit status is process
0's, else the first failing process's.
"""

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time

from dlcore.config.errors import FieldError

GRACE_S = 30.0  # how long the others may finish after one process failed
_FORCED = re.compile(r"--xla_force_host_platform_device_count=\S+")


def devices_per_process(devices: int | str, processes: int) -> int:
    """The devices each of ``processes`` processes gets.

    Raises:
      FieldError: ``devices`` is not a whole multiple of ``processes`` (naming
        ``train.devices``, which ``--devices`` sets).
    """
    if devices == "all" or int(devices) < processes or int(devices) % processes:
        raise FieldError(
            "train.devices",
            f"--processes {processes} splits the run's devices over the processes: give "
            f"--devices a multiple of {processes}, e.g. --devices {4 * processes} "
            f"(asked: {devices})",
        )
    return int(devices) // processes


def devices_arg(text: str | None) -> int | str | None:
    """``--devices``: a positive whole number or ``all`` (None when not given).

    Raises:
      ConfigError: one line naming ``--devices`` and the value.
    """
    from dlcore.config.errors import ConfigError

    if text is None or text == "all":
        return text
    if not text.isdigit() or int(text) < 1:
        raise ConfigError("--devices", [("", f"{text!r}: expected a positive number or 'all'")])
    return int(text)


def strip_option(argv: list[str], option: str) -> list[str]:
    """``argv`` without ``option VALUE`` / ``option=VALUE``."""
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == option:
            skip = True
        elif not arg.startswith(option + "="):
            out.append(arg)
    return out


def free_port() -> int:
    """A TCP port on the loopback address that nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def child_env(process_id: int, processes: int, local_devices: int, port: int) -> dict:
    """The environment of one process: its place in the run and its CPU devices."""
    # Imported here: it imports JAX, which `dlcore --help` and the launcher never need.
    from dlcore.engine.distributed import ENV_COORDINATOR, ENV_PROCESS_ID, ENV_PROCESSES

    env = dict(os.environ)
    flags = _FORCED.sub("", env.get("XLA_FLAGS", "")).strip()
    env["XLA_FLAGS"] = f"{flags} --xla_force_host_platform_device_count={local_devices}".strip()
    env[ENV_COORDINATOR] = f"127.0.0.1:{port}"
    env[ENV_PROCESSES] = str(processes)
    env[ENV_PROCESS_ID] = str(process_id)
    return env


def launch(argv: list[str], processes: int, local_devices: int) -> int:
    """Runs ``dlcore ARGV`` as ``processes`` processes and returns the run's exit status.

    Args:
      argv: the command for every process (without ``--processes``), e.g.
        ``["run", "x.toml", "--run-dir", "runs/x", "--devices", "8"]``.
      processes: how many processes.
      local_devices: forced host devices of each.
    """
    port = free_port()
    children = [
        subprocess.Popen(
            [sys.executable, "-m", "dlcore.cli", *argv],
            env=child_env(i, processes, local_devices, port),
            stdout=subprocess.PIPE if i == 0 else subprocess.DEVNULL,
            text=True,
            start_new_session=True,  # a Ctrl-C reaches them once, from here
        )
        for i in range(processes)
    ]

    def forward(signum, frame):
        for child in children:
            if child.poll() is None:
                child.send_signal(signum)

    previous = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM)}
    echo = threading.Thread(target=_echo, args=(children[0].stdout,), daemon=True)
    echo.start()
    try:
        failed_at = None
        while any(c.poll() is None for c in children):
            if failed_at is None and any(c.returncode not in (None, 0) for c in children):
                failed_at = time.monotonic()
            if failed_at is not None and time.monotonic() - failed_at > GRACE_S:
                for child in children:
                    if child.poll() is None:
                        child.kill()  # waiting for a collective that will never come
            time.sleep(0.05)
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    codes = [c.wait() for c in children]
    echo.join()
    return codes[0] or next((c for c in codes if c), 0)


def _echo(stream) -> None:
    """Process 0's output, less the line per device that gloo (the CPU collectives)
    prints to stdout when it connects."""
    for line in stream:
        if not line.startswith("[Gloo] "):
            sys.stdout.write(line)
            sys.stdout.flush()


def add_process_options(parser) -> None:
    """``--processes N`` and ``--distributed`` of ``dlcore run`` and ``dlcore resume``."""
    parser.add_argument(
        "--processes",
        type=int,
        default=1,
        metavar="N",
        help="train as N local processes (jax.distributed over the loopback address), "
        "each with devices/N forced host CPU devices",
    )
    parser.add_argument(
        "--distributed",
        action="store_true",
        help="join a multi-process run that the cluster describes (SLURM, Open MPI, "
        "Cloud TPU, Kubernetes; see the README's multi-host recipe)",
    )


def launch_command(args, argv: list[str], overrides: list[str]) -> int:
    """``dlcore run|resume ... --processes N``: checks the device split, fixes the run
    directory every process will share, and launches them.

    Raises:
      ConfigError: the config does not load, or its devices do not split over N
        processes (before any process or directory exists).
    """
    from dlcore.config.errors import ConfigError
    from dlcore.config.loading import load_config
    from dlcore.runs.run_dir import RunDir, default_run_path

    if args.processes < 1:
        raise ConfigError("--processes", [("", f"{args.processes}: expected a count >= 1")])
    child = strip_option(argv, "--processes")
    if args.command == "run":
        source = args.config
        cfg = load_config(args.config, overrides)
        devices = cfg.train.devices
        if not args.run_dir:  # the clock-made default name, fixed once for all of them
            child += ["--run-dir", str(default_run_path(cfg.name))]
    else:
        source = str(RunDir.existing(args.run_dir).config)
        devices = load_config(source).train.devices if args.devices is None else args.devices
    try:
        local = devices_per_process(devices, args.processes)
    except FieldError as err:
        raise ConfigError(source, [(err.field, err.message)]) from None
    return launch(child, args.processes, local)
