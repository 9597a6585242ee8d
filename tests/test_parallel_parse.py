"""A long PDF is read by page ranges across the parser workers and joined in order: the document is
the one a single reader makes (same chunks, pages and sections, sections carried across ranges), a
scanned range is OCR'd by its own worker, and a failing range fails the file with its reason."""

from __future__ import annotations

from pathlib import Path

import pytest

import kb.ingest.pipeline as pipeline
from kb.api import KnowledgeBase
from tests.helpers import FAKE, write_pdf


def long_pdf(path: Path, pages: int) -> Path:
    texts = []
    for n in range(1, pages + 1):
        head = "PART II\nItem 5. Other Information\n" if n == 140 else ""
        texts.append(f"{head}Page {n} of the manual: valve {n} opens at {n * 3} kPa.\nSee the appendix for torque.")
    return write_pdf(path, texts)


def chunks(kb: KnowledgeBase) -> list[tuple[str, int | None, int | None, str | None]]:
    rows = kb.catalog.chunks(kb.catalog.chunk_ids())
    return sorted((r["text"], r["page_start"], r["page_end"], r["section"]) for r in rows.values())


def test_a_long_pdf_read_by_ranges_is_the_document_one_reader_makes(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    pdf = long_pdf(tmp_path / "docs" / "manual.pdf", 250)
    with KnowledgeBase.open(tmp_path / "whole", workers=1, **FAKE) as kb:
        kb.ingest([str(pdf.parent)])
        whole = chunks(kb)
    monkeypatch.setattr(pipeline, "SPLIT_MIN_BYTES", 0)  # the test PDF is small; real long ones are not
    split: list[object] = []
    real = pipeline._ranges
    monkeypatch.setattr(pipeline, "_ranges", lambda path: split.append(real(path)) or split[-1])
    with KnowledgeBase.open(tmp_path / "split", workers=2, **FAKE) as kb:
        report = kb.ingest([str(pdf.parent)])
        assert split == [[(1, 100), (101, 200), (201, 250)]]
        assert report.pages == 250 and not report.failed
        assert chunks(kb) == whole
        hit = kb.search('"valve 205"', k=1, mode="keyword")[0]  # small pages share chunks: 205 is in its range
        assert hit.page <= 205 <= hit.page_end and hit.section == "PART II > Item 5. Other Information"


def test_a_range_that_fails_fails_the_file_and_the_others_go_on(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    docs = tmp_path / "docs"
    good = long_pdf(docs / "good.pdf", 120)
    bad = docs / "bad.pdf"
    bad.write_bytes(good.read_bytes()[: len(good.read_bytes()) // 2])  # truncated: PDFium cannot count its pages
    write_pdf(docs / "short.pdf", ["A short note about gaskets."])
    monkeypatch.setattr(pipeline, "SPLIT_MIN_BYTES", 0)
    with KnowledgeBase.open(tmp_path / "kb", workers=2, **FAKE) as kb:
        report = kb.ingest([str(docs)])
        assert sorted(Path(s).name for s in report.added) == ["good.pdf", "short.pdf"]
        assert [(Path(f.source).name, f.reason.split(":")[0]) for f in report.failed] == [("bad.pdf", "unreadable PDF")]
        assert report.pages == 121


def test_a_long_scan_is_ocrd_range_by_range_on_the_workers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.test_ocr import page_image

    words = ["heron", "otter", "badger", "plover"]
    scan = tmp_path / "docs" / "scan.pdf"
    scan.parent.mkdir()
    images = [page_image([f"Scanned page {n}: the {w} was counted at dawn."]) for n, w in enumerate(words, start=1)]
    images[0].save(scan, "PDF", resolution=200, save_all=True, append_images=images[1:])
    monkeypatch.setattr(pipeline, "SPLIT_MIN_BYTES", 0)
    monkeypatch.setattr(pipeline, "SPLIT_PAGES", 2)
    with KnowledgeBase.open(tmp_path / "kb", workers=2, chunk_tokens=32, **FAKE) as kb:
        report = kb.ingest([str(scan.parent)])
        assert report.pages == 4 and not report.failed
        meta = kb.catalog.db.execute("SELECT json_extract(metadata, '$.ocr_pages') FROM documents").fetchone()[0]
        assert meta == "[1,2,3,4]"  # each range's pages, read by its worker, joined in order
        for n, word in enumerate(words, start=1):
            hit = kb.search(word, k=1, mode="keyword")[0]
            assert hit.page == n and f"the {word} was counted" in hit.text
