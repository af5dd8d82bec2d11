"""A task's functions compiled once, ahead of time, for fixed shapes.

Each function is lowered and compiled on its first call (the times are recorded), and
later calls go straight to the compiled executable. A call with other shapes or dtypes
raises instead of silently recompiling, and ``traces`` counts how often each function
was traced, so a test (or ``summary.json``) can prove there was exactly one compile.
"""

import collections
import functools
import time
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from dlcore.tasks.base import Batch, Metrics, Task


class AheadOfTime:
    """``jax.jit(fn)`` compiled on first call; records lowering and compile seconds."""

    def __init__(self, fn: Callable, name: str, traces: collections.Counter, **jit_kwargs):
        @functools.wraps(fn)
        def counted(*args):
            traces[name] += 1
            return fn(*args)

        self.name = name
        self._jitted = jax.jit(counted, **jit_kwargs)
        self._compiled = None
        self.lower_s = 0.0
        self.compile_s = 0.0

    def __call__(self, *args):
        if self._compiled is None:
            t0 = time.perf_counter()
            lowered = self._jitted.lower(*args)
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


class CompiledTask:
    """The loop's view of a task: train step, whole-epoch scan and evaluation."""

    def __init__(self, task: Task):
        self.task = task
        self.traces: collections.Counter = collections.Counter()
        self.train_step = AheadOfTime(task.train_step, "train_step", self.traces, donate_argnums=0)
        self.train_epoch = AheadOfTime(self._epoch, "train_epoch", self.traces, donate_argnums=0)
        self.eval_step = AheadOfTime(task.eval_step, "eval_step", self.traces)

    def _epoch(self, state, x_all: jax.Array, y_all: jax.Array, rows_SxB: jax.Array):
        """One epoch as a scan: gathers each batch on the device, then takes a step."""

        def body(state, rows_B):
            batch = {"x": jnp.take(x_all, rows_B, axis=0), "y": jnp.take(y_all, rows_B, axis=0)}
            return self.task.train_step(state, batch)

        return jax.lax.scan(body, state, rows_SxB)

    def compile_times(self) -> dict[str, dict[str, float]]:
        return {
            f.name: {"lower_s": f.lower_s, "compile_s": f.compile_s}
            for f in (self.train_step, self.train_epoch, self.eval_step)
            if f.compile_s
        }


def eval_chunks(x: np.ndarray, y: np.ndarray, chunk: int) -> list[Batch]:
    """Splits a data split into equal-size batches, padding the last with ``mask = 0``."""
    n = len(x)
    padded = -(-n // chunk) * chunk
    mask = np.zeros(padded, np.float32)
    mask[:n] = 1.0
    xp = np.concatenate([x, np.zeros((padded - n, *x.shape[1:]), x.dtype)])
    yp = np.concatenate([y, np.zeros((padded - n, *y.shape[1:]), y.dtype)])
    return [
        jax.device_put(
            {"x": xp[i : i + chunk], "y": yp[i : i + chunk], "mask": mask[i : i + chunk]}
        )
        for i in range(0, padded, chunk)
    ]


def sum_metrics(per_batch: list[Metrics]) -> dict[str, float]:
    """Adds metric sums of many batches on the host, in float64, in order."""
    totals: dict[str, float] = {}
    for metrics in jax.device_get(per_batch):
        for k, v in metrics.items():
            totals[k] = totals.get(k, 0.0) + float(v)
    return totals
