"""Slides and spreadsheets (issue 18): a deck is cited by slide and slide title, a sheet by sheet and row
with each row keeping its header; a corrupt file of each format is a one-line reason while the rest of
the folder is ingested (fast layer).

The .pptx and the large .xlsx are written here by python-pptx and openpyxl; the committed fixtures
(tests/fixtures/formats/slides_deck.ppt, sheet_budget.xlsx/.xls/.ods) are LibreOffice's conversions of
`make_deck` and `make_budget` below, made by tests/fixtures/formats/slides_make_fixtures.py.
"""

from __future__ import annotations

import datetime
import os
import re
import shutil
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from kb import Filters, KnowledgeBase
from kb.errors import ParseError
from kb.ingest.base import parser_for
from kb.ingest.formats import sheets
from kb.ingest.formats.libreoffice import soffice
from kb.ingest.formats.sheets import cell_text, column_letter
from tests.helpers import FAKE

FIXTURES = Path(__file__).parent / "fixtures" / "formats"
SPREADSHEETS = ("xlsx", "xls", "ods")


def make_deck(path: Path) -> None:
    """Four slides: a title slide, shapes drawn out of reading order (one in a group), a table with
    speaker notes, and a slide without a title."""
    from pptx import Presentation
    from pptx.util import Inches

    deck = Presentation()
    deck.core_properties.title = "Quarterly review"
    s = deck.slides.add_slide(deck.slide_layouts[0])
    s.shapes.title.text = "Quarterly review"
    s.placeholders[1].text = "Prepared by the wallaby team"
    s = deck.slides.add_slide(deck.slide_layouts[5])  # title only
    s.shapes.title.text = "Roadmap"
    low = s.shapes.add_textbox(Inches(1), Inches(5), Inches(6), Inches(1))
    low.text_frame.text = "Then the zephyrine milestone ships"
    high = s.shapes.add_textbox(Inches(1), Inches(2), Inches(6), Inches(1))
    high.text_frame.text = "First the foundations are laid"
    group = s.shapes.add_group_shape()
    inner = group.shapes.add_textbox(Inches(1), Inches(3.5), Inches(3), Inches(1))
    inner.text_frame.text = "A gondolier steers the grouped shapes"
    s = deck.slides.add_slide(deck.slide_layouts[5])
    s.shapes.title.text = "Pricing"
    table = s.shapes.add_table(3, 2, Inches(1), Inches(2), Inches(6), Inches(2)).table
    for r, row in enumerate([("Plan", "Price"), ("Basic", "10"), ("Quillfeather", "99")]):
        for c, text in enumerate(row):
            table.cell(r, c).text = text
    s.notes_slide.notes_text_frame.text = "Mention the marzipan discount for early renewals"
    s = deck.slides.add_slide(deck.slide_layouts[6])  # blank: no title
    box = s.shapes.add_textbox(Inches(1), Inches(1), Inches(6), Inches(1))
    box.text_frame.text = "An orphaned halcyon remark"
    deck.save(str(path))


def make_budget(path: Path) -> None:
    """Sheet Q3: a header with one empty cell (column D), thousands formats, dates, an empty row 8 and
    a formula in row 16; a hidden sheet; a sheet with a header only."""
    import openpyxl

    book = openpyxl.Workbook()
    book.properties.title = "Budget"
    ws = book.active
    ws.title = "Q3"
    ws.append(["Region", "Units", "Revenue", None, "Date"])
    rows = [("West", 1200, 3.4, 17), ("East", 950, 2.75, None), ("North", 40000, 12.5, 3),
            ("South", 310, 0.9, None), ("Quokkaville", 77, 0.25, 5), ("Central", 640, 1.6, None)]
    for day, row in enumerate(rows, 1):
        ws.append([*row, datetime.date(2026, 7, day)])
    ws.append([])
    for i in range(7):
        ws.append([f"Zone {i}", 100 + i, 1.0 + i / 10, None, datetime.date(2026, 8, 1 + i)])
    ws.append(["Total", "=SUM(B2:B7)"])
    for (cell,) in ws.iter_rows(min_row=2, min_col=2, max_col=2):
        cell.number_format = "#,##0"
    hidden = book.create_sheet("Archive")
    hidden.sheet_state = "hidden"
    hidden.append(["Item", "Note"])
    hidden.append(["Crate 9", "capybara bedding"])
    book.create_sheet("Template").append(["Owner", "Due"])
    book.save(str(path))


