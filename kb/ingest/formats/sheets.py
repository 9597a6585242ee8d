"""Spreadsheets (.xlsx, .xls, .ods, .csv, .tsv), cited by sheet and row: `budget.xlsx rows 2-14 § Q3`.

A cell means nothing without its column's header ("1,200" of what?), so every row becomes one block
that carries its header with it: `Region: West | Units: 1,200 | Revenue: 3.4`. The header row is taken
to be the first non-empty row of each sheet: good enough for the sheets people keep (a title row above
the header makes the title the header, and the rows still read sensibly). A block's `page` is the row's
number as the spreadsheet shows it (the header row of a sheet starting at the top is row 1), each sheet
is a section, and `pages` counts the data rows indexed. Rows are never cut: the chunker packs whole rows.
"""

from __future__ import annotations

import csv
import io
import logging
import math
import re
import warnings
import zipfile
from collections.abc import Iterable, Iterator
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any

from kb.errors import ParseError, one_line
from kb.ingest.decode import read_text
from kb.ingest.formats.odt import check_package
from kb.ingest.formats.protected import refuse_encrypted
from kb.types import Block, ParsedDocument

log = logging.getLogger(__name__)

MAX_ROWS = 200_000  # data rows kept per sheet; more are dropped with a warning
_MAX_REPEAT = 1_000  # an ODS row or cell repeated more than this is padding, not data
_NAMED_CELLS = 5  # cells a warning names before "..."

# One sheet: its name (None for CSV) and its rows as (row number, cell texts by column).
Rows = Iterable[tuple[int, list[str]]]


class XlsxParser:
    """Excel 2007+ with openpyxl, read-only (rows stream, memory stays flat) and data-only (a formula
    cell gives the value Excel last computed, as the sheet shows it). A formula cell with no saved value
    (written by a library that does not compute, such as openpyxl) keeps its formula text, and one
    warning per file names those cells."""

    version = 2  # formula cells without a saved value keep their formula text (issue 33)
    file_type = "xlsx"
    extensions = (".xlsx", ".xlsm")

    def parse(self, path: Path) -> ParsedDocument:
        # lazy: `kb --help` imports every parser (for its type list); the library loads when a file is read
        import openpyxl

        refuse_encrypted(path)
        if not zipfile.is_zipfile(path):
            raise ParseError("not a valid Excel file (truncated or corrupt)")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # openpyxl warns of every extension it does not read
            try:
                book = openpyxl.load_workbook(path, read_only=True, data_only=True)
            except Exception as e:  # KeyError, BadZipFile, lxml errors... for a damaged package
                raise ParseError(f"not a valid Excel file (truncated or corrupt): {one_line(e)}") from e
            try:
                title = (book.properties.title or "").strip() or path.stem
                notes: list[str] = []
                return _document(path, title, _xlsx_sheets(path, book, notes), "Excel", notes)
            except (zipfile.BadZipFile, KeyError, OSError, EOFError) as e:
                raise ParseError(f"not a valid Excel file (truncated or corrupt): {one_line(e)}") from e
            finally:
                book.close()


def _xlsx_sheets(path: Path, book: Any, notes: list[str]) -> Iterator[tuple[str, Rows]]:
    """Each worksheet (`worksheets` leaves chart sheets out: they hold no cells), then one note naming
    the formula cells that had no saved value, if any."""
    unsaved: list[str] = []
    for ws in book.worksheets:
        formulas = _unsaved_formulas(path, ws)
        yield ws.title, _xlsx_rows(ws, formulas)
        sheet = ws.title if re.fullmatch(r"\w+", ws.title) else "'" + ws.title.replace("'", "''") + "'"
        unsaved.extend(f"{sheet}!{column_letter(col - 1)}{row}" for row, col in formulas)
    if unsaved:
        shown = ", ".join(unsaved[:_NAMED_CELLS]) + (", ..." if len(unsaved) > _NAMED_CELLS else "")
        count = f"{len(unsaved)} formula cell{'s have' if len(unsaved) > 1 else ' has'}"
        notes.append(f"{count} no saved value ({shown}); their formulas are indexed")


def _xlsx_rows(ws: Any, formulas: dict[tuple[int, int], str]) -> Iterator[tuple[int, list[str]]]:
    for number, row in enumerate(ws.iter_rows(min_row=1), 1):
        cells = [cell_text(c.value, getattr(c, "number_format", None)) for c in row]
        if formulas:
            for col, cell in enumerate(cells, 1):
                if not cell and (number, col) in formulas:
                    cells[col - 1] = formulas[number, col]
        yield number, cells


