"""Fuzzing the config boundary: every shipped experiment file, mutated (values of another
type, out-of-range numbers, unknown and misspelt keys, unicode in keys and values, deleted
sections, ``--set`` strings), either validates or fails with a ConfigError whose every line
names the source and the problem on one printable line. Never another exception.

Validation only: nothing is built or trained. ``derandomize=True`` runs the same examples
every time, so CI sees what a developer saw.
"""

import copy
import math

import pytest
import tomli_w
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dlcore.config.loading import ConfigError, apply_overrides, load_raw, validate
from tests.helpers import REPO

EXPERIMENTS = sorted((REPO / "experiments").glob("*.toml"))
MUTATION_EXAMPLES = 160  # per file
OVERRIDE_EXAMPLES = 50  # per file
FUZZ = settings(
    max_examples=MUTATION_EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# What TOML can hold, and a few strings a config might almost accept.
SCALARS = st.one_of(
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(),
    st.sampled_from([0, -1, 2**31, 2**32, 2**63, -(2**63), 1e308, 5e-324, math.inf, math.nan]),
    st.text(max_size=16),
    st.sampled_from(["", "mlp", "adam", "relu", "none", "scan", "../../x", "a/b", "\x00"]),
    st.datetimes(),
    st.dates(),
    st.times(),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)
KEYS = st.one_of(st.text(max_size=12), st.sampled_from(["name", "seed", "epochs", "widths", "lr"]))


@pytest.fixture(scope="module", params=EXPERIMENTS, ids=lambda p: p.stem)
def shipped(request):
    raw, _ = load_raw(request.param)
    validate(copy.deepcopy(raw), str(request.param))  # the shipped file itself is valid
    return str(request.param.relative_to(REPO)), raw


def test_every_experiment_file_is_fuzzed():
    assert len(EXPERIMENTS) >= 20
    assert len(EXPERIMENTS) * (MUTATION_EXAMPLES + OVERRIDE_EXAMPLES) >= 2000


def check_outcome(raw: dict, source: str, applied: dict | None = None) -> None:
    """validate() succeeds (and the result can be saved as TOML), or raises a ConfigError
    of one-line problems naming the source."""
    try:
        cfg = validate(raw, source, applied)
    except ConfigError as err:
        assert_one_line_errors(err, source)
    else:
        tomli_w.dumps(cfg.model_dump(mode="json", exclude_none=True))  # what a run saves


def assert_one_line_errors(err: ConfigError, source: str) -> None:
    assert err.problems
    assert err.source == source or err.source.startswith("--set ")
    for line in err.lines():
        assert line.startswith(err.source + ": "), line
        assert line.isprintable(), line  # no line breaks or control characters inside


# ---- structural mutations ------------------------------------------------------------------


def _paths(node, prefix=()):
    """Every location in the raw tree: (path, value), tables and list items included."""
    if prefix:
        yield prefix, node
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _paths(value, (*prefix, i))


def _parent(raw, path):
    node = raw
    for part in path[:-1]:
        node = node[part]
    return node


def _typo(draw, key: str) -> str:
    if not key:
        return draw(st.text(min_size=1, max_size=3))
    i = draw(st.integers(0, len(key) - 1))
    kind = draw(st.sampled_from(["drop", "double", "swap", "upper", "unicode"]))
    if kind == "drop":
        return key[:i] + key[i + 1 :]
    if kind == "double":
        return key[:i] + key[i] + key[i:]
    if kind == "swap" and i + 1 < len(key):
        return key[:i] + key[i + 1] + key[i] + key[i + 2 :]
    if kind == "unicode":
        return key[:i] + draw(st.characters()) + key[i + 1 :]
    return key.upper()


def _out_of_range(draw, value):
    """A number near the edges of what the field might take."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return draw(VALUES)
    return draw(
        st.sampled_from(
            [0, -value, value * 10**9, -1, 1, 2**32, 2**64, -(2**63), 0.5, -0.0, 1e-300]
            + [math.inf, -math.inf, math.nan, True, str(value), [value], {"v": value}]
        )
    )


def _mutate(draw, raw: dict) -> None:
    """One mutation of ``raw`` in place."""
    kind = draw(st.sampled_from(["replace", "range", "add", "misspell", "delete", "retype"]))
    located = list(_paths(raw))
    tables = [((), raw)] + [(p, v) for p, v in located if isinstance(v, dict)]
    if kind == "add" or not located:
        path, table = draw(st.sampled_from(tables))
        table[draw(KEYS)] = draw(VALUES)
        return
    path, value = draw(st.sampled_from(located))
    parent = _parent(raw, path)
    if kind == "replace":
        parent[path[-1]] = draw(VALUES)
    elif kind == "range":
        parent[path[-1]] = _out_of_range(draw, value)
    elif kind == "misspell" and isinstance(parent, dict):
        parent[_typo(draw, path[-1])] = parent.pop(path[-1])
    elif kind == "delete":
        del parent[path[-1]]
    elif kind == "retype":  # a table becomes a value, a value a table or a list
        new = draw(SCALARS) if isinstance(value, dict) else draw(st.sampled_from(["t", "l"]))
        parent[path[-1]] = {draw(KEYS): value} if new == "t" else [value] if new == "l" else new


@FUZZ
@given(data=st.data())
def test_mutated_experiment_files_validate_or_fail_in_one_line_each(shipped, data):
    source, original = shipped
    raw = copy.deepcopy(original)
    for _ in range(data.draw(st.integers(1, 4), label="mutations")):
        _mutate(data.draw, raw)
    check_outcome(raw, source)


# ---- --set strings -------------------------------------------------------------------------


def _dotted_keys(raw) -> list[str]:
    return [
        ".".join(path) for path, _ in _paths(raw) if all(isinstance(part, str) for part in path)
    ]


def _toml_text(value) -> str:
    """How a value is written after ``=`` in TOML (or nonsense, for what TOML cannot say)."""
    try:
        return tomli_w.dumps({"v": value}).removeprefix("v = ").strip()
    except (TypeError, ValueError):
        return repr(value)


@settings(FUZZ, max_examples=OVERRIDE_EXAMPLES)
@given(data=st.data())
def test_set_overrides_validate_or_fail_in_one_line_each(shipped, data):
    source, original = shipped
    raw = copy.deepcopy(original)
    keys = st.one_of(st.sampled_from(_dotted_keys(raw)), st.text(max_size=12))
    texts = st.one_of(
        st.builds(lambda k, v: f"{k}={v}", keys, VALUES.map(_toml_text)),
        st.builds(lambda k, v: f"{k}={v}", keys, st.text(max_size=16)),
        st.text(max_size=24),  # anything at all, "=" or not
    )
    overrides = data.draw(st.lists(texts, min_size=1, max_size=3), label="overrides")
    try:
        applied = apply_overrides(raw, overrides)
    except ConfigError as err:
        assert_one_line_errors(err, source)
        return
    check_outcome(raw, source, applied)


def test_a_fuzzed_config_error_reads_as_one_line_per_problem():
    # what the fuzzing asserts, on a known case: a key with a line break and a bad value
    raw, _ = load_raw(REPO / "experiments" / "xor_mlp.toml")
    raw["train"]["ep\nochs"] = 3
    raw["optimizer"]["learning_rate"] = math.inf
    with pytest.raises(ConfigError) as info:
        validate(raw, "experiments/xor_mlp.toml")
    assert_one_line_errors(info.value, "experiments/xor_mlp.toml")
    lines = info.value.lines()
    assert len(lines) == 2
    assert any("train.ep\\nochs: unknown key" in line for line in lines)
    assert any("optimizer.learning_rate: Input should be a finite number" in line for line in lines)
