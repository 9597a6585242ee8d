"""Word (.docx) with python-docx: heading styles give the section path, tables become rows."""

from __future__ import annotations

import logging
import re
import zipfile
from pathlib import Path

from kb.errors import ParseError, one_line
from kb.ingest.base import HeadingPath, clean_text
from kb.ingest.formats.protected import refuse_encrypted
from kb.types import Block, ParsedDocument

log = logging.getLogger(__name__)
_HEADING = re.compile(r"^(?:heading|überschrift|titre)\s*(\d)$", re.IGNORECASE)


class DocxParser:
    file_type = "docx"
    extensions = (".docx",)

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
        for item in document.iter_inner_content():
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
        if not blocks:
            raise ParseError("no text in document")
        return ParsedDocument(title=title, blocks=_merge_lists(blocks))


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
