"""The fast paths: backend choice and its record in the index, batched ingest, GPU choices on CPU, benchmarks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

import kb.embed as kb_embed
from kb import KnowledgeBase
from kb.cli import main as cli
from kb.embed import cuda_available, make_embedder
from kb.embed.torch import SentenceTransformerEmbedder
from kb.errors import ConfigError
from tests.helpers import write_markdown, write_pdf

REPO = Path(__file__).resolve().parents[1]
onnx = pytest.importorskip("onnxruntime")


def _notes(folder: Path, n: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        (folder / f"note-{i:02d}.md").write_text(
            f"# Note {i}\n\nThe quokka colony number {i} lives on island {i * 7}. "
            f"Its warden is called Warden-{i}.\n\n## Supplies\n\nCrate {i} holds {i * 3} apples.\n"
        )
    return folder


def _meta(kb_dir: Path) -> dict[str, str]:
    with KnowledgeBase.open(kb_dir) as kb:
        return kb.catalog.meta()


def test_unknown_backend_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="onnx-int8"):
        make_embedder("all-MiniLM-L6-v2", backend="tensorrt")


def test_gpu_choices_without_a_gpu() -> None:
    """The CUDA path is chosen by device; on this CPU machine it can be inspected, not run."""
    assert cuda_available("cpu") is False
    assert cuda_available("cuda:0") is True
    gpu = make_embedder("all-MiniLM-L6-v2", backend="auto", device="cuda")
    assert isinstance(gpu, SentenceTransformerEmbedder) and gpu.backend == "torch"
    assert gpu.batch_size == 256  # fp16, large length-sorted batches (model not loaded here)
    cpu = make_embedder("all-MiniLM-L6-v2", backend="auto", device="cpu")
    assert cpu.backend == "onnx-int8+w8"
    # ONNX asked to run on CUDA without onnxruntime-gpu: runs on the CPU provider instead.
    onnx_gpu = make_embedder("all-MiniLM-L6-v2", backend="onnx", device="cuda")
    assert onnx_gpu.providers == ["CPUExecutionProvider"] or "CUDAExecutionProvider" in onnx.get_available_providers()  # type: ignore[attr-defined]


@pytest.mark.slow
def test_auto_keeps_the_vectors_of_the_index_and_another_backend_by_name_still_works(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The backend is recorded; `auto` then embeds with one making the same vectors (fp32 here, where int8
    would be the default), and a backend asked for by name mixes in its own, saying so."""
    docs = _notes(tmp_path / "docs", 3)
    kb_dir = tmp_path / "kb"
    with KnowledgeBase.open(kb_dir, backend="torch") as kb:
        kb.ingest([str(docs)])
    assert _meta(kb_dir)["backend"] == "torch"
    caplog.clear()
    with KnowledgeBase.open(kb_dir, device="cpu") as kb:  # defaults: `auto`
        assert kb.embedder.backend == "torch" and kb.status().backend == "torch"
        _notes(docs, 4)
        assert [Path(s).name for s in kb.ingest([str(docs)]).added] == ["note-03.md"]
        assert kb.search("who is the warden of colony 3", k=1, mode="dense")[0].source.endswith("note-03.md")
    assert "new ones come from" not in caplog.text
    with KnowledgeBase.open(kb_dir, backend="onnx-int8") as kb:
        assert kb.embedder.backend == "onnx-int8+w8"
        assert kb.search("who is the warden of colony 2", k=1, mode="dense")[0].source.endswith("note-02.md")
        _notes(docs, 5)
        assert [Path(s).name for s in kb.ingest([str(docs)]).added] == ["note-04.md"]
        assert kb.search("who is the warden of colony 4", k=1, mode="dense")[0].source.endswith("note-04.md")
    assert "holds torch vectors; new ones come from onnx-int8+w8" in caplog.text
    assert _meta(kb_dir)["backend"] == "onnx-int8+w8"
    with KnowledgeBase.open(kb_dir, backend="torch") as kb:  # and back: still the same model's space
        assert kb.search("who is the warden of colony 1", k=1, mode="dense")[0].source.endswith("note-01.md")
    # An index from before the setting existed has no record: it counts as torch.
    with KnowledgeBase.open(kb_dir) as kb, kb.catalog.transaction() as db:
        db.execute("DELETE FROM meta WHERE key = 'backend'")
    with KnowledgeBase.open(kb_dir, device="cpu") as kb:
        assert kb.embedder.backend == "torch"


