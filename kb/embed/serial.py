"""An embedder shared by many threads: calls to one that is not thread-safe go one at a time."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from kb.embed.base import Embedder, Vectors
from kb.embed.prompts import Prompts

if TYPE_CHECKING:
    from tokenizers import Tokenizer


class SerialEmbedder(Embedder):
    """An embedder that is not thread-safe (torch's Hugging Face tokenizer: "Already borrowed"), one call at a time."""

    thread_safe = True

    def __init__(self, inner: Embedder):
        self.inner, self._lock = inner, threading.Lock()
        self.model_id, self.backend, self.location = inner.model_id, inner.backend, inner.location
        self.batch_size, self.graph = inner.batch_size, inner.graph

    @property
    def prompts(self) -> Prompts:
        return self.inner.prompts

    def use_prompts(self, prompts: Prompts) -> None:
        self.inner.use_prompts(prompts)

    @property
    def dimensions(self) -> int:
        return self.inner.dimensions

    @property
    def max_seq_length(self) -> int:
        return self.inner.max_seq_length

    def tokenizer(self) -> Tokenizer:
        return self.inner.tokenizer()

    def embed_batch(self, texts: list[str]) -> Vectors:
        with self._lock:
            return self.inner.embed_batch(texts)

    def embed_documents(self, texts: list[str]) -> Vectors:
        with self._lock:
            return self.inner.embed_documents(texts)

    def embed_query(self, text: str) -> Vectors:
        with self._lock:
            return self.inner.embed_query(text)


def shareable(embedder: Embedder) -> Embedder:
    """`embedder`, safe to call from many threads at once."""
    return embedder if embedder.thread_safe else SerialEmbedder(embedder)
