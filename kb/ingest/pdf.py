"""PDF with pypdf, page by page; headings from the outline or from 'PART I' / 'Item 2.' lines; pages
without usable text (scans) rendered with pypdfium2 and read by OCR (kb.ingest.ocr)."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from kb.errors import ParseError
from kb.ingest.base import clean_text
from kb.types import Block, ParsedDocument

# pypdf's defaults protect against hostile files but refuse some real documents (two of our
# evaluation PDFs have arrays past 100,000 elements). These raise only element counts, still bounded;
# decompression limits stay at pypdf's defaults.
_LIMITS = {
    "array_maximum_element_count": 5_000_000,
    "dictionary_maximum_element_count": 5_000_000,
    "stream_parsing_work_maximum_count": 50_000_000,
}

log = logging.getLogger(__name__)

_PART = re.compile(r"^PART\s+[IVX]+\b.{0,80}$", re.IGNORECASE)
_ITEM = re.compile(r"^ITEM\s+\d+[A-Z]?\b\.?.{0,100}$", re.IGNORECASE)


class PdfParser:
    file_type = "pdf"
    extensions = (".pdf",)

    def parse(self, path: Path) -> ParsedDocument:
        from pypdf import apply_configuration
        from pypdf.errors import LimitReachedError, PyPdfError

        try:
            with apply_configuration(**_LIMITS):
                return self._parse(path)
        except LimitReachedError as e:
            raise ParseError(f"PDF refused by pypdf safety limits: {_one_line(e)}") from e
        except ParseError:
            raise
        except (PyPdfError, ValueError, KeyError, TypeError, AttributeError, IndexError, OSError) as e:
            raise ParseError(f"unreadable PDF: {_one_line(e)}") from e

    def _parse(self, path: Path) -> ParsedDocument:
        from pypdf import PdfReader

        logging.getLogger("pypdf").setLevel(logging.ERROR)  # pypdf logs every odd font at warning
        reader = PdfReader(path)
        if reader.is_encrypted:
            try:
                ok = reader.decrypt("")
            except Exception as e:  # pypdf raises DependencyError / NotImplementedError here
                raise ParseError(f"encrypted PDF could not be opened: {_one_line(e)}") from e
            if not ok:
                raise ParseError("encrypted PDF needs a password")
        outline = _outline_by_page(reader)
        texts = [clean_text(page.extract_text() or "") for page in reader.pages]
        npages = len(texts)
        ocr_meta, no_text = _ocr_pages(path, texts)
        blocks: list[Block] = []
        headings: tuple[str, ...] = ()
        for number, text in enumerate(texts, start=1):
            if number in outline:
                headings = outline[number]
            for para in text.split("\n\n"):
                if not para.strip():
                    continue
                if outline:
                    blocks.append(Block(para, headings, number))
                    continue
                # No outline: lines like "PART I" and "Item 2. Management's Discussion" open sections.
                run: list[str] = []
                for line in para.split("\n"):
                    level = 0 if _PART.match(line) else 1 if _ITEM.match(line) else -1
                    if level < 0:
                        run.append(line)
                        continue
                    if run:
                        blocks.append(Block("\n".join(run), headings, number))
                        run = []
                    part = headings[:1] if headings and _PART.match(headings[0]) else ()
                    headings = (line,) if level == 0 else (*part, line)
                    blocks.append(Block(line, headings, number, kind="heading"))
                if run:
                    blocks.append(Block("\n".join(run), headings, number))
        if not any(b.text.strip() for b in blocks):
            raise ParseError(no_text or f"no extractable text in {npages} page(s), needs OCR (kb ingest --ocr auto)")
        meta: dict[str, Any] = {}
        try:
            info = reader.metadata or {}
            meta = {k.lstrip("/").lower(): str(v) for k, v in info.items() if isinstance(v, str) and v.strip()}
        except Exception:  # broken info dictionaries are common and never worth failing a file for
            meta = {}
        meta.update(ocr_meta)
        return ParsedDocument(title=path.stem, blocks=blocks, pages=npages, metadata=meta)


def _ocr_pages(path: Path, texts: list[str]) -> tuple[dict[str, Any], str | None]:
    """OCR the pages the mode asks for (auto: those without usable text; always: all), replacing their
    text in `texts` where OCR finds some. Pages OCR could not read keep what they had and are named in
    a warning. Returns the metadata to record (`ocr_pages`, `warnings`) and the reason the document
    fails with if no page has text after all (None: the caller's own)."""
    from kb.ingest import ocr

    mode = ocr.current.mode
    if mode == "never":
        return {}, None
    wanted = [n for n, text in enumerate(texts, start=1) if mode == "always" or not ocr.usable(text)]
    if not wanted:
        return {}, None
    done: list[int] = []
    unread: dict[int, str] = {}
    try:
        for number, image in _rendered(path, wanted):
            try:
                found = "\n\n".join(ocr.recognize(image))
            except ocr.OcrTimeout as e:
                unread[number] = str(e)
                continue
            text = clean_text(found)
            if text:
                texts[number - 1] = text
                done.append(number)
    except (ocr.OcrUnavailable, _RenderError) as e:
        unread.update((n, str(e)) for n in wanted if n not in done and n not in unread)
    meta: dict[str, Any] = {"ocr_pages": done} if done else {}
    left = [n for n in unread if not ocr.usable(texts[n - 1])]  # `always` keeps a readable text layer
    if not left:
        return meta, f"no extractable text in {len(texts)} page(s), and OCR found none"
    reasons = "; ".join(sorted(set(unread[n] for n in left)))
    warning = f"page(s) {ocr.page_list(left)} left unread: {reasons}"
    if any(text.strip() for text in texts):
        log.warning("kb: %s: %s", path, warning)  # else the document fails, and that line says it
    meta["warnings"] = [warning]
    return meta, f"no text layer in {len(left)} page(s), and OCR failed: {reasons}"


class _RenderError(ParseError):
    pass


def _rendered(path: Path, pages: list[int]) -> Iterator[tuple[int, Any]]:
    """Each of `pages` (1-based) as a grey PIL image at `ocr.DPI` (less for a page too large), one at a time."""
    import pypdfium2 as pdfium

    from kb.ingest import ocr

    try:
        pdf = pdfium.PdfDocument(str(path))
    except pdfium.PdfiumError as e:
        raise _RenderError(f"pages could not be rendered for OCR ({_one_line(e)})") from e
    try:
        for number in pages:
            try:
                page = pdf[number - 1]
                width, height = page.get_size()  # points: 1/72 inch
                scale = min(ocr.DPI / 72, (ocr.MAX_PIXELS / max(width * height, 1.0)) ** 0.5)
                image = page.render(scale=scale, grayscale=True).to_pil()
                page.close()
            except pdfium.PdfiumError as e:
                raise _RenderError(f"page {number} could not be rendered for OCR ({_one_line(e)})") from e
            yield number, image
    finally:
        pdf.close()


def _outline_by_page(reader: Any) -> dict[int, tuple[str, ...]]:
    """Map page number -> heading path of the last outline entry starting on that page."""
    result: dict[int, tuple[str, ...]] = {}

    def walk(items: list[Any], trail: tuple[str, ...]) -> None:
        last: tuple[str, ...] = trail
        for item in items:
            if isinstance(item, list):
                walk(item, last)
                continue
            try:
                title = " ".join(str(item.title).split())
                page = reader.get_destination_page_number(item) + 1
            except Exception:
                continue
            last = (*trail, title)
            if title and page >= 1:
                result[page] = last

    try:
        walk(reader.outline or [], ())
    except Exception:
        return {}
    return result


def _one_line(e: BaseException) -> str:
    return " ".join(str(e).split())[:200] or type(e).__name__
