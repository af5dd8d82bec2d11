"""Digits MLP epoch time, per-step loop vs whole-epoch ``lax.scan``: a slot for the engine.

Both modes are modes of dlcore's training engine, which is being written on main; until
``dlcore.engine`` is importable this suite reports "not available" rather than a stand-in.
"""

from benchmarks.availability import dlcore_has
from benchmarks.records import Settings, make_row
from benchmarks.timing import not_available

SUITE = "digits_epoch"


def run(settings: Settings) -> list[dict]:
    if not dlcore_has("dlcore.engine"):
        why = "needs dlcore.engine (per-step and whole-epoch scan modes), not merged yet"
    else:
        why = "dlcore.engine exists but benchmarks.suite_epoch is not wired to it"
    return [
        make_row(
            SUITE,
            {"dataset": "digits", "mode": mode},
            not_available("dlcore", why),
            None,
            items_per_step=float("nan"),
            items_unit="examples",
            gflop_per_step=float("nan"),
            settings=settings,
        )
        for mode in ("per-step", "epoch-scan")
    ]
