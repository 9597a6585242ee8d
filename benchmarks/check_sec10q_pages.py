"""Check benchmarks/sec10q_pages.jsonl against the filings: every gold page prints one of the entry's
evidence figures, every figure is on a gold page, and no other page of the filing prints them all.

    python benchmarks/check_sec10q_pages.py [../shared/eval/sec-10q/docs]

How the page gold was made: for single-filing questions of sec-10q/questions.csv whose reference
answer quotes figures, the filing's pages were searched (pypdf text) for those figures and each
candidate page was read to confirm it states the answer (the income statement, the note, or the
MD&A table that carries it). Pages are 1-based PDF page numbers, as `kb` cites them.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
GOLD = HERE / "sec10q_pages.jsonl"
DOCS = HERE.parent.parent / "shared" / "eval" / "sec-10q" / "docs"


def page_texts(pdf: Path) -> list[str]:
    from pypdf import PdfReader, apply_configuration

    # Two Microsoft filings exceed pypdf's default safety limits.
    with apply_configuration(array_maximum_element_count=5_000_000, dictionary_maximum_element_count=5_000_000,
                             stream_parsing_work_maximum_count=50_000_000):
        return [" ".join((p.extract_text() or "").split()) for p in PdfReader(pdf).pages]


def main(docs: Path) -> int:
    import logging

    logging.getLogger("pypdf").setLevel(logging.ERROR)
    texts: dict[str, list[str]] = {}
    problems = 0
    entries = [json.loads(line) for line in GOLD.read_text(encoding="utf-8").splitlines() if line.strip()]
    for entry in entries:
        name = entry["sources"][0].strip("*") + ".pdf"
        if name not in texts:
            texts[name] = page_texts(docs / name)
        pages = texts[name]
        gold = entry["pages"]
        for page in gold:
            if not any(f in pages[page - 1] for f in entry["evidence"]):
                print(f"page {page} of {name} holds none of {entry['evidence']}: {entry['question']}")
                problems += 1
        for figure in entry["evidence"]:
            if not any(figure in pages[p - 1] for p in gold):
                print(f"{figure} is on no gold page of {name}: {entry['question']}")
                problems += 1
        others = [n for n, text in enumerate(pages, 1) if n not in gold and all(f in text for f in entry["evidence"])]
        if others:
            print(f"note: {name} pages {others} also print {entry['evidence']} ({entry['question'][:60]})")
    print(f"{len(entries)} entries, {problems} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]) if len(sys.argv) > 1 else DOCS))
