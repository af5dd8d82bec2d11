"""Every bad input is one line: through the real CLI, exit 2, exactly one ``error:`` line on
stderr, no traceback and nothing written to disk; in-process, the ConfigError or ValueError
that says which field and why. Valid inputs still pass (ints fill floats, the shipped files).
"""

import concurrent.futures
import copy
import math
import pathlib
import subprocess

import numpy as np
import pytest

from dlcore.config.loading import ConfigError, load_config, load_raw, validate
from dlcore.config.section import SEED_LIMIT
from dlcore.data.dataset import split_fractions, split_sizes
from dlcore.data.ring import RingConfig, make_ring
from dlcore.experiment import build, memory
from dlcore.experiment.sampling import check_sampling_args
from tests.helpers import REPO, run_cli, write_toml

GOOD = {
    "name": "bad",
    "seed": 0,
    "data": {"name": "xor", "n_samples": 200},
    "model": {"name": "mlp", "widths": [8]},
    "train": {"epochs": 1, "batch_size": 16},
}


def changed(path: str, value) -> dict:
    """GOOD with the dotted ``path`` set to ``value``."""
    raw = copy.deepcopy(GOOD)
    *tables, key = path.split(".")
    node = raw
    for table in tables:
        node = node[table]
    node[key] = value
    return raw


# (case id, config file name, its bytes or raw dict, expected text in the one error line)
RUN_CASES = [
    ("negative seed", "s.toml", changed("seed", -1), "s.toml: seed: Input should be greater"),
    ("huge seed", "s.toml", changed("seed", SEED_LIMIT), "s.toml: seed: Input should be less"),
    ("data seed", "s.toml", changed("data.seed", -5), "s.toml: data.seed: Input should be"),
    ("val_fraction 0", "v.toml", changed("data.val_fraction", 0.0), "v.toml: data.val_fraction:"),
    ("empty split", "v.toml", changed("data.val_fraction", 0.001), "leaves the validation split"),
    (
        "non-UTF-8",
        "u.toml",
        b"name = 'caf\xe9'\n",
        "u.toml: not UTF-8 text (byte 0xe9 at offset 11)",
    ),
    ("huge data", "d.toml", changed("data.n_samples", 10**12), "d.toml: data: generating the xor"),
    ("huge model", "m.toml", changed("model.widths", [10**6, 10**6]), "m.toml: model: the param"),
    ("name ../../x", "n.toml", changed("name", "../../x"), "n.toml: name: must be one path"),
    ("name a/b", "n.toml", changed("name", "a/b"), "n.toml: name: must be one path"),
    ("name abs", "n.toml", lambda root: changed("name", str(root / "x")), "n.toml: name: must"),
    ("name NUL", "n.toml", changed("name", "a\x00b"), r"got 'a\x00b'"),
    ("name 300", "n.toml", changed("name", "x" * 300), "n.toml: name: must have at most 100"),
    ("file stem", "my exp.toml", {k: v for k, v in GOOD.items() if k != "name"}, "'my_exp'"),
    ("epochs true", "e.toml", changed("train.epochs", True), "e.toml: train.epochs: expected an"),
    ("lr inf", "l.toml", changed("optimizer", {"learning_rate": math.inf}), "a finite number"),
]
# `dlcore sample` checks its settings before it even looks at the run directory
SAMPLE_CASES = [
    ("temperature nan", ["--temperature", "nan"], "error: temperature must be >= 0 and finite"),
    ("temperature inf", ["--temperature", "inf"], "error: temperature must be >= 0 and finite"),
    ("temperature < 0", ["--temperature", "-1"], "error: temperature must be >= 0 and finite"),
    ("negative seed", ["--seed", "-1"], "error: seed must be in [0, 2**32); got -1"),
    ("huge seed", ["--seed", str(2**32)], "error: seed must be in [0, 2**32)"),
    ("length 0", ["--length", "0"], "error: length must be a positive number"),
    ("top-k 0", ["--top-k", "0"], "error: top_k must be >= 1; got 0"),
]


# The cases that also run as real `dlcore` processes: one per kind of check (file bytes, path
# safety, a typed value, a number that is not finite, a size estimate, a sample setting).
# Every case runs through the same `main()` in this process too; a process costs ~2.5 s of
# imports, so the rest stay in-process.
IN_A_PROCESS = (
    "non-UTF-8",
    "name ../../x",
    "epochs true",
    "lr inf",
    "huge model",
    "temperature nan",
)