def _unsaved_formulas(path: Path, ws: Any) -> dict[tuple[int, int], str]:
    """(row, column) -> "=formula" for the sheet's formula cells that hold no saved value. openpyxl's
    data-only reading gives such a cell as empty and its formula reading loses every saved value, so the
    sheet's XML is scanned once more (lxml, cells cleared as they go): a fraction of openpyxl's time."""
    part = getattr(ws, "_worksheet_path", None)  # openpyxl's name for the sheet's part in the package
    if not part:
        return {}
    try:
        return _scan_formulas(path, part)
    except Exception:  # a damaged part: openpyxl's reading of it says what is wrong, and keeps what it can
        return {}


_FORMULA_TAG = re.compile(rb"<(?:[A-Za-z_][\w.-]*:)?f[\s/>]")  # <f>, <f t="shared" ...>, <x:f>


def _has_formulas(z: zipfile.ZipFile, part: str) -> bool:
    """Whether the part holds a formula element at all: a byte search, ~20x cheaper than parsing, so
    sheets of plain data (most) pay nearly nothing for the formula check."""
    tail = b""
    with z.open(part) as f:
        while chunk := f.read(1 << 20):
            if _FORMULA_TAG.search(tail + chunk):
                return True
            tail = chunk[-32:]
    return False


def _scan_formulas(path: Path, part: str) -> dict[tuple[int, int], str]:
    # lazy: `kb --help` imports every parser (for its type list); the library loads when a file is read
    from lxml import etree
    from openpyxl.formula.translate import Translator
    from openpyxl.utils.cell import coordinate_to_tuple

    ns = "{http://schemas.openxmlformats.org/spreadsheetml/2006/main}"
    found: dict[tuple[int, int], str] = {}
    shared: dict[str, tuple[str, str]] = {}  # shared formula id -> (its text, the cell it is written for)
    with zipfile.ZipFile(path) as z:
        if not _has_formulas(z, part.lstrip("/")):
            return found
        with z.open(part.lstrip("/")) as f:
            # At a row's end its cells are whole (a formula's <v> follows its <f>): formulas found there, then freed.
            for _, row in etree.iterparse(f, tag=f"{ns}row", huge_tree=True):
                for formula in row.iter(f"{ns}f"):
                    el = formula.getparent()
                    ref = el.get("r", "")
                    text = formula.text or ""
                    if formula.get("t") == "shared" and formula.get("si") is not None:
                        si = formula.get("si", "")
                        if text:
                            shared[si] = (text, ref)
                        elif si in shared and ref:  # a copy of the shared formula, moved to this cell as Excel shows it
                            text = Translator("=" + shared[si][0], origin=shared[si][1]).translate_formula(ref)[1:]
                    value = el.find(f"{ns}v")
                    # an empty <v> of a string-typed cell is a saved empty text; of any other, no value at all
                    saved = value is not None and (bool(value.text) or el.get("t") == "str")
                    if text and ref and not saved and el.find(f"{ns}is") is None:
                        found[coordinate_to_tuple(ref)] = "=" + text
                row.clear(keep_tail=False)
    return found


class XlsParser:
    """Excel 97-2003 with xlrd, number formats included so numbers read as the sheet shows them."""

    file_type = "xls"
    extensions = (".xls",)

    def parse(self, path: Path) -> ParsedDocument:
        # lazy: `kb --help` imports every parser (for its type list); the library loads when a file is read
        import xlrd

        if zipfile.is_zipfile(path):  # an .xlsx renamed .xls: Excel opens it, so do we
            return XlsxParser().parse(path)
        refuse_encrypted(path)
        try:
            # xlrd prints its warnings to stdout unless given somewhere else to write them
            book = xlrd.open_workbook(str(path), formatting_info=True, on_demand=True, logfile=io.StringIO())
        except Exception as e:  # XLRDError, CompDocError, struct.error, IndexError... on damaged files
            raise ParseError(f"not a valid Excel 97-2003 file (truncated or corrupt): {one_line(e)}") from e
        try:
            sheets = ((name, _xls_rows(book, i)) for i, name in enumerate(book.sheet_names()))
            return _document(path, path.stem, sheets, "Excel 97-2003")
        finally:
            book.release_resources()


