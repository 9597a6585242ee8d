"""`kb ask` scored as a reader would: is the figure right, is the right source cited, does it refuse
what the documents cannot answer, and only that?

    python -m benchmarks.answers --kb /work/kbcache/sec10q --fb-kb /work/kbcache/fb             # extractive
    python -m benchmarks.answers --kb /work/kbcache/sec10q --fb-kb /work/kbcache/fb --llm llama-cpp

The four figures, each over the questions named:
(a) gold figure in the answer: sec-10q single-filing questions whose Answer holds an amount
    (`figures`: $, %, a scale word or thousands separators), and financebench-dev (its `answer`);
(b) a gold source cited: sec-10q, the question's filing; financebench-dev, its file and one of its
    evidence pages;
(c) "not found" on benchmarks/sec10q_unanswerable.jsonl: companies, products and periods the
    sec-10q filings do not hold (near misses included: a quarter of a company that is there);
(d) answerable questions wrongly refused: sec-10q single-filing and financebench-dev questions
    answered "not found".

The knowledge bases are only read (ingest them first with `kb ingest`). One JSON object on stdout,
progress on stderr.
"""

from __future__ import annotations

import argparse
import csv
import fnmatch
import json
import os
import re
import statistics
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
EVAL = Path(os.environ.get("KB_EVAL_DIR", REPO.parent / "shared" / "eval"))
UNANSWERABLE = REPO / "benchmarks" / "sec10q_unanswerable.jsonl"


def log(*args: Any) -> None:
    print(*args, file=sys.stderr, flush=True)


def figures(answer: str) -> list[Any]:
    """The gold answer's amounts: figures with a currency sign, a percent sign or a scale word, or
    written with thousands separators ("$81,797 million", "34.9%", "102,673,000"); not years, note
    numbers, list numbers or the page of a "SOURCE(S):" line."""
    from kb.answer.citations import find_numbers

    answer = re.sub(r"\(?SOURCES?(?:\(S\))?:.*", "", answer, flags=re.DOTALL)
    return [n for n in find_numbers(answer)
            if n.scale is not None or re.search(r"[$€£%]|\d,\d{3}", n.text)]


def short_answer_figures(answer: str) -> list[Any]:
    """Every figure of a short gold answer ("0.66", "$1,577.00", "65.4%") but years."""
    from kb.answer.citations import find_numbers

    return [n for n in find_numbers(answer) if not (1990 <= n.value <= 2030 and n.scale is None and "." not in n.text)]


def sec10q_questions() -> list[dict[str, Any]]:
    with open(EVAL / "sec-10q" / "questions.csv", encoding="utf-8-sig") as f:
        rows = list(csv.DictReader(f))
    return [{"question": r["Question"], "files": [r["Source Docs"].strip()], "pages": None, "answer": r["Answer"],
             "figures": figures}
            for r in rows if re.fullmatch(r"\*20\d\d Q\d [A-Z]+\*", r["Source Docs"].strip())]


def financebench_questions() -> list[dict[str, Any]]:
    with open(EVAL / "financebench-dev" / "questions.jsonl", encoding="utf-8") as f:
        rows = [json.loads(line) for line in f if line.strip()]
    return [{"question": r["question"], "files": r["sources"], "pages": r.get("pages"), "answer": r["answer"],
             "figures": short_answer_figures}
            for r in rows]


