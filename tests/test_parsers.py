"""Parsers on real files: page numbers, heading paths, tables, lists, encodings, broken input."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from kb.errors import ParseError, UnsupportedFileError
from kb.ingest.base import parser_for
from tests.conftest import AAPL_Q3_2023, EVAL, MSFT_Q1_2023
from tests.helpers import BLANK_SCAN_REASON, write_docx, write_markdown, write_pdf

needs_eval = pytest.mark.needs_eval


@needs_eval
@pytest.mark.slow
def test_pdf_blocks_carry_the_page_their_text_is_on() -> None:
    from pypdf import PdfReader

    doc = parser_for(AAPL_Q3_2023).parse(AAPL_Q3_2023)
    # pypdf, another reader of the same text layer, says which page each block's text is on (the two
    # space some lines apart differently, hence the comparison without spaces).
    pages = ["".join(p.extract_text().split()) for p in PdfReader(AAPL_Q3_2023).pages]
    assert doc.pages == 29 == len(pages)
    assert {b.page for b in doc.blocks} == set(range(1, 30))
    for block in doc.blocks:
        text = "".join(block.text.split())
        assert text[:80] in pages[block.page - 1] and text[-80:] in pages[block.page - 1]
    note2 = next(b for b in doc.blocks if b.text.startswith("Note 2 – Revenue"))
    assert note2.page == 10
    # Numbered heading lines become the section path, and a page's own title its deepest level.
    assert note2.headings == ("PART I — FINANCIAL INFORMATION", "Item 1. Financial Statements", "Note 2 – Revenue")
    cash_flows = next(b for b in doc.blocks if b.page == 8 and "operating activities" in b.text)
    assert cash_flows.headings[-1] == "CONDENSED CONSOLIDATED STATEMENTS OF CASH FLOWS (Unaudited)"
    assert not any("| Q3 2023 Form 10-Q |" in b.text for b in doc.blocks)  # the running footer of every page
    buyback = next(b for b in doc.blocks if "repurchased $18.0 billion" in b.text)
    assert buyback.page == 18
    assert buyback.headings[-1].startswith("Item 2. Management’s Discussion")
    # A bold subheading atop an MD&A page stays inside the item; the contents page opens no section; the
    # page of Part II's short items is not a contents page, so each item is filed under Part II.
    gross_margin = next(b for b in doc.blocks if b.page == 20 and "gross margin percentage" in b.text)
    assert gross_margin.headings[1].startswith("Item 2. Management’s Discussion") and gross_margin.headings[-1] == "Gross Margin"
    assert all(b.headings == () for b in doc.blocks if b.page <= 3)
    mine_safety = next(b for b in doc.blocks if b.text.startswith("Item 4. Mine Safety"))
    assert mine_safety.headings == ("PART II — OTHER INFORMATION", "Item 4. Mine Safety Disclosures")


@needs_eval
@pytest.mark.slow
def test_pdf_refused_by_pypdf_default_limits_still_parses() -> None:
    # pypdf 7.1's default limits raise LimitReachedError on this filing (checked by hand: slow).
    doc = parser_for(MSFT_Q1_2023).parse(MSFT_Q1_2023)
    assert doc.pages == 72
    assert any("Comprehensive income" in b.text for b in doc.blocks if b.page == 4)


@needs_eval
def test_encrypted_pdf_with_empty_password_opens() -> None:
    from pypdf import PdfReader

    path = EVAL / "ntsb" / "20071229X02007.pdf"
    assert PdfReader(path).is_encrypted
    doc = parser_for(path).parse(path)
    assert doc.pages and sum(len(b.text) for b in doc.blocks) > 1000


def test_generated_pdf_pages(tmp_path: Path) -> None:
    path = write_pdf(tmp_path / "three.pdf", ["alpha page one", "bravo page two", "charlie page three"])
    doc = parser_for(path).parse(path)
    assert [(b.page, b.text) for b in doc.blocks] == [(1, "alpha page one"), (2, "bravo page two"), (3, "charlie page three")]
    assert doc.title == "three"


def test_pdf_without_text_layer_says_it_needs_ocr(tmp_path: Path) -> None:
    from kb.ingest.formats import ocr

    path = write_pdf(tmp_path / "scan.pdf", ["", ""])
    with pytest.raises(ParseError, match=f"^{re.escape(BLANK_SCAN_REASON)}$"):
        parser_for(path).parse(path)  # OCR (auto) read the blank pages (or says it cannot, without tesseract)
    ocr.configure("never")
    try:
        with pytest.raises(ParseError, match=r"no extractable text.*needs OCR \(kb ingest --ocr auto\)"):
            parser_for(path).parse(path)
    finally:
        ocr.configure()


def test_truncated_pdf_is_a_parse_error(tmp_path: Path) -> None:
    good = write_pdf(tmp_path / "good.pdf", ["some text"])
    bad = tmp_path / "bad.pdf"
    bad.write_bytes(good.read_bytes()[:200])
    with pytest.raises(ParseError):
        parser_for(bad).parse(bad)


def test_docx_headings_tables_and_lists_in_document_order(tmp_path: Path) -> None:
    path = write_docx(tmp_path / "handbook.docx")
    doc = parser_for(path).parse(path)
    assert doc.title == "Employee handbook"
    texts = [b.text for b in doc.blocks]
    assert texts == [
        "Employee handbook",
        "Welcome to the company.",
        "Travel policy",
        "Economy class is required for flights shorter than six hours.",
        "- Book through the portal\n- Keep every receipt",
        "Expense limits",
        "Item | Limit\nHotel night | $240\nDinner | $75",
        "Limits are reviewed every April.",
    ]
    table = next(b for b in doc.blocks if b.kind == "table")
    assert table.headings == ("Employee handbook", "Expense limits")


def test_docx_that_is_not_a_zip(tmp_path: Path) -> None:
    path = tmp_path / "fake.docx"
    path.write_text("this is not a word document")
    with pytest.raises(ParseError, match="not a zip"):
        parser_for(path).parse(path)


def test_markdown_sections_front_matter_code_and_tables(tmp_path: Path) -> None:
    path = write_markdown(tmp_path / "runbook.md")
    doc = parser_for(path).parse(path)
    assert doc.title == "Payments runbook"
    assert doc.metadata == {"title": "Payments runbook", "owner": "sre-team"}
    assert not any("sre-team" in b.text for b in doc.blocks)  # front matter is metadata, not text
    code = next(b for b in doc.blocks if b.kind == "code")
    assert code.headings == ("Payments runbook", "Incident response")
    assert code.text.startswith("```bash\nkubectl rollout restart")
    table = next(b for b in doc.blocks if b.kind == "table")
    assert table.headings == ("Payments runbook", "Capacity")
    assert table.text.count("\n") == 3


def test_text_in_latin1_is_decoded(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_bytes("Café au lait coûte trois euros.\n\nDeuxième paragraphe: crème brûlée.".encode("latin-1"))
    doc = parser_for(path).parse(path)
    assert [b.text for b in doc.blocks] == ["Café au lait coûte trois euros.", "Deuxième paragraphe: crème brûlée."]


def test_binary_file_named_md_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "image.md"
    path.write_bytes(bytes(range(256)) * 20)
    with pytest.raises(ParseError, match="binary"):
        parser_for(path).parse(path)


def test_html_headings_and_text(tmp_path: Path) -> None:
    path = tmp_path / "page.html"
    path.write_text(
        "<html><head><title>Ops guide</title><style>p{}</style></head><body>"
        "<h1>Ops</h1><p>First para.</p><h2>Backups</h2><p>Nightly at 02:00.</p>"
        "<script>alert(1)</script><table><tr><th>Host</th><th>Role</th></tr><tr><td>db1</td><td>primary</td></tr></table>"
        "</body></html>"
    )
    doc = parser_for(path).parse(path)
    assert doc.title == "Ops guide"
    assert [(b.text, b.headings) for b in doc.blocks] == [
        ("Ops", ("Ops",)),
        ("First para.", ("Ops",)),
        ("Backups", ("Ops", "Backups")),
        ("Nightly at 02:00.", ("Ops", "Backups")),
        ("Host | Role\ndb1 | primary", ("Ops", "Backups")),
    ]


def test_unsupported_extension(tmp_path: Path) -> None:
    with pytest.raises(UnsupportedFileError, match=".xyz"):
        parser_for(tmp_path / "a.xyz")


@needs_eval
def test_pdf_words_hyphenated_at_a_line_end_keep_their_hyphen() -> None:
    # PDFium hands such a hyphen over as U+FFFE: "credit-financing" must not read "creditfinancing".
    doc = parser_for(AAPL_Q3_2023).parse(AAPL_Q3_2023)
    text = " ".join(b.text for b in doc.blocks if b.page == 13)
    assert "\ufffe" not in text and "\x02" not in text
    assert "These credit-financing arrangements" in " ".join(text.split()) and "creditfinancing" not in text
