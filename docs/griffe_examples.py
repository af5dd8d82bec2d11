"""A griffe extension for the API reference: dlcore's docstrings head their doctests
``Example:`` (as Google's style guide does), which griffe's Google parser reads as a
free-text admonition; it reads ``Examples:`` as a section of code. This renames the heading
before the docstring is parsed, so the examples render as Python, not as Markdown text."""

import re

import griffe

_HEADING = re.compile(r"^(\s*)Example:\s*$", re.MULTILINE)


class ExampleSections(griffe.Extension):
    """Reads every ``Example:`` heading of a docstring as griffe's ``Examples:`` section."""

    def on_instance(self, *, obj: griffe.Object, **kwargs) -> None:  # noqa: ARG002
        if obj.docstring is not None:
            obj.docstring.value = _HEADING.sub(r"\1Examples:", obj.docstring.value)
