"""The `VectorStore` seam: vectors keyed by chunk id, one backend per file, chosen by name.

A store declares what it can do beyond the contract (`native_filters`, `native_keyword`, `shared`)
instead of being probed for methods; search code asks those flags.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from kb.registry import Registry

if TYPE_CHECKING:
    import numpy as np

    from kb.config import Settings
    from kb.filters import Filters
    from kb.index.catalog import Catalog

# What a shared store keeps beside each vector (kb.index.team: the chunk's text and citation fields).
Payload = dict[str, object]


class VectorStore(ABC):
    name: ClassVar[str]
    native_filters: ClassVar[bool] = False  # `search_filtered` evaluates `Filters` inside the store
    native_keyword: ClassVar[bool] = False  # `keyword_search` is the store's own BM25 over the chunks it holds
    shared: ClassVar[bool] = False  # holds the whole knowledge base (chunks, documents, build), for a team

    @classmethod
    @abstractmethod
    def open(cls, settings: Settings, folder: Path, dimensions: int | None, vectors: str | None = None) -> VectorStore:
        """The store of the knowledge base in `folder`; `vectors` (kept in the catalog) names a
        store-specific generation, such as the live FAISS file after `kb reindex`."""

    @abstractmethod
    def add(self, ids: np.ndarray, vectors: np.ndarray, payloads: list[Payload] | None = None) -> None:
        """Insert vectors under new int64 chunk ids (the catalog never reuses an id)."""

    @abstractmethod
    def search(self, vector: np.ndarray, k: int, allowed_ids: np.ndarray | None = None) -> list[tuple[int, float]]:
        """Best `k` (id, inner product) pairs, best first; only among `allowed_ids` when given."""

    @abstractmethod
    def delete(self, ids: np.ndarray) -> None: ...

    @abstractmethod
    def count(self) -> int: ...

    @abstractmethod
    def ids(self) -> np.ndarray:
        """Every id held, as int64."""

    def save(self) -> None:
        """Make what was added durable (a no-op for stores that write through)."""

    def bytes_to_save(self, added: int, dimensions: int) -> int:
        """Free bytes the knowledge base folder needs for the next `save` once `added` more vectors of
        `dimensions` are in (0: the store keeps nothing there, or writes as it goes)."""
        return 0

    def close(self) -> None:
        self.save()

    @classmethod
    def generation(cls) -> str:
        """A name for a new generation of vectors (`kb reindex` writes one, then switches to it)."""
        return f"vectors-{int(time.time() * 1000)}"

    @classmethod
    def drop(cls, folder: Path, vectors: str | None) -> None:
        """Delete a generation from disk (the old one, once `kb reindex` switched away); it need not open."""

    @classmethod
    def sweep(cls, folder: Path, vectors: str | None) -> list[str]:
        """Delete what interrupted writes left in `folder` (half-written files, generations other
        than the live one `vectors`); called by repair, under the write lock. Returns what went."""
        return []

    @classmethod
    def stamp(cls, folder: Path, vectors: str | None) -> object | None:
        """Changes whenever another process rewrites the stored vectors (a long-lived reader then
        reopens the store); None when the store cannot tell, or serves every process live."""
        return None

    # --- optional capabilities: implemented where the flags above say so ------------------------
    def search_filtered(self, vector: np.ndarray, k: int, filters: Filters | None, catalog: Catalog) -> list[tuple[int, float]]:
        """Dense search with `filters` evaluated by the store (`native_filters`)."""
        raise NotImplementedError(f"{self.name} does not filter natively")

    def keyword_search(self, query: str, k: int, filters: Filters | None, catalog: Catalog) -> list[tuple[int, float]]:
        """The store's own BM25 (`native_keyword`): (id, score) best first."""
        raise NotImplementedError(f"{self.name} has no keyword search")


# Stores by name (entry-point group `kb.stores`); a class with `shared = True` is opened as a `TeamIndex`.
STORES: Registry[type[VectorStore]] = Registry("kb.stores", "store", {
    "faiss": "kb.index.faiss:FaissStore",
    "milvus": "kb.index.milvus:MilvusStore",
})
