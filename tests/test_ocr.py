"""OCR of scans and photos (tesseract): an image, a scanned PDF, a multi-page TIFF and a PDF that is half
text layer, half scan are searchable with the right page; --ocr never, a missing tesseract, a missing
language and broken files are one-line reasons (the scans and the mixed PDF, read by tesseract, are slow)."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from PIL import Image, ImageDraw, ImageFont

from kb import KnowledgeBase
from kb.cli import main
from kb.errors import ParseError
from kb.ingest.formats import ocr
from kb.ingest.formats.image import ImageParser
from kb.ingest.formats.pdf import PdfParser
from tests.helpers import FAKE, needs_tesseract

pytestmark = needs_tesseract

PHOTO = ["The wombat observatory opened in March.", "", "Its telescope tracks the comet Quillfeather."]
SCAN_1 = ["Minutes of the harbour committee.", "The dredging contract was renewed."]
SCAN_2 = ["Second page of the minutes.", "The lighthouse keeper Abernathy retires in June."]
TIFF_1 = ["First frame of a faxed letter from the regional shipping office."]
TIFF_2 = ["Second frame: the invoice from Pemberton Freight."]
MIXED_TEXT = "Page one holds a text layer about the capybara census of the valley."
MIXED_SCAN = ["Page two is a scan: the marmoset enclosure was rebuilt."]


def page_image(lines: list[str]) -> Image.Image:
    """Black text on white, in the font Pillow ships (no system font needed), about 300 dpi body size."""
    font = ImageFont.load_default(size=36)
    image = Image.new("L", (1400, 100 + 60 * len(lines)), 255)
    draw = ImageDraw.Draw(image)
    for i, line in enumerate(lines):
        draw.text((60, 50 + 60 * i), line, fill=0, font=font)
    return image


def write_mixed_pdf(path: Path) -> None:
    """Page 1: a text layer (reportlab); page 2: only an image of text, as a scanner makes."""
    from reportlab.lib.utils import ImageReader
    from reportlab.pdfgen import canvas

    scan = page_image(MIXED_SCAN)
    c = canvas.Canvas(str(path), pagesize=(612, 792))
    c.drawString(72, 700, MIXED_TEXT)
    c.showPage()
    c.drawImage(ImageReader(scan), 36, 500, width=540, height=540 * scan.height / scan.width)
    c.showPage()
    c.save()


def write_scan_pdf(path: Path) -> None:
    """A two-page PDF of images only (Pillow's PDF writer), as a scanner without OCR makes."""
    first, second = page_image(SCAN_1), page_image(SCAN_2)
    first.save(path, "PDF", resolution=200, save_all=True, append_images=[second])


@pytest.fixture
def docs(tmp_path: Path) -> Path:
    folder = tmp_path / "docs"
    folder.mkdir()
    page_image(PHOTO).save(folder / "photo.png")
    write_scan_pdf(folder / "minutes.pdf")
    page_image(TIFF_1).save(folder / "fax.tiff", save_all=True, append_images=[page_image(TIFF_2)])
    write_mixed_pdf(folder / "mixed.pdf")
    png = io.BytesIO()
    page_image(PHOTO).save(png, "PNG")
    (folder / "truncated.png").write_bytes(png.getvalue()[: len(png.getvalue()) // 2])
    (folder / "garbage.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is no JPEG" * 8)
    scan = (folder / "minutes.pdf").read_bytes()
    (folder / "truncated-scan.pdf").write_bytes(scan[: len(scan) // 2])
    return folder


@pytest.fixture
def kb(tmp_path: Path) -> Iterator[KnowledgeBase]:
    # Small chunks: a page starts a new chunk once the one before holds a third of them, and these pages
    # are a few lines each (OCR time is the test's time).
    with KnowledgeBase.open(tmp_path / "kb", workers=1, chunk_tokens=32, **FAKE) as k:
        yield k


@pytest.mark.slow
def test_scans_and_photos_are_searchable_with_their_page(kb: KnowledgeBase, docs: Path) -> None:
    report = kb.ingest([str(docs)])
    assert sorted(Path(s).name for s in report.added) == ["fax.tiff", "minutes.pdf", "mixed.pdf", "photo.png"]
    assert report.types == {"image": 2, "pdf": 2}
    cases = {  # distinctive word -> (file, page, text the hit holds)
        "Quillfeather": ("photo.png", 1, "Its telescope tracks the comet Quillfeather."),
        "Abernathy": ("minutes.pdf", 2, "The lighthouse keeper Abernathy retires in June."),
        "dredging": ("minutes.pdf", 1, "The dredging contract was renewed."),
        "Pemberton": ("fax.tiff", 2, "the invoice from Pemberton Freight."),
        "capybara": ("mixed.pdf", 1, MIXED_TEXT),
        "marmoset": ("mixed.pdf", 2, "the marmoset enclosure was rebuilt."),
    }
    for word, (name, page, text) in cases.items():
        hits = kb.search(word, k=1, mode="keyword")
        assert hits, word
        hit = hits[0]
        assert (Path(hit.source).name, hit.page) == (name, page), (word, hit)
        assert text in " ".join(hit.text.split()), (word, hit.text)
    # An image is one document titled by its file, its paragraphs kept apart.
    photo = next(d for d in kb.documents() if d.source.endswith("photo.png"))
    assert (photo.title, photo.pages, photo.file_type) == ("photo", 1, "image")
    fax = next(d for d in kb.documents() if d.source.endswith("fax.tiff"))
    assert fax.pages == 2

    failed = {Path(f.source).name: f.reason for f in report.failed}
    assert sorted(failed) == ["garbage.jpg", "truncated-scan.pdf", "truncated.png"]
    assert failed["truncated.png"] == "unreadable image: image file is truncated"
    assert failed["garbage.jpg"].startswith("unreadable image: ")
    assert failed["truncated-scan.pdf"].startswith("unreadable PDF: ")
    assert all("\n" not in r and "Traceback" not in r for r in failed.values()), failed


@pytest.mark.slow
def test_a_mixed_pdf_records_which_pages_were_read_by_ocr(tmp_path: Path) -> None:
    path = tmp_path / "mixed.pdf"
    write_mixed_pdf(path)
    ocr.configure("auto")
    doc = PdfParser().parse(path)
    assert doc.pages == 2 and doc.metadata["ocr_pages"] == [2]
    assert [b.page for b in doc.blocks] == [1, 2]
    ocr.configure("always")  # every page read from its image, the text layer replaced
    doc = PdfParser().parse(path)
    assert doc.metadata["ocr_pages"] == [1, 2]
    assert [" ".join(b.text.split()) for b in doc.blocks] == [MIXED_TEXT, " ".join(MIXED_SCAN)]
    ocr.configure()


def test_a_heic_photo_is_read(tmp_path: Path) -> None:
    pillow_heif = pytest.importorskip("pillow_heif")
    pillow_heif.register_heif_opener()
    path = tmp_path / "IMG_0042.heic"
    page_image(PHOTO).convert("RGB").save(path, quality=90)
    ocr.configure("auto")
    doc = ImageParser().parse(path)
    assert doc.title == "IMG_0042" and ".heic" in ImageParser.extensions
    assert "Quillfeather" in doc.blocks[-1].text and doc.blocks[-1].page == 1


def test_ocr_never_gives_the_reason_and_keeps_text_layers(tmp_path: Path, docs: Path) -> None:
    # Two workers: the setting reaches parsers in the worker processes, not only in this one.
    with KnowledgeBase.open(tmp_path / "never", workers=2, ocr="never", **FAKE) as kb:
        report = kb.ingest([str(docs / "photo.png"), str(docs / "minutes.pdf"), str(docs / "mixed.pdf")])
        assert [Path(s).name for s in report.added] == ["mixed.pdf"]
        failed = {Path(f.source).name: f.reason for f in report.failed}
        assert failed == {
            "photo.png": "image not read: OCR is off (kb ingest --ocr auto reads it)",
            "minutes.pdf": "no extractable text in 2 page(s), needs OCR (kb ingest --ocr auto)",
        }
        assert kb.search("marmoset", mode="keyword") == []


def test_cli_ocr_option_reaches_the_parser(tmp_path: Path, docs: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KB_MODEL", FAKE["model"])
    monkeypatch.setenv("KB_BACKEND", FAKE["backend"])
    result = CliRunner().invoke(main, ["ingest", str(docs / "photo.png"), "--kb", str(tmp_path / "kb"),
                                       "--ocr", "never", "--workers", "1"])
    assert result.exit_code == 1
    assert "OCR is off" in result.output
    result = CliRunner().invoke(main, ["ingest", str(docs / "photo.png"), "--kb", str(tmp_path / "kb"),
                                       "--ocr", "sometimes"])
    assert result.exit_code == 2


def test_missing_tesseract_is_one_line_and_text_pages_still_ingest(
        tmp_path: Path, docs: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    empty = tmp_path / "bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    with KnowledgeBase.open(tmp_path / "kb", workers=1, **FAKE) as kb:
        report = kb.ingest([str(docs / "photo.png"), str(docs / "minutes.pdf"), str(docs / "mixed.pdf")])
        assert [Path(s).name for s in report.added] == ["mixed.pdf"]
        failed = {Path(f.source).name: f.reason for f in report.failed}
        assert "tesseract-ocr and tesseract-ocr-eng" in failed["photo.png"]
        assert failed["minutes.pdf"].startswith("no text layer in 2 page(s), and OCR failed: OCR needs tesseract")
        assert all("\n" not in r for r in failed.values())
        assert kb.search("capybara", mode="keyword")[0].page == 1
    assert any("mixed.pdf: page(s) 2 left unread: OCR needs tesseract" in r.getMessage() for r in caplog.records)


def test_a_language_tesseract_lacks_is_named_with_its_package(tmp_path: Path, docs: Path) -> None:
    with KnowledgeBase.open(tmp_path / "kb", workers=1, ocr_lang="eng+qqq", **FAKE) as kb:
        report = kb.ingest([str(docs / "photo.png")])
    (failed,) = report.failed
    assert failed.reason.startswith("OCR language 'qqq' is not installed for tesseract (it has: eng")
    assert failed.reason.endswith("on Debian: apt-get install tesseract-ocr-qqq")
    ocr.configure("auto", "eng; rm -rf /")
    with pytest.raises(ParseError, match="not a tesseract language list"):
        ImageParser().parse(docs / "photo.png")
    ocr.configure()


def _words(*lines: tuple[int, int, int, int, str]) -> dict[str, list]:
    """Tesseract's image_to_data table for words given as (block, left, top, line, text), 20 px a word."""
    data: dict[str, list] = {k: [] for k in ("text", "conf", "left", "top", "width", "height", "page_num",
                                             "block_num", "par_num", "line_num")}
    for block, left, top, line, text in lines:
        for n, word in enumerate(text.split()):
            for key, value in (("text", word), ("conf", 90), ("left", left + 120 * n), ("top", top),
                               ("width", 100), ("height", 20), ("page_num", 1), ("block_num", block),
                               ("par_num", 1), ("line_num", line)):
                data[key].append(value)
    return data


def test_a_table_is_read_by_rows_and_prose_columns_by_column() -> None:
    from kb.ingest.formats.ocr_layout import paragraphs

    # Tesseract found three blocks side by side: a label column and two narrow columns of amounts.
    table = _words((1, 0, 0, 1, "Widgets sold"), (1, 0, 40, 2, "Gizmos sold"),
                   (2, 2000, 0, 1, "1,200"), (2, 2000, 40, 2, "4,210"),
                   (3, 2400, 2, 1, "3,400"), (3, 2400, 41, 2, "5,650"))
    assert paragraphs(table) == ["Widgets sold 1,200 3,400\nGizmos sold 4,210 5,650"]
    # Two wide columns of prose, lines level with each other, stay two columns read one after the other.
    prose = _words((1, 0, 0, 1, "the first column starts here and"), (1, 0, 40, 2, "goes on down its own lines"),
                   (2, 1400, 0, 1, "the second column is read only"), (2, 1400, 40, 2, "after the first one ends"))
    assert paragraphs(prose) == ["the first column starts here and\ngoes on down its own lines",
                                 "the second column is read only\nafter the first one ends"]
    # A page number level with the first line of a paragraph is not a table column.
    stamped = _words((1, 0, 0, 1, "a paragraph of prose that runs"), (1, 0, 40, 2, "over three lines of the"),
                     (1, 0, 80, 3, "page without any table"), (2, 1400, 0, 1, "17"))
    assert paragraphs(stamped) == ["a paragraph of prose that runs\nover three lines of the\npage without any table",
                                   "17"]


def test_usable_text_is_words_not_glyph_codes() -> None:
    assert ocr.usable("Revenue grew in the quarter.")
    assert not ocr.usable("")
    assert not ocr.usable("12")  # a page number stamped on a scan
    assert not ocr.usable("\ue001\ue002\ue003 ab cd ef \ue004\ue005\ue006\ue007")  # fonts without a character map
    assert not ocr.usable("\ufffd\ufffd ab \ufffd cd \ufffd\ufffd ef")
    assert ocr.usable("Ärger über Öl, 東京 und Straße")
    assert ocr.page_list([5, 2, 3, 4, 9]) == "2-5, 9"


def test_a_page_past_the_time_bound_is_dropped_with_a_warning(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                              caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "fax.tiff"
    page_image(TIFF_1).save(path, save_all=True, append_images=[page_image(TIFF_2)])
    calls = []

    def slow_first(image: Image.Image, timeout: float = ocr.PAGE_TIMEOUT_S) -> list[str]:
        calls.append(image.size)
        if len(calls) == 1:
            raise ocr.OcrTimeout(f"OCR gave up after {timeout:g} s")
        return ["Second frame read."]

    monkeypatch.setattr(ocr, "recognize", slow_first)
    ocr.configure("auto")
    doc = ImageParser().parse(path)
    assert [b.page for b in doc.blocks] == [2] and doc.metadata["ocr_pages"] == [2]
    assert doc.metadata["warnings"] == ["page(s) 1 dropped: OCR took over 120 s"]
    assert "fax.tiff: page(s) 1 dropped" in caplog.text


def test_the_real_timeout_is_an_ocr_timeout(tmp_path: Path) -> None:
    ocr.configure("auto")
    with pytest.raises(ocr.OcrTimeout):
        ocr.recognize(page_image(PHOTO * 8), timeout=0.01)