def _xls_rows(book: Any, index: int) -> Iterator[tuple[int, list[str]]]:
    # lazy: `kb --help` imports every parser (for its type list); the library loads when a file is read
    import xlrd

    sheet = book.sheet_by_index(index)  # loaded here (on demand): a damaged sheet costs itself only
    formats = {key: f.format_str for key, f in book.format_map.items()}
    for r in range(sheet.nrows):
        cells = []
        for cell in sheet.row(r):
            value = cell.value
            if cell.ctype in (xlrd.XL_CELL_EMPTY, xlrd.XL_CELL_BLANK):
                value = None
            elif cell.ctype == xlrd.XL_CELL_DATE:
                try:
                    value = xlrd.xldate.xldate_as_datetime(value, book.datemode)
                except (ValueError, OverflowError):
                    pass  # not a date after all (negative, or out of range): keep the number
            elif cell.ctype == xlrd.XL_CELL_BOOLEAN:
                value = bool(value)
            elif cell.ctype == xlrd.XL_CELL_ERROR:
                value = xlrd.error_text_from_code.get(value, "#ERR")
            fmt = None
            if cell.ctype == xlrd.XL_CELL_NUMBER and cell.xf_index is not None:
                fmt = formats.get(book.xf_list[cell.xf_index].format_key)
            cells.append(cell_text(value, fmt))
        yield r + 1, cells


class OdsParser:
    """OpenDocument spreadsheets: content.xml streamed with lxml's iterparse (rows cleared as they are
    read, so memory stays flat; odfpy builds the whole document first and read ~3,000 rows/s). A cell
    reads as its displayed text (what LibreOffice wrote), a date as its ISO value."""

    version = 2  # own streaming reader: same text, plus sheets of files whose content.xml is indented
    file_type = "ods"
    extensions = (".ods",)

    def parse(self, path: Path) -> ParsedDocument:
        what = "OpenDocument spreadsheet"
        if not zipfile.is_zipfile(path):
            raise ParseError(f"not a valid {what} (truncated or corrupt)")
        try:
            with zipfile.ZipFile(path) as z:
                names = check_package(z, "application/vnd.oasis.opendocument.spreadsheet", what)
                if "content.xml" not in names:
                    raise ParseError(f"not a valid {what} (truncated or corrupt): no content.xml")
                with z.open("content.xml") as content:
                    return _document(path, path.stem, _OdsSheets(content), what)
        except (zipfile.BadZipFile, OSError, EOFError) as e:
            raise ParseError(f"not a valid {what} (truncated or corrupt): {one_line(e)}") from e


_TABLE = "{urn:oasis:names:tc:opendocument:xmlns:table:1.0}"
_TEXT = "{urn:oasis:names:tc:opendocument:xmlns:text:1.0}"
_OFFICE = "{urn:oasis:names:tc:opendocument:xmlns:office:1.0}"
_ODS_CELLS = (f"{_TABLE}table-cell", f"{_TABLE}covered-table-cell")
_ODS_SPACES = (f"{_TEXT}s", f"{_TEXT}tab", f"{_TEXT}line-break")


class _OdsSheets:
    """The sheets of a content.xml stream, each as (name, rows), in one pass: a sheet's rows are read
    to its end before the next sheet is looked for (as `_document` does). LibreOffice writes runs of equal
    rows and cells once with a repeat count (the empty ones up to the sheet's end: a million rows), so the
    numbers advance by the count and only non-empty repeats are expanded."""

    def __init__(self, content: Any):
        # lazy: `kb --help` imports every parser (for its type list); the library loads when a file is read
        from lxml import etree

        self.syntax_error = etree.XMLSyntaxError
        self.events = etree.iterparse(content, events=("start", "end"), tag=(f"{_TABLE}table", f"{_TABLE}table-row"),
                                      huge_tree=True)

    def __iter__(self) -> Iterator[tuple[str, Rows]]:
        try:
            for event, el in self.events:
                if event == "start" and el.tag == f"{_TABLE}table":
                    yield str(el.get(f"{_TABLE}name") or ""), self._rows()
        except self.syntax_error:
            return  # damage after the last sheet read: that sheet's note already says so

    def _rows(self) -> Iterator[tuple[int, list[str]]]:
        number = 0
        depth = 0  # tables inside cells (ODF sub-tables): their rows belong to the cell, not the sheet
        for event, el in self.events:
            if el.tag == f"{_TABLE}table":
                depth += 1 if event == "start" else -1
                if depth < 0:
                    el.clear()
                    return
                continue
            if event == "start" or depth:
                continue
            repeat = int(el.get(f"{_TABLE}number-rows-repeated") or 1)
            cells = _ods_cells(el)
            el.clear()
            parent = el.getparent()
            while el.getprevious() is not None and parent is not None:  # rows read: freed
                del parent[0]
            if not any(cells):
                number += repeat
                continue
            for _ in range(min(repeat, _MAX_REPEAT)):
                number += 1
                yield number, cells
            number += max(0, repeat - _MAX_REPEAT)