# Windows-1252, as Excel saves "CSV (comma delimited)" where the list separator is ';'; row 5 is empty
CSV = ("City;Visitors;Note\nZürich;1200;\nGenève;830;café closed\nKöln;410;\n\n"
       "Wombatfield;77;\"left early;\nreturned\"\nMálaga;95;señora García\n")
TSV = "Team\tLead\tBudget\nPlatypus\tAnn\t300\nEchidna\t\t450\n"
# file -> (bytes, what its failure reason says)
CORRUPT = {
    "broken.pptx": (None, "not a valid PowerPoint file (truncated or corrupt)"),
    "broken.ppt": (b"this is not a presentation\n" * 40, "not a valid PowerPoint 97-2003 file (truncated or corrupt)"),
    "broken.xlsx": (None, "not a valid Excel file (truncated or corrupt)"),
    "broken.xls": (None, "not a valid Excel 97-2003 file (truncated or corrupt)"),
    "broken.ods": (None, "not a valid OpenDocument spreadsheet (truncated or corrupt)"),
    "broken.csv": (bytes(range(256)) * 8, "not a valid CSV file (binary content, not text)"),
    "broken.tsv": (b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4, "not a valid TSV file (binary content, not text)"),
}


@pytest.fixture(scope="module")
def docs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("docs")
    make_deck(folder / "deck.pptx")
    for ext in SPREADSHEETS:
        shutil.copy(FIXTURES / f"sheet_budget.{ext}", folder / f"budget.{ext}")
    (folder / "visits.csv").write_bytes(CSV.encode("cp1252"))
    (folder / "teams.tsv").write_text(TSV)
    for name, (data, _) in CORRUPT.items():
        if data is None:  # the first half of a real file of the same kind: truncated
            source = folder / ("deck.pptx" if name.endswith(".pptx") else f"budget{Path(name).suffix}")
            whole = source.read_bytes()
            data = whole[: len(whole) // 2]
        (folder / name).write_bytes(data)
    return folder


@pytest.fixture(scope="module")
def kb(tmp_path_factory: pytest.TempPathFactory, docs: Path) -> Iterator[KnowledgeBase]:
    with KnowledgeBase.open(tmp_path_factory.mktemp("kb") / "kb", workers=1, **FAKE) as k:
        k.report = k.ingest([str(docs)])  # type: ignore[attr-defined]
        yield k


def _hit(kb: KnowledgeBase, term: str, file_type: str):  # type: ignore[no-untyped-def]
    hits = kb.search(term, k=3, mode="keyword", filters=Filters(file_type=file_type))
    assert hits, (term, file_type)
    return hits[0]


def test_good_files_are_indexed_and_each_corrupt_one_is_a_one_line_reason(kb: KnowledgeBase) -> None:
    report = kb.report  # type: ignore[attr-defined]
    assert sorted(Path(s).name for s in report.added) == [
        "budget.ods", "budget.xls", "budget.xlsx", "deck.pptx", "teams.tsv", "visits.csv"]
    assert report.types == {"pptx": 1, "xlsx": 1, "xls": 1, "ods": 1, "csv": 1, "tsv": 1}
    failed = {Path(f.source).name: f.reason for f in report.failed}
    assert sorted(failed) == sorted(CORRUPT)
    for name, (_, reason) in CORRUPT.items():
        assert failed[name].startswith(reason), (name, failed[name])
        assert "\n" not in failed[name] and "Traceback" not in failed[name], failed[name]


def test_a_slide_passage_is_cited_by_slide_number_and_title(kb: KnowledgeBase) -> None:
    cases = {  # term -> (slide, section, text the hit holds)
        "zephyrine": (2, "Roadmap", "Then the zephyrine milestone ships"),
        "gondolier": (2, "Roadmap", "A gondolier steers the grouped shapes"),
        "quillfeather": (3, "Pricing", "Plan | Price\nBasic | 10\nQuillfeather | 99"),
        "marzipan": (3, "Pricing > Notes", "Mention the marzipan discount"),
        "halcyon": (4, "Slide 4", "An orphaned halcyon remark"),
    }
    for term, (slide, section, text) in cases.items():
        hit = _hit(kb, term, "pptx")
        assert (hit.page, hit.page_end, hit.section) == (slide, slide, section), (term, hit)
        assert text in hit.text, (term, hit.text)
        assert hit.citation.endswith(f"deck.pptx slide {slide} § {section}"), hit.citation
        assert hit.to_json()["unit"] == "slide"
    deck = next(d for d in kb.documents() if d.file_type == "pptx")
    assert (deck.title, deck.pages) == ("Quarterly review", 4)


def test_slide_text_reads_top_to_bottom_whatever_order_it_was_drawn_in(docs: Path) -> None:
    doc = parser_for(docs / "deck.pptx").parse(docs / "deck.pptx")
    assert doc.unit == "slide"
    roadmap = [b.text for b in doc.blocks if b.page == 2]
    assert roadmap == ["Roadmap", "First the foundations are laid", "A gondolier steers the grouped shapes",
                       "Then the zephyrine milestone ships"]


@pytest.mark.parametrize("file_type", SPREADSHEETS)
def test_a_spreadsheet_row_is_cited_by_sheet_and_row_with_its_header(kb: KnowledgeBase, file_type: str) -> None:
    hit = _hit(kb, "quokkaville", file_type)
    assert hit.section == "Q3" and hit.page <= 6 <= hit.page_end, hit
    assert "Region: Quokkaville | Units: 77 | Revenue: 0.25 | D: 5 | Date: 2026-07-05" in hit.text.split("\n\n")
    assert "Region: West | Units: 1,200 | Revenue: 3.4 | D: 17 | Date: 2026-07-01" in hit.text.split("\n\n")
    assert hit.page == 2 and hit.citation.endswith(f"budget.{file_type} rows 2-{hit.page_end} § Q3"), hit.citation
    assert hit.to_json()["unit"] == "row"
    total = _hit(kb, "total", file_type)  # the formula's value as the sheet last computed it
    assert "Region: Total | Units: 43,177" in total.text and total.page_end == 16
    hidden = _hit(kb, "capybara", file_type)
    assert (hidden.section, hidden.page, hidden.text) == ("Archive", 2, "Item: Crate 9 | Note: capybara bedding")
    assert hidden.citation.endswith(f"budget.{file_type} row 2 § Archive"), hidden.citation
    template = _hit(kb, "owner", file_type)  # a sheet with a header only still says what it holds
    assert (template.section, template.page, template.text) == ("Template", 1, "Owner | Due")
    doc = next(d for d in kb.documents() if d.file_type == file_type)
    assert doc.pages == 15  # data rows: 13 in Q3 below the header, Total, and the hidden sheet's one


def test_a_spreadsheet_row_number_is_the_one_the_sheet_shows(docs: Path) -> None:
    doc = parser_for(docs / "budget.ods").parse(docs / "budget.ods")
    assert doc.unit == "row"
    q3 = [b.page for b in doc.blocks if b.headings == ("Q3",)]
    assert q3 == [2, 3, 4, 5, 6, 7, 9, 10, 11, 12, 13, 14, 15, 16]  # row 8 is empty


def test_csv_and_tsv_rows_keep_their_header_without_a_sheet_section(kb: KnowledgeBase) -> None:
    hit = _hit(kb, "wombatfield", "csv")  # cp1252, ';' sniffed, a quoted field over two lines
    assert hit.section is None and hit.page <= 6 <= hit.page_end
    assert "City: Wombatfield | Visitors: 77 | Note: left early; returned" in hit.text.split("\n\n")
    assert "City: Genève | Visitors: 830 | Note: café closed" in hit.text.split("\n\n")
    assert hit.citation.endswith(f"visits.csv rows {hit.page}-{hit.page_end}"), hit.citation
    hit = _hit(kb, "echidna", "tsv")
    assert hit.section is None and hit.page <= 3 <= hit.page_end
    assert "Team: Echidna | Budget: 450" in hit.text.split("\n\n")


def test_a_large_sheet_is_chunked_by_whole_rows(tmp_path: Path) -> None:
    import openpyxl

    book = openpyxl.Workbook(write_only=True)
    ws = book.create_sheet("Ledger")
    ws.append(["Entry", "Account", "Amount", "Memo"])
    for n in range(2, 5002):
        ws.append([f"entry-{n}", f"acct{n % 97}", n * 3, f"memo word{n}x paid"])
    folder = tmp_path / "big"
    folder.mkdir()
    book.save(folder / "ledger.xlsx")
    row = re.compile(r"Entry: entry-(\d+) \| Account: acct\d+ \| Amount: \d+ \| Memo: memo word\d+x paid")
    with KnowledgeBase.open(tmp_path / "kb", workers=1, **FAKE) as kb:
        report = kb.ingest([str(folder)])
        assert not report.failed and report.pages == 0  # rows are not pages
        assert [(d.pages, d.unit) for d in kb.documents()] == [(5000, "row")]
        chunks = kb.catalog.chunks(kb.catalog.chunk_ids())
        seen: set[int] = set()
        for chunk in chunks.values():
            lines = chunk["text"].split("\n\n")
            numbers = []
            for line in lines:
                m = row.fullmatch(line)
                assert m, ("a row was cut", line)
                numbers.append(int(m.group(1)))
            assert (chunk["page_start"], chunk["page_end"]) == (min(numbers), max(numbers))
            assert chunk["section"] == "Ledger"
            seen.update(numbers)
        assert seen == set(range(2, 5002))
        assert len(chunks) < 1000  # rows are packed into chunks (a new row starts no new chunk)
        hit = kb.search("word4321x", k=1, mode="keyword")[0]
        assert hit.page <= 4321 <= hit.page_end and "Entry: entry-4321 | " in hit.text


def test_a_sheet_over_the_row_cap_keeps_the_first_rows_and_says_how_many_were_dropped(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sheets, "MAX_ROWS", 10)
    path = tmp_path / "long.csv"
    path.write_text("n,square\n" + "".join(f"{n},{n * n}\n" for n in range(1, 16)))
    doc = parser_for(path).parse(path)
    assert doc.pages == 10 and doc.blocks[-1].text == "n: 10 | square: 100"
    assert doc.metadata["warnings"] == ["5 rows after the first 10 dropped"]


def test_a_sheet_damaged_partway_keeps_its_rows_read_and_the_other_sheets(tmp_path: Path) -> None:
    import openpyxl

    book = openpyxl.Workbook()
    book.active.title = "Good"
    book.active.append(["Key", "Value"])
    book.active.append(["kept", 1])
    bad = book.create_sheet("Bad")
    bad.append(["Key", "Value"])
    for n in range(2, 52):
        bad.append([f"row{n}", n])
    book.save(tmp_path / "whole.xlsx")
    damaged = tmp_path / "damaged.xlsx"
    with zipfile.ZipFile(tmp_path / "whole.xlsx") as z, zipfile.ZipFile(damaged, "w") as out:
        for info in z.infolist():
            data = z.read(info)
            out.writestr(info, data[: len(data) * 2 // 3] if info.filename.endswith("sheet2.xml") else data)
    doc = parser_for(damaged).parse(damaged)
    assert doc.blocks[0].text == "Key: kept | Value: 1"
    last = doc.blocks[-1].page
    assert 10 < last < 51 and doc.blocks[-1].text == f"Key: row{last} | Value: {last}"
    [warning] = doc.metadata["warnings"]
    assert warning.startswith(f"sheet 'Bad': rows after row {last} dropped (unreadable: ")


def test_a_chart_sheet_is_skipped(tmp_path: Path) -> None:
    import openpyxl
    from openpyxl.chart import BarChart, Reference

    book = openpyxl.Workbook()
    ws = book.active
    ws.title = "Data"
    for row in (["Month", "Sales"], ["Jan", 5], ["Feb", 9]):
        ws.append(row)
    chart = BarChart()
    chart.add_data(Reference(ws, min_col=2, min_row=1, max_row=3), titles_from_data=True)
    book.create_chartsheet("Chart").add_chart(chart)
    book.save(tmp_path / "c.xlsx")
    doc = parser_for(tmp_path / "c.xlsx").parse(tmp_path / "c.xlsx")
    assert [(b.headings, b.page, b.text) for b in doc.blocks] == [
        (("Data",), 2, "Month: Jan | Sales: 5"), (("Data",), 3, "Month: Feb | Sales: 9")]


@pytest.mark.parametrize(("value", "fmt", "shown"), [
    (1200.0, "#,##0", "1,200"), (3.0, "General", "3"), (3.4, None, "3.4"), (0.256, "0.0%", "25.6%"),
    (1234.5, "#,##0.00", "1,234.50"), (0.1 + 0.2, "General", "0.3"), (True, None, "TRUE"),
    (datetime.datetime(2026, 7, 1), "mm-dd-yy", "2026-07-01"), (" two\nlines ", None, "two lines"),
])
def test_a_cell_reads_as_the_sheet_shows_it(value: object, fmt: str | None, shown: str) -> None:
    assert cell_text(value, fmt) == shown


def test_a_column_without_a_header_is_named_by_its_letter() -> None:
    assert [column_letter(i) for i in (0, 3, 25, 26, 701, 702)] == ["A", "D", "Z", "AA", "ZZ", "AAA"]


@pytest.mark.skipif(soffice() is None, reason="LibreOffice (soffice) is not installed")
def test_a_legacy_ppt_is_read_through_libreoffice(tmp_path: Path) -> None:
    folder = tmp_path / "old"
    folder.mkdir()
    shutil.copy(FIXTURES / "slides_deck.ppt", folder / "deck.ppt")
    with KnowledgeBase.open(tmp_path / "kb", workers=1, **FAKE) as kb:
        report = kb.ingest([str(folder)])
        assert not report.failed and report.types == {"ppt": 1}
        hit = _hit(kb, "quillfeather", "ppt")
        assert (hit.page, hit.section) == (3, "Pricing") and "Quillfeather | 99" in hit.text
        assert hit.citation.endswith("deck.ppt slide 3 § Pricing"), hit.citation
        notes = _hit(kb, "marzipan", "ppt")
        assert (notes.page, notes.section) == (3, "Pricing > Notes")
        assert kb.documents()[0].pages == 4


def test_a_legacy_ppt_without_libreoffice_says_what_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "old"
    folder.mkdir()
    shutil.copy(FIXTURES / "slides_deck.ppt", folder / "deck.ppt")
    (folder / "notes.csv").write_text("topic,owner\nlaunch,kestrel\n")
    monkeypatch.setenv("PATH", os.pathsep.join(p for p in os.environ["PATH"].split(os.pathsep)
                                                if not (Path(p) / "soffice").exists()
                                                and not (Path(p) / "libreoffice").exists()))
    assert soffice() is None
    with pytest.raises(ParseError, match=r"^LibreOffice is needed to read \.ppt files .*libreoffice-impress-nogui"):
        parser_for(folder / "deck.ppt").parse(folder / "deck.ppt")
    make_deck(tmp_path / "renamed.ppt")  # a .pptx under the old name needs no converter
    assert parser_for(tmp_path / "renamed.ppt").parse(tmp_path / "renamed.ppt").pages == 4
    with KnowledgeBase.open(tmp_path / "kb", workers=1, **FAKE) as kb:
        report = kb.ingest([str(folder)])
        assert [Path(s).name for s in report.added] == ["notes.csv"]
        [failure] = report.failed
        assert failure.reason.startswith("LibreOffice is needed to read .ppt files (PowerPoint 97-2003)")
        assert "\n" not in failure.reason
