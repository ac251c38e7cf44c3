"""Sphinx configuration of the documentation site.

The Markdown pages go through myst-parser, the API reference comes from the docstrings
(autodoc + numpydoc) and the command-line reference from the argparse parser itself (the
``cli-help`` directive below prints each command's ``--help``), so neither can drift from
the code.

Build: ``pip install -e ".[docs]"`` then ``sphinx-build -W -b html docs docs/_build/html``.
"""

import argparse
import os
import re
from pathlib import Path

from docutils import nodes
from docutils.statemachine import StringList
from sphinx.util.docutils import SphinxDirective
from sphinx.util.nodes import nested_parse_with_titles

import miripersist

project = "miripersist"
author = "the miripersist developers"
copyright = "the miripersist developers"
release = miripersist.__version__
version = ".".join(release.split(".")[:2])

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "numpydoc",
]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store"]

# Markdown: heading anchors for links like page.md#section; plain fences are not Python.
myst_heading_anchors = 3
highlight_language = "none"

# API: signatures as written, members in source order, no stubs per class member.
autodoc_member_order = "bysource"
autodoc_typehints = "none"
numpydoc_show_class_members = False
numpydoc_xref_param_type = False

html_theme = "furo"
html_title = f"miripersist {release}"
html_static_path: list[str] = []


class CliHelp(SphinxDirective):
    """``.. cli-help:: module:function``: a section per command with its ``--help`` text.

    The function returns the command's :class:`argparse.ArgumentParser`; its subcommands
    (subparsers) get a section each, in the order the parser lists them.
    """

    required_arguments = 1
    WIDTH = "100"  # argparse wraps to $COLUMNS: the same text on every machine

    def run(self) -> list[nodes.Node]:
        """The sections, parsed as reStructuredText."""
        import importlib

        module, _, function = self.arguments[0].partition(":")
        parser = getattr(importlib.import_module(module), function)()
        commands = [(parser.prog, parser)]
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                commands += [(sub.prog, sub) for sub in action.choices.values()]
        saved = os.environ.get("COLUMNS")
        os.environ["COLUMNS"] = self.WIDTH
        try:
            lines = []
            for prog, sub in commands:
                title = f"``{prog}``"
                lines += [title, "-" * len(title), "", ".. code-block:: text", ""]
                lines += ["   " + line for line in sub.format_help().splitlines()] + [""]
        finally:
            if saved is None:
                os.environ.pop("COLUMNS")
            else:
                os.environ["COLUMNS"] = saved
        node = nodes.section()
        node.document = self.state.document
        nested_parse_with_titles(self.state, StringList(lines, source=self.arguments[0]), node)
        return node.children


#: The front page's note for GitHub readers, which the README takes the place of on the site.
README_NOTE = re.compile(r"<!-- The project's README.md .*?\(\.\./README\.md\)\.\*\n", re.S)


def put_readme(app, docname: str, source: list[str]) -> None:
    """On the front page, the README in place of the note, its links made the site's."""
    if docname != app.config.root_doc:
        return
    readme = Path(app.srcdir).parent / "README.md"
    app.env.note_dependency(str(readme))
    text = re.sub(r"\]\(docs/", "](", readme.read_text(encoding="utf-8"))
    source[0], found = README_NOTE.subn(lambda _: text + "\n", source[0])
    if not found:
        raise ValueError(f"{app.config.root_doc}: the README note is missing")


def setup(app):
    """Register the ``cli-help`` directive and the front page's README."""
    app.add_directive("cli-help", CliHelp)
    app.connect("source-read", put_readme)
    return {"parallel_read_safe": True}
