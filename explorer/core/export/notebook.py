"""One exported document, written two ways: a Python script or a Jupyter notebook.

Every exporter returns a `Document`: a title, an introduction and `Section`s, each a few sentences in
markdown and the code that does what they say. The script is the sections' code in order under comments;
the notebook (made with nbformat) puts each explanation in a markdown cell above its code cell, so its
code cells, run in order, are the script.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass, field

import nbformat
from nbformat import v4


@dataclass
class Section:
    """One step of the document: what it does, in words (markdown), and its code."""

    heading: str
    text: str
    code: str


@dataclass
class Document:
    """An exported script: its title, what it is (markdown paragraphs) and its steps."""

    title: str
    intro: str
    sections: list[Section] = field(default_factory=list)


def to_script(doc: Document) -> str:
    """The document as one Python file: a docstring, then each section under its comment."""
    intro = "\n\n".join(textwrap.fill(part, 100, break_on_hyphens=False)
                          for part in _docstring_safe(_plain(doc.intro)).split("\n\n"))
    parts = [f'"""{_docstring_safe(_plain(doc.title))}\n\n{intro}\n"""']
    for section in doc.sections:
        comment = "\n".join(textwrap.wrap(_plain(f"{section.heading}. {section.text}"), 100,
                                          initial_indent="# ", subsequent_indent="# ",
                                          break_on_hyphens=False))
        parts.append(f"{comment}\n\n{section.code.strip()}")
    return "\n\n\n".join(parts) + "\n"


def to_notebook(doc: Document) -> nbformat.NotebookNode:
    """The document as a notebook (nbformat 4): a title cell, then markdown and code per section."""
    nb = v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    cells = [v4.new_markdown_cell(f"# {doc.title}\n\n{doc.intro}")]
    for section in doc.sections:
        cells.append(v4.new_markdown_cell(f"## {section.heading}\n\n{section.text}"))
        cells.append(v4.new_code_cell(section.code.strip()))
    nb.cells = cells
    nbformat.validate(nb)
    return nb


def notebook_code(nb: nbformat.NotebookNode) -> str:
    """The code cells of a notebook joined in order: the script a notebook runs."""
    return "\n\n".join(cell.source for cell in nb.cells if cell.cell_type == "code") + "\n"


def _docstring_safe(text: str) -> str:
    """Text that reads the same inside a triple-quoted docstring (a title may hold quotes or backslashes)."""
    return text.replace("\\", "\\\\").replace('"""', "'''")


def _plain(markdown: str) -> str:
    """Markdown as comment text: backquotes stay (they read well in code), emphasis marks go."""
    return markdown.replace("**", "").strip()
