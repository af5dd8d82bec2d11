"""A task's functions compiled once, ahead of time, for fixed shapes.

Each function is lowered and compiled on its first call (the times are recorded), and
later calls go straight to the compiled executable. A call with other shapes or dtypes
raises instead of silently recompiling, and ``traces`` counts how often each function
was traced, so a test (or ``summary.json``) can prove how many compiles there were.
"""

import collections
import functools
import time
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from dlcore.checks import check_choice
from dlcore.engine.health import NONFINITE_POLICIES, guard_step
from dlcore.engine.sharding import DataParallel, SingleDevice
from dlcore.engine.task import Batch, Metrics, Task
from dlcore.engine.tracing import loop_body


class AheadOfTime:
    """``jax.jit(fn)`` compiled on first call; records lowering and compile seconds.

    ``shardings(*args)``, when given, returns the ``in_shardings``/``out_shardings`` to jit
    with, from the first call's arguments (a state's shardings follow its tree).
    """

    def __init__(
        self,
        fn: Callable,
        name: str,
        traces: collections.Counter,
        shardings: Callable[..., dict] | None = None,
        **jit_kwargs,
    ):
        @functools.wraps(fn)
        def counted(*args):
            traces[name] += 1
            return fn(*args)

        self.name = name
        self._jit = functools.partial(jax.jit, counted, **jit_kwargs)
        self._shardings = shardings
        self._compiled = None
        self.lower_s = 0.0
        self.compile_s = 0.0

    def __call__(self, *args):
        if self._compiled is None:
            t0 = time.perf_counter()
            jitted = self._jit(**(self._shardings(*args) if self._shardings else {}))
            lowered = jitted.lower(*args)
            t1 = time.perf_counter()
            self._compiled = lowered.compile()
            self.lower_s, self.compile_s = t1 - t0, time.perf_counter() - t1
        try:
            return self._compiled(*args)
        except TypeError as err:
            raise ValueError(
                f"{self.name} was compiled for other input shapes/dtypes; "
                f"dlcore never recompiles a step: {err}"
            ) from None


class _OnePerKey:
    """:class:`AheadOfTime` functions made on demand, one per key (an input shape that may
    vary), reporting their lowering and compile seconds together."""

    def __init__(
        self,
        fn: Callable,
        name: str,
        traces: collections.Counter,
        shardings: Callable[..., dict] | None = None,
    ):
        self._fn, self.name, self._traces, self._shardings = fn, name, traces, shardings
        self._by_key: dict = {}

    def _compiled_for(self, key) -> AheadOfTime:
        if key not in self._by_key:
            self._by_key[key] = AheadOfTime(
                self._fn, self.name, self._traces, self._shardings, donate_argnums=0
            )
        return self._by_key[key]

    lower_s = property(lambda self: sum(f.lower_s for f in self._by_key.values()))
    compile_s = property(lambda self: sum(f.compile_s for f in self._by_key.values()))


class ScanByLength(_OnePerKey):
    """One :class:`AheadOfTime` scan per number of steps (a chunk and, at most, the shorter
    last chunk of an epoch): ``train_scan(state, fields, rows_CxB...)``."""

    def __call__(self, state, fields: Batch, rows):
        return self._compiled_for(int(rows.shape[0]))(state, fields, rows)


class StepByShape(_OnePerKey):
    """One :class:`AheadOfTime` step per batch shape, at most ``limit`` shapes (a bucketed
    order's widths, :mod:`dlcore.data.buckets`): ``train_step(state, batch)``. A shape
    beyond the limit raises, as a single compiled step does."""

    def __init__(
        self,
        fn: Callable,
        name: str,
        traces: collections.Counter,
        limit: int,
        shardings: Callable[..., dict] | None = None,
    ):
        super().__init__(fn, name, traces, shardings)
        self._limit = limit

    def __call__(self, state, batch: Batch):
        shape = tuple(sorted((k, np.shape(v)) for k, v in batch.items()))
        if shape not in self._by_key and len(self._by_key) >= self._limit:
            raise ValueError(
                f"{self.name} was compiled for {self._limit} batch shapes and got another "
                f"({dict(shape)}); dlcore compiles one step per bucket width"
            )
        return self._compiled_for(shape)(state, batch)