def _ods_cells(row: Any) -> list[str]:
    cells: list[str] = []
    width = 0  # columns up to the last non-empty cell
    for cell in row.iterchildren(*_ODS_CELLS):
        repeat = int(cell.get(f"{_TABLE}number-columns-repeated") or 1)
        text = _ods_cell_text(cell)
        if not text:
            cells.extend([""] * min(repeat, 16_384 - len(cells)))
            continue
        cells.extend([text] * min(repeat, _MAX_REPEAT))
        width = len(cells)
    return cells[:width]


def _ods_cell_text(cell: Any) -> str:
    kind = cell.get(f"{_OFFICE}value-type")
    if kind == "date":
        value = cell.get(f"{_OFFICE}date-value") or ""
        return value[:10] if value.endswith("T00:00:00") or len(value) == 10 else value.replace("T", " ")
    shown = " ".join(" ".join(_inline_text(p).split()) for p in cell.iterchildren(f"{_TEXT}p")).strip()
    if shown or kind in (None, "", "string"):
        return shown
    if kind == "boolean":
        return (cell.get(f"{_OFFICE}boolean-value") or "").upper()
    value = cell.get(f"{_OFFICE}value")  # a file written without displayed text (odfpy, scripts)
    try:
        return cell_text(float(value)) if value else ""
    except ValueError:
        return str(value)


def _inline_text(el: Any) -> str:
    """A paragraph's text: spans and links read through, text:s/tab/line-break as a space, comments
    (office:annotation) left out as the sheet shows them only on hover."""
    if not len(el):
        return str(el.text or "")
    out: list[str] = [el.text or ""]
    for child in el:
        if child.tag in _ODS_SPACES:
            out.append(" ")
        elif child.tag != f"{_OFFICE}annotation":
            out.append(_inline_text(child))
        out.append(child.tail or "")
    return "".join(out)


class CsvParser:
    """Comma- (or semicolon-, tab-, pipe-) separated values in any encoding; the delimiter is sniffed."""

    version = 2  # legacy code pages: Windows-1252 preferred when it reads nearly as cleanly (issue 33)
    file_type = "csv"
    extensions = (".csv",)
    delimiter: str | None = None
    what = "CSV"

    def parse(self, path: Path) -> ParsedDocument:
        try:
            text = read_text(path)
        except ParseError as e:
            raise ParseError(f"not a valid {self.what} file ({e})") from None
        if not text.strip():
            raise ParseError("empty file")
        delimiter = self.delimiter or _sniff(text[:65_536])
        reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
        rows = ((n, [" ".join(c.split()) for c in row]) for n, row in enumerate(reader, 1))
        return _document(path, path.stem, [(None, rows)], self.what)


class TsvParser(CsvParser):
    file_type = "tsv"
    extensions = (".tsv",)
    delimiter = "\t"
    what = "TSV"


def _sniff(sample: str) -> str:
    """The delimiter csv.Sniffer finds among the usual ones; a comma where it finds none (one column)."""
    try:
        return csv.Sniffer().sniff(sample, delimiters=",;\t|").delimiter
    except csv.Error:
        return ","


