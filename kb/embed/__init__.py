"""Embedders, chosen by backend name: `torch` (sentence-transformers, fp16 on CUDA), `onnx` and
`onnx-int8` (ONNX Runtime), or a third party's through the `kb.embedders` entry-point group.

A backend entry is a callable `(model, *, device, batch_size) -> Embedder`.
"""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from kb.embed import torch as torch_backend  # imports torch only when a vector is needed
from kb.embed.base import Embedder, canonical_model_id, resolve_model, tokenizer_file
from kb.embed.serial import SerialEmbedder, shareable
from kb.errors import ConfigError, EmbedderMismatchError
from kb.registry import Registry

if TYPE_CHECKING:
    from kb.config import Settings

__all__ = ["BACKENDS", "EMBEDDERS", "Embedder", "SerialEmbedder", "canonical_model_id", "cuda_available",
           "make_embedder", "resolve_model", "shareable", "tokenizer_file"]

log = logging.getLogger(__name__)

EMBEDDERS: Registry[Callable[..., Embedder]] = Registry("kb.embedders", "embedding backend", {
    "torch": "kb.embed.torch:SentenceTransformerEmbedder",
    "onnx": "kb.embed.onnx:OnnxEmbedder.fp32",
    "onnx-int8": "kb.embed.onnx:OnnxEmbedder.int8",
})
BACKENDS = ("auto", "torch", "onnx", "onnx-int8")  # the built-in choices; `EMBEDDERS.names()` adds plugins'


def make_embedder(model: str, *, backend: str = "auto", device: str = "auto", batch_size: int = 0) -> Embedder:
    """The embedder for a backend name. `auto`: torch fp16 on CUDA (when torch is installed), else ONNX
    Runtime int8 (3.75x torch on CPU, doc recall@5 within 1 point: benchmarks/PERFORMANCE.md), else
    torch with a notice where torch is installed."""
    name = backend.strip().lower()
    if name != "auto" and name not in EMBEDDERS:
        raise ConfigError(f"unknown backend {backend!r} (known: auto, {', '.join(EMBEDDERS.names())})")
    if name == "auto":
        if cuda_available(device):
            return EMBEDDERS.get("torch")(model, device=device, batch_size=batch_size)
        try:
            embedder = EMBEDDERS.get("onnx-int8")(model, device=device, batch_size=batch_size)
            _ = embedder.dimensions  # exports the model now, so that `auto` can still fall back to torch
            return embedder
        except Exception as e:  # any failure to export or load: torch still works, and says so
            if not _torch_installed():  # the default install has no torch: the ONNX error is the one to see
                raise
            why = " ".join(str(e).split())[:200] or type(e).__name__
            log.warning("kb: ONNX backend unavailable (%s); embedding with torch", why)
            name = "torch"
    return EMBEDDERS.get(name)(model, device=device, batch_size=batch_size)


def index_model(settings: Settings, built_with: str | None, where: Path) -> str:
    """The model the knowledge base in `where` embeds with: the one its index was `built_with`, when it
    has one; asking for another one by name is an error."""
    wanted = canonical_model_id(settings.model)
    if built_with and built_with != wanted and "model" in settings.explicit:
        raise EmbedderMismatchError(
            f"{where} was built with the embedding model {built_with!r}, not {wanted!r}: "
            "use that model, or re-embed with `kb reindex --model NEW`"
        )
    return built_with or wanted


def open_embedder(settings: Settings, model: str) -> Embedder:
    """The embedder of `model` with the backend, device and batch size `settings` name, safe to share
    between threads."""
    # The backend (torch / onnx / onnx-int8) is recorded in the index but is not part of its identity:
    # one model's backends agree to >= 0.98 cosine and mixing them moved doc recall@5 on the retrieval benchmark by
    # < 1 point (benchmarks/PERFORMANCE.md), so `auto` takes the fastest one on every machine.
    return shareable(make_embedder(model, backend=settings.backend, device=settings.device,
                                   batch_size=settings.batch_size))


def _torch_installed() -> bool:
    return all(importlib.util.find_spec(m) is not None for m in ("torch", "sentence_transformers"))


def cuda_available(device: str = "auto") -> bool:
    """Whether `device` means a GPU (see `kb.embed.torch.cuda_available`)."""
    return torch_backend.cuda_available(device)
