"""What a suite returns: one row per (configuration, candidate), and the run settings."""

import dataclasses

from benchmarks.timing import Candidate, Timing


@dataclasses.dataclass(frozen=True)
class Settings:
    """How to measure, shared by all suites.

    Attributes:
      quick: tiny shapes and one repeat, for smoke tests (the figures mean nothing).
      warmup: untimed steps per candidate.
      repeats: timed samples per candidate.
      min_sample_s: each timed sample averages enough steps to last about this long.
      settle_s: untimed running of a candidate right before each of its timed samples, so
        the previous candidate's spinning BLAS/OpenMP threads are idle (``timing.measure``).
    """

    quick: bool = False
    warmup: int = 2
    repeats: int = 5
    min_sample_s: float = 0.05
    settle_s: float = 0.25


def _status(candidate: Candidate, timing: Timing | None) -> str:
    if timing is not None:
        return "ok"
    return "error" if candidate.note.startswith("error") else "not available"


def make_row(
    suite: str,
    config: dict,
    candidate: Candidate,
    timing: Timing | None,
    *,
    items_per_step: float,
    items_unit: str,
    gflop_per_step: float,
    settings: Settings,
    status: str | None = None,
) -> dict:
    """One JSON-ready result row with the derived throughput figures.

    GFLOP/s is computed from the median step time; ``pct_peak`` is filled in by
    :func:`attach_peak` once the run's GEMM peak is known.
    """
    row = {
        "suite": suite,
        "config": config,
        "candidate": candidate.name,
        "status": status or _status(candidate, timing),
        "note": candidate.note,
        "median_s": None,
        "min_s": None,
        "samples_s": [],
        "steps_per_s": None,
        "items_per_s": None,
        "items_unit": items_unit,
        "gflop_per_step": gflop_per_step,
        "gflops": None,
        "pct_peak": None,
        "lower_s": None,
        "compile_s": None,
        "temp_bytes": None,
    }
    if candidate.compile is not None:
        row["lower_s"] = candidate.compile.lower_s
        row["compile_s"] = candidate.compile.compile_s
        row["temp_bytes"] = candidate.compile.temp_bytes
    if timing is not None:
        gflops = gflop_per_step / timing.median_s
        row.update(
            median_s=timing.median_s,
            min_s=timing.min_s,
            samples_s=timing.samples_s,
            steps_per_s=1.0 / timing.median_s,
            items_per_s=items_per_step / timing.median_s,
            gflops=gflops,
        )
    return row


def rows_for(suite, config, candidates, timings, settings, **figures) -> list[dict]:
    """Rows for every candidate of one configuration, in candidate order."""
    return [
        make_row(suite, config, c, timings.get(c.name), settings=settings, **figures)
        for c in candidates
    ]


def attach_peak(rows: list[dict], peak_gflops: float) -> None:
    """Sets every timed row's ``pct_peak`` = 100 * GFLOP/s / the run's GEMM peak."""
    for row in rows:
        if row["gflops"] is not None:
            row["pct_peak"] = 100.0 * row["gflops"] / peak_gflops
