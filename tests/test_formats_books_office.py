"""E-books (.epub), OpenDocument text (.odt), RTF, legacy Word (.doc), reStructuredText and Org:
each ingested with its sections, found by a search that cites them, and a corrupt or truncated file
of each a one-line reason while the rest of the folder is ingested (fast layer).

The office files in tests/fixtures/formats were made by LibreOffice from one small book
(tests/fixtures/formats/office_make_fixtures.py); the .epub with real headings is made here by ebooklib."""

from __future__ import annotations

import os
import shutil
import zipfile
from pathlib import Path

import pytest

from kb import KnowledgeBase
from kb.errors import ParseError
from kb.ingest.base import parser_for

FIXTURES = Path(__file__).parent / "fixtures" / "formats"
SENTENCE = "The {word} gauge reads the spring tide twice a day, at 06:10 and 18:35."
HAS_DOC_TOOL = bool(shutil.which("antiword") or shutil.which("catdoc"))
# file -> (its word, the section a search for it cites: None where the format keeps no headings)
CASES = {
    "book_tides.epub": ("astrolabe", "Chapter 2 > Tides"),
    "book_almanac.epub": ("sextant", "Chapter 2"),  # LibreOffice's export: chapters, but no <h1>-<h6>
    "office_almanac.odt": ("capstan", "Chapter 2 > Tides"),
    "office_almanac.rtf": ("halyard", None),
    "office_almanac.doc": ("bollard", None),
    "markup_handbook.rst": ("binnacle", "Harbour Handbook > Chapter 2 > Tides"),
    "markup_logbook.org": ("gunwale", "Chapter 2 > Tides"),
}


def tides_epub(path: Path, word: str = "astrolabe") -> Path:
    """A book as e-book tools write one: nav and NCX, chapters with <h1>/<h2>, the manifest in
    another order than the spine, a chapter without any heading (its name only in the contents)."""
    from ebooklib import epub

    book = epub.EpubBook()
    book.set_identifier("tides-1")
    book.set_title("Tides and Harbours")
    book.set_language("en")
    book.add_author("Ida Marlowe")
    book.add_author("Tom Brandt")
    bodies = {
        "c3.xhtml": ("Storms", "<p>Winter storms close the harbour for a week at most.</p>"),
        "c1.xhtml": ("Chapter 1", "<h1>Chapter 1</h1><p>The harbour opens at dawn.</p>"),
        "c2.xhtml": ("Chapter 2", "<h1>Chapter 2</h1><p>Ships wait outside the bar.</p><h2>Tides</h2>"
                     f"<p>{SENTENCE.format(word=word)}</p><table><tr><th>Port</th><th>Height</th></tr>"
                     "<tr><td>Lisbon</td><td>3.8 m</td></tr></table><h2>Currents</h2>"
                     "<p>The ebb runs hardest an hour after high water.</p>"),
    }
    chapters = {}
    for name, (title, body) in bodies.items():  # added c3 first: the manifest is not the reading order
        chapter = epub.EpubHtml(title=title, file_name=name, lang="en")
        chapter.content = f"<html><head><title>{title}</title></head><body>{body}</body></html>"
        book.add_item(chapter)
        chapters[name] = chapter
    order = [chapters["c1.xhtml"], chapters["c2.xhtml"], chapters["c3.xhtml"]]
    book.toc = order
    book.add_item(epub.EpubNcx())
    book.add_item(epub.EpubNav())
    book.spine = ["nav", *order]
    epub.write_epub(str(path), book)
    return path


