"""A question set's folder with meaningless file names, and its questions pointed at them.

    python -m benchmarks.renamed DOCS QUESTIONS OUT    # OUT/docs/doc-XXXXXXXX.pdf ..., OUT/questions.jsonl

What a knowledge base knows of a document from its file name ("AAPL", "2023 Q3", "10K") it must read
from the text when the names say nothing, as in most users' folders ("scan0042.pdf", "report (3).pdf").
Each file is linked (a hard link where it can be, else a copy) as `doc-` and 8 hex digits of the md5 of
its old name; each question keeps its half (`split`), read from its old first source as
`benchmarks.splits` does, and its sources become the new names its old globs matched. So

    python -m benchmarks.renamed ../shared/eval/financebench-dev/docs /tmp/splits/f_pages.jsonl /tmp/fx
    kb ingest /tmp/fx/docs --kb /tmp/fx-kb && kb eval /tmp/fx/questions.jsonl --kb /tmp/fx-kb --split tune

measures the same questions with and without what the file names tell.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
from pathlib import Path

from benchmarks.mixed import split_of


def new_name(old: str) -> str:
    return f"doc-{hashlib.md5(old.encode()).hexdigest()[:8]}{Path(old).suffix.lower()}"


def write(docs: Path, questions: Path, out: Path) -> tuple[int, int]:
    """Link the files, rewrite the questions; (files, questions) written."""
    from kb.query.evaluate import load_gold

    target = out / "docs"
    target.mkdir(parents=True, exist_ok=True)
    names = sorted(p.name for p in docs.iterdir() if p.is_file())
    for name in names:
        dest = target / new_name(name)
        if not dest.exists():
            try:
                os.link(docs / name, dest)
            except OSError:
                shutil.copy2(docs / name, dest)
    rows = []
    for q in load_gold(questions):
        row = {"question": q.question, "split": split_of(q.sources[0]),
               "sources": [new_name(n) for n in names if q.matches(n)]}
        if q.pages is not None:
            row["pages"] = q.pages
        rows.append(row)
    (out / "questions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return len(names), len(rows)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.renamed", description=__doc__.splitlines()[0])
    ap.add_argument("docs", type=Path)
    ap.add_argument("questions", type=Path)
    ap.add_argument("out", type=Path)
    args = ap.parse_args(argv)
    files, questions = write(args.docs, args.questions, args.out)
    print(f"{args.out / 'docs'}: {files} files; {args.out / 'questions.jsonl'}: {questions} questions")
    return 0


if __name__ == "__main__":
    sys.exit(main())
