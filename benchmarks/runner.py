"""Runs the chosen suites and writes every output; the CLI in ``__main__`` only parses."""

import pathlib

from benchmarks import (
    report,
    suite_attention,
    suite_bucketing,
    suite_cnn,
    suite_compile,
    suite_epoch,
    suite_lstm,
    suite_mlp,
    suite_resnet,
    suite_scaling,
    system,
)
from benchmarks.records import Settings, attach_peak
from dlcore.checks import check_choice

SUITES = {
    "mlp": suite_mlp.run,
    "cnn": suite_cnn.run,
    "resnet": suite_resnet.run,
    "lstm": suite_lstm.run,
    "attention": suite_attention.run,
    "lstm_compile": suite_compile.run_compile,
    "remat": suite_compile.run_remat,
    "digits_epoch": suite_epoch.run,
    "scaling": suite_scaling.run,
    "bucketing": suite_bucketing.run,
}
RESULTS_DIR = pathlib.Path(__file__).parent / "results"


def resolve(names: list[str]) -> list[str]:
    """Expands ``all`` and validates the suite names (the error lists the valid ones)."""
    if "all" in names:
        return list(SUITES)
    for name in names:
        check_choice(name, [*SUITES, "all"], "benchmark suite")
    return list(dict.fromkeys(names))


def run(
    names: list[str],
    quick: bool = False,
    out_dir: pathlib.Path = RESULTS_DIR,
    repeats: int | None = None,
    warmup: int | None = None,
) -> tuple[dict, pathlib.Path]:
    """Measures the system, runs the suites, prints the table, writes JSON and plot.

    Args:
      names: suite names or ``["all"]``.
      quick: tiny shapes and one repeat (a smoke run; the figures mean nothing).
      out_dir: where the JSON and the PNG go.
      repeats: timed samples per candidate (default 5, or 1 with ``quick``).
      warmup: untimed steps per candidate (default 2, or 1 with ``quick``).

    Returns:
      ``(results, json_path)``.
    """
    suites = resolve(names)
    info = system.collect(quick)
    settings = Settings(
        quick=quick,
        warmup=warmup if warmup is not None else (1 if quick else 2),
        repeats=repeats if repeats is not None else (1 if quick else 5),
        min_sample_s=0.0 if quick else 0.05,
        settle_s=0.0 if quick else 0.25,
    )
    if settings.repeats < 1 or settings.warmup < 0:
        raise ValueError(f"repeats must be >= 1 and warmup >= 0; got {repeats}, {warmup}")
    rows = []
    for name in suites:
        rows += SUITES[name](settings)
    info["gemm_after"] = system.gemm_peak(**system.gemm_size(quick))
    info["peak_gflops"] = max(info["gemm"]["peak_gflops"], info["gemm_after"]["peak_gflops"])
    attach_peak(rows, info["peak_gflops"])
    results = {
        "quick": quick,
        "suites": suites,
        "settings": {
            "warmup": settings.warmup,
            "repeats": settings.repeats,
            "min_sample_s": settings.min_sample_s,
            "settle_s": settings.settle_s,
        },
        "system": info,
        "rows": rows,
    }
    path = report.write_json(results, out_dir)
    report.plot_scaling(results, path.with_suffix(".png"))
    report.print_table(results)
    print(f"wrote {path} and {path.with_suffix('.png')}")
    return results, path
