"""Readers that take what a person sees (issue 33): an ODT's headings, lists, header and footer (also
when its content.xml is indented), HTML recovered from malformed markup as a browser does, and
password-protected Office files named as such rather than "corrupt" (fast layer)."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from kb import KnowledgeBase
from kb.errors import ParseError
from kb.ingest.base import parser_for
from kb.ingest.formats.protected import ENCRYPTED


def report_odt(path: Path, indent: bool) -> Path:
    """An ODT with a heading, a bulleted list, eight paragraphs, a page header and footer; `indent`
    rewrites content.xml with line breaks and indentation (as generators and hand edits leave it)."""
    from odf.opendocument import OpenDocumentText
    from odf.style import Footer, Header, MasterPage, PageLayout, Style
    from odf.text import H, List, ListItem, P

    doc = OpenDocumentText()
    layout = PageLayout(name="pm1")
    doc.automaticstyles.addElement(layout)
    page = MasterPage(name="Standard", pagelayoutname=layout)
    header, footer = Header(), Footer()
    header.addElement(P(text="Wombat Holdings quarterly report"))
    footer.addElement(P(text="Confidential: numbat distribution only"))
    page.addElement(header)
    page.addElement(footer)
    doc.masterstyles.addElement(page)
    styled = Style(name="Heading_20_2", displayname="Heading 2", family="paragraph")
    doc.styles.addElement(styled)
    doc.text.addElement(H(outlinelevel=1, text="Annual results"))
    bullets = List()
    for text in ("Revenue grew in the quokka region", "Costs fell in the emu region"):
        item = ListItem()
        item.addElement(P(text=text))
        bullets.addElement(item)
    doc.text.addElement(bullets)
    for i in range(8):
        if i == 4:  # a paragraph styled as a heading, the way LibreOffice imports HTML and Word files
            doc.text.addElement(P(stylename=styled, text="Outlook"))
        doc.text.addElement(P(text=f"Paragraph {i} on the platypus budget."))
    doc.save(str(path))
    if indent:
        with zipfile.ZipFile(path) as z:
            parts = {i: z.read(i.filename) for i in z.infolist()}
        with zipfile.ZipFile(path, "w") as z:
            for info, data in parts.items():
                if info.filename == "content.xml":
                    data = data.replace(b"<office:body>", b"<office:body>\n  ").replace(b"<office:text>",
                                                                                      b"<office:text>\n    ")
                z.writestr(info, data)
    return path


@pytest.mark.parametrize("indent", [False, True])
def test_an_odt_gives_its_heading_list_paragraphs_header_and_footer(tmp_path: Path, indent: bool) -> None:
    path = report_odt(tmp_path / "report.odt", indent)
    blocks = parser_for(path).parse(path).blocks
    assert blocks[0].text == "Wombat Holdings quarterly report"
    assert (blocks[1].text, blocks[1].kind) == ("Annual results", "heading")
    assert blocks[2].text == "- Revenue grew in the quokka region\n- Costs fell in the emu region"
    assert blocks[2].headings == ("Annual results",)
    paragraphs = [b for b in blocks if b.text.startswith("Paragraph")]
    assert len(paragraphs) == 8
    assert paragraphs[3].headings == ("Annual results",)
    assert paragraphs[4].headings == ("Annual results", "Outlook")  # the heading-styled paragraph
    assert blocks[-1].text == "Confidential: numbat distribution only"


MALFORMED = [
    # a stray closing tag after <meta> in <head>, and text in <div>s rather than <p>s
    '<!DOCTYPE html><html><head><meta charset="utf-8"></div><title>Harbour</title></head>'
    "<body><div>The wombat ferry leaves at nine.</div><div>Tickets at <b>pier 4</b>.</div></body></html>",
    # <head> opened twice: Python's html.parser nests the body inside the second head
    "<html><head><head><title>Harbour</title></head><body><p>The wombat ferry leaves at nine.</p>"
    "Tickets at <b>pier 4</b>.</body></html>",
    # no <body> tag, a stray </span> in head
    "<html><head><title>Harbour</title></span></head>The wombat ferry leaves at nine.<br>Tickets at pier 4.</html>",
]


@pytest.mark.parametrize("markup", MALFORMED)
def test_malformed_html_reads_as_a_browser_shows_it(tmp_path: Path, markup: str) -> None:
    path = tmp_path / "harbour.html"
    path.write_text(markup, encoding="utf-8")
    doc = parser_for(path).parse(path)
    assert doc.title == "Harbour"
    assert [b.text for b in doc.blocks] == ["The wombat ferry leaves at nine.", "Tickets at pier 4."]


def test_html_text_outside_paragraphs_keeps_its_place_under_headings(tmp_path: Path) -> None:
    path = tmp_path / "page.html"
    path.write_text("<body><h1>Ferries</h1><div>Loose text <i>one</i></div><p>A paragraph.</p>"
                    "<section>Tail text<h2>Fares</h2><div><div>Deep text</div></div></section></body>")
    blocks = parser_for(path).parse(path).blocks
    assert [(b.text, b.headings) for b in blocks] == [
        ("Ferries", ("Ferries",)), ("Loose text one", ("Ferries",)), ("A paragraph.", ("Ferries",)),
        ("Tail text", ("Ferries",)), ("Fares", ("Ferries", "Fares")), ("Deep text", ("Ferries", "Fares"))]


def encrypted(plain: Path, out: Path) -> Path:
    from msoffcrypto.format.ooxml import OOXMLFile

    with plain.open("rb") as f, out.open("wb") as o:
        OOXMLFile(f).encrypt("wombat", o)
    return out


def office_files(tmp_path: Path) -> dict[str, Path]:
    import docx
    import openpyxl
    import pptx

    plain = tmp_path / "plain"
    plain.mkdir()
    book = openpyxl.Workbook()
    book.active["A1"] = "secret"
    book.save(str(plain / "budget.xlsx"))
    document = docx.Document()
    document.add_paragraph("secret")
    document.save(str(plain / "memo.docx"))
    deck = pptx.Presentation()
    deck.slides.add_slide(deck.slide_layouts[0])
    deck.save(str(plain / "deck.pptx"))
    return {p.name: p for p in plain.iterdir()}


def test_password_protected_office_files_are_named_as_such(kb: KnowledgeBase, tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    plain = office_files(tmp_path)
    for name, path in plain.items():
        encrypted(path, docs / name)
    encrypted(plain["budget.xlsx"], docs / "old.xls")  # an encrypted workbook saved as .xls
    (docs / "readme.txt").write_text("The wombat budget is password-protected.")
    report = kb.ingest([str(docs)])
    assert [Path(s).name for s in report.added] == ["readme.txt"]
    assert sorted((Path(f.source).name, f.reason) for f in report.failed) == [
        (name, ENCRYPTED) for name in ("budget.xlsx", "deck.pptx", "memo.docx", "old.xls")]


def test_a_damaged_office_file_is_still_called_corrupt_not_encrypted(tmp_path: Path) -> None:
    path = tmp_path / "budget.xlsx"
    path.write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 600)  # an OLE signature, nothing behind it
    with pytest.raises(ParseError, match="not a valid Excel file"):
        parser_for(path).parse(path)
