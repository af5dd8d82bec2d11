"""Data parallelism over a one-axis device mesh: where the state and the batches live.

A run on N devices is the same program as a run on one. The batch's leading axis is split
over the ``data`` axis of a :class:`jax.sharding.Mesh` of N devices; the train state is
replicated, or with ``shard_params`` each array leaf is split along its largest dimension
that N divides (ZeRO-3/FSDP style: every device stores 1/N of the parameters and of the
optimizer's moments); and the compiled functions are jitted with those input and output
shardings. XLA's SPMD partitioner inserts the collectives: the gradient of a loss summed
over a sharded batch is all-reduced, batch-norm statistics are means over the global batch,
sharded parameters are all-gathered where a layer needs them whole, and the metric sums,
asked for replicated, are all-reduced like any other sum. No task knows about devices.

On one device (the default) nothing is placed and nothing is passed to ``jax.jit``: the
program is the one dlcore always compiled, bit for bit. On N devices the results equal the
one-device run up to float32 rounding: a sum over the sharded batch axis is N partial sums
added in another order.

Example:
  >>> where = placement(8, shard_params=True)
  >>> state = where.state(state)  # each leaf split over the 8 devices, or replicated
  >>> batch = where.batch(batch)  # [B, ...] -> 8 shards of [B / 8, ...]
"""

import dataclasses
from typing import Any

import jax
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec

from dlcore.config.errors import FieldError
from dlcore.engine.state import TrainState

DATA_AXIS = "data"


def device_count(devices: int | str, available: int) -> int:
    """The number of devices ``[train] devices`` asks for (``"all"``: every one there is)."""
    return available if devices == "all" else int(devices)


def check_data_parallel(
    devices: int,
    available: int,
    batch_size: int,
    members: int = 1,
    shard_params: bool = False,
    processes: int = 1,
) -> None:
    """The boundary checks of a run on ``devices`` devices, before anything is compiled.

    Args:
      devices: devices asked for (>= 1).
      available: ``jax.device_count()``.
      batch_size: examples per training batch.
      members: members of a population (1 for a single run); they are spread over the
        devices, so their number must be a multiple of ``devices``.
      shard_params: ``[train] shard_params``.
      processes: ``jax.process_count()``; a multi-process run uses every device.

    Raises:
      FieldError: (a ValueError) naming the ``[train]`` field and, in one line, what was
        asked, what is possible, and the fix.
    """
    if devices > available:
        raise FieldError(
            "train.devices",
            f"{devices} devices asked for but {available} available "
            f"({jax.default_backend()}); set it to at most {available} or 'all' (on CPU, "
            "XLA_FLAGS=--xla_force_host_platform_device_count=N makes N devices)",
        )
    if processes > 1 and devices != available:
        raise FieldError(
            "train.devices",
            f"a run of {processes} processes trains on all {available} of their devices; "
            f"set it to {available} or 'all' (asked: {devices})",
        )
    if processes > 1 and members > 1:
        raise FieldError("train.devices", "population training runs in a single process")
    if devices > 1 and members > 1:
        if members % devices:
            raise FieldError(
                "train.devices",
                f"a population spreads its {members} members over the devices; "
                f"{devices} devices do not divide them (use a divisor of {members})",
            )
        if shard_params:
            raise FieldError(
                "train.shard_params",
                "a population keeps each member whole on one device; set it to false",
            )
    elif devices > 1 and batch_size % devices:
        raise FieldError(
            "train.batch_size",
            f"{batch_size} examples do not split over {devices} devices; make it a "
            f"multiple of {devices}, e.g. {max(batch_size // devices, 1) * devices}",
        )


def leaf_spec(shape: tuple[int, ...], devices: int) -> PartitionSpec:
    """Where a state leaf of ``shape`` is split under ``shard_params``: along its largest
    dimension that ``devices`` divides (the first such on ties), else nowhere.

    Example:
      >>> leaf_spec((784, 100), 8), leaf_spec((10,), 8), leaf_spec((), 8)
      (PartitionSpec('data', None), PartitionSpec(), PartitionSpec())
    """
    fits = [(size, -axis) for axis, size in enumerate(shape) if size % devices == 0]
    if not fits:
        return PartitionSpec()
    axis = -max(fits)[1]
    return PartitionSpec(*[DATA_AXIS if a == axis else None for a in range(len(shape))])


