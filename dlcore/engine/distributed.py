"""Several processes, one program: JAX's multi-controller runtime, and what dlcore adds.

Every process of a multi-process run executes the same Python program: it builds the same
config, data and task, and calls the same compiled functions in the same order; XLA runs
them over the devices of all processes together (CPU collectives over gloo, GPU over NCCL,
TPU over ICI). ``jax.distributed.initialize`` connects them through a coordinator (process
0's ``host:port``). dlcore adds three rules on top:

- **One writer.** Process 0 alone writes the run directory (config, metrics, summary,
  pictures); orbax writes the checkpoint collectively, each process its own shards.
- **Each process feeds its own devices.** A batch's rows for devices of process k are
  gathered by process k only (:mod:`dlcore.engine.sharding`).
- **Agreed decisions.** Whatever decides what every process does next must be the same in
  every process. Metrics and health flags come out of the compiled step replicated, so
  they are; a stop signal is not (one process may get it a step earlier), so
  :class:`AgreedStop` makes it a collective decision.

How a process learns its place: ``DLCORE_COORDINATOR_ADDRESS``, ``DLCORE_NUM_PROCESSES`` and
``DLCORE_PROCESS_ID`` (set by ``dlcore run --processes N`` for its local processes, or by
hand), else the cluster auto-detection of ``jax.distributed.initialize`` (SLURM, Open MPI,
Cloud TPU, Kubernetes) when ``--distributed`` is given.
"""

import os
from typing import Any

import jax
import numpy as np

ENV_COORDINATOR = "DLCORE_COORDINATOR_ADDRESS"
ENV_PROCESSES = "DLCORE_NUM_PROCESSES"
ENV_PROCESS_ID = "DLCORE_PROCESS_ID"


def env_processes() -> int:
    """The process count ``DLCORE_NUM_PROCESSES`` announces (1 when unset)."""
    text = os.environ.get(ENV_PROCESSES, "1")
    try:
        count = int(text)
    except ValueError:
        count = 0
    if count < 1:
        raise ValueError(f"{ENV_PROCESSES}={text!r}: expected a whole number of processes >= 1")
    return count


def initialize(auto_detect: bool = False) -> bool:
    """Joins this process to its multi-process run, before JAX computes anything.

    Args:
      auto_detect: with no ``DLCORE_*`` variables set, let JAX detect the cluster
        (SLURM, Open MPI, Cloud TPU, Kubernetes) instead of running alone.

    Returns:
      Whether the process is part of a multi-process run.

    Raises:
      ValueError: a ``DLCORE_*`` variable is malformed or missing (one line naming it).
    """
    processes = env_processes()
    if processes == 1 and not auto_detect:
        return False
    # CPU devices of different processes talk through gloo; GPUs and TPUs ignore this.
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    if processes == 1:
        try:
            jax.distributed.initialize()
        except ValueError as err:  # nothing detected: JAX names the first missing setting
            raise ValueError(
                f"--distributed: no SLURM, Open MPI, Cloud TPU or Kubernetes cluster found "
                f"and {ENV_PROCESSES} not set ({err})"
            ) from None
        return jax.process_count() > 1
    address = os.environ.get(ENV_COORDINATOR)
    process_id = os.environ.get(ENV_PROCESS_ID, "")
    if not address:
        raise ValueError(f"{ENV_COORDINATOR} must name process 0's host:port")
    if not process_id.isdigit() or int(process_id) >= processes:
        raise ValueError(
            f"{ENV_PROCESS_ID}={process_id!r}: expected 0 to {processes - 1} "
            f"({ENV_PROCESSES}={processes})"
        )
    jax.distributed.initialize(
        coordinator_address=address, num_processes=processes, process_id=int(process_id)
    )
    return True


def is_writer() -> bool:
    """True in the process that writes the run directory (process 0, or the only one)."""
    return jax.process_index() == 0


def barrier(name: str) -> None:
    """Waits until every process has arrived here (a no-op in a single process)."""
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices(name)


def host_local(tree: Any) -> Any:
    """``tree`` with every leaf usable by this process alone.

    A leaf spread over devices of other processes cannot enter a computation that only
    this process runs (a report, a picture): a replicated one is replaced by this
    process's own copy (free); a sharded one is gathered from every process, which is a
    collective: every process must call this at the same point.
    """

    def local(x):
        if not isinstance(x, jax.Array) or x.is_fully_addressable:
            return x
        if x.is_fully_replicated:
            return x.addressable_data(0)
        from jax.experimental import multihost_utils

        return multihost_utils.process_allgather(x, tiled=True)

    return jax.tree.map(local, tree)


class AgreedStop:
    """A stop request that every process sees at the same point of the loop.

    A signal reaches the processes at slightly different times; if one stopped and
    checkpointed while another started the next step, each would wait forever for the
    other's collective. Every ``every``-th poll, all processes exchange their flags and
    all stop if any was asked to; in between, a poll returns the last agreed answer. The
    loop polls at the same points in every process, so the exchanges line up.

    Attributes:
      local: the process's own stop (a ``GracefulStop``).
      every: polls between exchanges (each costs a small all-gather, ~2 ms on CPU).
    """

    def __init__(self, local: Any, every: int = 1):
        self.local, self.every = local, every
        self._polls, self._agreed = 0, False

    @property
    def requested(self) -> bool:
        if self._agreed or jax.process_count() == 1:
            return self._agreed or self.local.requested
        self._polls += 1
        if self._polls % self.every == 0:
            from jax.experimental import multihost_utils

            flags = multihost_utils.process_allgather(np.int32(self.local.requested))
            self._agreed = bool(np.any(flags))
        return self._agreed

    @property
    def signum(self) -> int | None:
        return self.local.signum

    @property
    def exit_code(self) -> int:
        return self.local.exit_code


def agree_on_text(text: str, limit: int = 4096) -> str:
    """Process 0's ``text`` in every process (e.g. a run directory named after the clock,
    which each process would read differently); ``text`` itself in a single process."""
    if jax.process_count() == 1:
        return text
    from jax.experimental import multihost_utils

    raw = text.encode()
    if len(raw) > limit:
        raise ValueError(f"{text[:40]}...: longer than {limit} bytes")
    buffer = np.zeros(limit + 4, np.uint8)
    buffer[:4] = np.frombuffer(np.uint32(len(raw)).tobytes(), np.uint8)
    buffer[4 : 4 + len(raw)] = np.frombuffer(raw, np.uint8)
    agreed = np.asarray(multihost_utils.broadcast_one_to_all(buffer))
    size = int(np.frombuffer(agreed[:4].tobytes(), np.uint32)[0])
    return agreed[4 : 4 + size].tobytes().decode()
