"""Checkpoints that prove their integrity, with real faults on real files.

Damage is done on disk (bytes flipped in the middle of a tensorstore data file, that file
cut in half or deleted, garbage in a metadata JSON file, an empty newer step directory);
a restore must name the damaged step and its reason in one warning line and return the
newest intact checkpoint's values, or end in one error line when none is intact. A config
that no longer builds the checkpoint's state is named path by path, never skipped. A save
that cannot write stops the run with exit status 4: the fault is a file size limit
(``RLIMIT_FSIZE``, writes fail with EFBIG as on a full disk), which works as root, where
``chmod`` stops no write.
"""

import json
import logging
import os
import pathlib
import re
import shutil
import subprocess
import sys
import tomllib

import flax.serialization
import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest

from dlcore.experiment import restore_run
from dlcore.experiment.restore import template_state
from dlcore.runs.checkpoint import CheckpointStore, DamagedCheckpointError, restore_newest_intact
from dlcore.runs.errors import RunDirError, RunIOError
from dlcore.runs.integrity import content_digest, structure, structure_differences
from tests.helpers import REPO, cli_env, run_cli, write_toml

# --- faults -------------------------------------------------------------------------


OCDBT_NODE = bytes.fromhex("0cdb20de")  # b-tree nodes and manifests carry a CRC-32C


def data_files(step_dir: pathlib.Path) -> list[pathlib.Path]:
    """The tensorstore/OCDBT files (``.../d/<hash>``) of a step."""
    return sorted(f for f in step_dir.rglob("*") if f.is_file() and f.parent.name == "d")


def value_files(step_dir: pathlib.Path) -> list[pathlib.Path]:
    """The data files holding array chunks (zstd frames, no checksum of their own)."""
    found = [f for f in data_files(step_dir) if not f.read_bytes().startswith(OCDBT_NODE)]
    assert found, "no out-of-line array data: use a larger array"
    return found


def plain_read(step_dir: pathlib.Path, abstract) -> list[np.ndarray]:
    """The state as orbax alone returns it (no digest), as host arrays."""
    with ocp.StandardCheckpointer() as checkpointer:
        restored = checkpointer.restore(step_dir / "state", abstract)
    return [np.asarray(x) for x in jax.tree.leaves(restored)]


