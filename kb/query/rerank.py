"""Reranking: the factory (`open_reranker`) and the sentence-transformers backend of the `Reranker` seam
(`kb.query.rerank_base`, re-exported here).

Off by default. `CrossEncoderReranker` wraps sentence-transformers' `CrossEncoder` (any
`cross-encoder/...` model from the Hub, or a local folder); `kb.query.rerank_onnx` runs the same
models with ONNX Runtime alone (the `onnx` backends, or wherever torch is not installed).
"""

from __future__ import annotations

import importlib.util
import os
from functools import lru_cache
from pathlib import Path
from typing import Any

from kb.errors import ConfigError, DependencyError, EmbedderError, install_command
from kb.query.rerank_base import Reranker

__all__ = ["RERANK_BACKENDS", "CrossEncoderReranker", "Reranker", "open_reranker"]


class CrossEncoderReranker(Reranker):
    def __init__(self, model: str | Any, *, device: str = "auto", batch_size: int = 32):
        """`model`: a Hub id, a local folder, or an already-built `CrossEncoder`."""
        if isinstance(model, str):
            self.name = model
            self._model: Any = None
        else:
            self.name = type(model).__name__
            self._model = model
        self.device = device
        self.batch_size = batch_size

    @property
    def model(self) -> Any:
        if self._model is None:
            self._model = _load_cross_encoder(self.name, self.device)
        return self._model

    def score(self, query: str, texts: list[str]) -> list[float]:
        if not texts:
            return []
        out = self.model.predict(
            [(query, t) for t in texts], batch_size=self.batch_size, show_progress_bar=False, convert_to_numpy=True
        )
        # A model with several labels gives one row per pair; its last column is "relevant".
        return [float(row[-1]) if getattr(row, "ndim", 0) else float(row) for row in out]


@lru_cache(maxsize=2)
def _load_cross_encoder(name: str, device: str) -> Any:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    location = Path(name).expanduser()
    if location.is_dir():
        os.environ.setdefault("HF_HUB_OFFLINE", "1")  # a local model must never touch the network
    try:
        # lazy: sentence-transformers and torch are optional and heavy
        from sentence_transformers import CrossEncoder
    except ImportError as e:
        raise DependencyError(f"sentence-transformers is not installed: {install_command()}") from e
    if device == "auto":
        # lazy: sentence-transformers and torch are optional and heavy
        import torch

        device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        return CrossEncoder(str(location) if location.is_dir() else name, device=device)
    except Exception as e:  # hub errors, missing files: all mean "cannot load"
        raise EmbedderError(f"cannot load reranking model {name!r}: {' '.join(str(e).split())[:300]}") from e


RERANK_BACKENDS = ("auto", "torch", "onnx")


def open_reranker(name: str | Reranker | None, *, device: str = "auto", backend: str = "auto",
                  embedding_backend: str = "auto") -> Reranker | None:
    """None or "" or "none": no reranking; a `Reranker` as is; a name: a cross-encoder model, run by
    `backend`: `onnx` (ONNX Runtime), `torch` (sentence-transformers), or `auto`: ONNX Runtime where
    `embedding_backend` names an ONNX one (or openvino) or torch is not installed, else torch."""
    if name is None or isinstance(name, Reranker):
        return name
    if not name.strip() or name.strip().lower() in ("none", "off"):
        return None
    kind = backend.strip().lower()
    if kind not in RERANK_BACKENDS:
        raise ConfigError(f"unknown rerank backend {backend!r} (known: {', '.join(RERANK_BACKENDS)})")
    if kind == "auto":
        # openvino runs ONNX graphs too, and an install that chose it may lack torch
        onnx = embedding_backend.strip().lower().startswith(("onnx", "openvino")) or not _torch_installed()
        kind = "onnx" if onnx else "torch"
    if kind == "onnx":
        return _onnx_reranker(name.strip())
    return CrossEncoderReranker(name.strip(), device=device)


@lru_cache(maxsize=2)
def _onnx_reranker(name: str) -> Reranker:
    """One ONNX session per model and process, however many searches name it."""
    # lazy: the ONNX path's module (onnxruntime loads later still, on first use)
    from kb.query.rerank_onnx import OnnxCrossEncoderReranker

    return OnnxCrossEncoderReranker(name)


def _torch_installed() -> bool:
    return all(importlib.util.find_spec(m) is not None for m in ("torch", "sentence_transformers"))
