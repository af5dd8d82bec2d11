"""The race's outputs: medians over repeats, dlcore's speed-ups, the markdown table, the JSON.

A speed-up is ``other seconds / dlcore seconds`` of the medians (above 1: dlcore is faster),
so the issue's targets read directly: wall time to target at least 2 over PyTorch eager and
1.5 over Keras. Figures to target exist only for runs that reached it; the markdown says
how many of the repeats did.
"""

import datetime
import json
import math
import pathlib
import statistics

from benchmarks.race.tasks import FRAMEWORKS, TASKS
from benchmarks.report import finite_or_null

MEASURES = ("wall_to_target_s", "wall_s", "train_to_target_s", "train_s", "epoch_s")
TARGETS = {"torch": 2.0, "keras": 1.5}  # the wall-time speed-ups of dlcore


def _median(values: list) -> float | None:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def aggregate(runs: list[dict]) -> dict:
    """``{task: {framework: medians}}`` over the successful repeats of each pair."""
    out: dict = {}
    for task in dict.fromkeys(r["task"] for r in runs):
        out[task] = {}
        for fw in FRAMEWORKS:
            mine = [r for r in runs if r["task"] == task and r["framework"] == fw]
            ok = [r for r in mine if r["ok"]]
            if not mine:
                continue
            row = {m: _median([r.get(m) for r in ok]) for m in MEASURES}
            row |= {
                "first_epoch_s": _median([r.get("first_epoch_s") for r in ok]),
                "target_epoch": _median([r.get("target_epoch") for r in ok]),
                "reached": sum(r.get("target_epoch") is not None for r in ok),
                "runs": len(mine),
                "failed": len(mine) - len(ok),
                "final_val": _median([r["final"]["val"] for r in ok]),
                "final_test": _median([r["final"]["test"] for r in ok]),
            }
            out[task][fw] = row
    return out


def speedups(medians: dict) -> dict:
    """``{task: {other framework: {measure: other / dlcore}}}`` where both were measured."""
    out: dict = {}
    for task, rows in medians.items():
        mine = rows.get("dlcore")
        if mine is None:
            continue
        out[task] = {}
        for fw in ("torch", "keras"):
            if fw not in rows:
                continue
            out[task][fw] = {
                m: (rows[fw][m] / mine[m] if rows[fw][m] and mine[m] else None) for m in MEASURES
            }
    return out


def _s(value, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.{digits}g}"


def _x(value) -> str:
    return "-" if value is None else f"{value:.2f}x"


def header_lines(results: dict) -> list[str]:
    s = results["system"]
    v = s["versions"]
    shrink = results["shrink"]
    load = s.get("load_avg_1_5_15")
    lines = [
        f"Race of {results['date']}: {s['machine']['cpu']}, {s['machine']['cores']} cores"
        + (f" (load {load[0]:.1f} at the start)" if load else "")
        + f"; python {s['machine']['python']}, dlcore {v.get('dlcore')}, jax {v.get('jax')}, "
        f"torch {v.get('torch')} (torch.set_num_threads({results['torch_threads']})), "
        f"keras {v.get('keras')} "
        f"(JAX backend); dlcore.native: {_native_line(results['native'])}; "
        f"{results['repeats']} repeat(s), medians.",
    ]
    if shrink and any(shrink.values()):
        lines.append(
            "Char-LM shrunk: "
            + ", ".join(f"{k.replace('_', ' ')} = {val}" for k, val in shrink.items() if val)
            + " (the experiment: 3 epochs over all training files)."
        )
    return lines


def _native_line(native: dict) -> str:
    if not native.get("available"):
        return f"unavailable ({native.get('reason', 'unknown')})"
    return f"available (oneDNN {native.get('onednn')}, {native.get('threads')} threads)"


def native_kernels(runs: list[dict]) -> list[str]:
    """``["lenet: conv, max_pool (2), conv (1)", ...]``: what each dlcore run's summary.json
    says ran natively (the kernels landed while the race can run; each run shows its own)."""
    out = []
    for task in dict.fromkeys(r["task"] for r in runs):
        sets = [
            ", ".join((r.get("native") or {}).get("used") or []) or "none"
            for r in runs
            if r["task"] == task and r["framework"] == "dlcore" and r["ok"]
        ]
        if sets:
            counts = {k: sets.count(k) for k in dict.fromkeys(sets)}
            out.append(f"{task}: " + ", ".join(f"{k} ({n})" for k, n in counts.items()))
    return out


def markdown(results: dict) -> str:
    """The race as markdown: machine line, one row per task and framework, the speed-ups."""
    lines = header_lines(results)
    lines += [
        "",
        "Every figure is a whole process (`time dlcore run ...` vs `time python "
        "train_torch_X.py`) or that process's own training time; target on the validation "
        "split, evaluated after every epoch.",
        "",
        "| task | framework | wall to target s | wall s | train to target s | train s "
        "| epoch s | 1st epoch s | target epoch | reached | final val | final test |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for task, rows in results["medians"].items():
        spec = TASKS[task]
        for fw, r in rows.items():
            cells = [
                f"{task} ({spec.metric} {'>=' if spec.higher_is_better else '<='} {spec.target})",
                fw,
                _s(r["wall_to_target_s"]),
                _s(r["wall_s"]),
                _s(r["train_to_target_s"]),
                _s(r["train_s"]),
                _s(r["epoch_s"]),
                _s(r["first_epoch_s"]),
                _s(r["target_epoch"]),
                f"{r['reached']}/{r['runs'] - r['failed']}"
                + (f" ({r['failed']} failed)" if r["failed"] else ""),
                _s(r["final_val"], 4),
                _s(r["final_test"], 4),
            ]
            lines.append("| " + " | ".join(cells) + " |")
    kernels = native_kernels(results["runs"])
    if kernels:
        lines += ["", "Native kernels the dlcore runs traced (runs): " + "; ".join(kernels) + "."]
    lines += [
        "",
        "Speed-up of dlcore (other's seconds / dlcore's; the issue wants wall to target "
        ">= 2x torch eager and >= 1.5x Keras):",
        "",
        "| task | vs | wall to target | wall | train to target | train | epoch | target met |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for task, by_fw in results["speedups"].items():
        for fw, ratio in by_fw.items():
            wanted = TARGETS[fw]
            met = ratio["wall_to_target_s"]
            verdict = "n/a" if met is None else ("yes" if met >= wanted else "**no**")
            cells = [task, f"{fw} (>= {wanted}x)"] + [_x(ratio[m]) for m in MEASURES] + [verdict]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def results_path(out_dir: pathlib.Path) -> pathlib.Path:
    """``<out_dir>/race_<UTC time>.json`` (the folder is made)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%SZ")
    return out_dir / f"race_{stamp}.json"


def write(results: dict, path: pathlib.Path) -> tuple[pathlib.Path, pathlib.Path]:
    """The medians and speed-ups of the runs so far, then ``path`` (JSON) and its ``.md``.

    Called after every run, so a race stopped early still leaves what it measured."""
    results["medians"] = aggregate(results["runs"])
    results["speedups"] = speedups(results["medians"])
    path.write_text(json.dumps(finite_or_null(results), indent=1, allow_nan=False) + "\n")
    md = path.with_suffix(".md")
    md.write_text(markdown(results))
    return path, md
