"""The tune and validate halves of every question set, written once so every run uses the same ones.

    python -m benchmarks.splits OUT    # OUT/{s_doc,s_pages,f_pages,n_pages}.jsonl, each line with "split"

A question's half is the md5 parity of its first source glob (`benchmarks.mixed.split_of`): all the
questions of one document (or one company's filings, for sec-10q's multi-filing questions) are in the
same half, so a rule that learned a document's wording on tune cannot pass validate by it. Decide on
tune (`kb eval OUT/s_doc.jsonl --split tune`), report validate. The protocol: benchmarks/RETRIEVAL.md.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from benchmarks.mixed import EVAL, ROOT, split_of

# name -> the question file it splits (the shared sets as they are, and the page gold kept here)
SETS = {
    "s_doc": EVAL / "sec-10q" / "questions.csv",
    "s_pages": ROOT / "benchmarks" / "sec10q_pages.jsonl",
    "f_pages": EVAL / "financebench-dev" / "questions.jsonl",
    "n_pages": ROOT / "benchmarks" / "ntsb_nih_pages.jsonl",
}


def write(out: Path) -> dict[str, tuple[int, int]]:
    """Write each set with its split; (tune, validate) counts per set."""
    from kb.query.evaluate import load_gold

    out.mkdir(parents=True, exist_ok=True)
    counts = {}
    for name, path in SETS.items():
        rows = []
        for q in load_gold(path):
            row = {"question": q.question, "sources": q.sources, "split": split_of(q.sources[0])}
            if q.pages is not None:
                row["pages"] = q.pages
            rows.append(row)
        (out / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        tune = sum(r["split"] == "tune" for r in rows)
        counts[name] = (tune, len(rows) - tune)
    return counts


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.splits", description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path)
    args = ap.parse_args(argv)
    for name, (tune, validate) in write(args.out).items():
        print(f"{args.out / name}.jsonl: {tune} tune, {validate} validate")
    return 0


if __name__ == "__main__":
    sys.exit(main())
