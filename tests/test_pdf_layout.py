"""A PDF's layout read into its structure: running headers and footers left out of the text, dot leaders
dropped, a table of contents that opens no section, numbered heading lines, and each page's own title as
the deepest section, so that a statement page after a report's last item is not filed under that item.
Files are real PDFs drawn with reportlab, fonts and sizes as a word processor prints them."""

from __future__ import annotations

from pathlib import Path

import pytest

from kb.api import KnowledgeBase
from kb.ingest.base import parser_for
from tests.helpers import FAKE

BODY = ("Helvetica", 10)
BOLD = ("Helvetica-Bold", 10)
TITLE = ("Helvetica-Bold", 13)

# Each page: its lines, each (font, text). The running header and the page footer are added to every page.
PAGES: list[list[tuple[tuple[str, int], str]]] = [
    [(TITLE, "Acme Industrial Annual Report"), (BODY, "For the year ended December 31, 2023")],
    [(BOLD, "Contents"), (BOLD, "PART I"), (BODY, "Item 1. Business 3"), (BODY, "Item 2. Results of Operations 4"),
     (BOLD, "PART II"), (BODY, "Item 3. Controls 6"), (BODY, "Item 4. Exhibits 7")],
    [(BOLD, "PART I"), (BOLD, "Item 1. Business"), (BODY, "Acme makes hydraulic valves for irrigation pumps."),
     (BODY, "The board reviewed the plan, and"), (BODY, "Item 3 of this report describes the controls in place.")],
    [(BOLD, "Item 2. Results of Operations"), (BODY, "Valve shipments rose in every region during the year.")],
    [(TITLE, "CONSOLIDATED BALANCE SHEETS"), (BODY, "(In thousands)"),
     (BODY, "Cash and cash equivalents .................................. 4,310"),
     (BODY, "Total assets . . . . . . . . . . . . . . . . . 91,204")],
    [(BODY, "Total liabilities .................................... 40,118"),
     (BODY, "Retained earnings .................................... 51,086")],
    [(BOLD, "Item 3. Controls"), (BODY, "Management tested the controls over the valve inventory.")],
]
HEADER = "Acme Industrial | 2023 Annual Report"


def draw(path: Path, pages: list[list[tuple[tuple[str, int], str]]]) -> Path:
    from reportlab.lib.pagesizes import letter
    from reportlab.pdfgen import canvas

    path.parent.mkdir(parents=True, exist_ok=True)
    c = canvas.Canvas(str(path), pagesize=letter)
    for number, lines in enumerate(pages, start=1):
        c.setFont(*BODY)
        c.drawString(72, 760, HEADER)
        y = 720
        for (font, size), text in lines:
            c.setFont(font, size)
            c.drawString(72, y, text)
            y -= 2 * size
        c.setFont(*BODY)
        c.drawString(290, 40, f"Page {number} of {len(pages)}")
        c.showPage()
    c.save()
    return path


@pytest.fixture
def report(tmp_path: Path) -> Path:
    return draw(tmp_path / "docs" / "acme-2023.pdf", PAGES)


def page_blocks(path: Path) -> dict[int, list[tuple[tuple[str, ...], str]]]:
    doc = parser_for(path).parse(path)
    out: dict[int, list[tuple[tuple[str, ...], str]]] = {}
    for block in doc.blocks:
        out.setdefault(block.page, []).append((block.headings, block.text))
    return out


def test_running_headers_footers_and_dot_leaders_leave_the_text(report: Path) -> None:
    pages = page_blocks(report)
    text = "\n".join(t for blocks in pages.values() for _, t in blocks)
    assert HEADER not in text and "Page 3 of 7" not in text
    assert "Cash and cash equivalents 4,310" in text
    assert "Total assets 91,204" in text and "..." not in text and ". . ." not in text


def test_each_page_is_filed_under_the_section_it_is_printed_under(report: Path) -> None:
    pages = page_blocks(report)
    # The contents page lists sections (its entries carry page numbers); its lines open none of them.
    assert all(not name.startswith(("PART", "Item")) for h, _ in pages[2] for name in h)
    # A numbered line opens a section; a sentence that starts with "Item 3" does not.
    assert pages[3][-1] == (("PART I", "Item 1. Business"),
                            "Acme makes hydraulic valves for irrigation pumps.\nThe board reviewed the plan, and\n"
                            "Item 3 of this report describes the controls in place.")
    assert {h for h, _ in pages[4]} == {("PART I", "Item 2. Results of Operations")}
    # The statement's title, printed larger than the item headings, is the item's sibling, not its child,
    # and the page after it, which has no title of its own, stays under it.
    assert {h for h, _ in pages[5]} == {("PART I", "CONSOLIDATED BALANCE SHEETS")}
    assert {h for h, _ in pages[6]} == {("PART I", "CONSOLIDATED BALANCE SHEETS")}
    assert {h for h, _ in pages[7]} == {("PART I", "Item 3. Controls")}


def test_a_title_printed_like_the_body_is_a_child_of_the_item(tmp_path: Path) -> None:
    pages = [[(BOLD, "Item 7. Discussion"), (BODY, "Sales grew in the north.")],
             [(BOLD, "Liquidity and Capital Resources"), (BODY, "Cash on hand covers two years of spending.")],
             [(BODY, "We expect to renew the credit line in the spring.")]]
    parsed = page_blocks(draw(tmp_path / "discussion.pdf", pages))
    assert {h for h, _ in parsed[2]} == {("Item 7. Discussion", "Liquidity and Capital Resources")}
    assert {h for h, _ in parsed[3]} == {("Item 7. Discussion", "Liquidity and Capital Resources")}


