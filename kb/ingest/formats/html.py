"""HTML: visible text by BeautifulSoup, h1-h6 become the heading path."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from kb.errors import ParseError
from kb.ingest.base import HeadingPath, clean_text
from kb.ingest.formats.text import read_text
from kb.types import Block, ParsedDocument

if TYPE_CHECKING:
    from bs4 import Tag

_BLOCK_TAGS = ["h1", "h2", "h3", "h4", "h5", "h6", "p", "li", "pre", "tr", "blockquote", "dt", "dd", "caption"]


class HtmlParser:
    file_type = "html"
    extensions = (".html", ".htm")

    def parse(self, path: Path) -> ParsedDocument:
        title, blocks = html_blocks(read_text(path))
        if not blocks:
            raise ParseError("no text in HTML")
        return ParsedDocument(title=title or path.stem, blocks=blocks)


def html_blocks(markup: str | bytes) -> tuple[str | None, list[Block]]:
    """The page's <title> and its visible text as blocks, h1-h6 forming the heading path. Shared by
    every format that carries HTML (web pages, e-book chapters, mail bodies), so they cut alike."""
    # lazy: `kb --help` imports every parser (for its type list); the library loads when a file is read
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(markup, "html.parser")
    for tag in soup(["script", "style", "noscript", "template"]):
        tag.decompose()
    title = soup.title.get_text(" ", strip=True) if soup.title else None
    if soup.head:
        soup.head.decompose()
    return title or None, _merge_rows(_walk(soup.body or soup))


def _walk(root: Tag) -> list[Block]:
    blocks: list[Block] = []
    headings = HeadingPath()
    for el in root.find_all(_BLOCK_TAGS):
        if el.find_parent(_BLOCK_TAGS):  # nested: the outer block already holds this text
            continue
        if el.name == "tr":
            text = " | ".join(c.get_text(" ", strip=True) for c in el.find_all(["td", "th"]))
        else:
            text = el.get_text("\n" if el.name == "pre" else " ", strip=el.name != "pre")
        text = text if el.name == "pre" else clean_text(text)
        if not text.strip():
            continue
        if el.name[0] == "h" and el.name[1:].isdigit():
            blocks.append(Block(text, headings.enter(int(el.name[1]), text), kind="heading"))
        else:
            kind = "code" if el.name == "pre" else "table" if el.name == "tr" else "text"
            blocks.append(Block(text, headings.path, kind=kind))
    return blocks


def _merge_rows(blocks: list[Block]) -> list[Block]:
    """Consecutive table rows form one table block, one row per line."""
    out: list[Block] = []
    for b in blocks:
        if b.kind == "table" and out and out[-1].kind == "table" and out[-1].headings == b.headings:
            out[-1] = Block(out[-1].text + "\n" + b.text, b.headings, b.page, "table")
        else:
            out.append(b)
    return out
