"""Smoke run of the benchmark harness: ``python -m benchmarks mlp --quick`` end to end."""

import itertools
import json
import os
import pathlib
import subprocess
import sys

import pytest

from benchmarks import report, runner, timing

ROOT = pathlib.Path(__file__).resolve().parents[1]
ROW_FIELDS = {
    "suite",
    "config",
    "candidate",
    "status",
    "note",
    "median_s",
    "min_s",
    "steps_per_s",
    "items_per_s",
    "items_unit",
    "gflop_per_step",
    "gflops",
    "pct_peak",
    "lower_s",
    "compile_s",
    "temp_bytes",
}


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks", "mlp", "--quick", "--out", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out, proc.stdout


def test_quick_run_writes_json_with_expected_fields(quick_run):
    out, stdout = quick_run
    files = list(out.glob("bench_*_quick.json"))
    assert len(files) == 1
    results = json.loads(files[0].read_text())
    assert results["quick"] is True and results["suites"] == ["mlp"]
    system = results["system"]
    assert system["gemm"]["numpy_gflops"] > 0 and system["gemm"]["jax_gflops"] > 0
    peaks = [system["gemm"]["peak_gflops"], system["gemm_after"]["peak_gflops"]]
    assert system["peak_gflops"] == max(peaks)
    assert system["versions"]["jax"] and system["date"]
    assert any(lib.get("user_api") == "blas" for lib in system["blas"])
    rows = results["rows"]
    assert {r["candidate"] for r in rows} >= {"dlcore", "pure JAX", "NumPy"}
    assert len({r["config"]["B"] for r in rows}) == 2  # two batch sizes for the scaling plot
    for row in rows:
        assert ROW_FIELDS <= set(row), row["candidate"]
        if row["candidate"] == "torch" and row["status"] != "ok":
            assert row["note"].startswith("not available")
            continue
        assert row["status"] == "ok"
        assert 0 < row["min_s"] <= row["median_s"]
        assert row["gflops"] > 0 and row["items_per_s"] > 0
        assert row["pct_peak"] == pytest.approx(100 * row["gflops"] / system["peak_gflops"])
    for row in rows:
        if row["candidate"] in ("dlcore", "pure JAX"):
            assert row["lower_s"] > 0 and row["compile_s"] > 0
            assert row["temp_bytes"] is not None
    assert (out / files[0].with_suffix(".png").name).stat().st_size > 0
    assert "dlcore" in stdout and "GFLOP/s" in stdout


def test_readme_section_is_generated_between_markers(quick_run, tmp_path):
    out, _ = quick_run
    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n## Performance\nintro\n{report.BEGIN}\nold\n{report.END}\ntail\n")
    report.update_readme(readme, next(out.glob("bench_*.json")))
    text = readme.read_text()
    assert "old" not in text and text.endswith("tail\n") and "intro" in text
    assert "MLP B=128 vs NumPy" in text  # the targets table
    assert "| mlp | model=784-32-32-10 B=8 | dlcore |" in text


def test_readme_without_markers_is_refused(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("# no markers\n")
    with pytest.raises(ValueError, match="perf:begin"):
        report.update_readme(readme, tmp_path / "unused.json")


def test_unknown_suite_error_lists_the_valid_names():
    with pytest.raises(ValueError, match="unknown benchmark suite 'lstn'; valid: .*lstm"):
        runner.resolve(["lstn"])


def test_measure_interleaves_candidates_round_robin():
    log = []
    cands = [
        timing.Candidate("a", lambda: log.append("a")),
        timing.not_available("x", "never runs"),
        timing.Candidate("b", lambda: log.append("b")),
    ]
    result = timing.measure(cands, warmup=1, repeats=3)
    assert log == ["a", "b"] + ["a", "b"] * 3  # warm-up, then one of each per repeat
    assert set(result) == {"a", "b"}
    assert all(len(t.samples_s) == 3 and t.min_s <= t.median_s for t in result.values())


def test_settle_runs_each_candidate_untimed_right_before_its_sample():
    # A counter stands in for the clock: every step of a candidate "takes" 4 ms, so the
    # test checks the settling rule itself and cannot fail on a slow or loaded machine.
    now = [0.0]
    log = []

    def step(name):
        log.append(name)
        now[0] += 0.004

    cands = [timing.Candidate("a", lambda: step("a")), timing.Candidate("b", lambda: step("b"))]
    samples = timing.measure(cands, warmup=0, repeats=2, settle_s=0.02, clock=lambda: now[0])
    assert all(len(t.samples_s) == 2 for t in samples.values())
    # Each timed sample is preceded by a settle run of the same candidate lasting 20 ms:
    # 5 untimed steps of 4 ms, then the timed one, and no sample follows the other candidate.
    runs = [(name, len(list(group))) for name, group in itertools.groupby(log)]
    assert runs == [("a", 6), ("b", 6), ("a", 6), ("b", 6)]
    assert all(t.samples_s == pytest.approx([0.004, 0.004]) for t in samples.values())


def test_lower_and_compile_reports_both_phases_and_temp_memory():
    import jax.numpy as jnp

    compiled, stats = timing.lower_and_compile(lambda x: jnp.tanh(x @ x.T).sum(), jnp.ones((8, 4)))
    assert stats.lower_s > 0 and stats.compile_s > 0 and stats.temp_bytes is not None
    assert float(compiled(jnp.ones((8, 4)))) == pytest.approx(64 * float(jnp.tanh(4.0)), rel=1e-5)
