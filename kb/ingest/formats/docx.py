"""Word (.docx) with python-docx: heading styles give the section path, tables become rows, pictures
are read by OCR as the OCR mode asks (`kb.ingest.formats.pictures`), cited by the section they sit in
(a Word file has no pages)."""

from __future__ import annotations

import logging
import re
import zipfile
from pathlib import Path

from kb.errors import ParseError, one_line
from kb.ingest.base import HeadingPath, clean_text
from kb.ingest.formats.pictures import Pictures
from kb.ingest.formats.protected import refuse_encrypted
from kb.types import Block, ParsedDocument

log = logging.getLogger(__name__)
_HEADING = re.compile(r"^(?:heading|überschrift|titre)\s*(\d)$", re.IGNORECASE)


class DocxParser:
    file_type = "docx"
    extensions = (".docx",)
    version = 2  # 2: pictures read by OCR (per the OCR mode)

    def parse(self, path: Path) -> ParsedDocument:
        # lazy: `kb --help` imports every parser (for its type list); the library loads when a file is read
        import docx
        from docx.table import Table

        refuse_encrypted(path)
        if not zipfile.is_zipfile(path):
            raise ParseError("not a valid .docx (not a zip archive)")
        try:
            document = docx.Document(str(path))
        except Exception as e:  # python-docx raises KeyError, ValueError, lxml errors... for bad parts
            raise ParseError(f"unreadable .docx: {one_line(e)}") from e
        title = (document.core_properties.title or "").strip() or path.stem
        blocks: list[Block] = []
        headings = HeadingPath()
        dropped: list[str] = []
        shown: list[tuple[int, tuple[str, ...], bytes]] = []  # pictures: where in `blocks`, section, bytes
        for item in document.iter_inner_content():
            shown.extend((len(blocks), headings.path, blob) for blob in _pictures(document, item))
            if isinstance(item, Table):
                try:
                    text = _table_text(item)
                except Exception as e:  # one odd table must not lose the whole document
                    dropped.append(one_line(e))
                    continue
                if text:
                    blocks.append(Block(text, headings.path, kind="table"))
                continue
            text = clean_text(item.text)
            if not text:
                continue
            style = item.style.name if item.style is not None else ""
            level = 0 if style == "Title" else _heading_level(style)
            if level is not None:
                blocks.append(Block(text, headings.enter(level, text), kind="heading"))
            elif _is_list_item(item, style):
                blocks.append(Block(f"- {text}", headings.path, kind="list"))
            else:
                blocks.append(Block(text, headings.path))
        if dropped:
            count = f"{len(dropped)} table{'s' if len(dropped) > 1 else ''}"
            log.warning("kb: %s: %s dropped: %s", path, count, "; ".join(dropped))
        pictures = Pictures(path, "")
        blocks = _with_pictures(blocks, shown, pictures)
        if not blocks:
            raise ParseError(pictures.no_text("no text in document"))
        return ParsedDocument(title=title, blocks=_merge_lists(blocks), metadata=pictures.metadata())


def _pictures(document: object, item: object) -> list[bytes]:
    """The pictures embedded in a paragraph or table (inline or floating), as their files' bytes;
    a linked one (a path elsewhere) has none here."""
    related = document.part.related_parts  # type: ignore[attr-defined]
    blobs = []
    for rid in item._element.xpath(".//a:blip/@r:embed"):  # type: ignore[attr-defined]
        part = related.get(str(rid))
        blob = getattr(part, "blob", None)
        if isinstance(blob, bytes) and blob:
            blobs.append(blob)
    return blobs


def _with_pictures(blocks: list[Block], shown: list[tuple[int, tuple[str, ...], bytes]],
                   pictures: Pictures) -> list[Block]:
    """`blocks` with the text OCR reads in the pictures put where they sit, under their section.
    `auto` reads the pictures of a section with no usable text of its own (its heading aside)."""
    if not shown:
        return blocks
    own: dict[tuple[str, ...], list[str]] = {}
    for b in blocks:
        if b.kind != "heading":
            own.setdefault(b.headings, []).append(b.text)
    counts: dict[tuple[str, ...], int] = {}
    for _, section, _ in shown:
        counts[section] = counts.get(section, 0) + 1
    wanted = {section for section, n in counts.items() if pictures.wanted(" ".join(own.get(section, [])), n)}
    out: list[Block] = []
    at = 0
    for index, section, blob in shown:
        out.extend(blocks[at:index])
        at = max(at, index)
        if section in wanted:
            out.extend(pictures.blocks(blob, section))
    return out + blocks[at:]


def _heading_level(style: str) -> int | None:
    m = _HEADING.match(style.strip())
    return int(m.group(1)) if m else None


def _is_list_item(paragraph: object, style: str) -> bool:
    if style.lower().startswith("list"):
        return True
    ppr = paragraph._p.pPr  # type: ignore[attr-defined]
    return ppr is not None and ppr.numPr is not None


def _table_text(table: object) -> str:
    """The table's rows as "a | b" lines; python-docx's own iteration raises on some merged-cell
    layouts Word writes (a vMerge continuation under a gridSpan), so those are read from the XML."""
    try:
        return _grid_text(table)
    except ValueError:
        return _xml_text(table._tbl)  # type: ignore[attr-defined]


def _xml_text(tbl: object) -> str:
    """Each <w:tc> once, in document order; an empty vertical continuation is left out."""
    rows = []
    for tr in tbl.tr_lst:  # type: ignore[attr-defined]
        cells = []
        for tc in tr.tc_lst:
            paras = ("".join(t.text or "" for t in p.xpath(".//w:t")) for p in tc.xpath(".//w:p"))
            text = clean_text(" ".join(paras)).replace("\n", " ")
            if text or tc.vMerge != "continue":
                cells.append(text)
        if any(cells):
            rows.append(" | ".join(cells))
    return "\n".join(rows)


def _grid_text(table: object) -> str:
    rows = []
    for row in table.rows:  # type: ignore[attr-defined]
        cells: list[str] = []
        last = None
        for cell in row.cells:
            # python-docx repeats a horizontally merged cell once per grid column it spans
            if cell._tc is not last:
                cells.append(clean_text(cell.text).replace("\n", " "))
            last = cell._tc
        if any(cells):
            rows.append(" | ".join(cells))
    return "\n".join(rows)


def _merge_lists(blocks: list[Block]) -> list[Block]:
    """Consecutive list items form one block, an item per line."""
    out: list[Block] = []
    for b in blocks:
        if b.kind == "list" and out and out[-1].kind == "list" and out[-1].headings == b.headings:
            out[-1] = Block(out[-1].text + "\n" + b.text, b.headings, None, "list")
        else:
            out.append(b)
    return out
