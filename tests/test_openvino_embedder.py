"""The OpenVINO backend: fp32's vectors (bf16 where the CPU has bf16 units), the same alone and batched,
recorded in the index and kept by `auto`, and one clear line where OpenVINO is not installed."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from click.testing import CliRunner

import kb.embed as kb_embed
import kb.embed.openvino as ov_module
from kb import KnowledgeBase
from kb.cli import main as cli
from kb.embed import make_embedder, same_format
from kb.embed.onnx import OnnxEmbedder
from kb.embed.openvino import OpenVinoEmbedder
from kb.errors import DependencyError
from tests.test_onnx_embedder import SENTENCES, _cosines
from tests.test_performance_paths import REPO, _meta, _notes

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
    # "+w8" where the fp32 weights are not installed (no torch extra): the graph of the int8 weights
    assert embedder.backend.split("+")[0] == "openvino" and embedder.dimensions == 384
    alone = np.stack([embedder.embed_query(text) for text in SENTENCES])
    assert np.allclose(np.linalg.norm(alone, axis=1), 1.0, atol=1e-5)
    # bf16 keeps 8 bits of mantissa but sums in fp32: within 0.9999 of fp32's vectors (int8's: 0.98)
    assert _cosines(alone, fp32).min() >= (0.99999 if precision == "f32" else 0.9999)
    for batch in (SENTENCES, SENTENCES[::-1], SENTENCES * 5):
        got = embedder.embed_documents(batch)
        order = [SENTENCES.index(t) for t in batch]
        assert _cosines(got, alone[order]).min() >= 0.99999
    # Batches run side by side, and callers in several threads get the same.
    one = OpenVinoEmbedder("all-MiniLM-L6-v2", cache_dir=cache, threads=1)
    assert _cosines(one.embed_documents(SENTENCES * 3), np.tile(alone, (3, 1))).min() >= 0.99999
    batches = [SENTENCES, SENTENCES[::-1], SENTENCES[2:5]]
    with ThreadPoolExecutor(3) as callers:
        for batch, got in zip(batches, callers.map(embedder.embed_documents, batches)):
            assert _cosines(got, alone[[SENTENCES.index(t) for t in batch]]).min() >= 0.99999


class _Inference:
    """A stand-in for OpenVINO's compiled model that records which inferences overlapped in time."""

    def __init__(self, log: list[tuple[str, int]], lock: threading.Lock, inside: list[int]):
        self.log, self.lock, self.inside = log, lock, inside

    def create_infer_request(self) -> SimpleNamespace:
        def infer(feed: dict[str, np.ndarray]) -> list[np.ndarray]:
            with self.lock:
                self.inside[0] += 1
                self.log.append(("start", self.inside[0]))
            time.sleep(0.05)
            with self.lock:
                self.inside[0] -= 1
                self.log.append(("end", self.inside[0]))
            return [np.zeros((*feed["input_ids"].shape, 4), dtype=np.float32)]
        return SimpleNamespace(infer=infer)


