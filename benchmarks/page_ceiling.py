"""How far page recall could go if the right document were always found: each question is searched
within its gold document only (a path filter), so that what is left is the ranking of that document's
pages. Page recall@k per mode, and for "any": a question that one of the modes gets right.

    python -m benchmarks.page_ceiling benchmarks/sec10q_pages.jsonl --kb KB [--k 5]

A page hit is a top-k passage whose page span overlaps a gold page, as `kb eval` counts it. Questions
whose gold names more than one document are skipped.
"""

from __future__ import annotations

import argparse
import sys

MODES = ("dense", "keyword", "hybrid")


def main(argv: list[str] | None = None) -> int:
    from kb.api import KnowledgeBase
    from kb.filters import Filters
    from kb.query.evaluate import judge, load_gold

    parser = argparse.ArgumentParser(prog="python -m benchmarks.page_ceiling", description=__doc__.split("\n\n")[0])
    parser.add_argument("gold", help="a kb eval gold file with pages")
    parser.add_argument("--kb", required=True, help="the knowledge base to search")
    parser.add_argument("--k", type=int, default=5)
    args = parser.parse_args(argv)

    questions = [q for q in load_gold(args.gold) if q.pages and len(q.sources) == 1]
    hits = {mode: 0 for mode in (*MODES, "any")}
    with KnowledgeBase.open(args.kb) as kb:
        for q in questions:
            only = Filters(path=q.sources[0])
            found = {mode: judge(q, kb.search(q.question, args.k, filters=only, mode=mode)).page_rank is not None
                     for mode in MODES}
            for mode, ok in found.items():
                hits[mode] += ok
            hits["any"] += any(found.values())
    n = max(len(questions), 1)
    print(f"{args.gold}: {len(questions)} single-document questions, searched within their gold document")
    print("  ".join(f"{mode} page R@{args.k} {hits[mode] / n:.3f}" for mode in hits))
    return 0


if __name__ == "__main__":
    sys.exit(main())