def write_case(case, root: pathlib.Path) -> pathlib.Path:
    """The case's config file in ``root/work`` (created empty); returns that directory."""
    _, filename, content, _ = case
    work = root / "work"
    work.mkdir()
    if callable(content):
        content = content(root)
    if isinstance(content, bytes):
        (work / filename).write_bytes(content)
    else:
        write_toml(work / filename, content)
    return work


@pytest.fixture(scope="module")
def cli_results(tmp_path_factory):
    """The process cases run at once (each is its own process), in their own empty directory."""

    # Directories first, in this thread: tmp_path_factory is not thread-safe (its numbered
    # directories and their "current" link race when several threads create them at once).
    real_cases = [c for c in RUN_CASES if c[0] in IN_A_PROCESS]
    run_roots = [tmp_path_factory.mktemp("bad") for _ in real_cases]
    real_samples = [c for c in SAMPLE_CASES if c[0] in IN_A_PROCESS]
    sample_roots = [tmp_path_factory.mktemp("sample") for _ in real_samples]

    def run_case(case, root):
        work = write_case(case, root)
        return root, run_cli("run", case[1], "--quiet", cwd=work)

    def run_sample(case, root):
        return root, run_cli("sample", str(root / "no-run"), *case[1], cwd=root)

    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
        runs = dict(
            zip([c[0] for c in real_cases], pool.map(run_case, real_cases, run_roots), strict=True)
        )
        samples = dict(
            zip(
                [c[0] for c in real_samples],
                pool.map(run_sample, real_samples, sample_roots),
                strict=True,
            )
        )
    return runs, samples


def assert_one_error_line(proc, expected: str) -> str:
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: ") and "Traceback" not in proc.stderr
    assert expected in lines[0], lines[0]
    return lines[0]


def assert_nothing_written(root: pathlib.Path, filename: str) -> None:
    # nothing besides the config file: no runs/ (and no ../../x-<time> next to it)
    assert [p.name for p in root.iterdir()] == ["work"]
    assert [p.name for p in (root / "work").iterdir()] == [filename]


@pytest.mark.parametrize("case", [c for c in RUN_CASES if c[0] in IN_A_PROCESS], ids=lambda c: c[0])
def test_bad_run_input_in_a_process_is_one_line_exit_2_and_nothing_written(cli_results, case):
    root, proc = cli_results[0][case[0]]
    line = assert_one_error_line(proc, case[3])
    assert line.startswith(f"error: {case[1]}: ")
    assert_nothing_written(root, case[1])


@pytest.mark.parametrize("case", RUN_CASES, ids=[c[0] for c in RUN_CASES])
def test_bad_run_input_is_one_line_exit_2_and_nothing_written(case, tmp_path, monkeypatch, capsys):
    from dlcore.cli.main import main

    monkeypatch.chdir(write_case(case, tmp_path))
    code = main(["--no-compile-cache", "run", case[1], "--quiet"])
    err = capsys.readouterr().err
    line = assert_one_error_line(subprocess.CompletedProcess([], code, "", err), case[3])
    assert line.startswith(f"error: {case[1]}: ")
    assert_nothing_written(tmp_path, case[1])


@pytest.mark.parametrize(
    "case", [c for c in SAMPLE_CASES if c[0] in IN_A_PROCESS], ids=lambda c: c[0]
)
def test_bad_sample_setting_in_a_process_is_one_line_exit_2(cli_results, case):
    root, proc = cli_results[1][case[0]]
    assert_one_error_line(proc, case[2])
    assert list(root.iterdir()) == []


@pytest.mark.parametrize("case", SAMPLE_CASES, ids=[c[0] for c in SAMPLE_CASES])
def test_bad_sample_setting_is_one_line_exit_2(case, tmp_path, monkeypatch, capsys):
    from dlcore.cli.main import main

    monkeypatch.chdir(tmp_path)
    code = main(["--no-compile-cache", "sample", str(tmp_path / "no-run"), *case[1]])
    err = capsys.readouterr().err
    assert_one_error_line(subprocess.CompletedProcess([], code, "", err), case[2])
    assert list(tmp_path.iterdir()) == []


# ---- in-process: the rules, and what still passes --------------------------------------------


def one_line(raw: dict, built: bool = False) -> str:
    with pytest.raises(ConfigError) as info:
        cfg = validate(raw, "t.toml")
        if built:
            build(cfg, "t.toml")
    assert len(info.value.lines()) == 1, info.value.lines()
    return info.value.lines()[0]


