"""Timing: warm-up, round-robin repeats over all candidates, and separate lower/compile times.

Candidates of one configuration are timed in one pass, interleaved: repeat r runs every
candidate once before repeat r+1 starts, so a slow minute on the shared machine hits all of
them alike instead of whichever happened to run then.

Interleaving has a cost of its own: a BLAS or OpenMP library keeps its worker threads
spinning for a while after its last call (OpenBLAS about 0.1 s), and on a 2-core machine
those threads take cores from whatever runs next. Measured here: a 100-step XLA matmul scan
took 31.7 ms right after a NumPy loop against 21 ms back to back, and stayed slow for its
first ~90 ms. So before each timed sample the candidate runs untimed for ``settle_s``
seconds, long enough for the previous library's threads to go idle; every candidate is
then timed in the steady state a training loop sees.
"""

import dataclasses
import math
import statistics
import time
from collections.abc import Callable

import jax


@dataclasses.dataclass
class CompileStats:
    """Ahead-of-time compilation of one jitted function.

    Attributes:
      lower_s: seconds in ``jit(f).lower(*args)`` (tracing and StableHLO emission).
      compile_s: seconds in ``lowered.compile()`` (XLA optimization and code generation).
      temp_bytes: XLA temporary buffer size from ``compiled.memory_analysis()``, or None.
    """

    lower_s: float
    compile_s: float
    temp_bytes: int | None


@dataclasses.dataclass
class Candidate:
    """One implementation of a benchmarked step.

    Attributes:
      name: label in the table, e.g. ``"dlcore"`` or ``"NumPy"``.
      step: runs one training step and waits for its result; None if not available.
      note: why the candidate is not available (shown in the table), or a remark.
      compile: compile statistics for JAX candidates.
    """

    name: str
    step: Callable[[], object] | None
    note: str = ""
    compile: CompileStats | None = None


@dataclasses.dataclass
class Timing:
    """Seconds per step over the repeats (each sample is the mean over ``inner`` steps)."""

    median_s: float
    min_s: float
    samples_s: list[float]


def not_available(name: str, why: str) -> Candidate:
    """A candidate that is listed in the table as not available, with the reason."""
    return Candidate(name=name, step=None, note=f"not available: {why}")


def failed(name: str, err: Exception) -> Candidate:
    """A candidate whose construction raised: listed with status "error" and the message."""
    return Candidate(name=name, step=None, note=f"error: {type(err).__name__}: {err}")


def lower_and_compile(fn: Callable, *args, **jit_kwargs):
    """Lowers and compiles ``jax.jit(fn, **jit_kwargs)`` for ``args``, timing each phase.

    Returns:
      ``(compiled, CompileStats)``; ``compiled`` is the executable to call in the timed loop.
    """
    jitted = jax.jit(fn, **jit_kwargs)
    t0 = time.perf_counter()
    lowered = jitted.lower(*args)
    t1 = time.perf_counter()
    compiled = lowered.compile()
    t2 = time.perf_counter()
    try:
        temp = compiled.memory_analysis().temp_size_in_bytes
    except (AttributeError, NotImplementedError):  # some backends report no analysis
        temp = None
    return compiled, CompileStats(lower_s=t1 - t0, compile_s=t2 - t1, temp_bytes=temp)


def carry_stepper(compiled: Callable, carry, *batch) -> Callable[[], object]:
    """A step closure for ``compiled(carry, *batch) -> (carry, aux)`` that keeps the new carry.

    The carry may be donated: the old buffers are dropped as soon as the new ones exist.
    """
    box = [carry]

    def step():
        new_carry, aux = compiled(box[0], *batch)
        box[0] = new_carry
        return jax.block_until_ready(aux)

    return step


def measure(
    candidates: list[Candidate],
    warmup: int = 2,
    repeats: int = 5,
    min_sample_s: float = 0.0,
    settle_s: float = 0.0,
    clock: Callable[[], float] = time.perf_counter,
) -> dict[str, Timing]:
    """Times every available candidate, interleaved round-robin.

    Args:
      candidates: the implementations to compare; unavailable ones are skipped.
      warmup: untimed steps per candidate first (caches, allocator, thread pools).
      repeats: timed samples per candidate (median and min are reported).
      min_sample_s: a sample averages as many consecutive steps as needed to last about this
        long (estimated from the last warm-up step), so millisecond steps are not timed alone.
      settle_s: before each timed sample, untimed steps of the same candidate for at least
        this long (one step at least when positive), so the previous candidate's idle
        threads have stopped spinning (see the module docstring).
      clock: seconds, monotonic (tests pass a counter so nothing depends on real time).

    Returns:
      Timing per candidate name.
    """
    ready = [c for c in candidates if c.step is not None]
    inner = {}
    for c in ready:
        last = 0.0
        for _ in range(warmup):
            t0 = clock()
            c.step()
            last = clock() - t0
        inner[c.name] = max(1, min(1000, math.ceil(min_sample_s / last))) if last > 0 else 1
    samples: dict[str, list[float]] = {c.name: [] for c in ready}
    for _ in range(repeats):
        for c in ready:
            _settle(c, settle_s, clock)
            t0 = clock()
            for _ in range(inner[c.name]):
                c.step()
            samples[c.name].append((clock() - t0) / inner[c.name])
    return {name: Timing(statistics.median(s), min(s), s) for name, s in samples.items() if s}


def _settle(candidate: Candidate, seconds: float, clock: Callable[[], float]) -> None:
    """Runs ``candidate`` untimed until ``seconds`` have passed (nothing when 0)."""
    if seconds <= 0:
        return
    end = clock() + seconds
    candidate.step()
    while clock() < end:
        candidate.step()
