"""Outputs of a run: the stdout table, the results JSON, the scaling plot and the README section."""

import datetime
import json
import math
import pathlib
import re

from rich.console import Console
from rich.table import Table

from benchmarks.targets import evaluate

# One color per candidate in every panel.
COLORS = {"dlcore": "tab:blue", "pure JAX": "tab:orange", "NumPy": "tab:green", "torch": "tab:red"}
BEGIN, END = "<!-- perf:begin -->", "<!-- perf:end -->"
COLUMNS = (
    ("candidate", "candidate"),
    ("config", "config"),
    ("median ms", "median_s"),
    ("min ms", "min_s"),
    ("steps/s", "steps_per_s"),
    ("items/s", "items_per_s"),
    ("GFLOP/s", "gflops"),
    ("% peak", "pct_peak"),
    ("lower s", "lower_s"),
    ("compile s", "compile_s"),
    ("XLA temp MiB", "temp_bytes"),
    ("status", "status"),
)


def _fmt(key: str, value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if key == "config":
        return " ".join(f"{k}={v}" for k, v in value.items())
    if key in ("median_s", "min_s"):
        return f"{1e3 * value:.3g}"
    if key == "temp_bytes":
        return f"{value / 2**20:.1f}"
    if key in ("lower_s", "compile_s"):
        return f"{value:.3f}"
    if isinstance(value, float):
        return f"{value:,.0f}" if value >= 100 else f"{value:.3g}"
    return str(value)


def _status(row: dict) -> str:
    return row["note"] if row["status"] in ("not available", "error") else row["status"]


def print_table(results: dict, console: Console | None = None) -> None:
    """One rich table per suite on stdout, preceded by the machine and the GEMM peak."""
    console = console or Console(width=180)
    console.print(system_line(results))
    for suite in dict.fromkeys(r["suite"] for r in results["rows"]):
        # A suite's rows may say how to read them (forced host devices are no speed-up).
        captions = "; ".join(_captions(results, suite))
        table = Table(title=suite, title_justify="left", caption=captions or None)
        for header, _ in COLUMNS:
            table.add_column(
                header, justify="left" if header in ("candidate", "status") else "right"
            )
        for row in results["rows"]:
            if row["suite"] == suite:
                cells = [_fmt(key, row[key]) for _, key in COLUMNS[:-1]]
                table.add_row(*cells, _status(row))
        console.print(table)
        if any("layout" in r for r in results["rows"] if r["suite"] == suite):
            console.print(device_table(results, suite))


def _captions(results: dict, suite: str) -> list[str]:
    rows = results["rows"]
    return list(dict.fromkeys(r["caption"] for r in rows if r["suite"] == suite and "caption" in r))


def device_table(results: dict, suite: str) -> Table:
    """Examples/s of each run (rows) on each processes x devices layout (columns), and
    in brackets the ratio to the same run on one device (``suite_scaling`` rows)."""
    rows = [r for r in results["rows"] if r["suite"] == suite]
    layouts = list(dict.fromkeys(r["config"]["layout"] for r in rows))
    title = f"{suite}: examples/s (ratio to 1 device) per processes x devices"
    table = Table(title=title, title_justify="left", min_width=len(title))
    table.add_column("run", justify="left")
    for layout in layouts:
        table.add_column(layout, justify="right")
    cells: dict[str, dict[str, str]] = {}
    # Runs in the order of the layout that has the most (one device has no sharded run).
    widest = max(layouts, key=lambda layout: sum(r["config"]["layout"] == layout for r in rows))
    for r in sorted(rows, key=lambda r: r["config"]["layout"] != widest):  # stable
        c = r["config"]
        run = f"{c['model']} {c['mode']} {c['params']} B={r['layout']['B']}"
        ratio = (r.get("scaling") or {}).get("vs_1_device")
        value = _fmt("items_per_s", r["items_per_s"]) if r["items_per_s"] else "n/a"
        if ratio is not None:
            value += f" ({ratio:.2f}x)"
        cells.setdefault(run, {})[c["layout"]] = value
    for run, by_layout in cells.items():
        table.add_row(run, *(by_layout.get(layout, "-") for layout in layouts))
    # The layouts ran one after another: the load then tells how comparable they are.
    load = {r["config"]["layout"]: (r.get("scaling") or {}).get("load_avg_1") for r in rows}
    if any(v is not None for v in load.values()):
        cells = [_fmt("load", load[layout]) for layout in layouts]
        table.add_row("machine load (1-min average)", *cells, style="dim")
    return table


def system_line(results: dict) -> str:
    """Machine, date, GEMM peak and BLAS in one line."""
    s = results["system"]
    blas = ", ".join(
        f"{b.get('internal_api')} {b.get('version')} ({b.get('num_threads')} threads)"
        for b in s["blas"]
        if b.get("user_api") == "blas"
    )
    gemms = [s["gemm"]] + ([s["gemm_after"]] if "gemm_after" in s else [])
    gemm = " then ".join(f"NumPy {g['numpy_gflops']:.1f}, JAX {g['jax_gflops']:.1f}" for g in gemms)
    load = s.get("load_avg_1_5_15")
    return (
        f"{s['date']} | {s['machine']['cpu']}, {s['machine']['cores']} cores"
        + (f", load {load[0]:.1f}" if load else "")
        + f" | float32 GEMM n={gemms[0]['n']}"
        + (" (before, then after the suites)" if len(gemms) > 1 else "")
        + f": {gemm} GFLOP/s | "
        f"BLAS: {blas or 'unknown'} | jax {s['versions']['jax']}, torch {s['versions']['torch']}"
        + (" | QUICK (meaningless figures)" if results["quick"] else "")
    )


def finite_or_null(value):
    """``value`` with every non-finite float (unmeasured, diverged) replaced by None, at any
    depth: JSON has no NaN or Infinity."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: finite_or_null(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite_or_null(v) for v in value]
    return value


def write_json(results: dict, out_dir: pathlib.Path) -> pathlib.Path:
    """Writes ``bench_<UTC time>[_quick].json`` under ``out_dir`` and returns its path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%SZ")
    path = out_dir / f"bench_{stamp}{'_quick' if results['quick'] else ''}.json"
    path.write_text(json.dumps(finite_or_null(results), indent=1, allow_nan=False) + "\n")
    return path


def latest_json(out_dir: pathlib.Path, include_quick: bool = False) -> pathlib.Path | None:
    """The newest results file (full runs only unless ``include_quick``)."""
    files = sorted(out_dir.glob("bench_*.json"))
    if not include_quick:
        files = [f for f in files if not f.stem.endswith("_quick")]
    return files[-1] if files else None


def plot_scaling(results: dict, path: pathlib.Path) -> pathlib.Path:
    """Throughput against batch size (MLP) and hidden size (LSTM), compile time against T."""
    import matplotlib  # noqa: I001  (the backend must be chosen before pyplot is imported)

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = (
        ("mlp", "B", "items_per_s", "MLP: batch size", "examples/s"),
        ("lstm", "H", "items_per_s", "char-LM LSTM: hidden size", "tokens/s"),
        ("lstm_compile", "T", "compile_s", "LSTM step: sequence length", "compile s"),
    )
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    for ax, (suite, knob, key, title, ylabel) in zip(axes, panels, strict=True):
        rows = [r for r in results["rows"] if r["suite"] == suite and r.get(key) is not None]
        for cand in dict.fromkeys(r["candidate"] for r in rows):
            pts = sorted((r["config"][knob], r[key]) for r in rows if r["candidate"] == cand)
            ax.plot(*zip(*pts, strict=True), marker="o", label=cand, color=COLORS.get(cand))
        ax.set(title=title, xlabel=knob, ylabel=ylabel)
        ax.set_xscale("log", base=2)
        ax.set_ylim(bottom=0)
        if rows:
            ax.legend()
    fig.suptitle(system_line(results), fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _md_value(value, unit: str, missing: str = "not available") -> str:
    if value is None:
        return missing
    return f"{value:.1f}%" if unit == "%" else f"{value:.3g}{unit}"


def performance_markdown(results: dict, source: str) -> str:
    """The generated part of the README section: machine, targets and the results table."""
    lines = [
        f"Generated from `{source}`: {system_line(results)}.",
        "Ratios compare median step times of one run; GFLOP/s and % of the GEMM peak use the "
        "median too. Targets dlcore cannot be measured on yet are marked n/a and count as "
        "missed; the pure-JAX column shows the same figure for the hand-written JAX step.",
    ]
    if any((r.get("pct_peak") or 0) > 100 for r in results["rows"]):
        lines.append(
            "**Warning**: some rows exceed 100% of the GEMM peak, so the peak was "
            "under-measured while other processes loaded the machine; read this run's "
            "% of peak figures as upper bounds."
        )
    lines += [
        "",
        "| target | wanted | dlcore | met | pure JAX (reference) |",
        "|---|---|---|---|---|",
    ]
    for t in evaluate(results):
        sign = ">=" if t["higher_is_better"] else "<="
        wanted = f"{sign} {_md_value(t['threshold'], t['unit'])}"
        met = "yes" if t["met"] else ("**no**" if t["dlcore"] is not None else "**no** (n/a)")
        lines.append(
            f"| {t['target']} | {wanted} | {_md_value(t['dlcore'], t['unit'])} | {met} "
            f"| {_md_value(t['pure_jax'], t['unit'], '-')} |"
        )
    keys = ("median_s", "min_s", "steps_per_s", "items_per_s", "gflops", "pct_peak", "compile_s")
    lines += [
        "",
        "| suite | config | candidate | median ms | min ms | steps/s | items/s | GFLOP/s | % peak "
        "| compile s | status |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in results["rows"]:
        cells = [row["suite"], _fmt("config", row["config"]), row["candidate"]]
        cells += [_fmt(k, row[k]) for k in keys] + [_status(row)]
        lines.append("| " + " | ".join(cells) + " |")
    for suite in dict.fromkeys(r["suite"] for r in results["rows"]):
        lines += [f"\n{suite}: {text}." for text in _captions(results, suite)]
    return "\n".join(lines)


def update_readme(readme: pathlib.Path, results_json: pathlib.Path) -> None:
    """Replaces the text between the perf markers in ``readme`` with the generated section.

    Raises:
      ValueError: if the README lacks the ``<!-- perf:begin -->``/``<!-- perf:end -->`` pair.
    """
    text = readme.read_text()
    if text.count(BEGIN) != 1 or text.count(END) != 1 or text.index(BEGIN) > text.index(END):
        raise ValueError(f"{readme} must contain one {BEGIN} ... {END} pair")
    results = json.loads(results_json.read_text())
    body = performance_markdown(results, results_json.name)
    new = re.sub(
        re.escape(BEGIN) + r".*?" + re.escape(END),
        lambda _: f"{BEGIN}\n{body}\n{END}",
        text,
        flags=re.DOTALL,
    )
    readme.write_text(new)