def test_a_process_first_inference_runs_alone_whatever_the_embedders_and_threads(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # The binding's one-time setup deadlocked two threads' first inferences (the test below runs the real
    # thing, where the hang is a matter of chance): here, deterministically, the first one overlaps none.
    monkeypatch.setattr(ov_module, "_warm", False)
    log: list[tuple[str, int]] = []
    lock, inside = threading.Lock(), [0]
    embedders = []
    for _ in range(3):
        e = OpenVinoEmbedder("all-MiniLM-L6-v2", cache_dir=tmp_path, threads=2)
        e.__dict__.update(export_dir=tmp_path, precision="f32", meta={"inputs": ["input_ids", "attention_mask"]},
                          _core=SimpleNamespace(compile_model=lambda *a: _Inference(log, lock, inside)))
        embedders.append(e)
    ids = np.ones((2, 5), dtype=np.int64)
    with ThreadPoolExecutor(6) as callers:
        list(callers.map(lambda e: e._run(ids, np.ones_like(ids)), embedders * 4))
    assert log[0] == ("start", 1) and log[1] == ("end", 0)  # the warm-up, alone
    assert len(log) == 2 * (1 + 12)  # once per process, then every run
    assert max(n for kind, n in log if kind == "start") > 1  # the runs after it do overlap
    for e in embedders:  # one infer request per run at once, kept for the next
        assert 1 <= e._idle.qsize() <= 6


_FIRST_CALLS = """
import sys
from concurrent.futures import ThreadPoolExecutor
import kb.embed.openvino as ov_module
from kb.embed.openvino import OpenVinoEmbedder
texts = [f"Line {i} of a note about the quokka colony." * (1 + i % 7) for i in range(40)]
embedders = [OpenVinoEmbedder("all-MiniLM-L6-v2", cache_dir=sys.argv[1], threads=3) for _ in range(3)]
with ThreadPoolExecutor(3) as callers:
    print(sum(len(v) for v in callers.map(lambda e: e.embed_documents(texts), embedders)))
"""


@pytest.mark.slow
def test_first_calls_from_many_threads_and_embedders_at_once_finish(cache: Path) -> None:
    # OpenVINO's Python binding deadlocked when two threads ran a process's first inference at once
    # (hung in 1 of 12 to 2 of 10 fresh processes): each try is a fresh process, bounded in time.
    for _ in range(6):
        done = subprocess.run([sys.executable, "-c", _FIRST_CALLS, str(cache)], capture_output=True, text=True,
                              timeout=120, check=False, cwd=REPO)
        assert done.returncode == 0 and done.stdout.split() == ["120"], done.stderr[-2000:]


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

    # A teammate without OpenVINO: `auto` embeds with ONNX Runtime, the same graph and vector format, so
    # nothing is stale, no notice is printed, and the index stays OpenVINO's for those who have it.
    with monkeypatch.context() as without:
        real = importlib.util.find_spec
        without.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "openvino" else real(name, *a))
        without.setitem(sys.modules, "openvino", None)
        with KnowledgeBase.open(kb_dir, device="cpu") as kb:
            assert kb.status().backend == "onnx" and kb.status().stale.vectors is None
            _notes(docs, 5)
            kb.ingest([str(docs)])
            assert kb.search("who is the warden of colony 4", k=1, mode="dense")[0].source.endswith("note-04.md")
            assert kb.search("who is the warden of colony 2", k=1, mode="dense")[0].source.endswith("note-02.md")
        with pytest.raises(DependencyError, match=r"pip install -e '\.\[openvino\]'"):
            kb_embed.make_embedder("all-MiniLM-L6-v2", backend="openvino")
        result = CliRunner().invoke(cli, ["ingest", str(docs), "--kb", str(tmp_path / "other")],
                                    env={"KB_BACKEND": "openvino"})
        assert result.exit_code != 0 and "Traceback" not in result.output
        assert "openvino backend needs OpenVINO" in result.output
    assert "new ones come from" not in caplog.text
    assert _meta(kb_dir)["backend"] == "openvino"
    with KnowledgeBase.open(kb_dir, device="cpu") as kb:
        assert kb.embedder.backend == "openvino"
    # An `onnx` index stays `onnx` when someone adds OpenVINO's vectors by name.
    with KnowledgeBase.open(tmp_path / "fp32", backend="onnx") as kb:
        kb.ingest([str(docs)])
    with KnowledgeBase.open(tmp_path / "fp32", backend="openvino") as kb:
        _notes(docs, 6)
        kb.ingest([str(docs)])
        assert kb.status().stale.vectors is None
    assert _meta(tmp_path / "fp32")["backend"] == "onnx" and "new ones come from" not in caplog.text
    assert same_format("openvino", "onnx") and not same_format("openvino", "onnx+w8")
    assert not same_format("openvino", "onnx-int8+w8") and not same_format("openvino+w8", "torch")


def test_openvino_runs_on_the_cpu_whatever_the_device_says() -> None:
    # so that an index of its vectors reads on a machine with a GPU too
    assert isinstance(make_embedder("all-MiniLM-L6-v2", backend="openvino", device="cuda"), OpenVinoEmbedder)