class SingleDevice:
    """The default placement: nothing moves, ``jax.jit`` gets no shardings."""

    devices = 1

    def init(self, init: Any, key: jax.Array, batch: Any) -> Any:
        return init(key, batch)

    def state(self, state: Any) -> Any:
        return state

    def local_rows(self, rows: np.ndarray) -> np.ndarray:
        return rows

    def batch(self, batch: Any) -> Any:
        return batch

    def eval_batch(self, batch: Any) -> Any:
        return jax.device_put(batch)  # placed once, used at every validation pass

    def fields(self, fields: Any) -> Any:
        return jax.device_put(fields)

    def rows(self, rows_CxB: Any) -> Any:
        return rows_CxB

    def constrain_batch(self, batch: Any) -> Any:
        return batch

    def eval_chunk(self, chunk: int) -> int:
        return chunk

    step_shardings = scan_shardings = eval_shardings = None


@dataclasses.dataclass(frozen=True)
class DataParallel:
    """Batches split over a ``data`` mesh axis; the state replicated or split over it.

    Attributes:
      mesh: one axis, ``data``, of N devices.
      shard_params: split each state leaf along its largest dimension N divides (see
        :func:`leaf_spec`) instead of replicating it.
    """

    mesh: Mesh
    shard_params: bool = False

    devices = property(lambda self: self.mesh.size)

    def _sharding(self, spec: PartitionSpec) -> NamedSharding:
        return NamedSharding(self.mesh, spec)

    @property
    def replicated(self) -> NamedSharding:
        return self._sharding(PartitionSpec())

    @property
    def split(self) -> NamedSharding:
        """Leading axis over ``data``: ``[B, ...]`` batches, shard ``i`` on device ``i``."""
        return self._sharding(PartitionSpec(DATA_AXIS))

    def state_shardings(self, state: TrainState) -> TrainState:
        """A sharding per leaf of ``state``; under ``shard_params`` the parameters, model
        state and optimizer state are split, the step, key and ``extra`` never are."""
        replicated = jax.tree.map(lambda _: self.replicated, state)
        if not self.shard_params:
            return replicated

        def split(tree):
            return jax.tree.map(
                lambda x: self._sharding(leaf_spec(tuple(np.shape(x)), self.devices)), tree
            )

        return replicated.replace(
            params=split(state.params),
            model_state=split(state.model_state),
            opt_state=split(state.opt_state),
        )

    def init(self, init: Any, key: jax.Array, batch: Any) -> Any:
        """``init(key, batch)`` placed on the devices.

        Replicated, it runs as on one device (the same initial values, no extra compile)
        and is copied to every device (each process copies its own, equal, values). Under
        ``shard_params`` it is compiled to create each leaf where it lives, so the state
        is never whole on one device and each process makes only its own shards (an init
        that needs concrete values, such as a warm start reading a checkpoint, runs as
        replicated and is then split).
        """
        if self.shard_params:
            try:
                shapes = jax.eval_shape(init, key, batch)
            except jax.errors.JAXTypeError:
                shapes = None
            if shapes is not None:
                return jax.jit(init, out_shardings=self.state_shardings(shapes))(key, batch)
        return self.state(init(key, batch))

    def state(self, state: Any) -> Any:
        """``state`` moved to its shardings (a no-op for leaves already there)."""
        return jax.device_put(state, self.state_shardings(state))

    def local_rows(self, rows: np.ndarray) -> np.ndarray:
        """The part of a batch's leading axis (``[B]`` example indices, say) that goes to
        this process's devices: all of it in a single process; in process k of P, the
        k-th block of B / P rows (the mesh lists each process's devices together)."""
        if jax.process_count() == 1:
            return rows
        mine = [i for i, d in enumerate(self.mesh.devices.flat) if d.process_index == _me()]
        n = len(rows) // self.devices
        return rows[mine[0] * n : (mine[-1] + 1) * n]

    def batch(self, batch: Any) -> Any:
        """A batch from this process's rows (:meth:`local_rows` of a ``[B, ...]`` batch)
        made into global arrays split over the devices (B is a multiple of N)."""
        return jax.tree.map(lambda x: jax.make_array_from_process_local_data(self.split, x), batch)

    def eval_batch(self, batch: Any) -> Any:
        """A whole ``[B, ...]`` evaluation batch, split over the devices."""
        return self.batch(jax.tree.map(self.local_rows, batch))

    def fields(self, fields: Any) -> Any:
        """Scan mode: the whole training split on every device (every process holds the
        same split, so each puts it on its own devices)."""
        return jax.device_put(fields, self.replicated)

    def rows(self, rows_CxB: Any) -> Any:
        """Scan mode: the rows ``[C, B]`` of C steps split along B, so that every device
        gathers its own slice of each batch."""
        return jax.device_put(rows_CxB, self._rows)

    @property
    def _rows(self) -> NamedSharding:
        return self._sharding(PartitionSpec(None, DATA_AXIS))

    def constrain_batch(self, batch: Any) -> Any:
        """Inside a traced function: keep a gathered batch split over ``data``."""
        return jax.lax.with_sharding_constraint(batch, self.split)

    def eval_chunk(self, chunk: int) -> int:
        """Eval batches rounded up to a multiple of N (the padding has ``mask = 0``)."""
        return -(-chunk // self.devices) * self.devices

    def step_shardings(self, state: Any, batch: Any) -> dict[str, Any]:
        """``jax.jit`` shardings of ``(state, batch) -> (state, metrics, health)``."""
        del batch
        s = self.state_shardings(state)
        return {
            "in_shardings": (s, self.split),
            "out_shardings": (s, self.replicated, self.replicated),
        }

    def scan_shardings(self, state: Any, fields: Any, rows_CxB: Any) -> dict[str, Any]:
        """``jax.jit`` shardings of ``(state, fields, rows) -> (state, (metrics, health))``."""
        del fields, rows_CxB
        s = self.state_shardings(state)
        return {
            "in_shardings": (s, self.replicated, self._rows),
            "out_shardings": (s, self.replicated),
        }

    def eval_shardings(self, state: Any, batch: Any) -> dict[str, Any]:
        """``jax.jit`` shardings of ``(state, batch) -> metric sums``."""
        del batch
        return {
            "in_shardings": (self.state_shardings(state), self.split),
            "out_shardings": self.replicated,
        }


@dataclasses.dataclass(frozen=True)
class MembersOverDevices(DataParallel):
    """A population's members spread over the ``data`` axis: the state's and the training
    batches' leading member axis ``[M, ...]`` is split, M / N members per device, and each
    member trains whole on its device (no collective inside a member's step). Evaluation
    batches are shared by all members, so they are on every device."""

    def state_shardings(self, state: TrainState) -> TrainState:
        return jax.tree.map(lambda _: self.split, state)

    def eval_batch(self, batch: Any) -> Any:
        return jax.device_put(batch, self.replicated)

    def local_rows(self, rows: np.ndarray) -> np.ndarray:
        return rows  # a population trains in one process

    def batch(self, batch: Any) -> Any:
        return jax.device_put(batch, self.split)

    def eval_chunk(self, chunk: int) -> int:
        return chunk

    def eval_shardings(self, state: Any, batch: Any) -> dict[str, Any]:
        del batch
        return {
            "in_shardings": (self.state_shardings(state), self.replicated),
            "out_shardings": self.replicated,
        }


def _me() -> int:
    return jax.process_index()


def placement(
    devices: int, shard_params: bool = False, members: int = 1
) -> SingleDevice | DataParallel:
    """Where a run on ``devices`` devices keeps its state and batches.

    Args:
      devices: how many of ``jax.devices()`` to use, the first ones (>= 1; checked by
        :func:`check_data_parallel`).
      shard_params: split the state over the devices instead of replicating it.
      members: a population's size; with more than one, the members are spread.

    Returns:
      :class:`SingleDevice` for one device, else a :class:`DataParallel` (or, for a
      population, :class:`MembersOverDevices`) over a mesh ``{"data": devices}``.
    """
    if devices == 1:
        return SingleDevice()
    mesh = Mesh(np.asarray(jax.devices()[:devices]), (DATA_AXIS,), axis_types=(AxisType.Auto,))
    if members > 1:
        return MembersOverDevices(mesh)
    return DataParallel(mesh, shard_params)
