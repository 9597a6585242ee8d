"""OpenDocument text (.odt) with odfpy: what a reader of the page sees. Headings (outline-level
`text:h`, and paragraphs styled as headings: LibreOffice writes those when it imports HTML or Word)
give the section path; lists and tables (rows "a | b") become blocks of their own; the page header
leads the text and the page footer ends it, each once."""

from __future__ import annotations

import re
import zipfile
from pathlib import Path
from typing import Any

from kb.errors import ParseError
from kb.ingest.base import HeadingPath, clean_text
from kb.ingest.formats.protected import ENCRYPTED
from kb.types import Block, ParsedDocument

# Generated or hidden text: a table of contents repeats the headings, tracked changes hold deleted text.
_SKIP = frozenset({"table-of-content", "illustration-index", "table-index", "object-index", "user-index",
                   "alphabetical-index", "tracked-changes", "sequence-decls", "variable-decls",
                   "user-field-decls", "forms", "soft-page-break"})
# Paragraph styles that are headings by name: the programmatic names every ODF writer uses, whatever the UI language.
_HEADING_STYLE = re.compile(r"^(?:heading|heading_20_(\d+)|title)$", re.IGNORECASE)
_STYLE_DEPTH = 8  # parent styles followed at most (a loop in a damaged file must end)
_MARGINALS = ("header", "header-first", "header-left", "footer", "footer-first", "footer-left")


class OdtParser:
    version = 2  # indented content.xml read; heading-styled paragraphs; page header and footer (issue 33)
    file_type = "odt"
    extensions = (".odt",)

    def parse(self, path: Path) -> ParsedDocument:
        # lazy: `kb --help` imports every parser (for its type list); the library loads when a file is read
        from odf.opendocument import load

        _check_package(path)
        try:
            document = load(str(path))
        except Exception as e:  # odfpy raises KeyError, expat errors... for missing or broken parts
            said = e.args[0] if isinstance(e, KeyError) and e.args else str(e)
            raise ParseError(f"unreadable .odt: {' '.join(str(said).split())[:200] or type(e).__name__}") from e
        # odfpy takes the body's first child as the text, which is a whitespace node when content.xml is
        # indented (generators and hand-edited files): the office:text element is looked up instead.
        body = next((el for el in _elements(document.body) if el.qname[1] == "text"), None)
        if body is None:
            raise ParseError("not an OpenDocument text file (no text body)")
        document.text = body
        walker = _Walker(_heading_styles(document))
        walker.walk(document.text)
        headers, footers = _marginals(document)
        blocks = headers + walker.blocks + footers
        if not walker.blocks:  # text in elements the walker does not know: still what the reader sees
            blocks = [Block(text, ()) for text in [_text(document.text)] if text] + blocks
        if not blocks:
            raise ParseError("no text in document")
        title, author = _meta(document)
        return ParsedDocument(title=title or path.stem, blocks=blocks,
                              metadata={"author": author} if author else {})


def _check_package(path: Path) -> None:
    if not zipfile.is_zipfile(path):
        raise ParseError("not a valid .odt (truncated, or not a zip archive)")
    try:
        with zipfile.ZipFile(path) as z:
            check_package(z, "application/vnd.oasis.opendocument.text", "OpenDocument text file")
    except (zipfile.BadZipFile, OSError) as e:
        raise ParseError(f"corrupt .odt: {e}") from e


def check_package(z: zipfile.ZipFile, mimetype: str, what: str) -> set[str]:
    """The names in an OpenDocument package, once it is known to be one of `mimetype` (a file that says
    no type is taken at its word: its extension) and not encrypted; ParseError otherwise."""
    names = set(z.namelist())
    said = z.read("mimetype").decode("ascii", "replace").strip() if "mimetype" in names else ""
    if said and not said.startswith(mimetype):
        raise ParseError(f"not an {what} ({said[:80]})")
    manifest = z.read("META-INF/manifest.xml") if "META-INF/manifest.xml" in names else b""
    if b"encryption-data" in manifest:
        raise ParseError(ENCRYPTED)
    return names


def _meta(document: Any) -> tuple[str, str]:
    # lazy: `kb --help` imports every parser (for its type list); the library loads when a file is read
    from odf import dc, meta, teletype

    def first(kind: Any) -> str:
        for el in document.meta.getElementsByType(kind):
            text = " ".join(teletype.extractText(el).split())
            if text:
                return text
        return ""

    return first(dc.Title), first(dc.Creator) or first(meta.InitialCreator)


