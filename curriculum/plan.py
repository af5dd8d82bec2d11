"""The curriculum file: every shipped experiment, its lecture topic, the number to report and
the ``--set`` overrides that fit it into the curriculum's time budget.

``curriculum/curriculum.toml`` holds one table per experiment::

    [experiments.digits_vae]
    topic = "generative models"          # one of TOPICS
    metric = "report.test_log_likelihood" # dotted path into summary.json (or sweep.json)
    needs = ["digits_classifier"]        # runs that must finish first (listed earlier)
    wire = ["task.quality_classifier={runs}/digits_classifier"]  # how it reads them
    shrink = ["train.epochs=30"]         # what the table reports as shrunk

A plan is checked as a whole before anything runs: an unknown topic, field or command, a
``needs`` that is not listed earlier, or a shipped experiment without an entry is an error.
"""

import dataclasses
import pathlib
import tomllib

REPO = pathlib.Path(__file__).resolve().parent.parent
PLAN_FILE = REPO / "curriculum" / "curriculum.toml"
EXPERIMENTS_DIR = REPO / "experiments"

# The course's order: the README table follows it.
TOPICS = (
    "perceptron",
    "MLP and backprop",
    "regularisation and optimisation",
    "CNNs",
    "RNNs",
    "seq2seq and attention",
    "representation learning",
    "generative models",
)
# How an experiment is trained: one `dlcore run`, a `dlcore sweep`, or a `dlcore sweep --vmap`.
COMMANDS = ("run", "sweep", "vmap")
FIELDS = ("topic", "metric", "label", "command", "needs", "wire", "shrink")


@dataclasses.dataclass(frozen=True)
class Entry:
    """One experiment of the curriculum.

    Attributes:
      name: the TOML's stem in ``experiments/``.
      topic: its lecture topic, one of ``TOPICS``.
      metric: dotted path of the reported number in summary.json (``run``) or sweep.json
        (``sweep``, ``vmap``); integer parts index lists, e.g. ``trials.0.best.value``.
      label: what the table calls the metric (default: ``metric``).
      command: ``run``, ``sweep`` or ``vmap``.
      needs: experiments whose runs this one reads (they run first).
      wire: ``--set`` overrides connecting it to those runs; ``{runs}`` is the runs root.
      shrink: ``--set`` overrides that make it fit the time budget (reported in the table).
    """

    name: str
    topic: str
    metric: str
    label: str = ""
    command: str = "run"
    needs: tuple[str, ...] = ()
    wire: tuple[str, ...] = ()
    shrink: tuple[str, ...] = ()

    def overrides(self, runs: pathlib.Path) -> list[str]:
        """The ``--set`` values of this entry, wiring first, with ``{runs}`` filled in."""
        return [s.replace("{runs}", str(runs)) for s in (*self.wire, *self.shrink)]


def _entry(source: str, name: str, table) -> Entry:
    where = f"{source}: experiments.{name}"
    if not isinstance(table, dict):
        raise ValueError(f"{where} must be a table, got {type(table).__name__}")
    unknown = sorted(set(table) - set(FIELDS))
    if unknown:
        raise ValueError(f"{where}: unknown field {unknown[0]!r}; valid: {', '.join(FIELDS)}")
    for key in ("topic", "metric"):
        if not isinstance(table.get(key), str) or not table[key]:
            raise ValueError(f"{where}.{key} must be a non-empty string")
    if table["topic"] not in TOPICS:
        raise ValueError(f"{where}.topic must be one of {TOPICS}; got {table['topic']!r}")
    command = table.get("command", "run")
    if command not in COMMANDS:
        raise ValueError(f"{where}.command must be one of {COMMANDS}; got {command!r}")
    lists = {}
    for key in ("needs", "wire", "shrink"):
        value = table.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ValueError(f"{where}.{key} must be a list of strings; got {value!r}")
        lists[key] = tuple(value)
    for override in (*lists["wire"], *lists["shrink"]):
        if "=" not in override:
            raise ValueError(f"{where}: override {override!r} must read KEY=VALUE")
    return Entry(
        name,
        table["topic"],
        table["metric"],
        str(table.get("label", "")),
        command,
        lists["needs"],
        lists["wire"],
        lists["shrink"],
    )


def load_plan(path: pathlib.Path = PLAN_FILE) -> dict[str, Entry]:
    """Reads and checks a curriculum file.

    Returns:
      The entries by name, in the file's order (the order they run in).

    Raises:
      ValueError: on an unreadable file, a bad entry, or a ``needs`` not listed earlier.
    """
    try:
        raw = tomllib.loads(pathlib.Path(path).read_text())
    except (OSError, tomllib.TOMLDecodeError) as err:
        raise ValueError(f"{path}: cannot read the curriculum file ({err})") from None
    tables = raw.get("experiments")
    if set(raw) != {"experiments"} or not isinstance(tables, dict):
        raise ValueError(f"{path}: must hold only [experiments.NAME] tables")
    plan: dict[str, Entry] = {}
    for name, table in tables.items():
        entry = _entry(str(path), name, table)
        for need in entry.needs:
            if need not in plan:
                raise ValueError(
                    f"{path}: experiments.{name}.needs {need!r}, which must be listed before it"
                )
        plan[name] = entry
    return plan


def coverage(plan: dict[str, Entry], experiments: pathlib.Path = EXPERIMENTS_DIR) -> list[str]:
    """Problems between the plan and the shipped experiments (empty when they match).

    Every ``experiments/*.toml`` needs an entry (so the table covers every shipped
    experiment), and every entry needs its TOML.
    """
    shipped = {p.stem for p in experiments.glob("*.toml")}
    missing = [f"experiments/{n}.toml has no entry in the curriculum" for n in sorted(shipped)]
    missing = [m for m, n in zip(missing, sorted(shipped), strict=True) if n not in plan]
    stale = [
        f"curriculum entry {n!r} has no experiments/{n}.toml" for n in plan if n not in shipped
    ]
    return missing + stale


def select(plan: dict[str, Entry], only: list[str] | None) -> list[Entry]:
    """The entries to run: all of them, or ``only`` those (in plan order).

    Raises:
      ValueError: if a name in ``only`` is not in the plan (the message lists the valid ones).
    """
    if not only:
        return list(plan.values())
    unknown = [n for n in only if n not in plan]
    if unknown:
        raise ValueError(f"--only: unknown experiment {unknown[0]!r}; valid: {', '.join(plan)}")
    return [e for e in plan.values() if e.name in set(only)]
