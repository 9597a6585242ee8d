"""OCR benchmark: pages of known text rendered to images, read back by kb's OCR, character error rate.

    python -m benchmarks.ocr [DOCS] [--pages N] [--seed S] [--dpi 150 300] [--json] [--out FILE]

DOCS (default ../shared/eval/sec-10q/docs) is a folder of PDFs with a text layer. A seeded sample of
pages spread across its files (round robin over the files in a shuffled order, a random page of each
that holds usable text) is rendered with pypdfium2 at each resolution, in grey, as kb renders a
scanned page, and read by `kb.ingest.formats.ocr.recognize` (tesseract). The reference is the page's own
text layer as pypdfium2 extracts it. Both sides are whitespace-normalised (every run of white space
one space); CER = Levenshtein edit distance / reference length, summed over the pages (rapidfuzz:
`pip install rapidfuzz`). pages/s counts rendering and OCR, one page at a time in one process, as a
kb worker does. The figures are written to benchmarks/results/ocr.json; benchmarks/OCR.md has them.

Reading order counts as error here: where tesseract reads a table column by column and the text layer
lists it row by row, the moved text is counted as deleted and inserted. Two figures set order aside:
`sorted_cer`, the same CER with each side's words sorted first (order gone; a misread word may then
cost up to twice its length, so it bounds misreading from above), and `word_recall`, the share of the
reference's words OCR found.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from benchmarks.ingest import _machine, save

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT.parent / "shared" / "eval" / "sec-10q" / "docs"
OUT = ROOT / "benchmarks" / "results" / "ocr.json"
MIN_CHARS = 200  # a sampled page holds at least this much text: a cover or blank page measures nothing


def normalised(text: str) -> str:
    return " ".join(text.split())


def reference_text(page: Any) -> str:
    textpage = page.get_textpage()
    try:
        return normalised(textpage.get_text_bounded())
    finally:
        textpage.close()


def sample(folder: Path, n: int, seed: int) -> list[tuple[Path, int, str]]:
    """`n` (file, page index, reference text) picks, spread over the files: round robin in a seeded order."""
    import pypdfium2 as pdfium

    from kb.ingest.formats.ocr import usable

    rng = random.Random(seed)
    files = sorted(folder.glob("*.pdf"))
    if not files:
        sys.exit(f"no PDF in {folder}")
    rng.shuffle(files)
    left = {f: None for f in files}  # file -> its untried page indices (filled on first visit)
    picks: list[tuple[Path, int, str]] = []
    order: dict[Path, list[int]] = {}
    while len(picks) < n and left:
        for f in list(left):
            if len(picks) >= n:
                break
            pdf = pdfium.PdfDocument(str(f))
            try:
                if f not in order:
                    order[f] = list(range(len(pdf)))
                    rng.shuffle(order[f])
                while order[f]:
                    index = order[f].pop()
                    text = reference_text(pdf[index])
                    if len(text) >= MIN_CHARS and usable(text):
                        picks.append((f, index, text))
                        break
                if not order[f]:
                    del left[f]
            finally:
                pdf.close()
    return picks


def render(path: Path, index: int, dpi: int) -> Any:
    import pypdfium2 as pdfium

    pdf = pdfium.PdfDocument(str(path))
    try:
        page = pdf[index]
        return page.render(scale=dpi / 72, grayscale=True).to_pil()
    finally:
        pdf.close()


def word_recall(reference: str, read: str) -> float:
    ref, got = Counter(reference.split()), Counter(read.split())
    return sum((ref & got).values()) / max(sum(ref.values()), 1)


def run(picks: list[tuple[Path, int, str]], dpi: int, quiet: bool) -> dict[str, Any]:
    from rapidfuzz.distance import Levenshtein

    from kb.ingest.formats import ocr

    ocr.configure("always", "eng")
    edits = sorted_edits = chars = 0
    render_s = ocr_s = 0.0
    pages: list[dict[str, Any]] = []
    for path, index, reference in picks:
        t = time.perf_counter()
        image = render(path, index, dpi)
        t1 = time.perf_counter()
        read = normalised(" ".join(ocr.recognize(image)))
        t2 = time.perf_counter()
        render_s += t1 - t
        ocr_s += t2 - t1
        distance = Levenshtein.distance(reference, read)
        unordered = Levenshtein.distance(" ".join(sorted(reference.split())), " ".join(sorted(read.split())))
        edits += distance
        sorted_edits += unordered
        chars += len(reference)
        pages.append({"file": path.name, "page": index + 1, "chars": len(reference), "edits": distance,
                      "cer": round(distance / len(reference), 4),
                      "sorted_cer": round(unordered / len(reference), 4), "word_recall": round(word_recall(reference, read), 4),
                      "seconds": round(t2 - t, 2)})
        if not quiet:
            print(f"  {dpi} dpi  {path.name} p.{index + 1}: CER {distance / len(reference):.2%}, "
                  f"{t2 - t:.1f} s", file=sys.stderr)
    seconds = render_s + ocr_s
    cers = sorted(p["cer"] for p in pages)
    return {
        "dpi": dpi, "pages": len(pages), "chars": chars, "edits": edits, "cer": round(edits / max(chars, 1), 4),
        "median_page_cer": cers[len(cers) // 2] if cers else None,
        "sorted_cer": round(sorted_edits / max(chars, 1), 4),
        "word_recall": round(sum(p["word_recall"] * p["chars"] for p in pages) / max(chars, 1), 4),
        "render_s": round(render_s, 2), "ocr_s": round(ocr_s, 2),
        "pages_per_s": round(len(pages) / seconds, 3) if seconds else None, "per_page": pages,
    }


def tesseract_version() -> str:
    import pytesseract

    return str(pytesseract.get_tesseract_version())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("docs", nargs="?", type=Path, default=DOCS, help="folder of PDFs with a text layer")
    parser.add_argument("--pages", type=int, default=20, help="pages sampled (spread over the files)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--dpi", type=int, nargs="+", default=[150, 300])
    parser.add_argument("--json", action="store_true", help="print the results as one JSON object")
    parser.add_argument("--out", type=Path, default=OUT, help="where the results are written")
    args = parser.parse_args(argv)
    try:
        import rapidfuzz  # noqa: F401
    except ImportError:
        sys.exit("benchmarks/ocr.py needs rapidfuzz for edit distances: pip install rapidfuzz")

    picks = sample(args.docs, args.pages, args.seed)
    results = {"docs": str(args.docs), "seed": args.seed, "sample": [f"{p.name} p.{i + 1}" for p, i, _ in picks],
               "tesseract": tesseract_version(), "runs": [run(picks, dpi, args.json) for dpi in args.dpi]}
    results["machine"] = _machine()
    results["command"] = "python -m benchmarks.ocr " + " ".join(argv if argv is not None else sys.argv[1:])
    if save(results, args.out, args.json):
        return
    m = results["machine"]
    print(f"{len(picks)} pages of {len({p for p, _, _ in picks})} files in {args.docs}, tesseract {results['tesseract']}")
    print(f"{'dpi':>5} {'CER':>7} {'median':>7} {'sorted':>7} {'words':>7} {'pages/s':>8} {'render s':>9} {'OCR s':>7}")
    for r in results["runs"]:
        print(f"{r['dpi']:>5} {r['cer']:>7.2%} {r['median_page_cer']:>7.2%} {r['sorted_cer']:>7.2%} {r['word_recall']:>7.1%} "
              f"{r['pages_per_s']:>8.2f} {r['render_s']:>9.1f} {r['ocr_s']:>7.1f}")
    print(f"machine: {m['cpu']}, {m['cores']} cores, load {m['load_1m']} at the end; written to {args.out}")


if __name__ == "__main__":
    main()
