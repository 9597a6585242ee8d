"""Check benchmarks/ntsb_nih_pages.jsonl against the PDFs: every evidence quote is on a gold page of its
document and on no other page of that document, every gold page holds one of the entry's quotes, and
each quote is 5-15 words. Exit status 1 with the failures listed.

    python benchmarks/check_ntsb_nih_pages.py [../shared/eval]

How the page gold was made: every page of the 20 NTSB reports and of the NIH protocols was read
(pypdfium2 text, the layer kb indexes); for each question the page that states the answer was
picked and a 5-15 word phrase of that page that carries the answer was copied as `evidence`.
This script then proves each phrase is on the gold page(s) only (whitespace-normalised,
case-insensitive), so a hit on any other page of the document cannot hold the quoted answer. A
question whose answer is printed on two pages lists both, with a quote for each. Pages are 1-based
PDF page numbers, as kb cites them. `answer`, `evidence` and `set` are extra keys: `kb eval` reads
question, sources and pages and keeps the rest only for its reports.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
GOLD = HERE / "ntsb_nih_pages.jsonl"
EVAL = HERE.parent.parent / "shared" / "eval"
SETS = ("ntsb", "nih")
MIN_DOCS = 15


def norm(text: str) -> str:
    return " ".join(text.split()).casefold()


def page_texts(pdf: Path) -> list[str]:
    import pypdfium2 as pdfium

    doc = pdfium.PdfDocument(str(pdf))
    try:
        return [norm(doc[i].get_textpage().get_text_range()) for i in range(len(doc))]
    finally:
        doc.close()


def main(root: Path) -> int:
    texts: dict[Path, list[str]] = {}
    failures: list[str] = []
    entries = [json.loads(line) for line in GOLD.read_text(encoding="utf-8").splitlines() if line.strip()]
    docs: dict[str, set[str]] = {s: set() for s in SETS}
    for n, entry in enumerate(entries, 1):
        where = f"line {n} ({entry['question'][:70]})"
        if entry.get("set") not in SETS or len(entry["sources"]) != 1:
            failures.append(f"{where}: needs set in {SETS} and exactly one source")
            continue
        name = entry["sources"][0]
        docs[entry["set"]].add(name)
        pdf = root / entry["set"] / name
        if not pdf.is_file():
            failures.append(f"{where}: no file {pdf}")
            continue
        if pdf not in texts:
            texts[pdf] = page_texts(pdf)
        pages = texts[pdf]
        gold = entry["pages"]
        if not gold or any(not 1 <= p <= len(pages) for p in gold):
            failures.append(f"{where}: gold pages {gold} outside 1-{len(pages)} of {name}")
            continue
        quotes = entry.get("evidence") or []
        if not quotes or not str(entry.get("answer", "")).strip():
            failures.append(f"{where}: needs an answer and at least one evidence quote")
        for quote in quotes:
            words = len(quote.split())
            if not 5 <= words <= 15:
                failures.append(f"{where}: quote of {words} words (5-15): {quote!r}")
            q = norm(quote)
            on = [p for p, text in enumerate(pages, 1) if q in text]
            if not set(on) & set(gold):
                failures.append(f"{where}: {quote!r} is on no gold page {gold} of {name} (found on {on or 'none'})")
            outside = [p for p in on if p not in gold]
            if outside:
                failures.append(f"{where}: {quote!r} is also on page(s) {outside} of {name}, outside gold {gold}")
        for p in gold:
            if not any(norm(quote) in pages[p - 1] for quote in quotes):
                failures.append(f"{where}: gold page {p} of {name} holds none of the quotes")
    for s in SETS:
        if len(docs[s]) < MIN_DOCS:
            failures.append(f"set {s}: questions over {len(docs[s])} documents, fewer than {MIN_DOCS}")
    for failure in failures:
        print(failure)
    counts = ", ".join(f"{s} {sum(e.get('set') == s for e in entries)} over {len(docs[s])} documents" for s in SETS)
    print(f"{len(entries)} questions ({counts}), {len(failures)} failure(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]) if len(sys.argv) > 1 else EVAL))
