"""The README target table: ratios, thresholds and "not available" on synthetic results."""

import pytest

from benchmarks import targets


def row(suite, candidate, median_s=None, **config):
    return {
        "suite": suite,
        "candidate": candidate,
        "config": config,
        "median_s": median_s,
        "pct_peak": None,
        "lower_s": None,
        "compile_s": None,
        "temp_bytes": None,
    }


def by_label(table):
    return {t["target"]: t for t in table}


def test_speedups_use_median_times_and_thresholds():
    results = {
        "rows": [
            row("mlp", "dlcore", 0.010, B=128),
            row("mlp", "pure JAX", 0.0099, B=128),
            row("mlp", "NumPy", 0.030, B=128),
            row("mlp", "torch", 0.020, B=128),
            row("mlp", "NumPy", 1.0, B=512),  # another batch size must not be picked up
        ]
    }
    table = by_label(targets.evaluate(results))
    assert table["MLP B=128 step vs pure JAX"]["dlcore"] == pytest.approx(0.99)
    assert table["MLP B=128 step vs pure JAX"]["met"]
    assert table["MLP B=128 step vs pure JAX"]["pure_jax"] is None  # itself: no information
    assert table["MLP B=128 vs NumPy"]["dlcore"] == pytest.approx(3.0)
    assert not table["MLP B=128 vs NumPy"]["met"]  # 3.0x < 3.5x
    assert table["MLP B=128 vs NumPy"]["pure_jax"] == pytest.approx(0.030 / 0.0099)
    assert table["MLP B=128 vs torch eager"]["met"]  # 2.0x >= 1.5x


def test_unmeasured_targets_are_missed_not_hidden():
    table = targets.evaluate({"rows": [row("cnn", "pure JAX", 0.05, B=128)]})
    cnn = by_label(table)["LeNet-5 vs NumPy"]
    assert cnn["dlcore"] is None and cnn["met"] is False
    assert len(table) == len(targets.TARGETS)


def test_compile_ratio_and_remat_saving():
    results = {"rows": []}
    for steps, seconds in ((25, 1.0), (1000, 1.2)):
        r = row("lstm_compile", "dlcore", T=steps, B=32, H=256)
        r.update(lower_s=0.2 * seconds, compile_s=0.8 * seconds)
        results["rows"].append(r)
    for remat, temp in ((False, 100), (True, 60)):
        r = row("remat", "dlcore", T=100, remat=remat)
        r["temp_bytes"] = temp
        results["rows"].append(r)
    table = by_label(targets.evaluate(results))
    assert table["LSTM compile T=1000 / T=25"]["dlcore"] == pytest.approx(1.2)
    assert table["LSTM compile T=1000 / T=25"]["met"]  # lower is better: 1.2 <= 1.3
    assert table["BPTT temp memory saved by remat"]["dlcore"] == pytest.approx(40.0)
    assert table["BPTT temp memory saved by remat"]["met"]