@pytest.mark.slow
def test_a_machine_with_a_gpu_adds_int8_vectors_to_an_int8_index(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Team members on other machines share one store: `auto` on a GPU machine would take torch (fp16)
    for a new index, but an index of int8 vectors gets int8 vectors from it, and `kb status` says so."""
    docs = _notes(tmp_path / "docs", 2)
    kb_dir = tmp_path / "kb"
    with KnowledgeBase.open(kb_dir, device="cpu") as kb:
        kb.ingest([str(docs)])
    monkeypatch.setattr(kb_embed.torch_backend, "cuda_available", lambda device="auto": device != "cpu")
    with KnowledgeBase.open(tmp_path / "new") as kb:
        assert kb.status().backend == "torch"
    with KnowledgeBase.open(kb_dir) as kb:
        assert kb.status().backend == "onnx-int8" and kb.status().vectors == "onnx-int8+w8"
        assert kb.embedder.backend == "onnx-int8+w8"
        _notes(docs, 3)
        kb.ingest([str(docs)])
    assert _meta(kb_dir)["backend"] == "onnx-int8+w8"
    out = CliRunner().invoke(cli, ["status", "--kb", str(kb_dir)])
    assert "Embedding with onnx-int8 here · the index's vectors: onnx-int8+w8" in out.output


@pytest.mark.slow
def test_new_index_uses_onnx_int8_on_cpu_and_batches_small_documents(tmp_path: Path) -> None:
    docs = _notes(tmp_path / "docs", 40)
    write_markdown(docs / "runbook.md")
    kb_dir = tmp_path / "kb"
    seen: list[tuple[int, int]] = []
    with KnowledgeBase.open(kb_dir, device="cpu") as kb:
        report = kb.ingest([str(docs)], progress=lambda p: seen.append((p.done, p.total)))
        assert kb.embedder.backend == "onnx-int8+w8"
        assert len(report.added) == 41 and not report.failed
        docs_n, chunks, _ = kb.catalog.totals()
        assert (docs_n, chunks) == (41, report.chunks) and kb.store.count() == chunks
        hit = kb.search("error 5031 payment gateway", k=1)[0]
        assert hit.source.endswith("runbook.md")
    assert seen[-1] == (41, 41)
    assert _meta(kb_dir)["backend"] == "onnx-int8+w8"


@pytest.mark.slow
def test_an_index_of_an_older_int8_graph_says_once_that_new_vectors_differ_a_little(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    docs = _notes(tmp_path / "docs", 2)
    kb_dir = tmp_path / "kb"
    with KnowledgeBase.open(kb_dir) as kb:
        kb.ingest([str(docs)])
    assert _meta(kb_dir)["graph"] == "2"
    with KnowledgeBase.open(kb_dir) as kb, kb.catalog.transaction() as db:  # as kb before the graph was recorded
        db.execute("DELETE FROM meta WHERE key = 'graph'")
    for n in (3, 4):
        caplog.clear()
        with KnowledgeBase.open(kb_dir) as kb:
            _notes(docs, n)
            kb.ingest([str(docs)])
            assert kb.search(f"who is the warden of colony {n - 1}", k=1)[0].source.endswith(f"note-{n - 1:02d}.md")
        said = "holds onnx-int8+w8 vectors of an older graph; new ones come from graph 2" in caplog.text
        assert said == (n == 3)
    assert _meta(kb_dir)["graph"] == "2"


@pytest.mark.slow
def test_reindex_switches_backend(tmp_path: Path) -> None:
    docs = _notes(tmp_path / "docs", 2)
    kb_dir = tmp_path / "kb"
    with KnowledgeBase.open(kb_dir, backend="onnx") as kb:
        kb.ingest([str(docs)])
    assert _meta(kb_dir)["backend"] == "onnx"
    with KnowledgeBase.open(kb_dir, backend="onnx-int8") as kb:
        assert kb.reindex() == kb.catalog.totals()[1]
    with KnowledgeBase.open(kb_dir) as kb:
        assert kb.embedder.backend == "onnx-int8+w8"
        assert kb.check(repair=False).ok


def _run(module: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KB_") or k == "KB_CACHE_DIR"}
    return subprocess.run([sys.executable, "-m", module, *args], check=False, cwd=REPO, capture_output=True, text=True, env=env,
                          timeout=600)


@pytest.mark.slow
def test_ingest_benchmark_prints_the_json_shape(tmp_path: Path) -> None:
    docs = tmp_path / "pdfs"
    docs.mkdir()
    write_pdf(docs / "a.pdf", ["Quarterly report. Net sales rose 8% to $81.8 billion.", "Risk factors apply."])
    write_pdf(docs / "b.pdf", ["Not benchmarked: --limit 1 takes a.pdf only."])
    have_reference = all(
        __import__("importlib").util.find_spec(m) for m in ("langchain_community", "langchain_huggingface", "langchain_text_splitters")
    )
    proc = _run("benchmarks.ingest", str(docs), "--limit", "1", "--json", "--no-eval", "--repeats", "1",
                *([] if have_reference else ["--no-reference"]))
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(proc.stdout)
    runs = [report["kb"]] + ([report["reference"]] if have_reference else [])
    for run in runs:
        assert run["pages"] == 2 and run["chunks"] >= 1
        for key in ("wall_s", "pages_per_s", "chunks_per_s", "peak_rss_mb"):
            assert isinstance(run[key], float) and run[key] > 0, key
    assert report["kb"]["backend"] == "onnx-int8+w8"
    if have_reference:
        assert report["speedup"] == pytest.approx(report["reference"]["wall_s"] / report["kb"]["wall_s"], rel=0.02)


@pytest.mark.slow
def test_the_embedding_benchmark_times_each_backend_batched_and_one_chunk_at_a_time(tmp_path: Path) -> None:
    docs = tmp_path / "pdfs"
    docs.mkdir()
    write_pdf(docs / "a.pdf", ["Quarterly report. Net sales rose 8% to $81.8 billion.", "Risk factors apply."])
    proc = _run("benchmarks.ingest", str(docs), "--embed-only", "--backend", "onnx-int8", "--backend", "onnx", "--json")
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(proc.stdout)
    assert [r["backend"] for r in report["embedding"].values()] == ["onnx-int8+w8", "onnx"]
    for row in report["embedding"].values():
        assert row["chunks"] >= 1 and row["chunks_per_s"] > 0 and row["batch_1_chunks_per_s"] > 0
    assert isinstance(report["machine"]["flags"], list) and report["machine"]["cpu"]


@pytest.mark.slow
def test_the_runtime_benchmark_times_kbs_graphs_by_threads_and_batch(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    sections = [f"## Part {i}\n\n" + " ".join(["Net sales rose 8% to $81.8 billion in the quarter."] * (1 + 6 * i))
                for i in range(5)]  # texts of clearly different lengths, so batches pad and order matters
    write_markdown(docs / "a.md", "# Report\n\n" + "\n\n".join(sections) + "\n")
    with KnowledgeBase.open(tmp_path / "kb", workers=1) as kb:
        kb.ingest([docs])
        chunks = kb.status().chunks
    proc = _run("benchmarks.runtimes", "--kb", str(tmp_path / "kb"), "--every", "1", "--passes", "1", "--threads", "1",
                "--batch", "1", "2", "--json")
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(proc.stdout)
    assert report["texts"] == chunks >= 3 and report["machine"]["cpu"]
    assert [(r["runtime"], r["layout"]) for r in report["runs"] if r["runtime"].startswith("onnxruntime")] == [
        ("onnxruntime int8", "threads 1"), ("onnxruntime fp32", "threads 1"), ("onnxruntime int8", "side by side")]
    for row in report["runs"]:
        assert set(row["texts_per_s"]) == {"1", "2"} and all(v > 0 for v in row["texts_per_s"].values())
    has_openvino = __import__("importlib").util.find_spec("openvino") is not None
    assert (report["openvino"] is not None) == has_openvino == bool(report["vectors"])
    if has_openvino:  # bf16 within a float path's reach of fp32, alone or batched, text for text
        assert report["vectors"]["bf16_vs_fp32_cosine_min"] > 0.999
        assert report["vectors"]["bf16_alone_vs_batch_cosine_min"] > 0.999


def test_the_runtime_benchmark_says_which_folder_is_not_a_knowledge_base(tmp_path: Path) -> None:
    proc = _run("benchmarks.runtimes", "--kb", str(tmp_path))
    assert proc.returncode == 2 and "no knowledge base there" in proc.stderr and "Traceback" not in proc.stderr


def test_search_benchmark_runs_small() -> None:
    proc = _run("benchmarks.search", "--sizes", "2000", "--json")
    assert proc.returncode == 0, proc.stderr[-2000:]
    row = json.loads(proc.stdout)["store"]["2000"]
    assert row["p50_ms"] > 0 and row["p99_ms"] >= row["p50_ms"]


def test_faiss_store_switches_to_ivf_by_size(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import faiss
    import numpy as np

    from kb.index import faiss as faiss_store
    from kb.index.faiss import FaissStore

    monkeypatch.setattr(faiss_store, "IVF_THRESHOLD", 3000)
    rng = np.random.default_rng(1)
    vectors = rng.standard_normal((5000, 32), dtype=np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    ids = np.arange(100, 5100, dtype=np.int64)
    store = FaissStore(tmp_path / "v.faiss", 32)
    store.add(ids[:2000], vectors[:2000])
    store.save()
    assert isinstance(store.index, faiss.IndexIDMap)  # small: exact
    store.add(ids[2000:], vectors[2000:])
    store.save()
    store = FaissStore(tmp_path / "v.faiss", 32)  # reopened as a search process would
    assert isinstance(faiss.downcast_index(store.index), faiss.IndexIVFFlat)
    assert store.count() == 5000 and sorted(store.ids().tolist()) == ids.tolist()
    assert store.search(vectors[1234], 1)[0][0] == 1334  # a stored vector finds itself
    allowed = np.array([150, 4000], dtype=np.int64)  # a narrow filter still gets its k results
    assert sorted(i for i, _ in store.search(vectors[0], 5, allowed_ids=allowed)) == [150, 4000]
    store.delete(np.array([1334], dtype=np.int64))
    assert store.count() == 4999 and 1334 not in store.ids()
    store.add(np.array([9999], dtype=np.int64), vectors[1234:1235])  # added after training
    assert store.search(vectors[1234], 1)[0][0] == 9999


def test_faiss_store_searches_a_large_index_on_the_gpu_when_faiss_gpu_has_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No GPU here: faiss-gpu's two entry points are stood in by CPU ones (a CPU clone as the "GPU" copy),
    to check when the copy is made, used, and dropped."""
    import faiss
    import numpy as np

    from kb.index import faiss as faiss_store
    from kb.index.faiss import FaissStore

    copies: list[object] = []

    def to_gpu(index: object) -> object:
        copies.append(faiss.clone_index(index))
        return copies[-1]

    monkeypatch.setattr(faiss_store, "GPU_MIN", 1000)
    monkeypatch.setattr(faiss, "get_num_gpus", lambda: 1, raising=False)
    monkeypatch.setattr(faiss, "index_cpu_to_all_gpus", to_gpu, raising=False)
    rng = np.random.default_rng(2)
    vectors = rng.standard_normal((1500, 16), dtype=np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    store = FaissStore(tmp_path / "v.faiss", 16)
    store.add(np.arange(500, dtype=np.int64), vectors[:500])
    assert store.search(vectors[7], 1)[0][0] == 7 and not copies  # small: stays on the CPU
    store.add(np.arange(500, 1500, dtype=np.int64), vectors[500:])
    assert store.search(vectors[1200], 1)[0][0] == 1200 and len(copies) == 1  # large: copied once, used
    assert store.search(vectors[3], 1)[0][0] == 3 and len(copies) == 1
    allowed = np.array([10, 11], dtype=np.int64)
    assert {i for i, _ in store.search(vectors[0], 2, allowed_ids=allowed)} == {10, 11}  # filtered: CPU
    store.delete(np.array([1200], dtype=np.int64))
    assert store.search(vectors[1200], 1)[0][0] != 1200 and len(copies) == 2  # a write drops the stale copy
