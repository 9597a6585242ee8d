"""Tables whose cells the parser kept apart (a Markdown table, a Word table, a web page's): an answer
quotes the value with its row's label and its column's header ("Operating income, Q4 2023: 1,725"),
not the row as printed ("| Operating income | 2,316 | 1,725 | 1,402 |"). Unit tests of the reader,
then a real knowledge base of a Markdown file and a Word file, asked without a model."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from kb import KnowledgeBase
from kb.answer.tables import Cell, cells, read_row, row_label
from kb.question import read
from tests.helpers import free_port, write_markdown

RESULTS = """# Quarterly results, Harwick Tools

Harwick Tools reports its quarterly figures below.

| Metric | Q1 2024 | Q4 2023 | Q1 2023 |
|---|:--:|---|---|
| Revenue | 12,450 | 11,980 | 10,310 |
| Operating income | 2,316 | 1,725 | 1,402 |
| Headcount | 212 | 205 | 190 |
"""
ABOVE_OPERATING = RESULTS.split("| Operating income")[0]
OPERATING = "| Operating income | 2,316 | 1,725 | 1,402 |"


def test_the_cells_of_a_line_are_read_whatever_the_pipes_at_its_ends() -> None:
    assert cells("| Revenue | 12,450 | 11,980 |") == ["Revenue", "12,450", "11,980"]
    assert cells("| | Q1 2024 | Q4 2023 |") == ["", "Q1 2024", "Q4 2023"]
    # a parser's "a | b | c" with an empty cell at one end: a pipe alone at that end
    assert cells("Trucks in service | 48 | ") == ["Trucks in service", "48", ""]
    assert cells(" | 2023 | 2022") == ["", "2023", "2022"]
    assert cells("|---|:--:|") is None and cells("Revenue grew 4% on demand") is None
    assert row_label(OPERATING) == "Operating income"
    # a spreadsheet's row names its columns in its cells: its label is read as before
    assert cells("Product: Widget A | Units sold: 1,200") is None
    assert row_label("Product: Widget A | Units sold: 1,200 | Revenue: 36,000") == "Product: Widget A | Units sold"


@pytest.mark.parametrize(("question", "expected"), [
    ("What was Harwick's operating income in Q4 2023?", "Operating income, Q4 2023: 1,725"),
    ("Operating income in the first quarter of 2023?", "Operating income, Q1 2023: 1,402"),
    ("What is the operating income?", "Operating income, Q1 2024: 2,316"),  # no period asked: the latest
])
def test_a_row_of_cells_is_read_at_the_period_asked_about(question: str, expected: str) -> None:
    cell = read_row(OPERATING, ABOVE_OPERATING, read(question))
    assert isinstance(cell, Cell) and str(cell) == expected


def test_a_row_of_cells_of_other_periods_or_without_header_is_told_apart() -> None:
    assert read_row(OPERATING, ABOVE_OPERATING, read("Operating income in Q2 2022?")) is False
    # the table's first row has no header above it; a self-labelled sheet row names its columns itself
    assert read_row("| Revenue | 12,450 | 11,980 |", "Some text.\n", read("Revenue?")) is None
    sheet = "Region: North | Sales: 1200\n"
    assert read_row("Region: South | Sales: 900", sheet, read("Sales in the south?")) is None


@pytest.mark.parametrize(("header", "question", "expected"), [
    ("Item | Year ended December 31, 2024 | Year ended December 31, 2023",
     "Operating income for the year ended December 31, 2023?", "Year ended December 31, 2023: 7,904"),
    ("Item | FY24 | FY23", "Operating income in 2023?", "FY23: 7,904"),
    ("Item | Jun 2024 | Mar 2024", "Operating income in Q1 2024?", "Mar 2024: 7,904"),
    (" | 2024 | 2023 | Change", "What is the operating income?", "2024: 8,316"),  # Word's empty corner
])
def test_a_header_of_periods_is_read_however_it_writes_them(header: str, question: str, expected: str) -> None:
    change = " | 6%" if header.endswith("Change") else ""
    text = f"Results for the last two years.\n{header}\nRevenue | 30,120 | 28,400{change}\n"
    cell = read_row(f"Operating income | 8,316 | 7,904{change}", text, read(question))
    assert isinstance(cell, Cell) and str(cell) == f"Operating income, {expected}"


def test_a_row_of_cells_under_a_header_of_words_gives_the_column_named_or_every_cell() -> None:
    staff = "Staff list.\n| Name | Department | Phone |\n|---|---|---|\n| Lena Ortiz | Legal | 4410 |\n"
    row = "| Ana Ruiz | Finance | 4411 |"
    assert str(read_row(row, staff, read("What is Ana Ruiz's phone number?"))) == "Ana Ruiz, Phone: 4411"
    assert str(read_row(row, staff, read("Who is Ana Ruiz?"))) == "Ana Ruiz \u2014 Department: Finance, Phone: 4411"


def test_no_header_is_made_up_from_a_first_row_of_data() -> None:
    """A table of another format than Markdown may have no header row: a first row of words is not
    taken for one; nor is a row of a table whose top the text does not reach, or of another width."""
    keys = "Shortcuts:\nCtrl+S | Save the file | always\n"
    assert read_row("Ctrl+P | Print the file | when a printer is set", keys, read("How do I print?")) is None
    long = "".join(f"| Store {n} | {1000 + n} | {900 + n} |\n" for n in range(80))  # its header above the text
    assert read_row("| Jarrow Bridge | 1,434 | 1,553 |", long, read("Sales at Jarrow Bridge?")) is None
    ragged = "Fleet.\n | 2023 | 2022\nTrucks | 48 | 45 | 3\n"
    assert read_row("Depots | 61 | 58", ragged, read("How many depots?")) is None
    assert str(read_row("Depots | 61 | ", "Fleet.\n | 2023 | 2022\n", read("Depots in 2023?"))) == "Depots, 2023: 61"


def _fleet_docx(path: Path) -> None:
    import docx

    doc = docx.Document()
    doc.add_heading("Brennan Freight: fleet report", 1)
    doc.add_paragraph("Fuel and distance by year for the Brennan Freight fleet of trucks.")
    table = doc.add_table(rows=4, cols=3)
    for r, row in enumerate([["Measure", "2023", "2022"], ["Diesel used (litres)", "1,204,000", "1,150,500"],
                             ["Distance driven (km)", "3,400,000", "3,210,000"], ["Trucks in service", "48", "45"]]):
        for c, value in enumerate(row):
            table.cell(r, c).text = value
    doc.save(str(path))


@pytest.fixture(scope="module")
def kb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KnowledgeBase]:
    root = tmp_path_factory.mktemp("cells")
    docs = root / "docs"
    write_markdown(docs / "results.md", RESULTS)
    _fleet_docx(docs / "fleet.docx")
    with KnowledgeBase.open(root / "kb") as k:
        assert not k.ingest([str(docs)]).failed
        yield k


@pytest.fixture(autouse=True)
def no_ollama(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OLLAMA_HOST", f"127.0.0.1:{free_port()}")


@pytest.mark.parametrize(("question", "first_line"), [
    ("What was Harwick Tools' operating income in Q4 2023?", "Operating income, Q4 2023: 1,725 [1]"),
    ("harwick revenue q1 2024", "Revenue, Q1 2024: 12,450 [1]"),
    ("How many litres of diesel did Brennan Freight use in 2022?", "Diesel used (litres), 2022: 1,150,500 [1]"),
    ("How many trucks does Brennan Freight have in service?", "Trucks in service, 2023: 48 [1]"),
])
def test_an_answer_from_a_table_of_cells_names_its_row_and_column(kb: KnowledgeBase, question: str,
                                                                  first_line: str) -> None:
    answer = kb.ask(question, llm="none")
    assert answer.found and answer.answer.split("\n")[0] == first_line
    assert "|" not in answer.answer


STATEMENT = ("Results.\n| | Three months ended September 30, 2023 | Nine months ended September 30, 2023 "
             "| Year ended December 31, 2022 |\n|---|---|---|---|\n")


@pytest.mark.parametrize(("question", "expected"), [
    ("Revenue for the nine months ended September 30, 2023?", "Nine months ended September 30, 2023: 9,400"),
    ("Revenue in Q3 2023?", "Three months ended September 30, 2023: 3,300"),
    ("Revenue in 2022?", "Year ended December 31, 2022: 11,800"),
])
def test_a_row_of_cells_is_read_at_the_span_asked_for(question: str, expected: str) -> None:
    cell = read_row("| Revenue | 3,300 | 9,400 | 11,800 |", STATEMENT, read(question))
    assert isinstance(cell, Cell) and str(cell) == f"Revenue, {expected}"


def test_a_row_is_refused_only_for_columns_surely_of_other_periods() -> None:
    """A quarter of a year of 52 weeks, or of a fiscal year, ends a few days or weeks off the calendar's:
    it is still that quarter. A question more precise than the columns, a header cell with other words,
    or a fiscal period asked leave the row quoted as it is (None), never dropped (False)."""
    weeks = "Results.\nItem | Three months ended October 29, 2023 | Three months ended October 30, 2022\n"
    cell = read_row("Revenue | 18,120 | 5,931", weeks, read("Revenue in Q3 2023?"))
    assert isinstance(cell, Cell) and cell.value == "18,120"
    assert read_row("Revenue | 18,120 | 5,931", weeks, read("Revenue in Q3 FY2024?")) is None
    years = "Balance sheet.\n | 2023 | 2022\n"
    assert read_row("Total assets | 52,310 | 49,870", years, read("Total assets as of December 31, 2023?")) is None
    assert read_row("Total assets | 52,310 | 49,870", years, read("Total assets in 2021?")) is False
    split = "Plan.\nItem | FY2023-24 | FY2022-23\n"
    assert read_row("Revenue | 8 | 7", split, read("Revenue in FY2024?")) is None


@pytest.mark.parametrize(("header", "question", "expected"), [
    ("Item | March 31, 2024 | December 31, 2023", "Cash in Q4 2023?", "December 31, 2023: 200"),
    ("Item | Three months ended September 30, 2023 | Three months ended June 30, 2023", "Cash in Q2 2023?",
     "Three months ended June 30, 2023: 200"),
    ("Item | Fourth Quarter Fiscal 2023 | Fiscal Year 2023", "Cash in fiscal 2023?", "Fiscal Year 2023: 200"),
])
def test_a_quarter_or_year_asked_reads_its_own_column_not_a_neighbour(header: str, question: str,
                                                                        expected: str) -> None:
    cell = read_row("Cash | 300 | 200", f"Balances.\n{header}\n", read(question))
    assert isinstance(cell, Cell) and str(cell) == f"Cash, {expected}"


def test_a_column_a_company_may_call_the_next_quarter_is_not_refused() -> None:
    """A year from October: "the first quarter of 2024" ended December 31, 2023. Its table's row is
    quoted as it is for "Q1 2024", not dropped; a whole year's column is surely no quarter's."""
    header = "Results.\nItem | Three months ended December 31, 2023 | Three months ended December 31, 2022\n"
    assert read_row("Revenue | 300 | 250", header, read("Revenue in Q1 2024?")) is None
    year = "Results.\nItem | Year ended December 31, 2023 | Year ended December 31, 2022\n"
    assert read_row("Revenue | 1,200 | 1,000", year, read("Revenue in Q3 2023?")) is False
