"""The ONNX Runtime embedder against the torch model it was exported from, and its export cache."""

from __future__ import annotations

import json
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnxruntime")

from kb.embed import make_embedder, resolve_model
from kb.embed.onnx import OnnxEmbedder
from kb.embed.onnx_export import FP32_FILE, INT8_FILE, model_fingerprint
from kb.embed.torch import SentenceTransformerEmbedder
from kb.errors import EmbedderError

SENTENCES = [
    "Total net sales increased 8% compared to the same quarter a year ago.",
    "iPhone net sales were $39.7 billion, driven by higher sales of the Pro models.",
    "The Company's effective tax rate for the third quarter of 2023 was 12.5%.",
    "Risk factors: the Company's operations depend on global and regional economic conditions.",
    "When the payment gateway returns error 5031, page the on-call engineer.",
    "ok",
    ("Cash, cash equivalents and marketable securities totalled $166.3 billion as of June 2023, and the "
     "Company repurchased $18.0 billion of its common stock and paid dividends of $3.8 billion."),
    # Longer than the model's 256-token window: both backends must truncate alike.
    " ".join(f"Segment {i} operating income rose {i % 17}.{i % 10}% year over year." for i in range(80)),
]


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("onnx-cache")


@pytest.fixture(scope="module")
def reference() -> np.ndarray:
    return SentenceTransformerEmbedder("all-MiniLM-L6-v2", device="cpu").embed_documents(SENTENCES)


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


@pytest.mark.slow
def test_fp32_and_int8_match_the_torch_model(cache: Path, reference: np.ndarray) -> None:
    fp32 = OnnxEmbedder("all-MiniLM-L6-v2", quantize=False, cache_dir=cache)
    int8 = OnnxEmbedder("all-MiniLM-L6-v2", quantize=True, cache_dir=cache)
    assert (fp32.model_id, fp32.dimensions, fp32.max_seq_length) == ("sentence-transformers/all-MiniLM-L6-v2", 384, 256)
    assert (fp32.backend, int8.backend) == ("onnx", "onnx-int8+w8")  # int8: from the packaged int8 weights, always
    a, b = fp32.embed_documents(SENTENCES), int8.embed_documents(SENTENCES)
    for vectors in (a, b):
        assert vectors.dtype == np.float32 and vectors.shape == (len(SENTENCES), 384)
        assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert _cosines(a, reference).min() >= 0.99
    assert _cosines(b, reference).min() >= 0.95
    # Batching and length-sorting must not reorder or mix up vectors: one text alone agrees too.
    assert float(fp32.embed_query(SENTENCES[1]) @ reference[1]) >= 0.99
    assert float(int8.embed_query(SENTENCES[1]) @ reference[1]) >= 0.95
    assert fp32.embed_documents([]).shape == (0, 384)


@pytest.mark.slow
def test_a_text_gets_the_same_int8_vector_whatever_it_is_embedded_with(cache: Path) -> None:
    # Dynamic int8 quantization scales a run's activations as a whole: batched with a long text, a short
    # one drifted from the vector it gets alone, which is how a query is embedded.
    int8 = OnnxEmbedder("all-MiniLM-L6-v2", quantize=True, cache_dir=cache)
    alone = np.stack([int8.embed_query(text) for text in SENTENCES])
    assert np.array_equal(int8.embed_documents(SENTENCES), alone)
    assert np.array_equal(int8.embed_documents(SENTENCES[::-1])[::-1], alone)
    # The texts of a batch run side by side, one thread each: as many runs at once as the machine has
    # cores, or one, or more than it has, and callers in several threads, all give the same bits.
    many = SENTENCES * 4
    for threads in (1, 3):
        other = OnnxEmbedder("all-MiniLM-L6-v2", quantize=True, cache_dir=cache, threads=threads)
        assert np.array_equal(other.embed_documents(many), np.tile(alone, (4, 1)))
    with ThreadPoolExecutor(3) as callers:
        for got in callers.map(int8.embed_documents, [many, many[::-1], SENTENCES[2:5]]):
            assert {tuple(v) for v in got} <= {tuple(v) for v in alone}


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["onnx", "torch"])
def test_a_text_gets_the_same_float_vector_alone_and_in_any_batch(backend: str, cache: Path) -> None:
    # fp32 paths batch texts of different lengths with padding: the padded positions are masked out, and
    # what is left differs only in the last bits of a float sum.
    embedder = (OnnxEmbedder("all-MiniLM-L6-v2", quantize=False, cache_dir=cache) if backend == "onnx"
                else SentenceTransformerEmbedder("all-MiniLM-L6-v2", device="cpu"))
    alone = np.stack([embedder.embed_query(text) for text in SENTENCES])
    for batch in (SENTENCES, SENTENCES[::-1], SENTENCES * 5):
        got = embedder.embed_documents(batch)
        order = [SENTENCES.index(t) for t in batch]
        assert _cosines(got, alone[order]).min() >= 0.99999


