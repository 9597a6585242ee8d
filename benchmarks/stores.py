"""FAISS against Milvus Lite on one corpus, in one run: store writes, search latency, retrieval quality.

The embedding dominates an ingest and is the same for both stores, so the stores are compared on
the vectors of an existing FAISS knowledge base (no re-embedding): its chunks are written to a
fresh FAISS file and to a fresh Milvus Lite folder the way `kb ingest` writes them, then the same
pre-embedded questions are searched in both. `--e2e N` also times a real `kb ingest` of the first
N files into each store.

    kb ingest ../shared/eval/sec-10q/docs --kb /tmp/sec10q          # once: the source vectors
    python benchmarks/stores.py --source /tmp/sec10q --e2e 2

Prints one JSON object (figures in benchmarks/STORES.md).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
EVAL = REPO.parent / "shared" / "eval" / "sec-10q"


def p50(times: list[float]) -> float:
    return round(statistics.median(times) * 1000, 2)


def timed(fn: Any, items: list[Any]) -> tuple[list[Any], float]:
    out, times = [], []
    for item in items:
        t = time.perf_counter()
        out.append(fn(item))
        times.append(time.perf_counter() - t)
    return out, p50(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--source", required=True, help="a FAISS knowledge base built by kb ingest (read, not changed)")
    ap.add_argument("--questions", default=str(EVAL / "questions.csv"))
    ap.add_argument("--pages", default=str(REPO / "benchmarks" / "sec10q_pages.jsonl"))
    ap.add_argument("--docs", default=str(EVAL / "docs"))
    ap.add_argument("--e2e", type=int, default=0, help="also time `kb ingest` of the first N files into each store")
    args = ap.parse_args()

    import faiss

    from kb import KnowledgeBase
    from kb.filters import Filters
    from kb.index.catalog import Catalog
    from kb.index.faiss import FaissStore
    from kb.index.milvus import MilvusStore
    from kb.index.team import publish
    from kb.query.evaluate import evaluate, load_gold
    from kb.types import Chunk

    work = Path(tempfile.mkdtemp(prefix="kb-stores-"))
    result: dict[str, Any] = {}
    try:
        src = work / "faiss-kb"
        src.mkdir()
        for name in ("catalog.sqlite", "vectors.faiss", "kb.toml"):
            if (Path(args.source) / name).exists():
                shutil.copy(Path(args.source) / name, src / name)
        catalog = Catalog(src / "catalog.sqlite")
        index = faiss.read_index(str(src / "vectors.faiss"))
        ids = faiss.vector_to_array(index.id_map).astype(np.int64)
        flat = faiss.downcast_index(index.index)
        matrix = faiss.rev_swig_ptr(flat.get_xb(), index.ntotal * index.d).reshape(index.ntotal, index.d).copy()
        vector_of = dict(zip(ids.tolist(), range(len(ids))))
        docs = catalog.documents()
        per_doc = []
        for doc in docs:
            rows = catalog.db.execute("SELECT id FROM chunks WHERE doc_id = ? ORDER BY ord", (doc.id,)).fetchall()
            chunk_rows = catalog.chunks(r[0] for r in rows)
            chunks = [chunk_rows[r[0]] for r in rows]
            per_doc.append((doc, chunks, matrix[[vector_of[c["id"]] for c in chunks]]))
        n_chunks = sum(len(c) for _, c, _ in per_doc)
        result["corpus"] = {"documents": len(docs), "chunks": n_chunks, "dimensions": int(index.d)}

        # --- writes -------------------------------------------------------------------------
        t = time.perf_counter()
        fs = FaissStore(work / "copy.faiss", int(index.d))
        for _, chunks, vecs in per_doc:
            fs.add(np.asarray([c["id"] for c in chunks], dtype=np.int64), vecs, None)
        fs.save()
        faiss_write = time.perf_counter() - t

        lite = str(work / "team.db")
        t = time.perf_counter()
        ms = MilvusStore(lite, "bench", int(index.d))
        for doc, chunks, vecs in per_doc:
            publish(ms, path=doc.path, source=doc.source, file_type=doc.file_type, sha256=doc.sha256, size=doc.size,
                    mtime_ns=doc.mtime_ns, title=doc.title, pages=doc.pages, metadata={}, previous=False,
                    chunks=[Chunk(ord=n, text=c["text"], embed_text="", headings=c["headings"], page_start=c["page_start"],
                                  page_end=c["page_end"], char_start=c["char_start"], char_end=c["char_end"], tokens=0)
                            for n, c in enumerate(chunks)],
                    vectors=vecs)
        ms.set_meta(**{**{k: v for k, v in catalog.meta().items() if k != "vectors"}, "store": "milvus"})
        ms.save()
        milvus_write = time.perf_counter() - t
        ms.close()
        result["writes_s"] = {"faiss": round(faiss_write, 2), "milvus_lite": round(milvus_write, 2),
                              "milvus_lite_rows_per_s": round(n_chunks / milvus_write)}

        # --- a member with only the URI: first sync -------------------------------------------
        t = time.perf_counter()
        member = KnowledgeBase.open(work / "member", store="milvus", store_uri=lite, collection="bench")
        assert member.exists and member.catalog.totals()[1] == n_chunks
        result["milvus_first_sync_s"] = round(time.perf_counter() - t, 2)
        t = time.perf_counter()
        member.close()
        member = KnowledgeBase.open(work / "member", store="milvus", store_uri=lite, collection="bench")
        assert member.exists
        result["milvus_open_in_sync_s"] = round(time.perf_counter() - t, 2)
        local = KnowledgeBase.open(src)

        # --- latency ---------------------------------------------------------------------------
        gold = load_gold(args.questions)
        questions = [q.question for q in gold]
        embedder = local.embedder
        vectors = [embedder.embed_query(q) for q in questions]
        store = member.store
        lat: dict[str, Any] = {}
        _, lat["dense_k100_faiss"] = timed(lambda v: local.store.search(v, 100), vectors)
        _, lat["dense_k100_milvus"] = timed(lambda v: store.search(v, 100), vectors)
        one = Filters(path="*2023 Q3 AAPL*")
        _, lat["dense_filtered_faiss"] = timed(
            lambda v: local.store.search(v, 100, np.asarray(local.catalog.filtered_ids(one), dtype=np.int64)), vectors)
        _, lat["dense_filtered_milvus"] = timed(lambda v: store.search_filtered(v, 100, one, member.catalog), vectors)
        from kb.query.fts import match_expression

        _, lat["keyword_k100_fts5"] = timed(lambda q: local.catalog.keyword_search(match_expression(q) or '""', 100), questions)
        _, lat["keyword_k100_milvus_bm25"] = timed(lambda q: store.keyword_search(q, 100, None, member.catalog), questions)
        _, lat["hybrid_native_rrf_milvus"] = timed(
            lambda qv: store.hybrid_search(qv[1], qv[0], 5, None, member.catalog), list(zip(questions, vectors)))
        _, lat["kb_search_hybrid_faiss"] = timed(lambda q: local.search(q, 5), questions)
        _, lat["kb_search_hybrid_milvus"] = timed(lambda q: member.search(q, 5), questions)
        result["search_p50_ms"] = lat

        # --- quality ---------------------------------------------------------------------------
        def native(q: str, k: int) -> list[Any]:
            from kb.query.search import _with_rows, arrange

            found = store.hybrid_search(embedder.embed_query(q), q, 2 * k + 16, None, member.catalog)
            return arrange(_with_rows(member.catalog, found, 2 * k + 16), k)

        def with_fts5(q: str, k: int) -> list[Any]:
            store.keyword_search = None  # type: ignore[method-assign]  # the hook falls back to the mirror's FTS5
            try:
                return member.search(q, k)
            finally:
                del store.keyword_search

        runs = {
            "faiss dense": lambda q, k: local.search(q, k, mode="dense"),
            "faiss hybrid (FTS5)": lambda q, k: local.search(q, k),
            "milvus dense": lambda q, k: member.search(q, k, mode="dense"),
            "milvus hybrid (Milvus BM25)": lambda q, k: member.search(q, k),
            "milvus hybrid (mirror FTS5)": with_fts5,
            "milvus keyword (Milvus BM25)": lambda q, k: member.search(q, k, mode="keyword"),
            "milvus native hybrid_search RRF": native,
        }
        quality: dict[str, Any] = {}
        sources = [d.source for d in docs]
        for label, gold_file in (("questions", args.questions), ("pages", args.pages)):
            qs = load_gold(gold_file)
            for name, fn in runs.items():
                r = evaluate(qs, fn, (1, 5, 10), name=name, sources=sources)
                quality.setdefault(label, {})[name] = {"doc_R@5": r.doc_recall["5"], "doc_MRR": r.mrr,
                                                      **({"page_R@5": r.page_recall["5"], "page_MRR": r.page_mrr}
                                                         if r.page_recall else {})}
        result["quality"] = quality
        local.close()
        member.close()

        # --- end to end --------------------------------------------------------------------------
        if args.e2e:
            files = sorted(p for p in Path(args.docs).iterdir() if p.suffix == ".pdf")[: args.e2e]
            sub = work / "e2e-docs"
            sub.mkdir()
            for f in files:
                (sub / f.name).symlink_to(f)
            e2e: dict[str, Any] = {"files": [f.name for f in files]}
            for name, extra in (("faiss", []), ("milvus_lite", ["--store", "milvus", "--store-uri", str(work / "e2e.db")])):
                t = time.perf_counter()
                out = subprocess.run([str(Path(sys.executable).parent / "kb"), "ingest", str(sub), "--kb", str(work / f"e2e-{name}"),
                                      "--json", *extra], capture_output=True, text=True, check=True)
                e2e[name] = {"wall_s": round(time.perf_counter() - t, 1), "chunks": json.loads(out.stdout)["chunks"]}
            result["e2e_ingest"] = e2e
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
