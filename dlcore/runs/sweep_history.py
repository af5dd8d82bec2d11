"""The optimisation-history PNG of a sweep: each trial's objective and the best so far.

Drawn with matplotlib directly (optuna's own matplotlib plots are experimental and warn).
"""

import math
import pathlib
from typing import Any


def best_so_far(values: list[float], maximize: bool) -> list[float]:
    """The running best of ``values`` in trial order:
    :math:`b_i = \\max_{j \\le i} v_j` (or :math:`\\min` when lower is better).

    Example:
      >>> best_so_far([0.5, 0.7, 0.6], maximize=True)
      [0.5, 0.7, 0.7]
    """
    pick = max if maximize else min
    out: list[float] = []
    for v in values:
        out.append(v if not out else pick(out[-1], v))
    return out


def plot_history(
    rows: list[dict[str, Any]], path: pathlib.Path, metric: str, maximize: bool, title: str
) -> None:
    """Dots: finished trials' best validation ``metric``; crosses: pruned trials' last
    reported value; line: the best finished trial so far, in trial order.

    Args:
      rows: sweep.json's trial rows (``trial``, ``status``, ``best``, ``intermediate``).
      path: the PNG to write.
      metric: the validation metric the sweep optimises.
      maximize: whether higher is better.
      title: the figure's title.
    """
    from dlcore.runs.plots import plt  # (that module selects the Agg backend first)

    done = sorted(
        (r["trial"], r["best"]["value"])
        for r in rows
        if r["status"] == "completed" and r["best"] and math.isfinite(r["best"]["value"])
    )
    pruned = sorted(
        (r["trial"], list(r["intermediate"].values())[-1])
        for r in rows
        if r["status"] == "pruned" and r.get("intermediate")
    )
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    if done:
        xs, ys = zip(*done, strict=True)
        ax.plot(xs, ys, "o", color="C0", label="finished trial (best val)")
        ax.step(xs, best_so_far(list(ys), maximize), where="post", color="C1", label="best so far")
    if pruned:
        xs, ys = zip(*pruned, strict=True)
        ax.plot(xs, ys, "x", color="C3", label="pruned trial (last val)")
    ax.set_xlabel("trial")
    ax.xaxis.get_major_locator().set_params(integer=True)  # trials are numbered
    ax.set_ylabel(f"val {metric} ({'higher' if maximize else 'lower'} is better)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    if done or pruned:
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
