"""Checkpoint saves in the background (``CheckpointStore(background=True)``, the training
loop's stores): the state saved is the one at the call even when the next step donates
it, a failed write surfaces at the next wait in one line, a store opened on the same
directory sees a save still in flight, and a process that ends (even by an error) with a
save in flight commits it first."""

import pathlib
import shutil
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dlcore.runs.background import InFlight
from dlcore.runs.checkpoint import CheckpointStore
from dlcore.runs.errors import RunIOError
from tests.helpers import REPO, cli_env


def state(step: int) -> dict:
    return {"params": {"w": jnp.full((8, 8), float(step))}, "step": jnp.asarray(step)}


def test_the_saved_state_is_the_one_at_the_call_even_if_the_next_step_donates_it(tmp_path):
    store = CheckpointStore(tmp_path / "latest", keep=2, background=True)
    current = state(1)
    store.save(1, current, {"step": 1})
    # The loop's next step donates the state it was given: its buffers are gone.
    donate = jax.jit(lambda s: jax.tree.map(lambda x: x + 1, s), donate_argnums=0)
    after = donate(current)
    assert current["params"]["w"].is_deleted()
    store.wait()
    restored, meta = store.restore(state(0))
    store.close()
    assert meta == {"step": 1}
    assert np.array_equal(restored["params"]["w"], np.full((8, 8), 1.0, np.float32))
    assert float(after["params"]["w"][0, 0]) == 2.0


def test_a_background_write_that_fails_is_one_line_at_the_next_wait(tmp_path):
    directory = tmp_path / "checkpoints" / "latest"
    store = CheckpointStore(directory, keep=3, background=True)
    store.save(1, state(1), {"step": 1})
    store.wait()
    shutil.rmtree(directory)
    directory.write_text("a file where the checkpoint directory was")
    store.save(2, state(2), {"step": 2})  # fails in its thread
    with pytest.raises(RunIOError) as err:
        store.wait()
    assert str(err.value) == f"{directory}: could not save step 2: [Errno 20] Not a directory"
    store.wait()  # raised once
    store.close()


def test_a_store_opened_on_the_directory_sees_the_save_in_flight(tmp_path):
    writer = CheckpointStore(tmp_path / "latest", keep=2, background=True)
    writer.save(7, state(7), {"step": 7})  # not waited for: abandoned, as by an error
    reader = CheckpointStore(tmp_path / "latest", keep=2)
    assert reader.latest_step() == 7
    restored, _ = reader.restore(state(0))
    assert int(restored["step"]) == 7
    reader.close()
    writer.close()


def test_the_next_job_waits_for_the_previous_and_raises_its_error():
    order = []
    saves = InFlight("test jobs")

    def fail():
        order.append("first")
        raise OSError("disk full")

    saves.start(fail)
    with pytest.raises(OSError, match="disk full"):
        saves.start(lambda: order.append("never"))
    saves.start(lambda: order.append("second"))
    saves.wait()
    assert order == ["first", "second"]


# A process that raises right after starting a save, without waiting for it.
ABANDON = """
import sys
import jax.numpy as jnp
from dlcore.runs.checkpoint import CheckpointStore
store = CheckpointStore(sys.argv[1], keep=1, background=True)
store.save(3, {"w": jnp.arange(4096.0)}, {"step": 3})
raise SystemExit("error: stopped with a save in flight")
"""


def test_a_process_that_exits_with_a_save_in_flight_commits_it(tmp_path):
    directory = tmp_path / "latest"
    proc = subprocess.run(
        [sys.executable, "-c", ABANDON, str(directory)],
        cwd=REPO,
        env=cli_env(None),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 1 and "stopped with a save in flight" in proc.stderr
    assert sorted(p.name for p in pathlib.Path(directory).iterdir()) == ["3"]
    store = CheckpointStore(directory, keep=1)
    restored, meta = store.restore({"w": jnp.zeros(4096)})
    store.close()
    assert meta == {"step": 3} and float(restored["w"][-1]) == 4095.0
