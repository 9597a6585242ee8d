"""A long PDF is read by page ranges across the parser workers and joined in order: the document is
the one a single reader makes (same chunks, pages and sections, sections carried across ranges), a
scanned range is OCR'd by its own worker, and a failing range fails the file with its reason."""

from __future__ import annotations

from pathlib import Path

import pytest

import kb.ingest.pipeline as pipeline
from kb.api import KnowledgeBase
from tests.helpers import FAKE, needs_tesseract, write_pdf


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


@pytest.mark.slow
@needs_tesseract
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


@pytest.mark.slow
def test_parser_workers_end_when_their_ingest_is_killed(tmp_path: Path) -> None:
    """`kill -9` of an ingest cannot shut its pool down; its workers must not linger for ever."""
    import os
    import signal
    import subprocess
    import sys
    import time

    docs = tmp_path / "docs"
    for n in range(400):
        write_pdf(docs / f"note{n:03}.pdf", [f"Note {n} about the pump schedule."])
    script = ("import sys\nfrom kb.api import KnowledgeBase\nfrom tests.helpers import FAKE\n"
              "if __name__ == '__main__':\n"
              "    with KnowledgeBase.open(sys.argv[1], workers=2, **FAKE) as kb:\n"
              "        kb.ingest([sys.argv[2]])\n")
    (tmp_path / "run.py").write_text(script)
    root = Path(__file__).resolve().parents[1]
    proc = subprocess.Popen([sys.executable, str(tmp_path / "run.py"), str(tmp_path / "kb"), str(docs)], cwd=root,
                            env={**os.environ, "PYTHONPATH": str(root)})

    def workers() -> list[int]:
        out = subprocess.run(["pgrep", "-f", "multiprocessing.spawn"], capture_output=True, text=True).stdout
        return [int(p) for p in out.split() if int(p) != proc.pid and _parent_chain_has(int(p), proc.pid)]

    deadline = time.monotonic() + 60
    while not workers():
        assert proc.poll() is None and time.monotonic() < deadline, "no parser worker started"
        time.sleep(0.1)
    started = workers()
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    deadline = time.monotonic() + 15
    while any(os.path.exists(f"/proc/{p}") and _state(p) != "Z" for p in started):
        assert time.monotonic() < deadline, f"workers {started} outlived their killed parent"
        time.sleep(0.2)


def _parent_chain_has(pid: int, ancestor: int) -> bool:
    for _ in range(5):
        try:
            pid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            return False
        if pid == ancestor:
            return True
    return False


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return "gone"


@pytest.mark.slow
def test_a_lone_pdf_that_crashes_its_parser_is_one_failure_not_a_dead_process(tmp_path: Path) -> None:
    """PDFium is native code reading untrusted files: even one PDF alone is parsed in a worker, so a
    crash there (here: SIGKILL at a failpoint) costs that file, not the `kb` process (or a server)."""
    import json
    import os
    import subprocess
    import sys

    pdf = write_pdf(tmp_path / "docs" / "odd.pdf", ["A page PDFium will not finish reading."])
    kb = Path(sys.executable).with_name("kb")
    env = {**os.environ, "KB_FAILPOINT": "pdf.read:kill", "KB_DIR": str(tmp_path / "kb")}
    result = subprocess.run([str(kb), "ingest", str(pdf), "--json"], env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 1, result.stderr[-2000:]
    failed = json.loads(result.stdout)["failed"]
    assert [(Path(f["source"]).name, f["reason"]) for f in failed] == [("odd.pdf", "parser crashed on this file")]
