"""The README's research-code example runs as written and stays within 15 lines."""

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
