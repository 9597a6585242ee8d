"""Pictures inside documents read by OCR like scans: a deck's pictures cited by their slide, a Word
file's by the section they sit in, an e-mail's image attachment as a part of the mail; icons skipped,
a cap per file, and a picture-only file without OCR says how many pictures it holds and how to read them.
Every file is written here (python-pptx, python-docx, the standard library's email) with pictures of
text Pillow renders; tesseract reads them, so the tests are slow."""

from __future__ import annotations

import io
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path

import pytest
from PIL import Image, ImageDraw, ImageFont

from kb import KnowledgeBase
from kb.errors import ParseError
from kb.ingest.base import parser_for
from kb.ingest.formats import ocr, pictures
from tests.helpers import FAKE, needs_tesseract

pytestmark = [needs_tesseract, pytest.mark.slow]

SCREENSHOT = "The wombat observatory opened in March."
SCAN = "The pelican invoice totals four hundred dollars."
MARGIN_NOTE = "Margin note about the cormorant ferry."


def picture(line: str) -> bytes:
    """A PNG of one line of black text on white, at the size a slide's screenshot shows body text."""
    font = ImageFont.load_default(size=36)
    image = Image.new("RGB", (1200, 160), "white")
    ImageDraw.Draw(image).text((40, 50), line, fill="black", font=font)
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def icon() -> bytes:
    """A 48 x 48 bullet: under the size OCR is worth running on."""
    out = io.BytesIO()
    Image.new("RGB", (48, 48), "navy").save(out, "PNG")
    return out.getvalue()


def write_deck(path: Path, slides: list[tuple[str, str, list[bytes]]]) -> None:
    """Slides of (title, body text, pictures): an empty title or body leaves that box out."""
    import pptx
    from pptx.util import Inches

    deck = pptx.Presentation()
    for title, body, shown in slides:
        slide = deck.slides.add_slide(deck.slide_layouts[5 if title else 6])  # title only / blank
        if title:
            slide.shapes.title.text = title
        if body:
            slide.shapes.add_textbox(Inches(0.5), Inches(1.5), Inches(9), Inches(1)).text_frame.text = body
        for n, blob in enumerate(shown):
            slide.shapes.add_picture(io.BytesIO(blob), Inches(0.5), Inches(2.5 + 2 * n), width=Inches(9))
    deck.save(str(path))


@pytest.fixture(autouse=True)
def ocr_reset() -> Iterator[None]:
    yield
    ocr.configure()


@pytest.fixture
def kb(tmp_path: Path) -> Iterator[KnowledgeBase]:
    with KnowledgeBase.open(tmp_path / "kb", workers=1, chunk_tokens=32, **FAKE) as k:
        yield k


def _hit(kb: KnowledgeBase, word: str) -> object:
    hits = kb.search(word, k=1, mode="keyword")
    assert hits and word.lower() in hits[0].text.lower(), (word, hits)
    return hits[0]


