"""E-books (.epub) with ebooklib: chapters in reading (spine) order, each chapter's own headings as
the section path under the chapter's title, cut into blocks the way the HTML parser cuts a page."""

from __future__ import annotations

import logging
import posixpath
import xml.etree.ElementTree as ET
import zipfile
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from kb.errors import ParseError, one_line
from kb.ingest.formats.html import html_blocks
from kb.types import Block, ParsedDocument

log = logging.getLogger(__name__)

# Font obfuscation (IDPF, Adobe) hides embedded fonts only; any other algorithm in
# META-INF/encryption.xml encrypts content, which is DRM (Adobe ADEPT, Readium LCP, Apple FairPlay).
_FONT_OBFUSCATION = ("http://www.idpf.org/2008/embedding", "http://ns.adobe.com/pdf/enc#RC")


class EpubParser:
    file_type = "epub"
    extensions = (".epub",)

    def parse(self, path: Path) -> ParsedDocument:
        # lazy: `kb --help` imports every parser (for its type list); the library loads when a file is read
        from ebooklib import epub

        _check_container(path)
        try:
            book = epub.read_epub(str(path), options={"ignore_ncx": True})
        except Exception as e:  # ebooklib raises EpubException, KeyError, lxml errors... for bad parts
            said = e.args[0] if isinstance(e, KeyError) and e.args else str(e)
            raise ParseError(f"unreadable e-book: {' '.join(str(said).split())[:200] or type(e).__name__}") from e
        toc = _toc_titles(book.toc)
        blocks: list[Block] = []
        dropped: list[str] = []
        for idref, _linear in book.spine:
            item = book.get_item_with_id(idref)
            if item is None or not isinstance(item, epub.EpubHtml) or isinstance(item, epub.EpubNav):
                continue
            try:
                blocks.extend(_chapter_blocks(item.get_content(), toc.get(_key(item.file_name))))
            except Exception as e:  # one broken chapter must not lose the book
                dropped.append(f"{item.file_name} ({one_line(e, 100)})")
        if dropped:
            log.warning("kb: %s: %d chapter(s) dropped: %s", path, len(dropped), "; ".join(dropped))
        if not blocks:
            raise ParseError("no text in e-book")
        metadata: dict[str, Any] = {}
        authors = [value.strip() for value, _ in book.get_metadata("DC", "creator") if value and value.strip()]
        if authors:
            metadata["author"] = ", ".join(authors)
        if dropped:
            metadata["warnings"] = [f"{len(dropped)} unreadable chapter(s) dropped: {', '.join(dropped)}"]
        titles = [value.strip() for value, _ in book.get_metadata("DC", "title") if value and value.strip()]
        return ParsedDocument(title=titles[0] if titles else path.stem, blocks=blocks, metadata=metadata)


def _check_container(path: Path) -> None:
    """Refuse what ebooklib would turn into a traceback or into ciphertext read as text."""
    if not zipfile.is_zipfile(path):
        raise ParseError("not a valid .epub (truncated, or not a zip archive)")
    try:
        with zipfile.ZipFile(path) as z:
            names = set(z.namelist())
            if "META-INF/rights.xml" in names or _encrypts_content(z, names):
                raise ParseError("DRM-protected e-book: its chapters are encrypted")
    except zipfile.BadZipFile as e:
        raise ParseError(f"corrupt .epub: {e}") from e


def _encrypts_content(z: zipfile.ZipFile, names: set[str]) -> bool:
    if "META-INF/encryption.xml" not in names:
        return False

    try:
        root = ET.fromstring(z.read("META-INF/encryption.xml"))
    except ET.ParseError:
        return True  # an encryption manifest we cannot read: treat the book as locked
    algorithms = [el.get("Algorithm", "") for el in root.iter() if el.tag.endswith("EncryptionMethod")]
    return any(a not in _FONT_OBFUSCATION for a in algorithms)


def _toc_titles(toc: Any, out: dict[str, str] | None = None) -> dict[str, str]:
    """File name -> the first table-of-contents title pointing into it: a chapter's name as the
    book's own contents page gives it (ebooklib resolves hrefs against the OPF folder)."""
    out = {} if out is None else out
    for entry in toc:
        if isinstance(entry, tuple):  # (Section, [children])
            section, children = entry
            _add_title(out, section)
            _toc_titles(children, out)
        elif isinstance(entry, list):
            _toc_titles(entry, out)
        else:
            _add_title(out, entry)
    return out


def _add_title(out: dict[str, str], entry: Any) -> None:
    href, title = getattr(entry, "href", None), " ".join((getattr(entry, "title", None) or "").split())
    if href and title:
        out.setdefault(_key(href.split("#", 1)[0]), title)


def _key(href: str) -> str:
    return posixpath.normpath(unquote(href))


def _chapter_blocks(content: bytes, toc_title: str | None) -> list[Block]:
    """The chapter's blocks with its title first in the heading path. The title comes from the
    table of contents, else the page's <title>, else its first heading; a chapter whose own first
    heading repeats the title (the usual <h1>) does not get it twice."""
    page_title, blocks = html_blocks(content)
    if not blocks:
        return []
    first_heading = next((b.headings[0] for b in blocks if b.headings), None)
    chapter = toc_title or page_title or first_heading
    if not chapter:
        return blocks
    key = chapter.casefold()
    if blocks[0].kind == "text" and not blocks[0].headings and blocks[0].text.casefold() == key:
        blocks[0] = Block(blocks[0].text, (), kind="heading")  # a title set as a styled paragraph
    out = []
    for b in blocks:
        path = b.headings if b.headings and b.headings[0].casefold() == key else (chapter, *b.headings)
        out.append(Block(b.text, path, b.page, b.kind))
    return out
