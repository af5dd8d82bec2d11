"""``make curriculum``: every shipped experiment trained once, its number in the README table."""

from curriculum.plan import TOPICS, Entry, coverage, load_plan, select
from curriculum.runner import command, lookup, run_all, run_entry
from curriculum.table import markdown, merge, update_readme

__all__ = [
    "TOPICS",
    "Entry",
    "command",
    "coverage",
    "load_plan",
    "lookup",
    "markdown",
    "merge",
    "run_all",
    "run_entry",
    "select",
    "update_readme",
]