def test_a_picture_on_a_slide_is_searchable_and_cited_by_its_slide(kb: KnowledgeBase, tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    write_deck(docs / "deck.pptx", [
        ("Welcome", "The agenda lists three topics for the quarter.", [icon()]),
        ("Architecture", "", [picture(SCREENSHOT)]),  # a title and a screenshot: the picture is the slide
        ("", "", [picture(SCAN)]),  # a picture alone
        ("Budget", "The budget grew by a tenth over the year before.", [picture(MARGIN_NOTE)]),
    ])
    report = kb.ingest([str(docs)])
    assert not report.failed and report.types == {"pptx": 1}
    hit = _hit(kb, "wombat")
    assert (hit.page, hit.section) == (2, "Architecture")
    assert hit.citation.endswith("deck.pptx slide 2 § Architecture"), hit.citation
    assert SCREENSHOT in " ".join(hit.text.split())
    assert (_hit(kb, "pelican").page, _hit(kb, "pelican").section) == (3, "Slide 3")
    # auto reads the pictures of slides without text of their own: slide 4's text stands for it
    assert not kb.search("cormorant", k=1, mode="keyword")


def test_ocr_always_reads_every_picture_and_a_repeated_one_once(tmp_path: Path) -> None:
    path = tmp_path / "deck.pptx"
    write_deck(path, [(f"Slide about topic {n}", f"Body text of slide {n} with enough words.", [picture(MARGIN_NOTE)])
                      for n in (1, 2, 3)])
    ocr.configure("auto")
    doc = parser_for(path).parse(path)
    assert "cormorant" not in " ".join(b.text for b in doc.blocks) and "ocr_pictures" not in doc.metadata
    ocr.configure("always")
    doc = parser_for(path).parse(path)
    found = [b for b in doc.blocks if "cormorant" in b.text]
    assert [b.page for b in found] == [1, 2, 3]  # on every slide it sits on...
    assert doc.metadata["ocr_pictures"] == 1 and doc.metadata["ocr_pages"] == [1, 2, 3]  # ...read once


def test_a_picture_only_deck_without_ocr_says_how_many_pictures_and_how_to_read_them(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    write_deck(docs / "photos.pptx", [("", "", [picture(SCREENSHOT)]), ("", "", [picture(SCAN), icon()])])
    with KnowledgeBase.open(tmp_path / "never", workers=1, ocr="never", **FAKE) as kb:
        [failure] = kb.ingest([str(docs)]).failed
        assert failure.reason == "no text in presentation (3 pictures; OCR is off: kb ingest --ocr auto reads them)"
    with KnowledgeBase.open(tmp_path / "auto", workers=1, **FAKE) as kb:
        assert not kb.ingest([str(docs)]).failed
        assert _hit(kb, "pelican").page == 2


def test_a_deck_of_icons_only_says_so(tmp_path: Path) -> None:
    path = tmp_path / "icons.pptx"
    write_deck(path, [("", "", [icon()]), ("", "", [icon()])])
    ocr.configure("auto")
    with pytest.raises(ParseError) as e:
        parser_for(path).parse(path)
    assert str(e.value) == "no text in presentation (2 pictures: all under 10,000 pixels (icons, bullets))"


def test_pictures_past_the_cap_are_counted_in_a_warning(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "deck.pptx"
    write_deck(path, [("", "", [picture(SCREENSHOT)]), ("", "", [picture(SCAN)]), ("", "", [picture(MARGIN_NOTE)])])
    monkeypatch.setattr(pictures, "MAX_PICTURES", 2)
    ocr.configure("auto")
    doc = parser_for(path).parse(path)
    assert doc.metadata["ocr_pictures"] == 2 and doc.metadata["ocr_pages"] == [1, 2]
    assert doc.metadata["warnings"] == ["1 picture past the first 2 left unread (the OCR cap per file)"]


def test_a_picture_deck_without_tesseract_names_what_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "deck.pptx"
    write_deck(path, [("", "", [picture(SCREENSHOT)])])
    monkeypatch.setenv("PATH", str(tmp_path))  # no tesseract on it
    ocr.configure("auto")
    with pytest.raises(ParseError) as e:
        parser_for(path).parse(path)
    assert str(e.value).startswith("no text in presentation (1 picture, not read: OCR needs tesseract, which is "
                                   "not installed: install Debian's tesseract-ocr")


def write_docx(path: Path) -> None:
    """A heading and a scan pasted under it; a section of text with a picture beside it; an icon."""
    import docx
    from docx.shared import Inches

    document = docx.Document()
    document.add_paragraph("Expense report").style = "Title"
    document.add_heading("Receipts", 1)
    document.add_picture(io.BytesIO(picture(SCAN)), width=Inches(6))
    document.add_heading("Travel", 1)
    document.add_paragraph("The ferry crossing was booked in advance for the whole team.")
    document.add_picture(io.BytesIO(picture(MARGIN_NOTE)), width=Inches(6))
    document.add_picture(io.BytesIO(icon()), width=Inches(0.3))
    document.save(str(path))


def test_a_picture_in_a_word_file_is_cited_by_its_section(kb: KnowledgeBase, tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    write_docx(docs / "expenses.docx")
    report = kb.ingest([str(docs)])
    assert not report.failed and report.types == {"docx": 1}
    hit = _hit(kb, "pelican")
    assert hit.section == "Expense report > Receipts" and hit.page is None
    assert hit.citation.endswith("expenses.docx § Expense report > Receipts"), hit.citation
    assert not kb.search("cormorant", k=1, mode="keyword")  # auto: that section has text of its own
    ocr.configure("always")
    doc = parser_for(docs / "expenses.docx").parse(docs / "expenses.docx")
    texts = [(b.headings, " ".join(b.text.split())) for b in doc.blocks]
    assert (("Expense report", "Travel"), MARGIN_NOTE) in texts
    # in reading order: the picture after the paragraph before it
    assert [t for _, t in texts].index(MARGIN_NOTE) > [t for _, t in texts].index(
        "The ferry crossing was booked in advance for the whole team.")


def test_a_word_file_of_pictures_only_without_ocr_says_so(tmp_path: Path) -> None:
    import docx

    document = docx.Document()
    document.add_picture(io.BytesIO(picture(SCAN)))
    document.save(str(tmp_path / "scan.docx"))
    ocr.configure("never")
    with pytest.raises(ParseError, match=r"^no text in document \(1 picture; OCR is off: kb ingest --ocr auto"):
        parser_for(tmp_path / "scan.docx").parse(tmp_path / "scan.docx")
    ocr.configure("auto")
    doc = parser_for(tmp_path / "scan.docx").parse(tmp_path / "scan.docx")
    assert [" ".join(b.text.split()) for b in doc.blocks] == [SCAN] and doc.metadata == {"ocr_pictures": 1}


def test_a_blank_picture_is_named_as_read_and_empty(tmp_path: Path) -> None:
    import docx

    blank = io.BytesIO()
    Image.new("RGB", (800, 600), "white").save(blank, "PNG")
    document = docx.Document()
    document.add_picture(io.BytesIO(blank.getvalue()))
    document.save(str(tmp_path / "blank.docx"))
    ocr.configure("auto")
    with pytest.raises(ParseError) as e:
        parser_for(tmp_path / "blank.docx").parse(tmp_path / "blank.docx")
    assert str(e.value) == "no text in document (1 picture: OCR found no text in it)"


def test_an_image_attached_to_an_email_is_read_and_cited_inside_the_mail(kb: KnowledgeBase, tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    mail = EmailMessage()
    mail["From"], mail["To"], mail["Subject"] = "ana@example.org", "ben@example.org", "Receipt"
    mail.set_content("The scan of the receipt is attached.")
    mail.add_attachment(picture(SCAN), maintype="image", subtype="png", filename="receipt.png")
    (docs / "receipt.eml").write_bytes(bytes(mail))
    report = kb.ingest([str(docs)])
    assert not report.failed
    hit = _hit(kb, "pelican")
    assert hit.citation.endswith("receipt.eml > receipt.png p.1"), hit.citation


def test_the_pictures_benchmark_reads_what_it_drew(tmp_path: Path) -> None:
    from benchmarks import pictures as bench

    bench.main(["--slides", "1", "--size", "1280x720", "--out", str(tmp_path / "pictures.json"), "--json"])
    import json

    [result] = json.loads((tmp_path / "pictures.json").read_text())["runs"]
    assert result["slides_with_text"] == 1 and result["words"] > 0.9 and result["s_per_picture"] > 0
