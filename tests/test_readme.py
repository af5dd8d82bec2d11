"""The README's research-code examples run as written and stay within 15 lines."""

import re

from tests.helpers import REPO


def python_blocks():
    return re.findall(r"```python\n(.*?)```", (REPO / "README.md").read_text(), re.S)


def test_library_example_runs_and_is_short():
    block = python_blocks()[0]
    assert len(block.strip().splitlines()) <= 15
    scope: dict = {}
    exec(compile(block, "README.md", "exec"), scope)  # noqa: S102
    state = scope["state"]
    assert int(state.step) == len(scope["data"].train) // 32
    # one epoch takes the loss well below chance level, ln(10) = 2.30
    assert float(scope["sums"]["loss"] / scope["sums"]["count"]) < 0.5 * 2.30


def test_vae_example_runs_and_its_bound_is_above_the_elbo():
    (block,) = [b for b in python_blocks() if "VAETask" in b]
    assert len(block.strip().splitlines()) <= 15
    scope: dict = {}
    exec(compile(block, "README.md", "exec"), scope)  # noqa: S102
    bound, elbo = scope["bound"], scope["elbo"]
    assert bound.shape == elbo.shape == (len(scope["data"].test),)
    assert float(bound.mean()) > float(elbo.mean())  # Jensen, per example in expectation
    # one epoch already beats 64 fair coin flips, 64 ln 2 = 44.4 nats
    assert float(bound.mean()) > -44.4
