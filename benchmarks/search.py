"""Search benchmark: vector-store latency at 10k/100k/1M chunks, full `kb.search` latency, cold start.

    python -m benchmarks.search [--sizes 10000 100000 1000000] [--kb DIR] [--docs DIR] [--json]

1. Store: kb's `FaissStore` filled with synthetic L2-normalised 384-d vectors (a mixture of 2,000
   clusters, so that an IVF index faces data with structure, as real embeddings have); p50/p99 of
   warm, in-process `store.search(q, k=10)` over 200 queries from the same distribution, plus
   the same with a filter (allowed ids: 10% of the chunks). recall@10 against exact search is
   reported when the store is approximate (IVF).
2. Full search, warm, in-process: `KnowledgeBase.search(q, k=10)` on a real KB (`--kb`), dense and
   hybrid, over questions from `--questions`.
3. Cold start: wall time of `kb search QUERY --kb DIR --json` as a fresh process (median of 5),
   i.e. interpreter start, imports, model load, search, print.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.ingest import _machine

DIM = 384


def _synthetic(n: int, rng: Any, centers: Any) -> Any:
    import numpy as np

    out = np.empty((n, DIM), dtype=np.float32)
    step = 100_000
    for s in range(0, n, step):
        m = min(step, n - s)
        which = rng.integers(0, len(centers), m)
        block = centers[which] + rng.standard_normal((m, DIM), dtype=np.float32) * 0.06
        block /= np.linalg.norm(block, axis=1, keepdims=True)
        out[s : s + m] = block
    return out


def _percentiles(samples: list[float]) -> dict[str, float]:
    import numpy as np

    a = np.asarray(samples) * 1000
    return {"p50_ms": round(float(np.percentile(a, 50)), 3), "p99_ms": round(float(np.percentile(a, 99)), 3)}


def bench_store(sizes: list[int], queries: int = 200) -> dict[str, Any]:
    import numpy as np

    from kb.index.faiss import FaissStore

    rng = np.random.default_rng(0)
    centers = rng.standard_normal((2000, DIM), dtype=np.float32)
    centers /= np.linalg.norm(centers, axis=1, keepdims=True)
    results: dict[str, Any] = {}
    for n in sizes:
        vectors = _synthetic(n, rng, centers)
        qs = _synthetic(queries, rng, centers)
        with tempfile.TemporaryDirectory() as tmp:
            store = FaissStore(Path(tmp) / "v.faiss", DIM)
            t = time.perf_counter()
            for s in range(0, n, 50_000):  # as an ingest adds them: in batches
                store.add(np.arange(s, min(s + 50_000, n), dtype=np.int64), vectors[s : s + 50_000])
            store.save()  # a store may pick its index type when it saves
            build = time.perf_counter() - t
            store = FaissStore(Path(tmp) / "v.faiss", DIM)  # as a search process finds it
            for q in qs[:10]:
                store.search(q, 10)
            times, hits = [], []
            for q in qs:
                t = time.perf_counter()
                hits.append([i for i, _ in store.search(q, 10)])
                times.append(time.perf_counter() - t)
            allowed = np.sort(rng.choice(n, size=max(1, n // 10), replace=False)).astype(np.int64)
            ftimes = []
            for q in qs[:50]:
                t = time.perf_counter()
                store.search(q, 10, allowed_ids=allowed)
                ftimes.append(time.perf_counter() - t)
            import faiss

            inner = store.index.index if isinstance(store.index, faiss.IndexIDMap) else store.index
            kind = type(faiss.downcast_index(inner)).__name__
            row: dict[str, Any] = {"index": kind, "build_s": round(build, 2), **_percentiles(times),
                                   "filtered_10pct": _percentiles(ftimes)}
            if "IVF" in kind:
                exact = (qs @ vectors.T).argsort(axis=1)[:, ::-1][:, :10] if n <= 200_000 else _exact_topk(vectors, qs)
                row["recall@10_vs_exact"] = round(float(np.mean([len(set(h) & set(e)) / 10 for h, e in zip(hits, exact)])), 4)
            results[str(n)] = row
            del store
        del vectors
    return results


def _exact_topk(vectors: Any, qs: Any) -> Any:
    import faiss

    index = faiss.IndexFlatIP(DIM)
    index.add(vectors)
    return index.search(qs, 10)[1]


def bench_kb(kb_dir: Path, questions: Path, n: int = 100) -> dict[str, Any]:
    from kb import KnowledgeBase
    from kb.query.evaluate import load_gold

    qs = [q.question for q in load_gold(questions)][:n]
    out: dict[str, Any] = {}
    with KnowledgeBase.open(kb_dir) as kb:
        out["backend"] = kb.embedder.backend
        for mode in ("dense", "hybrid"):
            for q in qs[:5]:
                kb.search(q, k=10, mode=mode)
            times = []
            for q in qs:
                t = time.perf_counter()
                kb.search(q, k=10, mode=mode)
                times.append(time.perf_counter() - t)
            out[mode] = _percentiles(times)
        t = time.perf_counter()
        for q in qs:
            kb.embedder.embed_query(q)
        out["embed_query_ms"] = round(1000 * (time.perf_counter() - t) / len(qs), 2)
        out["chunks"] = kb.catalog.totals()[1]
    return out


def cold_start(kb_dir: Path, runs: int = 5) -> dict[str, Any]:
    kb_bin = Path(sys.executable).with_name("kb")
    cmd = [str(kb_bin) if kb_bin.exists() else "kb", "search", "net sales by product category", "--kb", str(kb_dir),
           "--k", "5", "--json"]
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        times.append(time.perf_counter() - t)
        if proc.returncode != 0:
            raise SystemExit(f"kb search failed: {proc.stderr.strip()[-500:]}")
        json.loads(proc.stdout)
    return {"median_s": round(statistics.median(times), 3), "min_s": round(min(times), 3), "runs": runs}


def build_small_kb(docs: Path, limit: int, where: Path) -> Path:
    from kb import KnowledgeBase

    pdfs = sorted(docs.glob("*.pdf"))[:limit]
    with KnowledgeBase.open(where) as kb:
        kb.ingest([str(p) for p in pdfs])
    return where


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.search", description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", type=int, nargs="*", default=[10_000, 100_000, 1_000_000])
    ap.add_argument("--kb", type=Path, help="a real KB for the full-search and cold-start figures")
    ap.add_argument("--docs", type=Path, help="no --kb: build a small KB from the first --limit PDFs here")
    ap.add_argument("--limit", type=int, default=2)
    ap.add_argument("--questions", type=Path, help="questions for the full-search figures [default: docs/../questions.csv]")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)

    report: dict[str, Any] = {"store": bench_store(args.sizes) if args.sizes else {}}
    with tempfile.TemporaryDirectory() as tmp:
        kb_dir = args.kb or (build_small_kb(args.docs, args.limit, Path(tmp) / "kb") if args.docs else None)
        if kb_dir:
            questions = args.questions or (args.docs.parent / "questions.csv" if args.docs else None)
            if questions and questions.is_file():
                report["kb_search"] = bench_kb(kb_dir, questions)
            report["cold_start"] = cold_start(kb_dir)
    report["machine"] = _machine()
    if args.json:
        print(json.dumps(report))
        return 0
    for n, r in report["store"].items():
        extra = f"  recall@10 {r['recall@10_vs_exact']}" if "recall@10_vs_exact" in r else ""
        print(f"store {int(n):>9,} chunks ({r['index']}): p50 {r['p50_ms']:.2f} ms  p99 {r['p99_ms']:.2f} ms  "
              f"filtered p50 {r['filtered_10pct']['p50_ms']:.2f} ms{extra}")
    if "kb_search" in report:
        s = report["kb_search"]
        print(f"kb.search on {s['chunks']} chunks ({s['backend']}): dense p50 {s['dense']['p50_ms']:.1f} ms "
              f"p99 {s['dense']['p99_ms']:.1f} ms; hybrid p50 {s['hybrid']['p50_ms']:.1f} ms p99 {s['hybrid']['p99_ms']:.1f} ms")
    if "cold_start" in report:
        print(f"cold start `kb search ... --json`: median {report['cold_start']['median_s']:.2f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