def test_short_sections_a_repeated_label_and_a_bold_subheading(tmp_path: Path) -> None:
    # A page of short items, each "None.", is not a table of contents: each item opens its section.
    pages = [[(BOLD, "PART II"), (BOLD, "Item 1. Legal Proceedings"), (BODY, "None."),
              (BOLD, "Item 2. Risk Factors"), (BODY, "Supply of valves may fall short."),
              (BOLD, "Item 3. Defaults"), (BODY, "None."), (BOLD, "Item 4. Mine Safety"), (BODY, "None."),
              (BOLD, "Item 5. Other Information"), (BODY, "Filed under Section 1350."),
              (BODY, "Section 1350."), (BODY, "The certification above is furnished, not filed.")],
             # "Item 5" atop the next page repeats the item in force; the bold subheading is inside the item.
             [(BODY, "Item 5"), (BODY, "Pump sales grew."), (BOLD, "Other Matters"), (BODY, "A plant was sold.")],
             [(BOLD, "Regional Results"), (BODY, "Sales rose in the south.")]]
    parsed = page_blocks(draw(tmp_path / "other.pdf", pages))
    assert [h for h, t in parsed[1] if t == "None."] == [
        ("PART II", "Item 1. Legal Proceedings"), ("PART II", "Item 3. Defaults"), ("PART II", "Item 4. Mine Safety")]
    assert {h for h, _ in parsed[1][-1:]} == {("PART II", "Item 5. Other Information")}
    assert {h for h, _ in parsed[2]} == {("PART II", "Item 5. Other Information")}
    assert {h for h, _ in parsed[3]} == {("PART II", "Item 5. Other Information", "Regional Results")}


def test_page_labels_leave_the_text_and_a_numbered_line_closes_the_page_title(tmp_path: Path) -> None:
    from reportlab.lib.pagesizes import letter
    from reportlab.pdfgen import canvas

    # A three-page form: "Page N of 3" with the report's number atop pages 2 and 3 is a running header even
    # on so few pages. A page's title labels that page: a numbered line after it is not its child, and
    # the next page's title, printed larger than that line, is the line's sibling.
    head, numbered = ("Helvetica-Bold", 12), ("Helvetica-Bold", 11)
    pages = [[(TITLE, "Aviation Accident Report"), (BODY, "Location: Boquete, Panama")],
             [(head, "Findings"), (numbered, "2. Terrain Condition"), (BODY, "The field was plowed.")],
             [(head, "Flight Plan"), (BODY, "Departure Point: Islas Secas. Destination: Volcan.")]]
    path = tmp_path / "report.pdf"
    c = canvas.Canvas(str(path), pagesize=letter)
    for number, lines in enumerate(pages, start=1):
        c.setFont(*BODY)
        c.drawString(72, 760, f"Page {number} of 3" + (" DFW08WA050" if number > 1 else ""))
        y = 720
        for (font, size), text in lines:
            c.setFont(font, size)
            c.drawString(72, y, text)
            y -= 2 * size
        c.showPage()
    c.save()
    parsed = page_blocks(path)
    assert not any("Page " in t for blocks in parsed.values() for _, t in blocks)
    assert [h for h, _ in parsed[2]] == [("Findings",), ("2. Terrain Condition",), ("2. Terrain Condition",)]
    assert {h for h, _ in parsed[3]} == {("Flight Plan",)}


def test_a_heading_run_on_after_a_sentence_starts_its_own_section(tmp_path: Path) -> None:
    from reportlab.lib.pagesizes import letter
    from reportlab.pdfgen import canvas

    # Some files print the next section's numbered heading on the line where the last one's text ends;
    # the text layer gives one line, and only the print (here a larger type) tells the heading.
    heading = ("Helvetica-Bold", 12)
    path = tmp_path / "protocol.pdf"
    c = canvas.Canvas(str(path), pagesize=letter)
    c.setFont(*TITLE)
    c.drawString(72, 720, "Stem Cell Dressing Protocol")
    c.showPage()
    c.setFont(*heading)
    c.drawString(72, 720, "5.1 Methods of administration")
    c.setFont(*BODY)
    sentence = "The dressing was applied 4 times a day for 2 weeks. "
    c.drawString(72, 700, sentence)
    c.setFont(*heading)
    c.drawString(72 + c.stringWidth(sentence, *BODY), 700, "5.2 Raw materials")
    c.setFont(*BODY)
    c.drawString(72, 680, "Gelatin sponge is the raw material of the dressing.")
    c.showPage()
    c.save()
    parsed = page_blocks(path)
    sections = {t: h for h, t in parsed[2]}
    assert sections["The dressing was applied 4 times a day for 2 weeks."] == ("5.1 Methods of administration",)
    assert sections["Gelatin sponge is the raw material of the dressing."] == ("5.2 Raw materials",)


def test_a_search_cites_the_statement_page_and_its_title(report: Path, tmp_path: Path) -> None:
    with KnowledgeBase.open(tmp_path / "kb", workers=1, **FAKE) as kb:
        kb.ingest([str(report.parent)])
        hit = kb.search("retained earnings", k=1, mode="keyword")[0]
    assert hit.page <= 6 <= hit.page_end and hit.section == "PART I > CONSOLIDATED BALANCE SHEETS"
    assert hit.citation.endswith("§ PART I > CONSOLIDATED BALANCE SHEETS") and "Retained earnings 51,086" in hit.text

