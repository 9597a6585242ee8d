"""reStructuredText (.rst) with docutils: section titles give the heading path, literal blocks are
code, tables rows "a | b". Broken markup never stops a file: docutils' reports are silenced and its
error nodes skipped, and nothing outside the file is read (include and raw are off)."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from kb.errors import ParseError, one_line
from kb.ingest.base import clean_text
from kb.ingest.decode import read_text
from kb.types import Block, ParsedDocument

_SETTINGS = {
    "report_level": 5,  # no report is printed...
    "halt_level": 5,  # ...or raised: bad markup stays in the tree as system_message nodes
    "warning_stream": io.StringIO(),
    "file_insertion_enabled": False,  # `.. include:: /etc/passwd` must not pull in another file
    "raw_enabled": False,
    "_disable_config": True,  # no docutils.conf from the folder kb runs in
    "doctitle_xform": False,  # keep the top title as a section, so it heads the path like the others
    "syntax_highlight": "none",  # code blocks as plain text, without the cost of Pygments
}


class RstParser:
    version = 2  # legacy code pages: Windows-1252 preferred when it reads nearly as cleanly (issue 33)
    file_type = "rst"
    extensions = (".rst", ".rest")

    def parse(self, path: Path) -> ParsedDocument:
        # lazy: `kb --help` imports every parser (for its type list); the library loads when a file is read
        from docutils.core import publish_doctree

        text = read_text(path)
        try:
            tree = publish_doctree(text, source_path=path.name,
                                   settings_overrides={**_SETTINGS, "warning_stream": io.StringIO()})
        except Exception as e:  # docutils may still raise on pathological input
            raise ParseError(f"unreadable reStructuredText: {one_line(e)}") from e
        blocks: list[Block] = []
        _walk(tree, (), blocks)
        if not blocks:
            raise ParseError("no text in document")
        return ParsedDocument(title=_title(tree) or path.stem, blocks=blocks)


def _title(tree: Any) -> str:
    """The top section's title when the document has exactly one (the usual "===" title over it)."""
    # lazy: `kb --help` imports every parser (for its type list); the library loads when a file is read
    from docutils import nodes

    sections = [c for c in tree.children if isinstance(c, nodes.section)]
    if len(sections) == 1 and sections[0].children and isinstance(sections[0][0], nodes.title):
        return _text(sections[0][0])
    return ""


def _walk(node: Any, headings: tuple[str, ...], out: list[Block]) -> None:
    # lazy: `kb --help` imports every parser (for its type list); the library loads when a file is read
    from docutils import nodes

    skip = (nodes.system_message, nodes.comment, nodes.substitution_definition, nodes.target, nodes.raw,
            nodes.pending, nodes.Invisible)
    for child in node.children:
        if isinstance(child, skip) or not isinstance(child, nodes.Element):
            if isinstance(child, nodes.Text) and child.astext().strip():
                out.append(Block(clean_text(child.astext()), headings))
            continue
        if isinstance(child, nodes.section):
            title = _text(child[0]) if child.children and isinstance(child[0], nodes.title) else ""
            path = (*headings, title) if title else headings
            if title:
                out.append(Block(title, path, kind="heading"))
            _walk(child, path, out)
        elif isinstance(child, nodes.title) and isinstance(node, nodes.section):
            continue  # the section's own title: already the heading block
        elif isinstance(child, (nodes.literal_block, nodes.doctest_block)):
            if child.astext().strip():
                out.append(Block(child.astext().rstrip(), headings, kind="code"))
        elif isinstance(child, nodes.table):
            rows = [" | ".join(_text(e) for e in row.children) for row in child.findall(nodes.row)]
            if any(r.strip(" |") for r in rows):
                out.append(Block("\n".join(rows), headings, kind="table"))
        elif isinstance(child, (nodes.bullet_list, nodes.enumerated_list)):
            items = [f"- {_text(item)}" for item in child.children if _text(item)]
            if items:
                out.append(Block("\n".join(items), headings, kind="list"))
        elif isinstance(child, nodes.topic) and "contents" in child["classes"]:
            continue  # the generated table of contents repeats the section titles
        elif isinstance(child, nodes.field) and len(child.children) == 2:
            out.append(Block(f"{_text(child[0])}: {_text(child[1])}", headings))
        elif isinstance(child, nodes.Bibliographic) and isinstance(child, nodes.TextElement):
            out.append(Block(f"{child.tagname.title()}: {_text(child)}", headings))  # docinfo: "Author: ..."
        elif isinstance(child, (nodes.TextElement, nodes.line_block)):
            if _text(child):
                out.append(Block(_text(child), headings))
        else:  # block quotes, admonitions, definition and field lists, footnotes: whatever they hold
            _walk(child, headings, out)


def _text(node: Any) -> str:
    return clean_text(node.astext()).replace("\n", " ") if node.astext() else ""
