"""Legacy Office files through LibreOffice: .ppt decks LibreOffice itself writes here (from decks
python-pptx makes) are read in parallel workers, each cited by slide; a .doc that antiword and catdoc
cannot read (a scan pasted into Word) is converted and its picture read by OCR; a conversion past the
time bound is stopped, its LibreOffice with it. Real LibreOffice, so slow."""

from __future__ import annotations

import io
import os
import shutil
import signal
import tempfile
import time
from pathlib import Path

import pytest
from PIL import Image, ImageDraw, ImageFont

from kb import KnowledgeBase
from kb.errors import ParseError
from kb.ingest.base import parser_for
from kb.ingest.formats import libreoffice
from kb.ingest.formats.libreoffice import libreoffice_convert, soffice
from tests.helpers import FAKE, needs_tesseract

pytestmark = [pytest.mark.slow, pytest.mark.skipif(soffice() is None, reason="LibreOffice (soffice) is not installed")]

WORDS = ["quillfeather", "marzipan", "halyard"]


def write_deck(path: Path, word: str) -> None:
    import pptx

    deck = pptx.Presentation()
    first = deck.slides.add_slide(deck.slide_layouts[1])
    first.shapes.title.text = "Overview"
    first.placeholders[1].text = "An opening slide with nothing special on it."
    second = deck.slides.add_slide(deck.slide_layouts[1])
    second.shapes.title.text = "Pricing"
    second.placeholders[1].text = f"The {word} plan costs twelve dollars a month."
    second.notes_slide.notes_text_frame.text = f"Speaker note: mention the {word} discount."
    deck.save(str(path))


def legacy(modern: Path, to: str, folder: Path) -> Path:
    """`modern` saved by LibreOffice in its 97-2003 format (`to`: "ppt", "doc") into `folder`."""
    with tempfile.TemporaryDirectory() as tmp:
        out = libreoffice_convert(modern, to, Path(tmp), to, "libreoffice")
        return Path(shutil.move(out, folder / out.name))


def test_ppt_decks_convert_in_parallel_and_are_cited_by_slide(tmp_path: Path) -> None:
    made, docs = tmp_path / "made", tmp_path / "docs"
    made.mkdir()
    docs.mkdir()
    for n, word in enumerate(WORDS, 1):
        write_deck(made / f"deck{n}.pptx", word)
        legacy(made / f"deck{n}.pptx", "ppt", docs)
    assert sorted(p.name for p in docs.iterdir()) == ["deck1.ppt", "deck2.ppt", "deck3.ppt"]
    with KnowledgeBase.open(tmp_path / "kb", workers=2, **FAKE) as kb:  # two workers: two LibreOffices at once
        report = kb.ingest([str(docs)])
        assert not report.failed and report.types == {"ppt": 3}
        for n, word in enumerate(WORDS, 1):
            hits = [h for h in kb.search(word, k=5, mode="keyword") if h.page == 2 and h.section == "Pricing"]
            assert hits, word
            assert hits[0].citation.endswith(f"deck{n}.ppt slide 2 § Pricing"), hits[0].citation
            notes = [h for h in kb.search(word, k=5, mode="keyword") if h.section == "Pricing > Notes"]
            assert notes and notes[0].page == 2
        assert {d.pages for d in kb.documents()} == {2}


@needs_tesseract
def test_a_doc_antiword_and_catdoc_cannot_read_is_read_through_libreoffice(tmp_path: Path) -> None:
    import docx

    font = ImageFont.load_default(size=36)
    scan = Image.new("RGB", (1200, 160), "white")
    ImageDraw.Draw(scan).text((40, 50), "The pelican invoice totals four hundred dollars.", fill="black", font=font)
    png = io.BytesIO()
    scan.save(png, "PNG")
    document = docx.Document()
    document.add_picture(io.BytesIO(png.getvalue()))  # a scan pasted into Word: no text of its own
    document.save(str(tmp_path / "scan.docx"))
    docs = tmp_path / "docs"
    docs.mkdir()
    legacy(tmp_path / "scan.docx", "doc", docs)
    with KnowledgeBase.open(tmp_path / "kb", workers=1, **FAKE) as kb:
        report = kb.ingest([str(docs)])
        assert not report.failed and report.types == {"doc": 1}
        [hit] = kb.search("pelican", k=1, mode="keyword")
        assert Path(hit.source).name == "scan.doc" and "pelican invoice" in hit.text


def test_a_conversion_past_the_time_bound_fails_with_the_reason(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_deck(tmp_path / "deck.pptx", "halyard")
    deck = legacy(tmp_path / "deck.pptx", "ppt", tmp_path)
    monkeypatch.setattr(libreoffice, "CONVERT_TIMEOUT", 0.2)  # LibreOffice alone takes longer to start
    with pytest.raises(ParseError, match=r"^LibreOffice took over 0.2 s to convert it$"):
        parser_for(deck).parse(deck)


def test_a_timeout_ends_every_process_the_conversion_started(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A LibreOffice that hangs cannot be made to order: this stand-in starts a child and waits on it, as
    # soffice starts soffice.bin; the timeout must end both.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    pid_file = tmp_path / "child.pid"
    (bin_dir / "soffice").write_text(f"#!/bin/sh\nsleep 30 &\necho $! > {pid_file}\nwait\n")
    (bin_dir / "soffice").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setattr(libreoffice, "CONVERT_TIMEOUT", 1)
    started = time.monotonic()
    with pytest.raises(ParseError, match=r"^LibreOffice took over 1 s to convert it$"):
        libreoffice_convert(tmp_path / "any.ppt", "pptx", tmp_path, "PowerPoint 97-2003", "libreoffice")
    assert time.monotonic() - started < 10  # not held up by the child, which holds the output pipe open
    pid = int(pid_file.read_text())
    try:
        deadline = time.monotonic() + 5  # SIGKILL is prompt, not instant
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _alive(pid), "the converter's child outlived the timeout"
    finally:
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)


def _alive(pid: int) -> bool:
    """Whether process `pid` runs (a zombie, ended but not yet reaped, does not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"
