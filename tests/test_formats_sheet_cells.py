"""Spreadsheet cells as a person sees them (issue 33): an XLSX formula cell gives its saved value, else
its formula text with one warning per file naming the cells; .ods read by kb's own streaming reader
with repeated rows and columns, covered cells, spaces, spans and comments as LibreOffice shows them."""

from __future__ import annotations

import logging
import zipfile
from pathlib import Path

import pytest

from kb.errors import ParseError
from kb.ingest.base import parser_for
from kb.ingest.formats.protected import ENCRYPTED


def formula_book(path: Path) -> Path:
    """A workbook written by openpyxl, which saves no formula results; D2's result (6) is then written
    into its XML, as Excel or LibreOffice would have saved it."""
    import openpyxl

    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = "Orders"
    sheet.append(["Item", "Qty", "Price", "Total"])
    sheet.append(["crate", 2, 3, "=B2*C2"])
    sheet.append(["rope", 4, 5, "=B3*C3"])
    other = book.create_sheet("Q3 sums")
    other.append(["Label", "Sum"])
    other.append(["all", "=SUM(Orders!D2:D3)"])
    book.save(str(path))
    with zipfile.ZipFile(path) as z:
        parts = {i: z.read(i.filename) for i in z.infolist()}
    with zipfile.ZipFile(path, "w") as z:
        for info, data in parts.items():
            z.writestr(info, data.replace(b'<c r="D2"><f>B2*C2</f><v></v>', b'<c r="D2"><f>B2*C2</f><v>6</v>'))
    return path


def test_uncached_formulas_keep_their_text_and_one_warning_names_the_cells(tmp_path: Path,
                                                                          caplog: pytest.LogCaptureFixture) -> None:
    path = formula_book(tmp_path / "book.xlsx")
    with caplog.at_level(logging.WARNING):
        doc = parser_for(path).parse(path)
    assert [b.text for b in doc.blocks] == [
        "Item: crate | Qty: 2 | Price: 3 | Total: 6",  # the saved value wins
        "Item: rope | Qty: 4 | Price: 5 | Total: =B3*C3",
        "Label: all | Sum: =SUM(Orders!D2:D3)"]
    note = "2 formula cells have no saved value (Orders!D3, 'Q3 sums'!B2); their formulas are indexed"
    assert doc.metadata["warnings"] == [note]
    assert [r.getMessage() for r in caplog.records] == [f"kb: {path}: {note}"]


