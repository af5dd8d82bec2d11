"""mkdocs hooks: pages whose text is generated from the code when the site is built.

A page holds a marker comment and the hook puts the generated Markdown in its place, so the
config reference and the CLI usage can never drift from the code:

* ``<!-- dlcore:config-reference -->``: :func:`dlcore.config.reference.config_reference`;
* ``<!-- dlcore:cli-usage -->``: the ``--help`` text of ``dlcore`` and every sub-command,
  formatted by the argparse parser the command itself uses.
"""

import argparse
import os

MARKERS = ("<!-- dlcore:config-reference -->", "<!-- dlcore:cli-usage -->")


def _commands(parser: argparse.ArgumentParser, prefix: str) -> list[tuple[str, str]]:
    """(command line, help text) for ``parser`` and, depth first, every sub-command."""
    found = [(prefix, parser.format_help())]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found.extend(_commands(sub, f"{prefix} {name}"))
    return found


def cli_usage() -> str:
    """Markdown: one heading and one ``text`` block of ``--help`` output per command."""
    from dlcore.cli.main import _parser

    # argparse wraps help to the terminal's width; fix it so the page does not depend on
    # where it was built.
    saved = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = "92"
    try:
        commands = _commands(_parser(), "dlcore")
    finally:
        if saved is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = saved
    parts = []
    for line, text in commands:
        parts.append(f"## `{line}`\n\n```text\n{text.rstrip()}\n```")
    return "\n\n".join(parts) + "\n"


def on_page_markdown(markdown: str, page, config, files) -> str:  # noqa: ARG001
    """Replaces the generation markers of a page by the generated text."""
    if MARKERS[0] in markdown:
        from dlcore.config.reference import config_reference

        markdown = markdown.replace(MARKERS[0], config_reference())
    if MARKERS[1] in markdown:
        markdown = markdown.replace(MARKERS[1], cli_usage())
    return markdown
