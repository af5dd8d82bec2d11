"""The issue's performance targets, evaluated on a results JSON.

Every target is about dlcore. Each one is also evaluated with the hand-written pure-JAX step in
dlcore's place, as a reference for what the machine allows; where dlcore has no candidate yet,
its column says "not available" and the target counts as not met.
"""

import dataclasses
from collections.abc import Callable


def find_row(results: dict, suite: str, candidate: str, **config) -> dict | None:
    """The row of ``suite`` for ``candidate`` whose config contains ``config``, if measured."""
    for row in results["rows"]:
        if row["suite"] != suite or row["candidate"] != candidate:
            continue
        if all(row["config"].get(k) == v for k, v in config.items()):
            return row
    return None


def _measured(row: dict | None, field: str) -> float | None:
    if row is None or row.get(field) is None:
        return None
    return float(row[field])


def speedup(suite: str, other: str, **config) -> Callable[[dict, str], float | None]:
    """How many times faster ``who``'s median step is than ``other``'s."""

    def compute(results, who):
        if who == other:  # a candidate against itself says nothing
            return None
        mine = _measured(find_row(results, suite, who, **config), "median_s")
        theirs = _measured(find_row(results, suite, other, **config), "median_s")
        return None if mine is None or theirs is None else theirs / mine

    return compute


def field(suite: str, name: str, **config) -> Callable[[dict, str], float | None]:
    """A measured field of ``who``'s row, e.g. ``pct_peak``."""
    return lambda results, who: _measured(find_row(results, suite, who, **config), name)


def total_compile(suite: str, **config) -> Callable[[dict, str], float | None]:
    """Lowering plus compilation seconds."""

    def compute(results, who):
        row = find_row(results, suite, who, **config)
        lower, comp = _measured(row, "lower_s"), _measured(row, "compile_s")
        return None if lower is None or comp is None else lower + comp

    return compute


def ratio_of(
    first: Callable[[dict, str], float | None], second: Callable[[dict, str], float | None]
) -> Callable[[dict, str], float | None]:
    """first / second for the same candidate."""

    def compute(results, who):
        a, b = first(results, who), second(results, who)
        return None if a is None or b is None or b == 0 else a / b

    return compute


def saving(suite: str, **config) -> Callable[[dict, str], float | None]:
    """Percent of XLA temporary memory that remat saves."""

    def compute(results, who):
        plain = _measured(find_row(results, suite, who, remat=False, **config), "temp_bytes")
        remat = _measured(find_row(results, suite, who, remat=True, **config), "temp_bytes")
        return None if not plain or remat is None else 100.0 * (1 - remat / plain)

    return compute


@dataclasses.dataclass(frozen=True)
class Target:
    """One target: ``measure(results, candidate)`` compared with ``threshold``."""

    label: str
    measure: Callable[[dict, str], float | None]
    threshold: float
    higher_is_better: bool = True
    unit: str = "x"

    def met(self, value: float | None) -> bool:
        if value is None:
            return False
        return value >= self.threshold if self.higher_is_better else value <= self.threshold


def _lstm(h: int) -> dict:
    return {"T": 100, "H": h}


TARGETS = [
    Target("MLP B=128 step vs pure JAX", speedup("mlp", "pure JAX", B=128), 0.97),
    Target("LeNet-5 step vs pure JAX", speedup("cnn", "pure JAX", B=128), 0.97),
    Target("LSTM H=256 step vs pure JAX", speedup("lstm", "pure JAX", **_lstm(256)), 0.97),
    Target("LSTM H=512 step vs pure JAX", speedup("lstm", "pure JAX", **_lstm(512)), 0.97),
    Target("MLP B=128 % of GEMM peak", field("mlp", "pct_peak", B=128), 80.0, unit="%"),
    Target("MLP B=128 vs NumPy", speedup("mlp", "NumPy", B=128), 3.5),
    Target("MLP B=128 vs torch eager", speedup("mlp", "torch", B=128), 1.5),
    Target("LSTM H=256 vs NumPy", speedup("lstm", "NumPy", **_lstm(256)), 1.5),
    Target("LSTM H=512 vs NumPy", speedup("lstm", "NumPy", **_lstm(512)), 1.5),
    Target("LSTM H=256 vs torch.nn.LSTM", speedup("lstm", "torch", **_lstm(256)), 1.2),
    Target("LSTM H=512 vs torch.nn.LSTM", speedup("lstm", "torch", **_lstm(512)), 1.2),
    Target("LeNet-5 vs NumPy", speedup("cnn", "NumPy", B=128), 3.0),
    Target("LeNet-5 vs torch eager", speedup("cnn", "torch", B=128), 1.2),
    Target("MLP B=128 lower+compile", total_compile("mlp", B=128), 1.0, False, "s"),
    Target("LeNet-5 lower+compile", total_compile("cnn", B=128), 1.0, False, "s"),
    Target("LSTM T=100 lower+compile", total_compile("lstm", **_lstm(256)), 2.0, False, "s"),
    Target(
        "LSTM compile T=1000 / T=25",
        ratio_of(total_compile("lstm_compile", T=1000), total_compile("lstm_compile", T=25)),
        1.3,
        False,
    ),
    Target(
        "Digits epoch: scan vs per-step",
        ratio_of(
            field("digits_epoch", "median_s", mode="per-step"),
            field("digits_epoch", "median_s", mode="epoch-scan"),
        ),
        5.0,
    ),
    Target("BPTT temp memory saved by remat", saving("remat", T=100), 35.0, unit="%"),
]


def evaluate(results: dict) -> list[dict]:
    """Each target with dlcore's value, whether it is met, and the pure-JAX reference value."""
    table = []
    for t in TARGETS:
        value = t.measure(results, "dlcore")
        table.append(
            {
                "target": t.label,
                "threshold": t.threshold,
                "higher_is_better": t.higher_is_better,
                "unit": t.unit,
                "dlcore": value,
                "met": t.met(value),
                "pure_jax": t.measure(results, "pure JAX"),
            }
        )
    return table