def score(kb: Any, questions: list[dict[str, Any]], llm: Any, k: int, label: str) -> list[dict[str, Any]]:
    from kb.answer.citations import find_numbers, number_supported

    rows = []
    for i, q in enumerate(questions, 1):
        t0 = time.perf_counter()
        ans = kb.ask(q["question"], k=k, llm=llm, temperature=0.0, max_tokens=200)
        elapsed = time.perf_counter() - t0
        refused = ans.mode == "not_found"
        row: dict[str, Any] = {"question": q["question"], "mode": ans.mode, "refused": refused,
                               "seconds": round(elapsed, 2), "answer": ans.answer[:400], "llm_error": ans.llm_error}
        if q.get("files"):
            cited = [(os.path.basename(c.source), c.page, c.page_end) for c in ans.citations]
            right_file = [c for c in cited if any(fnmatch.fnmatch(c[0], p) for p in q["files"])]
            row["cites_gold_file"] = bool(right_file)
            if q.get("pages"):
                row["cites_gold_page"] = any(p is not None and any(p <= g <= (e or p) for g in q["pages"])
                                             for _, p, e in right_file)
            gold = q["figures"](q["answer"])
            if gold:
                said = find_numbers(ans.answer)
                row["gold_figure_in_answer"] = any(number_supported(g, said) for g in gold)
            row["cited"] = cited[:4]
        rows.append(row)
        log(f"[{label} {i}/{len(questions)}] {ans.mode:10} file={row.get('cites_gold_file')!s:5} "
            f"figure={row.get('gold_figure_in_answer')!s:5} {elapsed:.1f}s  {q['question'][:60]}")
    return rows


def share(rows: list[dict[str, Any]], key: str) -> dict[str, Any]:
    values = [r[key] for r in rows if r.get(key) is not None]
    return {"share": round(sum(values) / len(values), 3) if values else None, "n": len(values), "yes": sum(values)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kb", required=True, help="knowledge base of ../shared/eval/sec-10q (only read)")
    ap.add_argument("--fb-kb", help="knowledge base of ../shared/eval/financebench-dev (only read)")
    ap.add_argument("--llm", default="none", help="none (extractive), llama-cpp, openai, ...")
    ap.add_argument("--model", help="the LLM's model (GGUF path, server model name)")
    ap.add_argument("-k", type=int, default=5)
    ap.add_argument("--limit", type=int, default=0, help="at most this many questions of each set (0: all)")
    ap.add_argument("--rows", action="store_true", help="print every question's row, not only the summary")
    args = ap.parse_args()
    from benchmarks.ingest import _machine
    from kb import KnowledgeBase

    llm: Any = "none"
    if args.llm != "none":
        from kb.llm import create_llm

        llm = create_llm(args.llm, model=args.model)

    def cut(xs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        if not args.limit or len(xs) <= args.limit:
            return xs
        step = len(xs) / args.limit  # spread over the set: every company, every quarter
        return [xs[int(i * step)] for i in range(args.limit)]

    started = time.perf_counter()
    with KnowledgeBase.open(args.kb) as kb:
        sec = score(kb, cut(sec10q_questions()), llm, args.k, "sec-10q")
        with open(UNANSWERABLE, encoding="utf-8") as f:
            absent = [json.loads(line) for line in f if line.strip()]
        none = score(kb, cut(absent), llm, args.k, "unanswerable")
    fb: list[dict[str, Any]] = []
    if args.fb_kb:
        with KnowledgeBase.open(args.fb_kb) as kb:
            fb = score(kb, cut(financebench_questions()), llm, args.k, "financebench")
    summary = {
        "llm": getattr(llm, "name", None) or "none (extractive)",
        "machine": _machine(),
        "a_gold_figure_in_answer": {"sec10q": share(sec, "gold_figure_in_answer"),
                                    "financebench": share(fb, "gold_figure_in_answer")},
        "b_gold_source_cited": {"sec10q_file": share(sec, "cites_gold_file"),
                                "financebench_file": share(fb, "cites_gold_file"),
                                "financebench_page": share(fb, "cites_gold_page")},
        "c_unanswerable_not_found": share(none, "refused"),
        "d_answerable_refused": {"sec10q": share(sec, "refused"), "financebench": share(fb, "refused")},
        "llm_errors": sum(bool(r["llm_error"]) for r in sec + none + fb),
        "median_seconds": statistics.median(r["seconds"] for r in sec + none + fb),
        "total_s": round(time.perf_counter() - started, 1),
    }
    out: dict[str, Any] = {"summary": summary}
    if args.rows:
        out["rows"] = {"sec10q": sec, "unanswerable": none, "financebench": fb}
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
