"""PowerPoint decks with python-pptx, cited by slide: `deck.pptx slide 3 § Pricing`.

A reader finds a passage in a deck by its slide, so every block's `page` is the slide number and its
section the slide's title. Legacy `.ppt` files are converted to `.pptx` by LibreOffice where it is
installed (no Python library reads them well); without it they fail with a reason that says so.
Pictures on a slide are read by OCR as the OCR mode asks (`kb.ingest.formats.pictures`), cited by
their slide like its text.
"""

from __future__ import annotations

import logging
import tempfile
import zipfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from kb.errors import ParseError, one_line
from kb.ingest.base import clean_text
from kb.ingest.formats.libreoffice import libreoffice_convert
from kb.ingest.formats.pictures import Pictures
from kb.ingest.formats.protected import OLE_MAGIC, refuse_encrypted
from kb.types import Block, ParsedDocument

log = logging.getLogger(__name__)

_NOT_PPTX = "not a valid PowerPoint file (truncated or corrupt)"


class PptxParser:
    file_type = "pptx"
    extensions = (".pptx",)
    version = 2  # 2: pictures on a slide read by OCR (per the OCR mode)

    def parse(self, path: Path) -> ParsedDocument:
        return _parse_pptx(path, path)


class PptParser:
    """PowerPoint 97-2003: LibreOffice converts it to .pptx in a temporary folder, read as above."""

    file_type = "ppt"
    extensions = (".ppt",)
    version = 2  # 2: pictures on a slide read by OCR (per the OCR mode)

    def parse(self, path: Path) -> ParsedDocument:
        if zipfile.is_zipfile(path):  # a .pptx renamed .ppt: PowerPoint opens it, so do we
            return _parse_pptx(path, path)
        with path.open("rb") as f:
            if f.read(8) != OLE_MAGIC:
                raise ParseError("not a valid PowerPoint 97-2003 file (truncated or corrupt)")
        refuse_encrypted(path)  # LibreOffice would stop at a password prompt it cannot show
        with tempfile.TemporaryDirectory(prefix="kb-ppt-") as tmp:
            converted = libreoffice_convert(path, "pptx", Path(tmp), "PowerPoint 97-2003", "libreoffice-impress-nogui")
            return _parse_pptx(converted, path)


def _parse_pptx(path: Path, source: Path) -> ParsedDocument:
    """The deck at `path`, which is `source` or LibreOffice's conversion of it (warnings name `source`)."""
    # lazy: `kb --help` imports every parser (for its type list); the library loads when a file is read
    import pptx

    refuse_encrypted(path)
    if not zipfile.is_zipfile(path):
        raise ParseError(_NOT_PPTX)
    try:
        deck = pptx.Presentation(str(path))
        slides = list(deck.slides)
    except Exception as e:  # python-pptx raises KeyError, PackageNotFoundError, lxml errors... for bad parts
        raise ParseError(f"{_NOT_PPTX}: {one_line(e)}") from e
    title = (deck.core_properties.title or "").strip() or source.stem
    blocks: list[Block] = []
    dropped: list[str] = []
    pictures = Pictures(source, "slide")
    for number, slide in enumerate(slides, 1):
        blocks.extend(_slide_blocks(slide, number, dropped, pictures))
    if dropped:
        warning = f"{len(dropped)} shape(s) dropped: {'; '.join(dropped)}"
        log.warning("kb: %s: %s", source, warning)
    if not blocks:
        raise ParseError(pictures.no_text("no text in presentation"))
    metadata: dict[str, Any] = pictures.metadata()
    if dropped:
        metadata["warnings"] = [warning, *metadata.get("warnings", [])]
    return ParsedDocument(title=title, blocks=blocks, pages=len(slides), metadata=metadata, unit="slide")


def _slide_blocks(slide: Any, number: int, dropped: list[str], pictures: Pictures) -> Iterator[Block]:
    """The slide's title (its section), its shapes' text and pictures' OCR in reading order, then its
    speaker notes."""
    title_shape = slide.shapes.title
    title = _one_line(title_shape.text_frame.text) if title_shape is not None else ""
    headings = (title or f"Slide {number}",)
    if title:
        yield Block(title, headings, number, "heading")
    body: list[Block | bytes] = []  # a picture as its file's bytes, read below if the mode asks
    for shape in _reading_order(slide.shapes):
        if title_shape is not None and shape.shape_id == title_shape.shape_id:
            continue
        try:
            body.extend(_shape_blocks(shape, headings, number))
        except Exception as e:  # one odd shape (a broken table) must not lose the deck
            dropped.append(f"slide {number}: {one_line(e, 160)}")
    shown = [b for b in body if isinstance(b, bytes)]
    # auto: the pictures of a slide without usable text of its own (the title and notes aside)
    read = bool(shown) and pictures.wanted(" ".join(b.text for b in body if isinstance(b, Block)), len(shown))
    for item in body:
        if isinstance(item, Block):
            yield item
        elif read:
            yield from pictures.blocks(item, headings, number)
    if slide.has_notes_slide:
        notes = slide.notes_slide.notes_text_frame
        text = _frame_text(notes) if notes is not None else ""
        if text:
            yield Block(text, (*headings, "Notes"), number)


def _reading_order(shapes: Iterable[Any]) -> list[Any]:
    """Top to bottom, then left to right: the order a reader takes in a slide, which need not be the
    order the shapes were drawn in (a text box added last may sit at the top)."""
    return sorted(shapes, key=lambda s: (s.top or 0, s.left or 0))


def _shape_blocks(shape: Any, headings: tuple[str, ...], number: int) -> Iterator[Block | bytes]:
    """A shape's text as blocks; a picture as its file's bytes."""
    # lazy: `kb --help` imports every parser (for its type list); the library loads when a file is read
    from pptx.enum.shapes import MSO_SHAPE_TYPE
    from pptx.shapes.picture import Picture

    if isinstance(shape, Picture):  # a filled picture placeholder too
        try:
            yield shape.image.blob
        except ValueError:  # a linked picture (a path elsewhere) has no bytes in the deck
            pass
    elif shape.shape_type == MSO_SHAPE_TYPE.GROUP:
        for inner in _reading_order(shape.shapes):
            yield from _shape_blocks(inner, headings, number)
    elif getattr(shape, "has_table", False) and shape.has_table:
        text = _table_text(shape.table)
        if text:
            yield Block(text, headings, number, "table")
    elif getattr(shape, "has_text_frame", False) and shape.has_text_frame:
        text = _frame_text(shape.text_frame)
        if text:
            yield Block(text, headings, number)


def _table_text(table: Any) -> str:
    """One line per row (the header row included), cells joined by ' | '; a merged cell once."""
    rows = []
    for row in table.rows:
        cells = [_one_line(cell.text) for cell in row.cells if not cell.is_spanned]
        if any(cells):
            rows.append(" | ".join(cells))
    return "\n".join(rows)


def _frame_text(frame: Any) -> str:
    """A text frame's paragraphs, a line each (python-pptx gives a line break inside one as '\\v')."""
    return clean_text(frame.text.replace("\v", "\n"))


def _one_line(text: str) -> str:
    return " ".join(text.split())