def flip_bytes(step_dir, abstract):
    """Flips 4 bytes in the middle of an array data file, at the first offset where orbax
    alone still restores, without complaint, values that differ from those committed."""
    committed = plain_read(step_dir, abstract)
    for f in value_files(step_dir):
        original = f.read_bytes()
        for at in range(len(original) // 2, len(original) - 4, 97):
            data = bytearray(original)
            data[at : at + 4] = bytes(b ^ 0xFF for b in data[at : at + 4])
            f.write_bytes(bytes(data))
            try:
                values = plain_read(step_dir, abstract)
            except Exception:
                continue  # the codec noticed: not silent
            if any(not np.array_equal(a, b) for a, b in zip(values, committed, strict=True)):
                return
        f.write_bytes(original)
    pytest.fail("no byte flip found that orbax restores silently")


def truncate(step_dir, abstract):
    for f in value_files(step_dir):
        os.truncate(f, f.stat().st_size // 2)


def delete(step_dir, abstract):
    for f in value_files(step_dir):
        f.unlink()


def truncate_all(step_dir):
    for f in data_files(step_dir):
        os.truncate(f, f.stat().st_size // 2)


def garbage_metadata(step_dir, abstract):
    (step_dir / "state" / "_METADATA").write_text("{not json")


def empty_newer_step(step_dir, abstract):
    (step_dir.parent / str(int(step_dir.name) + 100)).mkdir()


# name -> (fault applied to the newest step's directory, the reason the warning gives,
# how far above that step the damaged step is)
FAULTS = {
    "flipped-bytes": (flip_bytes, r"content digest differs", 0),
    "truncated-file": (truncate, r"unreadable: [A-Z_]+", 0),
    "deleted-file": (delete, r"unreadable: [A-Z_]+", 0),
    "garbage-metadata": (garbage_metadata, r"unreadable: JSONDecodeError", 0),
    "empty-step-dir": (empty_newer_step, r"empty step directory", 100),
}


def newest(directory: pathlib.Path) -> int:
    return max(int(p.name) for p in directory.iterdir() if p.name.isdigit())


def abstract_of(state) -> dict:
    """The shapes, dtypes and shardings a checkpoint of ``state`` restores into."""
    target = flax.serialization.to_state_dict(state)
    return jax.tree.map(ocp.utils.to_shape_dtype_struct, target)


def damage(directory: pathlib.Path, fault: str, template) -> int:
    """Applies ``fault`` to the newest step in ``directory`` (checkpoints of states like
    ``template``); returns the damaged step."""
    step = newest(directory)
    apply, _, offset = FAULTS[fault]
    apply(directory / str(step), abstract_of(template))
    return step + offset


def assert_same_tree(a, b):
    flat_a, flat_b = jax.tree.leaves_with_path(a), jax.tree.leaves(b)
    assert len(flat_a) == len(flat_b)
    for (path, x), y in zip(flat_a, flat_b, strict=True):
        assert np.array_equal(np.asarray(x), np.asarray(y)), jax.tree_util.keystr(path)


# --- in-process: CheckpointStore on a tiny pytree ------------------------------------


def tiny_state(step: int) -> dict:
    # 1024 float32 (4 KiB) is stored out of line in a data file; random values do not
    # compress, so a flipped byte changes a value instead of breaking decompression.
    rng = np.random.default_rng(step)
    return {
        "params": {"w": rng.normal(size=(32, 32)).astype(np.float32), "b": np.zeros(3, np.float32)},
        "step": np.asarray(step, np.int32),
        "extra": {},
    }


def tiny_meta(step: int) -> dict:
    return {"step": step, "pending": [{"loss": 0.5 / step}]}


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """Steps 1, 2, 3 committed in ``<root>/checkpoints/latest``."""
    root = tmp_path_factory.mktemp("store")
    store = CheckpointStore(root / "checkpoints" / "latest", keep=3)
    for step in (1, 2, 3):
        store.save(step, tiny_state(step), tiny_meta(step))
    store.close()
    return root


@pytest.fixture
def copy_of(saved, tmp_path):
    shutil.copytree(saved, tmp_path / "copy")
    return tmp_path / "copy" / "checkpoints" / "latest"


def test_a_store_restores_what_it_saved_and_records_its_digest(copy_of):
    store = CheckpointStore(copy_of, keep=3)
    state, meta = store.restore(tiny_state(0))
    store.close()
    assert_same_tree(state, tiny_state(3))
    assert meta == tiny_meta(3)
    digest = json.loads((copy_of / "3" / "digest" / "metadata").read_text())
    assert digest == {"algorithm": "sha256", "content": content_digest(tiny_state(3), meta)}


@pytest.mark.parametrize("fault", FAULTS)
def test_a_damaged_checkpoint_is_named_and_the_newest_intact_one_used(copy_of, fault):
    damaged = damage(copy_of, fault, tiny_state(0))
    warnings: list[str] = []
    store = CheckpointStore(copy_of, keep=3)
    state, meta = restore_newest_intact(store, tiny_state(0), warn=warnings.append)
    if fault == "empty-step-dir":  # the empty step hides an intact step 3
        assert_same_tree(state, tiny_state(3))
        used = 3
    else:
        assert_same_tree(state, tiny_state(2))
        assert meta == tiny_meta(2)
        used = 2
        with pytest.raises(DamagedCheckpointError, match=FAULTS[fault][1]):
            store.restore(tiny_state(0), damaged)  # a plain restore never returns it
    store.close()
    assert len(warnings) == 1
    assert re.fullmatch(
        rf"checkpoint step {damaged} in {re.escape(str(copy_of))} is damaged "
        rf"\({FAULTS[fault][1]}[^;]*\); using step {used}",
        warnings[0],
    ), warnings[0]


def test_a_checkpoint_missing_its_digest_item_is_damaged(copy_of):
    shutil.rmtree(copy_of / "3" / "digest")
    store = CheckpointStore(copy_of, keep=3)
    with pytest.raises(DamagedCheckpointError, match=r"step 3 .* \(content digest missing\)"):
        store.restore(tiny_state(0))
    store.close()


def test_when_every_checkpoint_is_damaged_one_line_names_each(copy_of):
    for step in (1, 2, 3):
        truncate_all(copy_of / str(step))
    store = CheckpointStore(copy_of, keep=3)
    with pytest.raises(RunDirError) as err:
        restore_newest_intact(store, tiny_state(0), warn=pytest.fail)
    store.close()
    message = str(err.value)
    assert "\n" not in message and message.startswith(f"{copy_of}: no intact checkpoint: ")
    assert [int(s) for s in re.findall(r"step (\d+) in ", message)] == [3, 2, 1]


def test_a_checkpoint_written_before_digests_is_accepted_when_it_restores(tmp_path):
    manager = ocp.CheckpointManager(tmp_path / "old")
    manager.save(
        7,
        args=ocp.args.Composite(
            state=ocp.args.StandardSave(tiny_state(7)), meta=ocp.args.JsonSave(tiny_meta(7))
        ),
    )
    manager.close()
    store = CheckpointStore(tmp_path / "old", keep=3)
    state, meta = store.restore(tiny_state(0))
    store.close()
    assert_same_tree(state, tiny_state(7))
    assert meta == tiny_meta(7)


def test_a_structure_mismatch_names_each_path_and_is_never_skipped(copy_of):
    # The newest step's values are damaged, its metadata is not: the mismatch is found
    # from stored shapes alone, before any value is read, and older steps are not tried.
    flip_bytes(copy_of / "3", abstract_of(tiny_state(0)))
    template = tiny_state(0)
    template["params"]["w"] = np.zeros((32, 48), np.float32)
    template["params"]["new"] = np.zeros(2, np.float32)
    warnings: list[str] = []
    store = CheckpointStore(copy_of, keep=3)
    with pytest.raises(RunDirError) as err:
        restore_newest_intact(store, template, warn=warnings.append)
    store.close()
    assert not isinstance(err.value, DamagedCheckpointError) and warnings == []
    assert str(err.value) == (
        f"{copy_of}: the config no longer matches checkpoint step 3: "
        "params/new missing from the checkpoint, float32[2] in the config; "
        "params/w [32, 32] in the checkpoint, [32, 48] in the config"
    )


def test_structure_differences_list_parameters_and_count_optimizer_state():
    stored = {"params/k": ((2, 4), "float32"), "opt_state/mu/k": ((2, 4), "float32")}
    wanted = {"params/k": ((2, 8), "float32"), "opt_state/mu/k": ((2, 8), "float32")}
    assert structure_differences(stored, wanted) == [
        "params/k [2, 4] in the checkpoint, [2, 8] in the config",
        "and 1 optimizer-state entries that follow them",
    ]
    assert structure_differences(stored, stored) == []
    assert structure({"a": {"b": np.zeros((1, 2), np.int8)}, "e": {}}) == {"a/b": ((1, 2), "int8")}


def test_the_digest_covers_every_bit_and_the_meta():
    state = tiny_state(1)
    base = content_digest(state, tiny_meta(1))
    assert base == content_digest(tiny_state(1), json.loads(json.dumps(tiny_meta(1))))
    state["params"]["w"].view(np.uint32)[5, 5] ^= 1  # one bit of one float
    assert content_digest(state, tiny_meta(1)) != base
    assert content_digest(tiny_state(1), tiny_meta(2)) != base


def test_a_save_that_cannot_write_raises_a_one_line_io_error(tmp_path):
    directory = tmp_path / "checkpoints" / "latest"
    store = CheckpointStore(directory, keep=3)
    store.save(1, tiny_state(1), tiny_meta(1))
    store.wait()
    shutil.rmtree(directory)
    directory.write_text("a file where the checkpoint directory was")
    with pytest.raises(RunIOError) as err:
        store.save(2, tiny_state(2), tiny_meta(2))  # its step directory cannot be made
    assert str(err.value) == f"{directory}: could not save step 2: [Errno 20] Not a directory"
    store.close()


def test_orbax_and_absl_log_lines_go_to_the_log_file(tmp_path, capfd):
    store = CheckpointStore(tmp_path / "checkpoints" / "latest", keep=1)
    logging.getLogger("absl").warning("absl says hello")
    store.close()
    assert "hello" not in capfd.readouterr().err
    assert "absl says hello" in (tmp_path / "checkpoints" / "orbax.log").read_text()


# --- through the CLI ----------------------------------------------------------------

# Widths 16 and 32 put the 16x32 kernels out of line in a data file, so a flipped byte
# there is silent corruption that only the digest catches.
CONFIG = {
    "name": "faults",
    "seed": 0,
    "data": {"name": "xor", "n_samples": 200},
    "model": {"name": "mlp", "widths": [16, 32]},
    "optimizer": {"name": "adam", "learning_rate": 0.01},
    "train": {
        "epochs": 3,
        "batch_size": 16,
        "mode": "step",
        "log_every": 5,
        "checkpoint_every": 5,
        "keep_checkpoints": 3,
    },
}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("faults")
    cfg = write_toml(root / "faults.toml", CONFIG)
    cache = root / "xla-cache"
    proc = run_cli("run", str(cfg), "--run-dir", str(root / "ref"), "--quiet", cache_dir=cache)
    assert proc.returncode == 0, proc.stderr
    return root, cfg, cache, proc


def copy_run(trained, name: str) -> pathlib.Path:
    root = trained[0]
    shutil.copytree(root / "ref", root / name)
    return root / name


def steps(directory: pathlib.Path) -> list[int]:
    return sorted(int(p.name) for p in directory.iterdir() if p.name.isdigit())


def pristine_state(trained, step: int, where: str):
    store = CheckpointStore(trained[0] / "ref" / "checkpoints" / where, keep=3)
    state, _ = store.restore(template(trained), step)
    store.close()
    return state


def template(trained):
    return template_state(restore_run(trained[0] / "ref", checkpoint=None).experiment)


def test_a_normal_run_shows_only_dlcore_lines_and_keeps_an_orbax_log(trained):
    root, _, _, proc = trained
    lines = proc.stderr.splitlines()
    assert lines[0].startswith("training: step 0 of ")
    assert all(line.startswith(("training:", "val ")) for line in lines), proc.stderr
    assert not re.search("absl|orbax", proc.stderr, re.IGNORECASE)
    assert (root / "ref" / "checkpoints" / "orbax.log").is_file()


@pytest.mark.parametrize("fault", FAULTS)
def test_eval_warns_and_falls_back_from_a_damaged_checkpoint(trained, fault, capsys):
    run_dir = copy_run(trained, f"eval-{fault}")
    latest, best = run_dir / "checkpoints" / "latest", run_dir / "checkpoints" / "best"
    intact = [(s, "latest") for s in steps(latest)] + [(s, "best") for s in steps(best)]
    damaged = damage(latest, fault, template(trained))
    # newest first, `latest` first on a tie; the damaged step is skipped
    used, where = max((s, w == "latest") for s, w in intact if (s, w) != (damaged, "latest"))
    where = "latest" if where else "best"
    proc = run_cli("eval", str(run_dir), "--checkpoint", "latest", cache_dir=trained[2])
    assert proc.returncode == 0, proc.stderr
    suffix = "" if where == "latest" else f" in {run_dir / 'checkpoints' / 'best'}"
    assert re.fullmatch(
        rf"warning: checkpoint step {damaged} in {re.escape(str(latest))} is damaged "
        rf"\({FAULTS[fault][1]}[^;]*\); using step {used}{re.escape(suffix)}",
        proc.stderr.strip(),
    ), proc.stderr
    assert json.loads(proc.stdout)["split"] == "val"
    # the values behind those metrics are the intact step's, as committed
    assert_same_tree(restore_run(run_dir).state, pristine_state(trained, used, where))
    assert capsys.readouterr().err.startswith(f"warning: checkpoint step {damaged} ")


def test_resume_skips_a_truncated_checkpoint_and_ends_bit_identical(trained):
    # A process that died after its last commit, whose newest checkpoint then lost half
    # of a file: resume warns, continues from the step before and ends as if nothing
    # happened. (`best` is removed so the fallback is a `latest` step with its pending
    # metrics window, which a `best` checkpoint does not keep.)
    run_dir = copy_run(trained, "resume-truncated")
    (run_dir / "summary.json").unlink()
    shutil.rmtree(run_dir / "checkpoints" / "best")
    latest = run_dir / "checkpoints" / "latest"
    damaged = damage(latest, "truncated-file", template(trained))
    before = steps(latest)[-2]
    proc = run_cli("resume", str(run_dir), "--quiet", cache_dir=trained[2])
    assert proc.returncode == 0, proc.stderr
    warning = [line for line in proc.stderr.splitlines() if line.startswith("warning:")]
    assert len(warning) == 1 and f"step {damaged} in {latest} is damaged (unreadable" in warning[0]
    assert warning[0].endswith(f"using step {before}")
    ref = trained[0] / "ref"
    assert (run_dir / "metrics.jsonl").read_text() == (ref / "metrics.jsonl").read_text()
    assert_same_tree(restore_run(run_dir).state, restore_run(ref).state)


def test_eval_with_every_checkpoint_damaged_exits_2_with_one_line(trained):
    run_dir = copy_run(trained, "all-damaged")
    for name in ("latest", "best"):
        for step in steps(run_dir / "checkpoints" / name):
            truncate_all(run_dir / "checkpoints" / name / str(step))
    proc = run_cli("eval", str(run_dir), cache_dir=trained[2])
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr
    assert lines[0].startswith(f"error: {run_dir / 'checkpoints' / 'latest'}: no intact checkpoint")


@pytest.mark.parametrize("command", ["eval", "resume"])
def test_a_config_that_no_longer_matches_is_named_in_one_line(trained, command):
    run_dir = copy_run(trained, f"mismatch-{command}")
    (run_dir / "summary.json").unlink()  # so that resume restores
    cfg = tomllib.loads((run_dir / "config.toml").read_text())
    cfg["model"]["widths"] = [16, 48]
    write_toml(run_dir / "config.toml", cfg)
    proc = run_cli(command, str(run_dir), cache_dir=trained[2])
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "warning" not in proc.stderr, proc.stderr
    assert lines[0].startswith(f"error: {run_dir / 'checkpoints' / 'latest'}: the config no ")
    for path, old, new in [
        ("params/Dense_1/bias", "[32]", "[48]"),
        ("params/Dense_1/kernel", "[16, 32]", "[16, 48]"),
        ("params/Dense_2/kernel", "[32, 2]", "[48, 2]"),
    ]:
        assert f"{path} {old} in the checkpoint, {new} in the config" in lines[0]


# Runs the CLI with a file size limit: a write past it fails with EFBIG ("File too
# large") instead of killing the process with SIGXFSZ.
LIMITED = """
import resource, signal, sys
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
limit = int(sys.argv[1])
resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
from dlcore.cli.main import main
sys.exit(main(sys.argv[2:]))
"""


def test_a_save_that_hits_a_write_error_stops_the_run_with_exit_4(trained):
    root, cfg, _, _ = trained
    ref = root / "ref"
    # A limit above every file the run writes outside its checkpoints, below the largest
    # checkpoint file: the first save fails, nothing else does.
    # (TensorBoard's event file is left out: it holds the PNGs too, added at the end.)
    outside = [
        f
        for f in ref.iterdir()
        if f.is_file() and f.suffix not in (".png",) and not f.name.startswith("events.")
    ]
    small = max(f.stat().st_size for f in outside if f.name != "summary.json")
    big = max(f.stat().st_size for f in (ref / "checkpoints" / "latest").rglob("*") if f.is_file())
    assert small * 2 < big, (small, big)
    run_dir = root / "io-error"
    proc = subprocess.run(
        [sys.executable, "-c", LIMITED, str(small * 2), "run", str(cfg), "--run-dir", str(run_dir)]
        + ["--quiet"],
        cwd=REPO,
        env=cli_env(None),  # no compile cache: its writes would hit the limit too
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 4, proc.stderr
    assert "Traceback" not in proc.stderr
    *before, last = proc.stderr.strip().splitlines()
    every = CONFIG["train"]["checkpoint_every"]
    assert re.fullmatch(
        rf"error: {re.escape(str(run_dir))}/checkpoints/latest: could not save step {every}: "
        r"\[Errno 27\] File too large",
        last,
    ), proc.stderr
    assert all(line.startswith(("training:", "val ")) for line in before), proc.stderr
    # It stopped at the next save, where the background write's failure surfaced: no
    # metrics past it, no summary.
    logged = [json.loads(r)["step"] for r in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert max(logged) <= 2 * every
    assert not (run_dir / "summary.json").exists()