@pytest.mark.parametrize(
    "path, value, expected",
    [
        (
            "train.epochs",
            True,
            "t.toml: train.epochs: expected an integer, not a boolean (got true)",
        ),
        ("model.widths", [8, False], "model.widths[1]: expected an integer, not a boolean"),
        ("model.dropout", True, "model.dropout: expected a number, not a boolean (got true)"),
        ("data.noise", math.nan, "data.noise: Input should be a finite number (got nan)"),
        ("data.noise", -math.inf, "data.noise: Input should be a finite number (got -inf)"),
        ("data.seed", SEED_LIMIT, "data.seed: Input should be less than 4294967296"),
        ("data.test_fraction", 0.0, "data.test_fraction: Input should be greater than 0"),
        ("name", "", "name: must be one path component"),
        ("name", "..", "name: must be one path component"),
        ("name", "x" * 101, "name: must have at most 100 characters; got 101"),
    ],
)
def test_bad_field_is_one_line(path, value, expected):
    assert expected in one_line(changed(path, value))


def test_non_finite_numbers_are_refused_in_lists_tables_and_untyped_choices():
    raw = {**GOOD, "task": {"name": "multitask", "weights": {"digit": 1.0, "parity": math.nan}}}
    assert "task.weights.parity: Input should be a finite number" in one_line(raw)
    sweep = {"space": {"optimizer.learning_rate": {"choices": [0.1, math.inf]}}}
    line = one_line({**GOOD, "sweep": sweep})
    assert "sweep.space.optimizer.learning_rate: choices[1]: numbers must be finite" in line
    sweep = {"method": "random", "space": {"model.dropout": {"uniform": [0.0, math.nan]}}}
    assert "sweep.space.model.dropout.uniform[1]: Input should be a finite" in one_line(
        {**GOOD, "sweep": sweep}
    )


def test_valid_inputs_still_pass():
    cfg = validate(changed("optimizer", {"learning_rate": 1}), "t.toml")
    assert cfg.optimizer.learning_rate == 1.0 and isinstance(cfg.optimizer.learning_rate, float)
    cfg = validate(changed("data.noise", 0), "t.toml")  # an int where a float is expected
    assert isinstance(cfg.data.noise, float)
    assert validate(changed("seed", SEED_LIMIT - 1), "t.toml").seed == SEED_LIMIT - 1
    for name in ("digits_mlp-v2.1", "x" * 100, "A.b_c-1", ".hidden-ok"):
        assert validate(changed("name", name), "t.toml").name == name
    restore = changed("train.restore_best", False)  # a boolean where a boolean is expected
    assert validate(restore, "t.toml").train.restore_best is False


@pytest.mark.parametrize(
    "path", sorted((REPO / "experiments").glob("*.toml")), ids=lambda p: p.stem
)
def test_shipped_experiments_still_validate(path):
    load_config(path)


def test_split_sizes_leave_every_split_an_example():
    assert split_sizes(400, 0.15, 0.15) == (280, 60, 60)
    assert split_sizes(3, 0.2, 0.2) == (1, 1, 1)
    with pytest.raises(ValueError, match=r"data.val_fraction: 0.1 of 4 examples .* validation"):
        split_sizes(4, 0.1, 0.25)
    with pytest.raises(ValueError, match=r"data.test_fraction: .* leaves the test split empty"):
        split_sizes(10, 0.5, 0.01)
    with pytest.raises(ValueError, match=r"leaves the training split empty"):
        split_sizes(2, 0.5, 0.5 - 1e-9)
    with pytest.raises(ValueError, match="validation split empty"):
        split_fractions(np.zeros((5, 2)), np.zeros(5), 0.05, 0.2, np.random.default_rng(0))
    with pytest.raises(ValueError, match="data.val_fraction"):
        make_ring(RingConfig(n_samples=5, val_fraction=0.05))


def test_rounded_empty_split_is_a_config_error_at_build():
    raw = changed("data.n_samples", 3)  # 0.15 of 3 rounds to 0
    assert "t.toml: data.val_fraction: 0.15 of 3 examples" in one_line(raw, built=True)


def test_unusable_file_stem_asks_for_a_name(tmp_path):
    path = write_toml(
        tmp_path / "run 1 (copy).toml", {k: v for k, v in GOOD.items() if k != "name"}
    )
    with pytest.raises(ConfigError) as info:
        load_config(path)
    (line,) = info.value.lines()
    assert line.startswith(f"{path}: name: the file name 'run 1 (copy)' is not a usable run name")
    assert line.endswith("set name = 'run_1_copy_' in the file or with --set")
    assert load_config(path, ["name=run1"]).name == "run1"


