"""The curriculum's results file and the README table rendered from it.

``curriculum/results.json`` holds one row per experiment. A partial rerun (``--only``)
replaces only its own rows, so every row keeps the commit and date it was measured at.
"""

import json
import math
import pathlib
import re

from curriculum.plan import REPO, TOPICS, Entry
from dlcore.runs.run_dir import strict_json, write_atomic

RESULTS_FILE = REPO / "curriculum" / "results.json"
README = REPO / "README.md"
HEADER = ("experiment", "lecture topic", "metric", "value", "wall s", "CPU s", "load", "shrunk")
HEADER += ("commit", "date")
BEGIN, END = "<!-- curriculum:begin -->", "<!-- curriculum:end -->"


def load_rows(path: pathlib.Path = RESULTS_FILE) -> list[dict]:
    """The rows of a results file; none when it does not exist yet."""
    path = pathlib.Path(path)
    if not path.exists():
        return []
    return json.loads(path.read_text())["rows"]


def merge(old: list[dict], new: list[dict], plan: dict[str, Entry]) -> list[dict]:
    """``old`` with ``new``'s rows replacing those of the same experiment, in plan order.

    Rows of experiments no longer in the plan are dropped (their TOML is gone).
    """
    by_name = {r["experiment"]: r for r in old} | {r["experiment"]: r for r in new}
    return [by_name[name] for name in plan if name in by_name]


def with_unmeasured(rows: list[dict], plan: dict[str, Entry]) -> list[dict]:
    """``rows`` plus a "not measured yet" row for each plan entry that has none, in plan
    order, so the table lists every shipped experiment even before its first run."""
    by_name = {r["experiment"]: r for r in rows}
    blank = {"value": None, "wall_s": None, "commit": "-", "date": "-"}
    return [
        by_name.get(name)
        or {
            **blank,
            "experiment": name,
            "topic": e.topic,
            "metric": e.label or e.metric,
            "shrink": list(e.shrink),
            "status": "not measured yet",
        }
        for name, e in plan.items()
    ]


def save_rows(rows: list[dict], path: pathlib.Path = RESULTS_FILE) -> None:
    """Writes the rows as strict JSON (a NaN metric becomes null)."""
    write_atomic(pathlib.Path(path), strict_json({"rows": rows}, indent=2) + "\n")


def _value(row: dict) -> str:
    value = row["value"]
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return row["status"] if row["status"] != "ok" else "-"
    return f"{value:.4g}"


def _number(value, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def markdown(rows: list[dict]) -> str:
    """The README section: one row per experiment in lecture order, the shrink footnotes.

    Example row: ``| xor_mlp | MLP and backprop | final.test.accuracy | 1 | 4.1 | 5.2 | 1.0 |
    | abc1234 | 2026-12-06 |`` (wall and CPU seconds, the 1-minute load average at its end);
    a shrunk experiment has a footnote mark in the ``shrunk`` column.
    """
    order = {t: i for i, t in enumerate(TOPICS)}
    ranked = sorted(enumerate(rows), key=lambda ir: (order.get(ir[1]["topic"], len(TOPICS)), ir[0]))
    lines = [
        "| " + " | ".join(HEADER) + " |",
        "|---|---|---|---:|---:|---:|---:|---|---|---|",
    ]
    notes = []
    for _, row in ranked:
        mark = ""
        if row["shrink"]:
            notes.append(f"{row['experiment']}: `{' '.join(row['shrink'])}`")
            mark = f"[{len(notes)}]"
        cells = [
            f"`{row['experiment']}`",
            row["topic"],
            f"`{row['metric']}`",
            _value(row),
            _number(row.get("wall_s"), ".1f"),
            _number(row.get("cpu_s"), ".1f"),
            _number(row.get("load1"), ".1f"),
            mark,
            row["commit"],
            row["date"],
        ]
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    wall = sum(r.get("wall_s") or 0.0 for r in rows)
    cpu = sum(r.get("cpu_s") or 0.0 for r in rows)
    failed = [r["experiment"] for r in rows if r["value"] is None]
    summary = (
        f"{len(rows)} experiments, {wall / 60:.1f} minutes of wall time and {cpu / 60:.1f}"
        f" CPU-minutes in all (sums of the rows); {len(failed)} not completed"
        + (f": {', '.join(failed)}." if failed else ".")
    )
    foot = [f"[{i}] {n}" for i, n in enumerate(notes, 1)]
    return "\n".join([summary, "", *lines, "", "Shrunk (`--set` overrides):", "", *_bullets(foot)])


def _bullets(items: list[str]) -> list[str]:
    return [f"- {item}" for item in items] or ["- none"]


def update_readme(rows: list[dict], readme: pathlib.Path = README) -> None:
    """Replaces the text between the curriculum markers of ``readme`` with the table.

    Raises:
      ValueError: if ``readme`` lacks exactly one marker pair, begin before end.
    """
    text = pathlib.Path(readme).read_text()
    if text.count(BEGIN) != 1 or text.count(END) != 1 or text.index(BEGIN) > text.index(END):
        raise ValueError(f"{readme} must contain one {BEGIN} ... {END} pair")
    body = markdown(rows)
    new = re.sub(
        re.escape(BEGIN) + r".*?" + re.escape(END),
        lambda _: f"{BEGIN}\n{body}\n{END}",
        text,
        flags=re.DOTALL,
    )
    write_atomic(pathlib.Path(readme), new)