class CompiledTask:
    """The loop's view of a task: train step, multi-step scan and evaluation.

    ``train_step(state, batch) -> (state, metrics, health)`` and ``train_scan`` (health
    stacked per step) carry the health report of :func:`dlcore.engine.health.guard_step`;
    ``on_nonfinite`` is its policy (a population only reports: its members are judged by
    their metrics, and one member must not stop or skip the others). ``where`` says
    where the state and batches live (:mod:`dlcore.engine.sharding`); the functions are
    jitted with its shardings, and the caller places their inputs with it.
    ``train_shapes`` is how many batch shapes ``train_step`` may compile for: 1, or the
    widths of a bucketed order (:class:`StepByShape`); ``traces`` then counts one per width.
    """

    def __init__(
        self,
        task: Task,
        on_nonfinite: str = "halt",
        where: SingleDevice | DataParallel | None = None,
        train_shapes: int = 1,
    ):
        check_choice(on_nonfinite, NONFINITE_POLICIES, "on_nonfinite policy")
        self.task = task
        self.where = where = where or SingleDevice()
        self.traces: collections.Counter = collections.Counter()
        self._step = guard_step(task.train_step, on_nonfinite if task.members == 1 else "halt")
        if train_shapes == 1:
            self.train_step = AheadOfTime(
                self._step, "train_step", self.traces, where.step_shardings, donate_argnums=0
            )
        else:
            self.train_step = StepByShape(
                self._step, "train_step", self.traces, train_shapes, where.step_shardings
            )
        self.train_scan = ScanByLength(self._scan, "train_scan", self.traces, where.scan_shardings)
        self.eval_step = AheadOfTime(task.eval_step, "eval_step", self.traces, where.eval_shardings)

    def _scan(self, state, fields: Batch, rows_CxB: jax.Array):
        """Consecutive steps as one scan; each gathers its batch of every field on device.

        ``rows_CxB`` holds the example indices of C batches (``[C, M, B]`` for a
        population: ``take`` then gives every field a leading member axis).
        """

        def body(state, rows):
            batch = {k: jnp.take(v, rows, axis=0) for k, v in fields.items()}
            batch = self.where.constrain_batch(batch)  # each device gathers its slice
            state, metrics, health = self._step(state, batch)
            return state, (metrics, health)

        with loop_body():  # layers with several lowerings pick the one fast inside loops
            return jax.lax.scan(body, state, rows_CxB)

    def compile_times(self) -> dict[str, dict[str, float]]:
        return {
            f.name: {"lower_s": f.lower_s, "compile_s": f.compile_s}
            for f in (self.train_step, self.train_scan, self.eval_step)
            if f.compile_s
        }


def eval_chunks(fields: dict[str, np.ndarray], chunk: int, put: bool = True) -> list[Batch]:
    """Splits a split's fields into equal-size batches, padding the last with ``mask = 0``;
    on the default device, or with ``put=False`` on the host (for the caller to place)."""
    n = len(next(iter(fields.values())))
    padded = -(-n // chunk) * chunk
    mask = np.zeros(padded, np.float32)
    mask[:n] = 1.0
    full = {
        k: np.concatenate([v, np.zeros((padded - n, *v.shape[1:]), v.dtype)])
        for k, v in fields.items()
    }
    full["mask"] = mask
    chunks = [{k: v[i : i + chunk] for k, v in full.items()} for i in range(0, padded, chunk)]
    return jax.device_put(chunks) if put else chunks


def sum_metrics(per_batch: list[Metrics]) -> dict[str, np.ndarray]:
    """Adds metric sums of many batches on the host, in float64, in order (a population's
    ``[members]`` vectors elementwise)."""
    totals: dict[str, np.ndarray] = {}
    for metrics in jax.device_get(per_batch):
        for k, v in metrics.items():
            totals[k] = totals.get(k, 0.0) + np.asarray(v, np.float64)
    return totals
