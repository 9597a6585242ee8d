"""The OpenVINO backend: fp32's vectors (bf16 where the CPU has bf16 units), the same alone and batched,
recorded in the index and kept by `auto`, and one clear line where OpenVINO is not installed."""

from __future__ import annotations

import importlib.util
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import kb.embed as kb_embed
from kb import KnowledgeBase
from kb.cli import main as cli
from kb.embed import make_embedder
from kb.embed.onnx import OnnxEmbedder
from kb.embed.openvino import OpenVinoEmbedder
from kb.errors import DependencyError, EmbedderError
from tests.test_onnx_embedder import SENTENCES, _cosines
from tests.test_performance_paths import _meta, _notes

openvino = pytest.importorskip("openvino")


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("ov-cache")


@pytest.fixture(scope="module")
def fp32(cache: Path) -> np.ndarray:
    return OnnxEmbedder("all-MiniLM-L6-v2", quantize=False, cache_dir=cache).embed_documents(SENTENCES)


@pytest.mark.slow
@pytest.mark.parametrize("precision", ["cpu's own", "f32"])
def test_openvino_gives_fp32s_vectors_the_same_alone_and_in_any_batch(
    precision: str, cache: Path, fp32: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    # On this CPU OpenVINO may run bf16 (AMX, AVX-512 BF16); f32 is what it runs on a CPU without them.
    if precision == "f32":
        monkeypatch.setattr(OpenVinoEmbedder, "precision", "f32")
    embedder = OpenVinoEmbedder("all-MiniLM-L6-v2", cache_dir=cache)
    assert embedder.backend == "openvino" and embedder.dimensions == 384
    alone = np.stack([embedder.embed_query(text) for text in SENTENCES])
    assert np.allclose(np.linalg.norm(alone, axis=1), 1.0, atol=1e-5)
    # bf16 keeps 8 bits of mantissa but sums in fp32: within 0.9999 of fp32's vectors (int8's: 0.98)
    assert _cosines(alone, fp32).min() >= (0.99999 if precision == "f32" else 0.9999)
    for batch in (SENTENCES, SENTENCES[::-1], SENTENCES * 5):
        got = embedder.embed_documents(batch)
        order = [SENTENCES.index(t) for t in batch]
        assert _cosines(got, alone[order]).min() >= 0.99999
    # Batches run side by side, one infer request per thread, from the first call on (OpenVINO's binding
    # once deadlocked there), and callers in several threads get the same.
    fresh = OpenVinoEmbedder("all-MiniLM-L6-v2", cache_dir=cache, threads=3)
    with ThreadPoolExecutor(1) as caller:
        first = caller.submit(fresh.embed_documents, SENTENCES * 5).result(timeout=120)
    assert _cosines(first, np.tile(alone, (5, 1))).min() >= 0.99999
    one = OpenVinoEmbedder("all-MiniLM-L6-v2", cache_dir=cache, threads=1)
    assert _cosines(one.embed_documents(SENTENCES * 3), np.tile(alone, (3, 1))).min() >= 0.99999
    batches = [SENTENCES, SENTENCES[::-1], SENTENCES[2:5]]
    with ThreadPoolExecutor(3) as callers:
        for batch, got in zip(batches, callers.map(embedder.embed_documents, batches)):
            assert _cosines(got, alone[[SENTENCES.index(t) for t in batch]]).min() >= 0.99999


@pytest.mark.slow
def test_an_openvino_index_keeps_its_backend_and_falls_back_to_fp32_without_openvino(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    docs = _notes(tmp_path / "docs", 3)
    kb_dir = tmp_path / "kb"
    with KnowledgeBase.open(kb_dir, backend="openvino") as kb:
        kb.ingest([str(docs)])
    assert _meta(kb_dir)["backend"] == "openvino"
    caplog.clear()
    with KnowledgeBase.open(kb_dir, device="cpu") as kb:  # `auto`: the index's own backend, not int8
        assert kb.embedder.backend == "openvino" and kb.status().backend == "openvino"
        _notes(docs, 4)
        kb.ingest([str(docs)])
        assert kb.search("who is the warden of colony 3", k=1, mode="dense")[0].source.endswith("note-03.md")
    assert "new ones come from" not in caplog.text
    out = CliRunner().invoke(cli, ["status", "--kb", str(kb_dir)])
    assert "Embedding with openvino here · the index's vectors: openvino" in out.output

    # A teammate without OpenVINO: `auto` embeds fp32 (the nearest vectors), and naming it is one line.
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "openvino" else real(name, *a))
    monkeypatch.setitem(__import__("sys").modules, "openvino", None)
    with KnowledgeBase.open(kb_dir, device="cpu") as kb:
        assert kb.status().backend == "onnx"
        assert kb.search("who is the warden of colony 2", k=1, mode="dense")[0].source.endswith("note-02.md")
    with pytest.raises(DependencyError, match=r"pip install -e '\.\[openvino\]'"):
        kb_embed.make_embedder("all-MiniLM-L6-v2", backend="openvino")
    result = CliRunner().invoke(cli, ["ingest", str(docs), "--kb", str(tmp_path / "other")], env={"KB_BACKEND": "openvino"})
    assert result.exit_code != 0 and "Traceback" not in result.output
    assert "openvino backend needs OpenVINO" in result.output


def test_openvino_runs_on_the_cpu_only() -> None:
    with pytest.raises(EmbedderError, match="runs on the CPU"):
        make_embedder("all-MiniLM-L6-v2", backend="openvino", device="cuda")