def _document(path: Path, title: str, sheets: Iterable[tuple[str | None, Rows]], what: str,
              notes: list[str] | None = None) -> ParsedDocument:
    """The blocks of every sheet. A sheet the library fails on partway keeps the rows read before the
    failure, and a warning names what was dropped; only a file with nothing readable fails whole.
    `notes` may gain warnings of the reader's own while the sheets are read."""
    blocks: list[Block] = []
    notes = [] if notes is None else notes
    errors: list[str] = []
    rows = 0
    for name, sheet_rows in sheets:
        sheet = _Sheet(name)
        sheet.read(sheet_rows)
        blocks.extend(sheet.blocks)
        rows += sheet.kept
        where = f"sheet {name!r}: " if name else ""
        if sheet.dropped:
            notes.append(f"{where}{sheet.dropped:,} rows after the first {MAX_ROWS:,} dropped")
        if sheet.error:
            errors.append(sheet.error)
            lost = f"rows after row {sheet.last}" if sheet.last else "all rows"
            notes.append(f"{where}{lost} dropped (unreadable: {sheet.error})")
    if not blocks:
        if errors:
            raise ParseError(f"not a valid {what} file (truncated or corrupt): {errors[0]}")
        raise ParseError("no cells with values")
    for note in notes:
        log.warning("kb: %s: %s", path, note)
    metadata: dict[str, Any] = {"warnings": notes} if notes else {}
    return ParsedDocument(title=title, blocks=blocks, pages=rows, metadata=metadata, unit="row")


class _Sheet:
    """One sheet's blocks: one per non-empty row below the header, `Header: value` pairs joined by
    ' | ' (empty cells left out); a sheet with a header and no data gives the header row as its block.
    `kept` counts data rows indexed, `dropped` those over `MAX_ROWS`, `last` the last row read."""

    def __init__(self, name: str | None):
        self.headings = (name,) if name else ()
        self.blocks: list[Block] = []
        self.kept = self.dropped = self.last = 0
        self.error = ""

    def read(self, rows: Rows) -> None:
        header: list[str] | None = None
        header_row = 0
        try:
            for number, cells in rows:
                self.last = number
                if not any(cells):
                    continue
                if header is None:
                    header, header_row = cells, number
                elif self.kept >= MAX_ROWS:
                    self.dropped += 1
                else:
                    pairs = (f"{_key(header, i)}: {value}" for i, value in enumerate(cells) if value)
                    self.blocks.append(Block(" | ".join(pairs), self.headings, number))
                    self.kept += 1
        except Exception as e:  # a damaged sheet: keep what was read, say what was not
            self.error = one_line(e)
        if header is not None and not self.blocks:
            self.blocks.append(Block(" | ".join(c for c in header if c), self.headings, header_row))


def _key(header: list[str], i: int) -> str:
    return header[i] if i < len(header) and header[i] else column_letter(i)


def column_letter(i: int) -> str:
    """0 -> 'A', 25 -> 'Z', 26 -> 'AA': the name a spreadsheet shows above column i."""
    name = ""
    i += 1
    while i:
        i, r = divmod(i - 1, 26)
        name = chr(65 + r) + name
    return name


_DECIMALS = re.compile(r"0\.(0+)")
_QUOTED = re.compile(r'"[^"]*"|\[[^\]]*\]|\\.')


def cell_text(value: Any, fmt: str | None = None) -> str:
    """A cell's value as the sheet shows it, where the number format makes that cheap: integers without
    '.0', thousands separators and fixed decimals and percentages from the format, dates as ISO dates."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, datetime):
        if value.time() == time(0):
            return value.date().isoformat()
        return value.isoformat(sep=" ", timespec="seconds")
    if isinstance(value, (date, time)):
        return value.isoformat()
    if isinstance(value, timedelta):
        return str(value)
    if isinstance(value, (int, float)):
        return _number(float(value), fmt)
    return " ".join(str(value).split())


def _number(value: float, fmt: str | None) -> str:
    if math.isnan(value) or math.isinf(value):
        return str(value)
    pattern = _QUOTED.sub("", (fmt or "General").split(";")[0])  # literal text and [colors] aside
    if "%" in pattern:
        value *= 100
    m = _DECIMALS.search(pattern)
    if m:
        decimals: int | None = len(m.group(1))
    elif "0" in pattern or "#" in pattern:
        decimals = 0
    else:  # General: as many digits as the value needs
        decimals = None
    comma = "," if re.search(r"[#0],[#0]", pattern) else ""
    if decimals is None:
        if value.is_integer() and abs(value) < 1e15:
            text = f"{int(value):{comma}d}"
        else:
            text = f"{value:.15g}"
    else:
        text = f"{value:{comma}.{decimals}f}"
    return text + ("%" if "%" in pattern else "")