def _heading_styles(document: Any) -> dict[str, int]:
    """Paragraph style name -> heading level, for styles that are (or derive from) a heading style:
    one with a default outline level, or named Heading N / Title."""
    # lazy: `kb --help` imports every parser (for its type list); the library loads when a file is read
    from odf.style import Style

    parents: dict[str, str] = {}
    levels: dict[str, int] = {}
    for styles in (document.styles, document.automaticstyles):
        for style in styles.getElementsByType(Style):
            name = str(style.getAttribute("name") or "")
            parents[name] = str(style.getAttribute("parentstylename") or "")
            outline = str(style.getAttribute("defaultoutlinelevel") or "")
            m = _HEADING_STYLE.match(name)
            if outline.isdigit():
                levels[name] = int(outline)
            elif m:
                levels[name] = int(m.group(1) or 1) if not name.lower() == "title" else 0
    out: dict[str, int] = {}
    for name in parents:
        current = name
        for _ in range(_STYLE_DEPTH):
            if current in levels:
                out[name] = levels[current]
                break
            current = parents.get(current, "")
            if not current:
                break
    return out


def _marginals(document: Any) -> tuple[list[Block], list[Block]]:
    """The page header and footer text of every master page, each distinct text once."""
    headers: list[Block] = []
    footers: list[Block] = []
    seen: set[str] = set()
    for page in _elements(document.masterstyles):
        for el in _elements(page):
            name = el.qname[1]
            if name not in _MARGINALS:
                continue
            walker = _Walker({})
            walker.walk(el)
            for block in walker.blocks:
                if block.text not in seen:
                    seen.add(block.text)
                    (headers if name.startswith("header") else footers).append(Block(block.text, (), kind=block.kind))
    return headers, footers


class _Walker:
    """Document order, with the heading path in force."""

    def __init__(self, heading_styles: dict[str, int]) -> None:
        self.blocks: list[Block] = []
        self.path = HeadingPath()
        self.heading_styles = heading_styles

    @property
    def headings(self) -> tuple[str, ...]:
        return self.path.path

    def walk(self, parent: Any) -> None:
        for el in _elements(parent):
            name = el.qname[1]
            if name in _SKIP:
                continue
            if name == "h":
                self.heading(el)
            elif name == "p":
                level = self.heading_styles.get(str(el.getAttribute("stylename") or ""))
                if level is None:
                    self.add(_text(el), "text")
                else:
                    self.heading(el, level)
            elif name == "list":
                self.list_items(el)
            elif name == "table":
                rows = [" | ".join(_text(cell) for cell in _cells(row)) for row in _rows(el)]
                self.add("\n".join(r for r in rows if r.strip(" |")), "table")
            else:  # text:section, draw frames, headers of a table... anything that holds paragraphs
                self.walk(el)

    def heading(self, el: Any, level: int | None = None) -> None:
        text = _text(el)
        if not text:
            return
        if level is None:
            try:
                level = int(el.getAttribute("outlinelevel") or 1)
            except ValueError:
                level = 1
        self.blocks.append(Block(text, self.path.enter(level, text), kind="heading"))

    def list_items(self, el: Any, depth: int = 0) -> None:
        """Items as "- text" lines, nested lists indented; a heading inside a list (outline
        numbering) is still a heading."""
        lines: list[str] = []
        for item in _elements(el):
            for child in _elements(item):
                name = child.qname[1]
                if name == "list":
                    self.flush_list(lines)
                    self.list_items(child, depth + 1)
                elif name == "h":
                    self.flush_list(lines)
                    self.heading(child)
                elif name == "p" and _text(child):
                    lines.append("  " * depth + "- " + _text(child))
                elif name not in _SKIP:
                    self.flush_list(lines)
                    self.walk(child)
        self.flush_list(lines)

    def flush_list(self, lines: list[str]) -> None:
        if lines:
            self.add("\n".join(lines), "list")
            lines.clear()

    def add(self, text: str, kind: str) -> None:
        if text.strip():
            self.blocks.append(Block(text, self.headings, kind=kind))


def _elements(parent: Any) -> list[Any]:
    return [c for c in parent.childNodes if c.nodeType == c.ELEMENT_NODE]


def _rows(table: Any) -> list[Any]:
    out = []
    for el in _elements(table):
        name = el.qname[1]
        if name == "table-row":
            out.append(el)
        elif name in ("table-header-rows", "table-rows", "table-row-group"):
            out.extend(_rows(el))
    return out


def _cells(row: Any) -> list[Any]:
    return [c for c in _elements(row) if c.qname[1] == "table-cell"]


def _text(el: Any) -> str:
    # lazy: `kb --help` imports every parser (for its type list); the library loads when a file is read
    from odf import teletype

    return clean_text(teletype.extractText(el)).replace("\n", " ")