def test_a_book_whose_formulas_all_have_values_warns_nothing(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    import openpyxl

    path = tmp_path / "plain.xlsx"
    book = openpyxl.Workbook()
    book.active.append(["Item", "Qty"])
    book.active.append(["crate", 2])
    book.save(str(path))
    with caplog.at_level(logging.WARNING):
        doc = parser_for(path).parse(path)
    assert [b.text for b in doc.blocks] == ["Item: crate | Qty: 2"] and not caplog.records and not doc.metadata


ODS_CONTENT = """<?xml version="1.0" encoding="UTF-8"?>
<office:document-content xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0"
    xmlns:table="urn:oasis:names:tc:opendocument:xmlns:table:1.0"
    xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0" office:version="1.2">
  <office:body>
    <office:spreadsheet>
      <table:table table:name="Budget">
        <table:table-column table:number-columns-repeated="4"/>
        <table:table-header-rows>
          <table:table-row>
            <table:table-cell office:value-type="string"><text:p>Region</text:p></table:table-cell>
            <table:table-cell office:value-type="string"><text:p>Units</text:p></table:table-cell>
            <table:table-cell office:value-type="string"><text:p>Note</text:p></table:table-cell>
            <table:table-cell office:value-type="string"><text:p>Date</text:p></table:table-cell>
          </table:table-row>
        </table:table-header-rows>
        <table:table-row table:number-rows-repeated="2">
          <table:table-cell office:value-type="string"><text:p>West</text:p></table:table-cell>
          <table:table-cell office:value-type="float" office:value="1200"><text:p>1,200</text:p></table:table-cell>
          <table:table-cell office:value-type="string"><office:annotation><text:p>a hidden comment</text:p>
            </office:annotation><text:p>two<text:s/>words <text:span>in a</text:span><text:s text:c="3"/>span</text:p>
            <text:p>second line</text:p></table:table-cell>
          <table:table-cell office:value-type="date" office:date-value="2024-03-01"><text:p>03/01/24</text:p>
          </table:table-cell>
        </table:table-row>
        <table:table-row table:number-rows-repeated="3"><table:table-cell table:number-columns-repeated="4"/>
        </table:table-row>
        <table:table-row>
          <table:table-cell table:number-columns-repeated="2" office:value-type="string"><text:p>Same</text:p>
          </table:table-cell>
          <table:covered-table-cell office:value-type="boolean" office:boolean-value="true"/>
          <table:table-cell office:value-type="float" office:value="0.25"/>
        </table:table-row>
        <table:table-row-group><table:table-row><table:table-cell office:value-type="string">
          <text:p>Grouped <text:a>link</text:a></text:p></table:table-cell></table:table-row></table:table-row-group>
        <table:table-row table:number-rows-repeated="1048000"><table:table-cell table:number-columns-repeated="1024"/>
        </table:table-row>
      </table:table>
      <table:table table:name="Second">
        <table:table-row><table:table-cell office:value-type="string"><text:p>Only</text:p></table:table-cell>
        </table:table-row>
        <table:table-row><table:table-cell office:value-type="date" office:date-value="2024-03-01T10:30:00"/>
        </table:table-row>
      </table:table>
    </office:spreadsheet>
  </office:body>
</office:document-content>"""


def write_ods(path: Path, content: str = ODS_CONTENT, manifest_extra: str = "") -> Path:
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("mimetype", "application/vnd.oasis.opendocument.spreadsheet")
        z.writestr("META-INF/manifest.xml", '<manifest:manifest xmlns:manifest="urn:oasis:names:tc:opendocument:'
                   f'xmlns:manifest:1.0"><manifest:file-entry manifest:full-path="content.xml">{manifest_extra}'
                   "</manifest:file-entry></manifest:manifest>")
        z.writestr("content.xml", content)
    return path


def test_ods_repeats_covered_cells_spaces_and_comments_read_as_shown(tmp_path: Path) -> None:
    path = write_ods(tmp_path / "budget.ods")
    doc = parser_for(path).parse(path)
    west = "Region: West | Units: 1,200 | Note: two words in a span second line | Date: 2024-03-01"
    assert [(b.headings, b.page, b.text) for b in doc.blocks] == [
        (("Budget",), 2, west), (("Budget",), 3, west),  # a repeated row is each of its rows
        (("Budget",), 7, "Region: Same | Units: Same | Note: TRUE | Date: 0.25"),  # rows 4-6 empty
        (("Budget",), 8, "Region: Grouped link"),
        (("Second",), 2, "Only: 2024-03-01 10:30:00")]
    assert doc.pages == 5


def test_ods_damaged_partway_keeps_the_rows_before_and_an_encrypted_one_says_so(tmp_path: Path) -> None:
    cut = ODS_CONTENT.index("<table:table-row-group>")
    path = write_ods(tmp_path / "cut.ods", ODS_CONTENT[:cut] + "<table:table-row><table:table-cell")
    doc = parser_for(path).parse(path)
    assert [b.page for b in doc.blocks] == [2, 3, 7]
    assert "rows after row 7 dropped (unreadable:" in doc.metadata["warnings"][0]
    locked = write_ods(tmp_path / "locked.ods", manifest_extra="<manifest:encryption-data/>")
    with pytest.raises(ParseError, match=ENCRYPTED.replace("(", r"\(").replace(")", r"\)")):
        parser_for(locked).parse(locked)
