"""Parse speed per file format: each format's parser and the chunker (the stage that differs by format;
embedding costs the same per chunk whatever the format, see benchmarks/ingest.py).

    python -m benchmarks.formats [--scale 1] [--repeat 3] [--json]

Builds, with the format libraries, one document per format holding the same prose (about 40 pages of
it), plus a 5,000-row sheet for the spreadsheet formats, then times `kb.ingest.worker.prepare` (parse +
chunk with the default model's tokenizer) on each, best of `--repeat`, in this process. Formats that
need a tool this machine lacks (LibreOffice for the legacy binaries is only used to make fixtures; the
test fixtures stand in) come from tests/fixtures/formats. Prints the CPU; writes
benchmarks/results/formats.json.
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import tempfile
import time
from collections.abc import Callable
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from benchmarks.ingest import _machine, save

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures" / "formats"
WORDS = ("ledger", "harbour", "turbine", "invoice", "quarterly", "sensor", "protocol", "variance", "audit", "cohort",
         "margin", "payload", "runway", "reactor", "shipment", "backlog", "forecast", "tariff", "yield", "cluster")


def prose(n: int) -> list[str]:
    """`n` paragraphs of ~90 words each, varied so that no two chunks are alike."""
    out = []
    for i in range(n):
        words = [WORDS[(i * 7 + j * 3) % len(WORDS)] for j in range(90)]
        out.append(f"Paragraph {i}. " + " ".join(words).capitalize() + ".")
    return out


def rows(n: int) -> list[list[Any]]:
    return [["Region", "Product", "Units", "Revenue", "Owner"]] + [
        [f"Region {i % 17}", f"{WORDS[i % len(WORDS)]} kit", i * 3 % 1000, round(i * 1.37, 2), f"Team {i % 9}"]
        for i in range(1, n + 1)]


def make_pdf(p: Path, paras: list[str]) -> None:
    from reportlab.lib.pagesizes import letter
    from reportlab.lib.styles import getSampleStyleSheet
    from reportlab.platypus import Paragraph, SimpleDocTemplate

    style = getSampleStyleSheet()["BodyText"]
    SimpleDocTemplate(str(p), pagesize=letter).build([Paragraph(t, style) for t in paras])


def make_docx(p: Path, paras: list[str]) -> None:
    import docx

    d = docx.Document()
    for i, t in enumerate(paras):
        if i % 10 == 0:
            d.add_heading(f"Section {i // 10}", level=1)
        d.add_paragraph(t)
    d.save(str(p))


def make_pptx(p: Path, paras: list[str]) -> None:
    from pptx import Presentation

    deck = Presentation()
    for i in range(0, len(paras), 2):
        slide = deck.slides.add_slide(deck.slide_layouts[1])
        slide.shapes.title.text = f"Slide about {WORDS[i % len(WORDS)]}"
        slide.placeholders[1].text = "\n".join(paras[i : i + 2])
    deck.save(str(p))


def make_xlsx(p: Path, table: list[list[Any]]) -> None:
    import openpyxl

    wb = openpyxl.Workbook(write_only=True)
    ws = wb.create_sheet("Sales")
    for r in table:
        ws.append(r)
    wb.save(str(p))


def make_csv(p: Path, table: list[list[Any]], delimiter: str = ",") -> None:
    with open(p, "w", newline="") as f:
        csv.writer(f, delimiter=delimiter).writerows(table)


def make_eml(p: Path, paras: list[str], pdf: Path) -> None:
    m = EmailMessage()
    m["From"], m["To"], m["Subject"] = "Ada <ada@example.org>", "team@example.org", "Weekly report"
    m["Date"] = "Tue, 02 May 2023 09:15:00 +0200"
    m.set_content("\n\n".join(paras[:5]))
    m.add_attachment(pdf.read_bytes(), maintype="application", subtype="pdf", filename="report.pdf")
    p.write_bytes(bytes(m))


def make_epub(p: Path, paras: list[str]) -> None:
    from ebooklib import epub

    book = epub.EpubBook()
    book.set_identifier("bench")
    book.set_title("Bench book")
    book.set_language("en")
    chapters = []
    for c in range(0, len(paras), 20):
        ch = epub.EpubHtml(title=f"Chapter {c // 20 + 1}", file_name=f"ch{c}.xhtml", lang="en")
        ch.content = f"<h1>Chapter {c // 20 + 1}</h1>" + "".join(f"<p>{t}</p>" for t in paras[c : c + 20])
        book.add_item(ch)
        chapters.append(ch)
    book.toc = chapters
    book.spine = chapters
    book.add_item(epub.EpubNcx())
    book.add_item(epub.EpubNav())
    epub.write_epub(str(p), book)


def make_odt(p: Path, paras: list[str]) -> None:
    from odf.opendocument import OpenDocumentText
    from odf.text import H, P

    doc = OpenDocumentText()
    for i, t in enumerate(paras):
        if i % 10 == 0:
            doc.text.addElement(H(outlinelevel=1, text=f"Section {i // 10}"))
        doc.text.addElement(P(text=t))
    doc.save(str(p))


def make_text(p: Path, paras: list[str], kind: str) -> None:
    heading = {"md": lambda i: f"# Section {i}", "rst": lambda i: f"Section {i}\n{'=' * (8 + len(str(i)))}",
               "org": lambda i: f"* Section {i}", "txt": lambda i: f"Section {i}"}[kind]
    parts = []
    for i, t in enumerate(paras):
        if i % 10 == 0:
            parts.append(heading(i // 10))
        parts.append(t)
    p.write_text("\n\n".join(parts) + "\n")


def make_html(p: Path, paras: list[str]) -> None:
    body = "".join((f"<h1>Section {i // 10}</h1>" if i % 10 == 0 else "") + f"<p>{t}</p>" for i, t in enumerate(paras))
    p.write_text(f"<html><head><title>Bench</title></head><body>{body}</body></html>")


def make_rtf(p: Path, paras: list[str]) -> None:
    p.write_text("{\\rtf1\\ansi\\deff0 " + "".join(f"{t}\\par\n" for t in paras) + "}")


def make_json(p: Path, paras: list[str]) -> None:
    p.write_text(json.dumps({"sections": [{"name": f"Section {i}", "body": t} for i, t in enumerate(paras)]}))


def build(folder: Path, scale: int) -> dict[str, Path]:
    """One file per format in `folder`; name -> path."""
    paras = prose(200 * scale)  # ~18,000 words: about 40 pages of a PDF
    table = rows(5000 * scale)
    made: dict[str, Path] = {}
    makers: dict[str, tuple[str, Callable[[Path], None]]] = {
        "pdf": ("doc.pdf", lambda p: make_pdf(p, paras)),
        "docx": ("doc.docx", lambda p: make_docx(p, paras)),
        "markdown": ("doc.md", lambda p: make_text(p, paras, "md")),
        "html": ("doc.html", lambda p: make_html(p, paras)),
        "text": ("doc.txt", lambda p: make_text(p, paras, "txt")),
        "json": ("doc.json", lambda p: make_json(p, paras)),
        "pptx": ("deck.pptx", lambda p: make_pptx(p, paras)),
        "xlsx": ("sheet.xlsx", lambda p: make_xlsx(p, table)),
        "csv": ("sheet.csv", lambda p: make_csv(p, table)),
        "tsv": ("sheet.tsv", lambda p: make_csv(p, table, "\t")),
        "epub": ("book.epub", lambda p: make_epub(p, paras)),
        "odt": ("doc.odt", lambda p: make_odt(p, paras)),
        "rtf": ("doc.rtf", lambda p: make_rtf(p, paras)),
        "rst": ("doc.rst", lambda p: make_text(p, paras, "rst")),
        "org": ("doc.org", lambda p: make_text(p, paras, "org")),
    }
    for name, (file, make) in makers.items():
        made[name] = folder / file
        make(made[name])
    make_eml(folder / "mail.eml", paras, made["pdf"])
    made["eml (+ its pdf)"] = folder / "mail.eml"
    for fixture in sorted(FIXTURES.glob("*")):  # formats made with LibreOffice, which CI lacks
        kind = fixture.suffix.lstrip(".").lower()
        if kind in ("doc", "ppt", "xls", "ods", "msg") and f"{kind} (fixture)" not in made:
            made[f"{kind} (fixture)"] = shutil.copy(fixture, folder / fixture.name)
    import pypdfium2 as pdfium

    pdf = pdfium.PdfDocument(str(made["pdf"]))
    pdf[0].render(scale=300 / 72, grayscale=True).to_pil().save(folder / "scan.png")  # a 300 dpi scan
    pdf.close()
    made["png (OCR, 300 dpi)"] = folder / "scan.png"
    return made


def measure(files: dict[str, Path], repeat: int) -> dict[str, dict[str, Any]]:
    from kb.ingest.worker import prepare

    spec = _spec()
    out: dict[str, dict[str, Any]] = {}
    for name, path in files.items():
        best, got = float("inf"), None
        for _ in range(repeat):
            start = time.perf_counter()
            got = prepare(str(path), spec)
            best = min(best, time.perf_counter() - start)
        assert got is not None
        if got.error:
            out[name] = {"error": got.error}
            continue
        flat = [got, *got.parts]
        units = sum(p.pages or 0 for p in flat)
        chunks = sum(len(p.chunks) for p in flat)
        mb = path.stat().st_size / 1e6
        out[name] = {"seconds": round(best, 3), "mb": round(mb, 3), "units": units, "chunks": chunks,
                     "unit": got.metadata.get("unit", "page"), "mb_per_s": round(mb / best, 2),
                     "chunks_per_s": round(chunks / best, 1), "units_per_s": round(units / best, 1) if units else None}
    return out


def _spec() -> Any:
    """The chunking the default settings and model get."""
    from kb.config import Settings
    from kb.embed import make_embedder
    from kb.embed.base import tokenizer_file
    from kb.ingest.worker import ChunkSpec

    settings = Settings()
    embedder = make_embedder(settings.model, backend=settings.backend, device="cpu")
    folder = Path(tempfile.mkdtemp(prefix="kb-bench-tok-"))
    return ChunkSpec(tokenizer_file(embedder, folder), settings.chunk_tokens, settings.chunk_overlap,
                     embedder.max_seq_length)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--scale", type=int, default=1, help="multiply the documents' length")
    ap.add_argument("--repeat", type=int, default=3, help="best of N timings per file")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="kb-formats-") as tmp:
        files = build(Path(tmp), args.scale)
        results = measure(files, args.repeat)
    report = {"machine": _machine(), "command": f"python -m benchmarks.formats --scale {args.scale} --repeat {args.repeat}",
              "results": results}
    if save(report, ROOT / "benchmarks" / "results" / "formats.json", args.json):
        return 0
    m = report["machine"]
    print(f"CPU: {m['cpu']} ({m['cores']} cores, load {m['load_1m']})")
    print(f"{'format':<20}{'MB':>8}{'units':>8}{'unit':>9}{'chunks':>8}{'s':>8}{'MB/s':>8}{'units/s':>9}{'chunks/s':>10}")
    for name, r in results.items():
        if "error" in r:
            print(f"{name:<20}  error: {r['error']}")
            continue
        print(f"{name:<20}{r['mb']:>8.2f}{r['units'] or '-':>8}{r['unit'] if r['units'] else '-':>9}{r['chunks']:>8}{r['seconds']:>8.2f}"
              f"{r['mb_per_s']:>8.2f}{r['units_per_s'] or '-':>9}{r['chunks_per_s']:>10.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