@pytest.mark.slow
def test_export_is_cached_and_not_redone(cache: Path, caplog: pytest.LogCaptureFixture) -> None:
    first = OnnxEmbedder("all-MiniLM-L6-v2", quantize=True, cache_dir=cache)
    folder = first.export_dir
    files = [folder / INT8_FILE, folder / "tokenizer.json", folder / "meta.json"]
    mtimes = [f.stat().st_mtime_ns for f in files]
    assert not (folder / FP32_FILE).exists()  # only a step to the int8 graph: not kept (tests/test_model_cache.py)
    caplog.clear()
    again = OnnxEmbedder("sentence-transformers/all-MiniLM-L6-v2", quantize=True, cache_dir=cache)
    assert again.export_dir == folder  # the same model named two ways: one export
    again.embed_query("warm")
    assert [f.stat().st_mtime_ns for f in files] == mtimes
    assert "building" not in caplog.text
    assert not [p for p in cache.iterdir() if p.name.endswith(".tmp")]  # no half-written export left behind
    meta = json.loads((folder / "meta.json").read_text())
    assert meta["pooling"] == "mean" and meta["dimensions"] == 384


def test_cache_key_follows_the_model_files(tmp_path: Path) -> None:
    source = Path(resolve_model("all-MiniLM-L6-v2"))
    copy = tmp_path / "model"
    shutil.copytree(source, copy, ignore=shutil.ignore_patterns("model.safetensors"))
    (copy / "model.safetensors").symlink_to(source / "model.safetensors")
    memo = tmp_path / "cache"
    key = model_fingerprint(str(copy), "m", memo)
    assert model_fingerprint(str(copy), "m", memo) == key  # stable (and memoised)
    assert model_fingerprint(str(copy), "other", memo) != key
    config = json.loads((copy / "config.json").read_text())
    config["layer_norm_eps"] = 1e-6
    (copy / "config.json").write_text(json.dumps(config))
    assert model_fingerprint(str(copy), "m", memo) != key


def test_unsupported_module_is_refused_and_auto_falls_back_to_torch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    source = Path(resolve_model("all-MiniLM-L6-v2"))
    model = tmp_path / "dense-model"
    shutil.copytree(source, model, ignore=shutil.ignore_patterns("model.safetensors"))
    (model / "model.safetensors").symlink_to(source / "model.safetensors")
    modules = json.loads((model / "modules.json").read_text())
    modules.insert(2, {"idx": 2, "name": "2", "path": "2_Dense", "type": "sentence_transformers.models.Dense"})
    (model / "modules.json").write_text(json.dumps(modules))
    monkeypatch.setenv("KB_CACHE_DIR", str(tmp_path / "cache"))
    with pytest.raises(EmbedderError, match="Dense"):
        _ = OnnxEmbedder(str(model)).export_dir
    embedder = make_embedder(str(model), backend="auto", device="cpu")
    assert isinstance(embedder, SentenceTransformerEmbedder) and embedder.backend == "torch"
    assert "embedding with torch" in caplog.text  # a warning the CLI shows on stderr
    with pytest.raises(EmbedderError):  # asked for by name: no silent fallback
        _ = make_embedder(str(model), backend="onnx-int8", device="cpu").dimensions


def test_layer_norms_are_unfused_into_the_same_arithmetic(tmp_path: Path) -> None:
    # ONNX Runtime's SkipLayerNormalization kernel is 5x slower than the three plain operators it stands for.
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    from kb.embed.onnx_export import SLOW_FUSIONS, plain_layer_norms

    rng = np.random.default_rng(0)
    weights = {name: rng.standard_normal(16).astype(np.float32) for name in ("gamma", "beta", "bias")}
    graph = helper.make_graph(
        [helper.make_node("SkipLayerNormalization", ["x", "skip", "gamma", "beta", "bias"], ["y"],
                          domain="com.microsoft", epsilon=1e-12)], "g",
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, [1, 5, 16]) for n in ("x", "skip")],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 5, 16])],
        [numpy_helper.from_array(v, k) for k, v in weights.items()])
    path = tmp_path / "g.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)]),
              str(path))
    feed = {"x": rng.standard_normal((1, 5, 16)).astype(np.float32), "skip": rng.standard_normal((1, 5, 16)).astype(np.float32)}
    fused = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, feed)[0]
    plain_layer_norms(path)
    assert [n.op_type for n in onnx.load(str(path)).graph.node] == ["Add", "Add", "LayerNormalization"]
    plain = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"], disabled_optimizers=SLOW_FUSIONS)
    assert np.allclose(plain.run(None, feed)[0], fused, atol=1e-5)
