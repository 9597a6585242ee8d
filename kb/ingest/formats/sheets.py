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
from kb.ingest.formats.protected import refuse_encrypted
from kb.types import Block, ParsedDocument

log = logging.getLogger(__name__)

MAX_ROWS = 200_000  # data rows kept per sheet; more are dropped with a warning
_MAX_REPEAT = 1_000  # an ODS row or cell repeated more than this is padding, not data

# One sheet: its name (None for CSV) and its rows as (row number, cell texts by column).
Rows = Iterable[tuple[int, list[str]]]


class XlsxParser:
    """Excel 2007+ with openpyxl, read-only (rows stream, memory stays flat) and data-only (a formula
    cell gives the value Excel last computed, as the sheet shows it)."""

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
                # `worksheets` leaves chart sheets out: they hold no cells
                return _document(path, title, ((ws.title, _xlsx_rows(ws)) for ws in book.worksheets), "Excel")
            except (zipfile.BadZipFile, KeyError, OSError, EOFError) as e:
                raise ParseError(f"not a valid Excel file (truncated or corrupt): {one_line(e)}") from e
            finally:
                book.close()


def _xlsx_rows(ws: Any) -> Iterator[tuple[int, list[str]]]:
    for number, row in enumerate(ws.iter_rows(min_row=1), 1):
        yield number, [cell_text(c.value, getattr(c, "number_format", None)) for c in row]


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
    """OpenDocument spreadsheets with odfpy; a cell reads as its displayed text (what LibreOffice
    wrote), a date as its ISO value."""

    file_type = "ods"
    extensions = (".ods",)

    def parse(self, path: Path) -> ParsedDocument:
        # lazy: `kb --help` imports every parser (for its type list); the library loads when a file is read
        from odf.opendocument import load
        from odf.table import Table

        if not zipfile.is_zipfile(path):
            raise ParseError("not a valid OpenDocument spreadsheet (truncated or corrupt)")
        try:
            doc = load(str(path))
            tables = doc.spreadsheet.getElementsByType(Table)
        except Exception as e:  # KeyError, BadZipFile, XML errors, or a text document named .ods
            raise ParseError(f"not a valid OpenDocument spreadsheet (truncated or corrupt): {one_line(e)}") from e
        sheets = ((str(t.getAttribute("name") or ""), _ods_rows(t)) for t in tables)
        return _document(path, path.stem, sheets, "OpenDocument spreadsheet")


def _ods_rows(table: Any) -> Iterator[tuple[int, list[str]]]:
    """Rows of an ODS table. LibreOffice writes runs of equal rows and cells once with a repeat count
    (the empty ones up to the sheet's end: a million rows), so the numbers advance by the count and only
    non-empty repeats are expanded."""
    # lazy: `kb --help` imports every parser (for its type list); the library loads when a file is read
    from odf.namespaces import TABLENS
    from odf.table import TableRow

    number = 0
    for row in table.getElementsByType(TableRow):
        repeat = int(row.getAttrNS(TABLENS, "number-rows-repeated") or 1)
        cells = _ods_cells(row)
        if not any(cells):
            number += repeat
            continue
        for _ in range(min(repeat, _MAX_REPEAT)):
            number += 1
            yield number, cells
        number += max(0, repeat - _MAX_REPEAT)


def _ods_cells(row: Any) -> list[str]:
    # lazy: `kb --help` imports every parser (for its type list); the library loads when a file is read
    from odf.namespaces import OFFICENS, TABLENS

    cells: list[str] = []
    width = 0  # columns up to the last non-empty cell
    for cell in row.childNodes:
        if cell.qname[1] not in ("table-cell", "covered-table-cell"):
            continue
        repeat = int(cell.getAttrNS(TABLENS, "number-columns-repeated") or 1)
        text = _ods_cell_text(cell, OFFICENS)
        if not text:
            cells.extend([""] * min(repeat, 16_384 - len(cells)))
            continue
        cells.extend([text] * min(repeat, _MAX_REPEAT))
        width = len(cells)
    return cells[:width]


def _ods_cell_text(cell: Any, office: str) -> str:
    kind = cell.getAttrNS(office, "value-type")
    if kind == "date":
        value = cell.getAttrNS(office, "date-value") or ""
        return value[:10] if value.endswith("T00:00:00") or len(value) == 10 else value.replace("T", " ")
    # lazy: `kb --help` imports every parser (for its type list); the library loads when a file is read
    from odf import teletype

    shown = " ".join(" ".join(teletype.extractText(p).split()) for p in cell.childNodes if p.qname[1] == "p")
    if shown.strip() or kind in (None, "", "string"):
        return shown.strip()
    if kind == "boolean":
        return (cell.getAttrNS(office, "boolean-value") or "").upper()
    value = cell.getAttrNS(office, "value")  # a file written without displayed text (odfpy, scripts)
    try:
        return cell_text(float(value)) if value else ""
    except ValueError:
        return value


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


def _document(path: Path, title: str, sheets: Iterable[tuple[str | None, Rows]], what: str) -> ParsedDocument:
    """The blocks of every sheet. A sheet the library fails on partway keeps the rows read before the
    failure, and a warning names what was dropped; only a file with nothing readable fails whole."""
    blocks: list[Block] = []
    notes: list[str] = []
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

