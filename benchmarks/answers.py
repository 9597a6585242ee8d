"""`kb ask` scored as a reader would: is the figure right, is the right source cited, does it refuse
what the documents cannot answer, and only that?

    python -m benchmarks.answers --kb /work/kbcache/sec10q --fb-kb /work/kbcache/fb             # extractive
    python -m benchmarks.answers --kb /work/kbcache/sec10q --fb-kb /work/kbcache/fb --llm llama-cpp

The four figures, each over the questions named, scored by `kb eval --answers` (kb/answer/evaluate.py):
(a) gold figure on the answer's first line, and anywhere in it: sec-10q single-filing questions whose
    Answer holds an amount (`gold_figures`: $, %, a scale word or thousands separators), and
    financebench-dev (its short `answer`: every figure but years);
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
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from kb.answer.evaluate import AnswerQuestion, AnswerRow, evaluate_answers, gold_files, load_answers  # noqa: E402
from kb.answer.types import Answer  # noqa: E402

EVAL = Path(os.environ.get("KB_EVAL_DIR", REPO.parent / "shared" / "eval"))
UNANSWERABLE = REPO / "benchmarks" / "sec10q_unanswerable.jsonl"


def log(*args: Any) -> None:
    print(*args, file=sys.stderr, flush=True)


def sec10q_questions(kb: Any) -> list[AnswerQuestion]:
    """sec-10q's questions whose gold names one filing of `kb` (those naming several are not scored)."""
    sources = [d.source for d in kb.documents()]
    return [q for q in load_answers(EVAL / "sec-10q" / "questions.csv") if gold_files(q, sources) == 1]


def score(kb: Any, questions: list[AnswerQuestion], llm: Any, k: int, label: str) -> list[dict[str, Any]]:
    """`kb eval --answers`'s rows for `questions` (kb.answer.evaluate), progress on stderr."""

    def progress(i: int, row: AnswerRow) -> None:
        log(f"[{label} {i}/{len(questions)}] {row.mode:10} file={row.cites_gold_file!s:5} "
            f"figure={row.gold_figure_in_answer!s:5} {row.seconds:.1f}s  {row.question[:60]}")

    def ask(question: str) -> Answer:
        return kb.ask(question, k=k, llm=llm, temperature=0.0, max_tokens=200)

    result = evaluate_answers(questions, ask, [d.source for d in kb.documents()], llm=str(llm), on_row=progress)
    return result.to_json()["questions"]


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

    def cut(xs: list[AnswerQuestion]) -> list[AnswerQuestion]:
        if not args.limit or len(xs) <= args.limit:
            return xs
        step = len(xs) / args.limit  # spread over the set: every company, every quarter
        return [xs[int(i * step)] for i in range(args.limit)]

    started = time.perf_counter()
    with KnowledgeBase.open(args.kb) as kb:
        sec = score(kb, cut(sec10q_questions(kb)), llm, args.k, "sec-10q")
        none = score(kb, cut(load_answers(UNANSWERABLE)), llm, args.k, "unanswerable")
    fb: list[dict[str, Any]] = []
    if args.fb_kb:
        with KnowledgeBase.open(args.fb_kb) as kb:
            fb = score(kb, cut(load_answers(EVAL / "financebench-dev" / "questions.jsonl")), llm, args.k, "financebench")
    summary = {
        "llm": getattr(llm, "name", None) or "none (extractive)",
        "machine": _machine(),
        "a_gold_figure_first_line": {"sec10q": share(sec, "gold_figure_first_line"),
                                     "financebench": share(fb, "gold_figure_first_line")},
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