@pytest.mark.parametrize(
    "content, expected",
    [
        (b"\xef\xbb\xbfname = 'bom'\n[data]\nname = 'xor'\n", None),  # a byte-order mark is fine
        (b"\xef\xbb\xbfna\xffme = 1", "not UTF-8 text (byte 0xff at offset 5)"),
        (b"seed = " + b"9" * 5000, "invalid TOML: Exceeds the limit"),
        (b"x = " + b"[" * 2000 + b"]" * 2000, "invalid TOML: arrays or tables nested too deeply"),
    ],
)
def test_unreadable_files_are_one_line(tmp_path, content, expected):
    path = tmp_path / "f.toml"
    path.write_bytes(content)
    if expected is None:
        assert load_raw(path)[0]["name"] == "bom"
        return
    with pytest.raises(ConfigError) as info:
        load_raw(path)
    (line,) = info.value.lines()
    assert line.startswith(f"{path}: {expected}"), line


def test_memory_estimate_counts_parameters_gradients_and_adam_moments(monkeypatch):
    experiment = build(validate(copy.deepcopy(GOOD), "t.toml"))
    batch = experiment.data.train.rows(slice(0, 16))
    total, params = memory.state_bytes(experiment.task, batch)
    assert params == (2 * 8 + 8 + 8 * 2 + 2) * 4  # MLP 2-8-2, float32
    assert total >= 3 * params  # parameters, Adam's two moments (plus step, key, count)
    monkeypatch.setattr(memory, "host_available_bytes", lambda: total)  # gradients don't fit
    expected = f"need ~{total + params} bytes; {total} bytes of memory is available"
    with pytest.raises(ValueError, match=expected):
        memory.check_model("model", experiment.task, batch)


def test_model_larger_than_memory_is_refused_before_allocating(monkeypatch):
    monkeypatch.setattr(memory, "host_available_bytes", lambda: 100 * 2**20)
    line = one_line(changed("model.widths", [4096, 4096]), built=True)  # 16.8 M parameters
    assert line == (
        "t.toml: model: the parameters, gradients and optimizer state need ~256.4 MiB; "
        "100.0 MiB of memory is available"
    )


def test_data_larger_than_memory_is_refused_before_generating(monkeypatch):
    monkeypatch.setattr(memory, "host_available_bytes", lambda: 10_000)
    line = one_line(changed("data.n_samples", 1000), built=True)
    assert line == (
        "t.toml: data: generating the xor data set needs ~62.5 KiB; 9.8 KiB of memory is available"
    )


@pytest.mark.parametrize(
    "files, headroom",
    [
        ({}, None),  # no cgroup
        ({"memory.max": "max\n", "memory.current": "100\n", "memory.stat": ""}, None),
        (
            {"memory.max": "1000\n", "memory.current": "900\n", "memory.stat": "inactive_file 50"},
            150,  # reclaimable page cache counts as free
        ),
        (
            {
                "memory/memory.limit_in_bytes": "2000",
                "memory/memory.usage_in_bytes": "500",
                "memory/memory.stat": "cache 9\ntotal_inactive_file 100\n",
            },
            1600,
        ),
        (
            {
                "memory/memory.limit_in_bytes": str(2**63 - 4096),
                "memory/memory.usage_in_bytes": "1",
                "memory/memory.stat": "",
            },
            None,
        ),  # cgroup v1 without a limit
    ],
)
def test_cgroup_limit_caps_available_memory(tmp_path, files, headroom):
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_text(text)
    assert memory._cgroup_headroom(tmp_path) == headroom


@pytest.mark.skipif(not pathlib.Path("/proc/meminfo").exists(), reason="Linux only")
def test_available_memory_is_known_on_linux():
    assert memory.host_available_bytes() > 0


@pytest.mark.parametrize(
    "kw, message",
    [
        ({"temperature": math.nan}, "temperature must be >= 0 and finite"),
        ({"temperature": math.inf}, "temperature must be >= 0 and finite"),
        ({"seed": -1}, r"seed must be in \[0, 2\*\*32\); got -1"),
        ({"seed": SEED_LIMIT}, r"seed must be in \[0, 2\*\*32\)"),
        ({"top_k": 0, "vocab": None}, "top_k must be >= 1; got 0"),
        ({"top_k": 30, "vocab": 20}, r"top_k must be in \[1, 20\]"),
        ({"length": -5}, "length must be a positive number"),
    ],
)
def test_bad_sampling_settings(kw, message):
    args = {"length": 10, "temperature": 1.0, "top_k": None, "vocab": 20, "seed": 0, **kw}
    with pytest.raises(ValueError, match=message):
        check_sampling_args(**args)
    check_sampling_args(10, 0.0, 5, 20, SEED_LIMIT - 1)  # greedy, top-5, the largest seed
