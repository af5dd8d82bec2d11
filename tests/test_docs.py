"""The documentation site: the tutorials' code runs, the generated pages cover the code.

Every ```python block of every tutorial page runs here, the blocks of one page in order in
one namespace (as a reader pastes them), in a scratch working directory that sees the
repository's ``experiments/``. A block preceded by the line ``<!-- docs: no-run -->`` is
shown but not run (see docs/tutorials/index.md); ```bash blocks are never run.
"""

import importlib.util
import os
import re

import pytest

from tests.helpers import REPO

DOCS = REPO / "docs"
TUTORIALS = sorted((DOCS / "tutorials").glob("*.md"))
NO_RUN = "<!-- docs: no-run -->"
_FENCE = re.compile(r"^```python[ \t]*\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)


def python_blocks(text: str) -> list[tuple[int, str]]:
    """(first code line number, code) of each ```python block to run, in page order."""
    blocks = []
    for match in _FENCE.finditer(text):
        before = text[: match.start()].rstrip("\n").rsplit("\n", 1)[-1]
        if before.strip() != NO_RUN:
            line = text.count("\n", 0, match.start(1)) + 1
            blocks.append((line, match.group(1)))
    return blocks


def test_blocks_are_found_and_the_marker_skips_one():
    page = "a\n```python\nx = 1\n```\n" + NO_RUN + "\n```python\nraise\n```\n```bash\nls\n```\n"
    assert python_blocks(page) == [(3, "x = 1\n")]


@pytest.mark.parametrize("page", TUTORIALS, ids=lambda p: p.stem)
def test_tutorial_code_runs(page, tmp_path, monkeypatch):
    blocks = python_blocks(page.read_text())
    if page.stem != "index":
        assert blocks, f"{page.name} has no python block to run"
    (tmp_path / "experiments").symlink_to(REPO / "experiments")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    namespace = {"__name__": f"docs_{page.stem}"}
    for line, code in blocks:
        # Leading newlines make a traceback's line numbers those of the Markdown file.
        compiled = compile("\n" * (line - 1) + code, str(page.relative_to(REPO)), "exec")
        exec(compiled, namespace)  # noqa: S102


def test_every_lecture_topic_has_a_tutorial_in_the_nav():
    nav = (REPO / "mkdocs.yml").read_text()
    topics = ("perceptron", "mlp", "regularisation", "cnn", "rnn", "seq2seq")
    topics += ("representation", "generative")
    for topic in topics:
        assert (DOCS / "tutorials" / f"{topic}.md").is_file(), topic
    for path in DOCS.rglob("*.md"):
        assert str(path.relative_to(DOCS)) in nav, f"{path} is not in mkdocs.yml's nav"


def test_config_reference_lists_every_field_of_the_sections():
    from dlcore.config.experiment import SECTIONS, ExperimentConfig
    from dlcore.config.reference import anchor, config_reference
    from dlcore.engine.train_config import TrainConfig
    from dlcore.optim.schedules import SCHEDULES

    text = config_reference()
    sections = [ExperimentConfig, TrainConfig]
    for _, registry, _ in SECTIONS.values():
        sections += [entry.config for entry in registry.values()]
    sections += [entry.config for entry in SCHEDULES.values()]
    for section in sections:
        head = text.index(f"{{#{anchor(section)}}}")
        end = text.find("\n### ", head)
        table = text[head : end if end != -1 else len(text)]
        rows = re.findall(r"^\| `(\w+)` \|", table, re.MULTILINE)
        assert rows == list(section.model_fields), section.__name__


def test_config_reference_shows_types_defaults_and_choices():
    from dlcore.config.reference import config_reference

    text = config_reference()
    assert "| `epochs` | int, > 0 | `10` |" in text  # [train]
    assert '| `mode` | `"step"` or `"scan"` | `"scan"` |' in text
    assert '`"relu"`' in text and '`"tanh"`' in text  # an activation's choices (one_of)
    assert "| `warmup_steps` | int, > 0 | **required** |" in text
    assert "[AugmentSection](#augmentsection)" in text  # a nested table, linked


def _hooks():
    spec = importlib.util.spec_from_file_location("docs_hooks", DOCS / "hooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_cli_page_has_every_sub_command():
    from dlcore.cli.main import _parser

    hooks = _hooks()
    text = hooks.on_page_markdown("x\n" + hooks.MARKERS[1], None, None, None)
    sub = next(a for a in _parser()._actions if a.dest == "command")
    assert sub.choices
    for name in sub.choices:
        assert f"## `dlcore {name}`" in text, name
        assert f"usage: dlcore {name}" in text, name


def test_docs_build_is_wired_into_make_and_ci():
    assert "mkdocs build --strict" in (REPO / "Makefile").read_text()
    assert "make docs" in (REPO / ".ci" / "run").read_text()
    assert "/site/" in (REPO / ".gitignore").read_text().split()  # make docs writes it
    assert os.access(REPO / ".ci" / "run", os.X_OK)
