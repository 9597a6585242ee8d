"""HTML: the text a browser shows, by BeautifulSoup over lxml's HTML parser (libxml2 recovers from
malformed markup as browsers do: a stray closing tag in <head> does not swallow the body); h1-h6
become the heading path, and text outside any paragraph (in a <div>, or loose in <body>) is kept."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import TYPE_CHECKING

from kb.errors import ParseError
from kb.ingest.base import HeadingPath, clean_text
from kb.ingest.decode import decode, html_declared, read_text
from kb.types import Block, ParsedDocument

if TYPE_CHECKING:
    from bs4 import Tag

_BLOCK_TAGS = frozenset({"h1", "h2", "h3", "h4", "h5", "h6", "p", "li", "pre", "tr", "blockquote", "dt", "dd",
                         "caption"})
# Elements a browser lays out as boxes of their own: loose text before and after one is a paragraph apart.
_BREAKS = frozenset({"address", "article", "aside", "body", "br", "center", "details", "dialog", "div", "dl",
                     "fieldset", "figcaption", "figure", "footer", "form", "header", "hgroup", "hr", "main",
                     "menu", "nav", "ol", "section", "summary", "table", "tbody", "td", "tfoot", "th", "thead",
                     "ul"})


class HtmlParser:
    version = 2  # browser-like parsing (lxml), text outside <p> kept, <meta charset> honoured (issue 33)
    file_type = "html"
    extensions = (".html", ".htm")

    def parse(self, path: Path) -> ParsedDocument:
        title, blocks = html_blocks(read_text(path, html_declared))
        if not blocks:
            raise ParseError("no text in HTML")
        return ParsedDocument(title=title or path.stem, blocks=blocks)


def html_blocks(markup: str | bytes) -> tuple[str | None, list[Block]]:
    """The page's <title> and its visible text as blocks, h1-h6 forming the heading path. Shared by
    every format that carries HTML (web pages, e-book chapters, mail bodies), so they cut alike."""
    # lazy: `kb --help` imports every parser (for its type list); the library loads when a file is read
    from bs4 import BeautifulSoup, XMLParsedAsHTMLWarning

    if isinstance(markup, bytes):
        markup = decode(markup, html_declared)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", XMLParsedAsHTMLWarning)  # XHTML (e-book chapters) is HTML to a reader
        soup = BeautifulSoup(markup, "lxml")
    for tag in soup(["script", "style", "noscript", "template"]):
        tag.decompose()
    title = soup.title.get_text(" ", strip=True) if soup.title else None
    if soup.head:
        soup.head.decompose()
    return title or None, _merge_rows(_walk(soup.body or soup))


def _walk(root: Tag) -> list[Block]:
    """Blocks in document order: each outermost block element (`_BLOCK_TAGS`) as one block, and the
    text between them that sits in no block element as paragraphs, cut where a browser starts a new box."""
    # lazy: `kb --help` imports every parser (for its type list); the library loads when a file is read
    from bs4 import CData, NavigableString, Tag

    blocks: list[Block] = []
    headings = HeadingPath()
    loose: list[str] = []

    def flush() -> None:
        text = " ".join("".join(loose).split())  # inline pieces join as a browser lays them out
        loose.clear()
        if text:
            blocks.append(Block(text, headings.path))

    # An explicit stack, not recursion: pages nest deeper than Python's recursion limit.
    stack: list[tuple[Tag, int]] = [(root, 0)]
    while stack:
        parent, i = stack.pop()
        children = parent.contents
        if i >= len(children):
            if parent.name in _BREAKS:
                flush()
            continue
        stack.append((parent, i + 1))
        node = children[i]
        if isinstance(node, Tag):
            if node.name in _BLOCK_TAGS:
                flush()
                _block(node, blocks, headings)
            else:
                if node.name in _BREAKS:
                    flush()
                stack.append((node, 0))
        elif type(node) in (NavigableString, CData):  # not comments, doctypes, processing instructions
            loose.append(str(node))
    flush()
    return blocks


def _block(el: Tag, blocks: list[Block], headings: HeadingPath) -> None:
    if el.name == "tr":
        text = " | ".join(c.get_text(" ", strip=True) for c in el.find_all(["td", "th"]))
    else:
        text = el.get_text("\n" if el.name == "pre" else " ", strip=el.name != "pre")
    text = text if el.name == "pre" else clean_text(text)
    if not text.strip():
        return
    if el.name[0] == "h" and el.name[1:].isdigit():
        blocks.append(Block(text, headings.enter(int(el.name[1]), text), kind="heading"))
    else:
        kind = "code" if el.name == "pre" else "table" if el.name == "tr" else "text"
        blocks.append(Block(text, headings.path, kind=kind))


def _merge_rows(blocks: list[Block]) -> list[Block]:
    """Consecutive table rows form one table block, one row per line."""
    out: list[Block] = []
    for b in blocks:
        if b.kind == "table" and out and out[-1].kind == "table" and out[-1].headings == b.headings:
            out[-1] = Block(out[-1].text + "\n" + b.text, b.headings, b.page, "table")
        else:
            out.append(b)
    return out