def with_drm(src: Path, dest: Path) -> Path:
    """The book with its chapters listed in META-INF/encryption.xml under AES, as a DRM scheme
    (Adobe ADEPT, Readium LCP) leaves it; the bytes are scrambled the way ciphertext would be."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dest, "w") as zout:
        for info in zin.infolist():
            data = zin.read(info)
            if info.filename.endswith(".xhtml") and "nav" not in info.filename:
                data = bytes(b ^ 0x5A for b in data)
            zout.writestr(info, data)
        refs = "".join(
            '<EncryptedData xmlns="http://www.w3.org/2001/04/xmlenc#">'
            '<EncryptionMethod Algorithm="http://www.w3.org/2001/04/xmlenc#aes256-cbc"/>'
            f'<CipherData><CipherReference URI="EPUB/{n}"/></CipherData></EncryptedData>'
            for n in ("c1.xhtml", "c2.xhtml", "c3.xhtml"))
        zout.writestr("META-INF/encryption.xml",
                      f'<encryption xmlns="urn:oasis:names:tc:opendocument:xmlns:container">{refs}</encryption>')
    return dest


def cut(src: Path, dest: Path, fraction: float) -> Path:
    data = src.read_bytes()
    dest.write_bytes(data[: int(len(data) * fraction)])
    return dest


@pytest.fixture
def docs(tmp_path: Path) -> Path:
    folder = tmp_path / "docs"
    folder.mkdir()
    for name in CASES:
        if name == "book_tides.epub":
            tides_epub(folder / name)
        elif name != "office_almanac.doc" or HAS_DOC_TOOL:
            shutil.copyfile(FIXTURES / name, folder / name)
    return folder


def test_each_format_is_found_in_its_section(kb: KnowledgeBase, docs: Path) -> None:
    report = kb.ingest([str(docs)])
    assert not report.failed, report.failed
    expected = [n for n in CASES if HAS_DOC_TOOL or n != "office_almanac.doc"]
    assert sorted(Path(s).name for s in report.added) == sorted(expected)
    assert report.types == {"epub": 2, "odt": 1, "rtf": 1, "rst": 1, "org": 1, **({"doc": 1} if HAS_DOC_TOOL else {})}
    for name in expected:
        word, section = CASES[name]
        hits = kb.search(word, k=1, mode="keyword")
        assert [Path(h.source).name for h in hits] == [name], (word, hits)
        hit = hits[0]
        assert SENTENCE.format(word=word) in hit.text, (name, hit.text)
        assert (hit.section, hit.page) == (section, None), (name, hit.citation)
        assert hit.citation.endswith(f"{name} § {section}" if section else name), hit.citation


def test_tables_lists_and_code_keep_their_shape(tmp_path: Path) -> None:
    odt = parser_for(FIXTURES / "office_almanac.odt").parse(FIXTURES / "office_almanac.odt")
    assert (odt.title, odt.metadata, odt.pages) == ("Harbour Almanac", {"author": "Ida Marlowe"}, None)
    shapes = {(b.kind, b.text) for b in odt.blocks}
    assert ("table", "Port | Height\nLisbon | 3.8 m\nOporto | 3.1 m") in shapes
    assert ("list", "- Check the mooring lines\n- Log the reading") in shapes
    rtf = parser_for(FIXTURES / "office_almanac.rtf").parse(FIXTURES / "office_almanac.rtf")
    assert rtf.title == "Harbour Almanac"
    assert ("table", "Port | Height\nLisbon | 3.8 m\nOporto | 3.1 m") in {(b.kind, b.text) for b in rtf.blocks}
    rst = parser_for(FIXTURES / "markup_handbook.rst").parse(FIXTURES / "markup_handbook.rst")
    assert rst.title == "Harbour Handbook"
    code = [b for b in rst.blocks if b.kind == "code"]
    assert [(b.text, b.headings[-1]) for b in code] == [("tide-gauge --port lisbon --unit metres", "Tides")]
    assert ("table", "Month | Closed\nJanuary | 2 days\nMarch | 1 day") in {(b.kind, b.text) for b in rst.blocks}
    org = parser_for(FIXTURES / "markup_logbook.org").parse(FIXTURES / "markup_logbook.org")
    assert (org.title, org.metadata) == ("Harbour Logbook", {"author": "Ida Marlowe"})
    kinds = {(b.kind, b.text, b.headings) for b in org.blocks}
    assert ("code", "tide-gauge --port lisbon --unit metres", ("Chapter 2", "Tides")) in kinds
    assert ("table", "Port | Height\nLisbon | 3.8 m\nOporto | 3.1 m", ("Chapter 2", "Tides")) in kinds
    # Org's bookkeeping is not text: TODO keywords, tags, priorities, drawers, planning, comments
    assert ("heading", "Currents", ("Chapter 2", "Currents")) in kinds
    text = "\n".join(b.text for b in org.blocks)
    for noise in ("TODO", ":almanac:", "[#A]", "PROPERTIES", "SCHEDULED", "comment line", "#+"):
        assert noise not in text, noise


def test_epub_reads_chapters_in_reading_order_with_title_and_authors(tmp_path: Path) -> None:
    doc = parser_for(Path("b.epub")).parse(tides_epub(tmp_path / "b.epub"))
    assert (doc.title, doc.metadata, doc.pages) == ("Tides and Harbours", {"author": "Ida Marlowe, Tom Brandt"}, None)
    headings = [b.headings for b in doc.blocks if b.kind == "heading"]
    assert headings == [("Chapter 1",), ("Chapter 2",), ("Chapter 2", "Tides"), ("Chapter 2", "Currents")]
    last = doc.blocks[-1]  # the chapter with no heading is named by the book's contents
    assert (last.text, last.headings) == ("Winter storms close the harbour for a week at most.", ("Storms",))
    assert all(b.page is None for b in doc.blocks)


def test_rst_with_broken_markup_prints_nothing_and_reads_no_other_file(capfd: pytest.CaptureFixture[str]) -> None:
    doc = parser_for(FIXTURES / "markup_handbook.rst").parse(FIXTURES / "markup_handbook.rst")
    assert capfd.readouterr() == ("", "")
    text = "\n".join(b.text for b in doc.blocks)
    assert "root:" not in text and "never indexed" not in text  # `.. include:: /etc/passwd`, `.. raw::`
    assert "The ebb runs hardest an hour after high water" in text  # the paragraph with a broken link
    assert "On this page" not in text  # the generated contents list repeats the titles; left out


def test_each_corrupt_file_is_a_one_line_reason_and_the_rest_goes_on(kb: KnowledgeBase, docs: Path) -> None:
    bad = docs / "bad"
    bad.mkdir()
    reasons = {
        cut(docs / "book_tides.epub", bad / "book_truncated.epub", 0.6).name:
            "not a valid .epub (truncated, or not a zip archive)",
        with_drm(docs / "book_tides.epub", bad / "book_drm.epub").name: "DRM-protected e-book: its chapters are encrypted",
        cut(FIXTURES / "office_almanac.odt", bad / "office_truncated.odt", 0.5).name:
            "not a valid .odt (truncated, or not a zip archive)",
        cut(FIXTURES / "office_almanac.rtf", bad / "office_truncated.rtf", 0.3).name:
            "truncated RTF file: no text before the cut",
        "office_sheet.odt": "not an OpenDocument text file (application/vnd.oasis.opendocument.spreadsheet)",
        "office_photo.rtf": "not an RTF file",
        "office_notword.doc": "not a Word 97-2003 document (.doc)",
        "markup_binary.rst": "binary content, not text",
        "markup_binary.org": "binary content, not text",
    }
    from odf.opendocument import OpenDocumentSpreadsheet

    OpenDocumentSpreadsheet().save(str(bad / "office_sheet.odt"))  # a spreadsheet under the text extension
    (bad / "office_photo.rtf").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8)
    (bad / "office_notword.doc").write_bytes(b"Dear Sir,\nthis letter was saved as plain text.\n")
    (bad / "markup_binary.rst").write_bytes(b"\x00\x01\x02\xff\xfe binary \x00" * 64)
    (bad / "markup_binary.org").write_bytes(bytes(range(256)) * 16)
    if HAS_DOC_TOOL:
        tool = "antiword" if shutil.which("antiword") else "catdoc"
        said = "office_truncated.doc is not a Word Document." if tool == "antiword" else "Broken OLE file"
        reasons[cut(FIXTURES / "office_almanac.doc", bad / "office_truncated.doc", 0.45).name] = (
            f"unreadable Word document (corrupt or truncated?): {tool}: {said}")
    report = kb.ingest([str(docs)])
    assert len(report.added) == len(CASES) - (not HAS_DOC_TOOL)
    failed = {Path(f.source).name: f.reason for f in report.failed}
    assert sorted(failed) == sorted(reasons)
    for name, reason in reasons.items():
        assert failed[name].startswith(reason), (name, failed[name])
        assert "\n" not in failed[name] and "Traceback" not in failed[name]
    assert kb.search("capstan", k=1, mode="keyword")[0].section == "Chapter 2 > Tides"


def test_doc_without_a_converter_says_which_to_install(kb: KnowledgeBase, docs: Path, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    shutil.copyfile(FIXTURES / "office_almanac.doc", docs / "office_almanac.doc")
    empty = tmp_path / "bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))  # neither antiword, catdoc nor LibreOffice on it
    report = kb.ingest([str(docs)])
    failed = {Path(f.source).name: f.reason for f in report.failed}
    assert failed == {"office_almanac.doc": "reading .doc needs antiword, catdoc or LibreOffice, none is installed "
                                            "(Debian/Ubuntu: apt install antiword catdoc, or libreoffice-writer-nogui)"}
    assert len(report.added) == len(CASES) - 1


@pytest.mark.parametrize("tool", ["antiword", "catdoc"])
def test_doc_through_each_converter(tool: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if not shutil.which(tool):
        pytest.skip(f"{tool} is not installed (CI installs it)")
    only = tmp_path / "bin"
    only.mkdir()
    os.symlink(shutil.which(tool), only / tool)  # type: ignore[arg-type]
    monkeypatch.setenv("PATH", str(only))
    doc = parser_for(FIXTURES / "office_almanac.doc").parse(FIXTURES / "office_almanac.doc")
    assert (doc.title, doc.pages) == ("Harbour Almanac", None)
    texts = [b.text for b in doc.blocks]
    assert SENTENCE.format(word="bollard") in texts and "Chapter 2" in texts
    assert ("table", "Port | Height\nLisbon | 3.8 m\nOporto | 3.1 m") in {(b.kind, b.text) for b in doc.blocks}


def test_rtf_saved_as_doc_is_read_as_rtf(tmp_path: Path) -> None:
    path = tmp_path / "letter.doc"
    shutil.copyfile(FIXTURES / "office_almanac.rtf", path)
    doc = parser_for(path).parse(path)
    assert SENTENCE.format(word="halyard") in [b.text for b in doc.blocks]
    with pytest.raises(ParseError, match="^not a Word 97-2003 document"):
        (tmp_path / "x.doc").write_bytes(b"")
        parser_for(tmp_path / "x.doc").parse(tmp_path / "x.doc")
