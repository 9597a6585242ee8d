"""Embedders, chosen by backend name: `torch` (sentence-transformers, fp16 on CUDA), `onnx` and
`onnx-int8` (ONNX Runtime), `openvino` (OpenVINO, bf16 where the CPU has bf16 units), or a third
party's through the `kb.embedders` entry-point group.

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
from kb.embed.prompts import Prompts, local_folder, read_prompts
from kb.embed.serial import SerialEmbedder, shareable
from kb.errors import ConfigError, DiskFullError, EmbedderMismatchError
from kb.registry import Registry

if TYPE_CHECKING:
    from kb.config import Settings

__all__ = ["BACKENDS", "EMBEDDERS", "Embedder", "Prompts", "SerialEmbedder", "canonical_model_id", "cuda_available",
           "auto_backend", "make_embedder", "model_prompts", "open_embedder", "pick_backend", "resolve_model",
           "same_format", "shareable", "tokenizer_file", "vector_format"]

log = logging.getLogger(__name__)

EMBEDDERS: Registry[Callable[..., Embedder]] = Registry("kb.embedders", "embedding backend", {
    "torch": "kb.embed.torch:SentenceTransformerEmbedder",
    "onnx": "kb.embed.onnx:OnnxEmbedder.fp32",
    "onnx-int8": "kb.embed.onnx:OnnxEmbedder.int8",
    "openvino": "kb.embed.openvino:OpenVinoEmbedder.create",
})
BACKENDS = ("auto", "torch", "onnx", "onnx-int8", "openvino")  # the built-in choices; `EMBEDDERS.names()` adds plugins'


def make_embedder(model: str, *, backend: str = "auto", device: str = "auto", batch_size: int = 0) -> Embedder:
    """The embedder for a backend name. `auto`: torch fp16 on CUDA (when torch is installed), else ONNX
    Runtime int8 (3.75x torch on CPU, doc recall@5 within 1 point: benchmarks/PERFORMANCE.md), else
    torch with a notice where torch is installed."""
    name = backend.strip().lower()
    if name != "auto" and name not in EMBEDDERS:
        raise ConfigError(f"unknown backend {backend!r} (known: auto, {', '.join(EMBEDDERS.names())})")
    if name == "auto":
        if auto_backend(device) == "torch":
            return EMBEDDERS.get("torch")(model, device=device, batch_size=batch_size)
        try:
            embedder = EMBEDDERS.get("onnx-int8")(model, device=device, batch_size=batch_size)
            _ = embedder.dimensions  # exports the model now, so that `auto` can still fall back to torch
            return embedder
        except Exception as e:  # any failure to export or load: torch still works, and says so
            # The default install has no torch: the ONNX error is the one to see; so is a full disk, which
            # the user must hear of, not find a knowledge base of another backend's vectors.
            if not _torch_installed() or isinstance(e, DiskFullError):
                raise
            why = " ".join(str(e).split())[:200] or type(e).__name__
            log.warning("kb: ONNX backend unavailable (%s); embedding with torch", why)
            name = "torch"
    return EMBEDDERS.get(name)(model, device=device, batch_size=batch_size)


def auto_backend(device: str = "auto") -> str:
    """What `auto` takes for a new knowledge base: torch (fp16) on a GPU, else ONNX Runtime int8."""
    return "torch" if cuda_available(device) else "onnx-int8"


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


def pick_backend(backend: str, recorded: str | None) -> str:
    """The backend to use: `backend` as configured, except that `auto` in a knowledge base that holds
    vectors (made by the `recorded` backend) takes a backend making vectors of the same format, so that
    machines with and without a GPU, or with other CPUs, add the same vectors to one store. One text
    gets the same vector from one format's backends (int8: `onnx-int8`, bit for bit; fp32: `onnx` and
    `torch` on the CPU, cosine >= 0.99999; `openvino`, bf16 or fp32 by the CPU, within 0.9999 of them),
    from two formats' only within 0.98. A format no built-in backend makes (a plugin's) leaves `auto` as
    for a new knowledge base."""
    if backend.strip().lower() != "auto" or not recorded:
        return backend
    made_by = recorded.split("+")[0]  # "+w8": from int8 weights, which the same backend here uses too
    if made_by == "onnx-int8":
        return "onnx-int8"  # also on a GPU machine: torch on CUDA would add fp16 vectors
    if made_by == "torch":  # the record does not say whether on CUDA (fp16): torch decides as it did
        return "torch" if _torch_installed() else "onnx"
    if made_by == "openvino":  # without OpenVINO here: ONNX Runtime, the same format (`same_format`)
        return "openvino" if importlib.util.find_spec("openvino") is not None else "onnx"
    return "onnx" if made_by == "onnx" else backend


def same_format(a: str, b: str) -> bool:
    """Whether the vectors two recorded backends made are of one format: the same backend, or the fp32
    graph run by ONNX Runtime (`onnx`) and by OpenVINO (`openvino`, bf16 or fp32 by the CPU: within
    0.9999 cosine), from the same weights ("+w8": int8 ones). `torch` is not `onnx`'s: its record does
    not say whether it ran fp16 on a GPU."""
    def key(backend: str) -> str:
        name, plus, weights = backend.partition("+")
        return ("onnx" if name == "openvino" else name) + plus + weights
    return key(a) == key(b)


def vector_format(backend: str, model: str) -> tuple[str, str] | None:
    """(backend, graph) as an index records them for the vectors `backend` (a name `pick_backend` gave,
    not "auto") makes of `model`, told without loading it; None for a backend kb does not know (a
    plugin's)."""
    name = backend.strip().lower()
    if name in ("onnx", "onnx-int8"):
        # lazy: the ONNX backend's module (the model loads later still, on first use)
        from kb.embed.onnx import OnnxEmbedder

        e = OnnxEmbedder(model, quantize=name == "onnx-int8")
        return e.backend, e.graph
    if name == "openvino":
        # lazy: the OpenVINO backend's module (OpenVINO itself loads with the model)
        from kb.embed.openvino import OpenVinoEmbedder

        return OpenVinoEmbedder(model).backend, ""
    return ("torch", "") if name == "torch" else None


def open_embedder(settings: Settings, model: str, recorded: str | None = None,
                  prompts: Prompts | None = None) -> Embedder:
    """The embedder of `model` with the backend, device and batch size `settings` name, safe to share
    between threads; `recorded`: the backend that made the index's vectors (see `pick_backend`);
    `prompts`: those the index's vectors were made with (None: the model's own)."""
    embedder = make_embedder(model, backend=pick_backend(settings.backend, recorded), device=settings.device,
                             batch_size=settings.batch_size)
    if prompts is not None:
        embedder.use_prompts(prompts)
    return shareable(embedder)


def model_prompts(model: str) -> Prompts | None:
    """The prompts `model` embeds with here (`kb.embed.prompts`), told without loading it: None where
    its files are not at hand (a hub model not downloaded yet)."""
    folder = local_folder(resolve_model(model))
    return read_prompts(folder, canonical_model_id(model)) if folder is not None else None


def _torch_installed() -> bool:
    return all(importlib.util.find_spec(m) is not None for m in ("torch", "sentence_transformers"))


def cuda_available(device: str = "auto") -> bool:
    """Whether `device` means a GPU (see `kb.embed.torch.cuda_available`)."""
    return torch_backend.cuda_available(device)
