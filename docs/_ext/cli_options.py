"""Sphinx directives (for MyST pages) that print the command line's options from the code, so the docs cannot drift.

``pyro-mvae-options``: every key of ``pyro-mvae train``, one table per config group option,
from the typed configs (:meth:`pyro_mvae.config.Settings.documented`) and the registries.
``pyro-mvae-help COMMAND``: the ``--help`` text of ``evaluate``, ``sample`` or ``compare``.
"""

import json
import os

from docutils import nodes
from docutils.statemachine import StringList
from sphinx.util.docutils import SphinxDirective


def _cell(text) -> str:
    """``text`` as Markdown inline text: the characters MyST would read as markup escaped."""
    out = str(text).replace("\n", " ")
    for char in "\\*_<>|[]":
        out = out.replace(char, "\\" + char)
    return out


def _table(cls) -> list[str]:
    """A Markdown table of a typed config's settings: key, default, accepted values, documentation."""
    rows = cls.documented()
    if not rows:
        return ["(no settings)", ""]
    lines = ["| key | default | accepts | what it does |", "|---|---|---|---|"]
    for key, default, words, doc in rows:
        value = default if isinstance(default, str) else json.dumps(default)  # true, [300, 300]
        shown = "(none)" if default in (None, "") else f"`{value}`"
        lines.append(f"| `{key}` | {shown} | {_cell(words)} | {_cell(doc)} |")
    return [*lines, ""]


class OptionsDirective(SphinxDirective):
    """Every option of every config group of ``pyro-mvae train`` with its default and doc."""

    def run(self) -> list[nodes.Node]:
        from pyro_mvae.compose import RunSettings, groups

        lines = ["### Top-level keys", "", *_table(RunSettings)]
        for group, options in groups().items():
            for name, cls in options.items():
                title = "trainer" if group == "trainer" else f"{group}={name}"
                lines += [f"### `{title}`", "", _cell(cls.__doc__.strip().splitlines()[0]), "", *_table(cls)]
        container = nodes.section()
        container.document = self.state.document
        self.state.nested_parse(StringList(lines, source="pyro-mvae-options"), 0, container, match_titles=True)
        return container.children


class HelpDirective(SphinxDirective):
    """The ``--help`` text of one ``pyro-mvae`` command (``evaluate``, ``sample``, ``compare``)."""

    required_arguments = 1

    def run(self) -> list[nodes.Node]:
        from pyro_mvae import cli

        os.environ["COLUMNS"] = "100"  # argparse wraps to this width
        parser = getattr(cli, f"{self.arguments[0]}_parser")()
        return [nodes.literal_block(text=parser.format_help(), language="text")]


def setup(app):
    app.add_directive("pyro-mvae-options", OptionsDirective)
    app.add_directive("pyro-mvae-help", HelpDirective)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
